import t from 'tap'
import { fileURLToPath } from 'node:url'
import { from, lastValueFrom, map, toArray } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import type { Reading } from '../ingest/index.ts'
import { imuMessages, readRecording, type Recording } from '../edge-sim/index.ts'
import { detectionQuality, qualityTable } from './detection-quality.ts'
import { defaultManoeuvreConfig as cfg, detectManoeuvres, manoeuvreDetector } from './manoeuvres.ts'
import type { DrivingEvent } from './events.ts'

const T0 = 1_767_225_600_000

/** An IMU reading as ingest hands it on. */
function reading(ts: number, rate_hz: number, samples: number[][], deviceId = 'phone-1', policyId = 'pol-1'): Reading {
  return { deviceId, policyId, kind: 'imu', subject: 'driving', seq: 0, ts, receivedAt: ts, fields: { rate_hz }, samples }
}

/** Samples cut into 1 s readings from `ts`, as a phone sends them. */
function readings(samples: number[][], rate_hz: number, ts = T0): Reading[] {
  const out: Reading[] = []
  for (let i = 0; i < samples.length; i += rate_hz) out.push(reading(ts + Math.round((i * 1000) / rate_hz), rate_hz, samples.slice(i, i + rate_hz)))
  return out
}

/** Runs one device's detector over its readings, flushing at the end. */
function detect(rs: readonly Reading[]): DrivingEvent[] {
  const d = manoeuvreDetector(cfg, 'phone-1', 'pol-1')
  return [...rs.flatMap((r) => d.push(r)), ...d.flush()]
}

/** `seconds` of samples at `rate_hz`, row i from `row(t_s)`. */
const signal = (seconds: number, rate_hz: number, row: (t_s: number) => number[]) =>
  Array.from({ length: Math.round(seconds * rate_hz) }, (_, i) => row(i / rate_hz))

/** Small deterministic noise in [-1, 1). */
function noise(seed: number) {
  let s = seed >>> 0
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 31) - 1
}

const dataset = fileURLToPath(new URL('../../shared/data/driver-behavior-dataset/', import.meta.url))

t.test('the two labelled trips, fed as 1 s readings: precision and recall ≥ 0.9 for both event types', (t) => {
  const trips: Recording[] = [readRecording(`${dataset}trip-17`), readRecording(`${dataset}trip-20`)]
  const quality = detectionQuality(trips.map((trip) => {
    const rs = [...imuMessages(trip, T0)].map((m) => reading(m.ts, m.rate_hz, m.samples))
    return { labels: trip.events, detections: detect(rs).map((e) => ({ type: e.type, startS: (e.from - T0) / 1000, endS: (e.to - T0) / 1000 })) }
  }))
  const table = qualityTable(quality)
  t.comment(`\n${table}`)
  t.same(quality.rows.map((r) => r.type), ['harsh_longitudinal', 'harsh_lateral'], 'a row for each labelled type')
  for (const row of quality.rows) {
    t.ok(row.labels > 0 && row.detections > 0, `${row.type}: ${row.labels} labels, ${row.detections} detections (precision and recall of nothing would read 1)`)
    t.ok(row.precision >= 0.9, `${row.type}: precision ${row.precision.toFixed(2)} (${row.correct} of ${row.detections} correct)\n${table}`)
    t.ok(row.recall >= 0.9, `${row.type}: recall ${row.recall.toFixed(2)} (${row.found} of ${row.labels} found)\n${table}`)
  }
  t.equal(quality.normalFired, 0, `no detection on a labelled normal manoeuvre\n${table}`)
  t.end()
})

t.test('a straight-line 4 m/s² braking is one harsh_longitudinal event, at 10 Hz and at 100 Hz', (t) => {
  for (const rate_hz of [10, 100]) {
    // Heading north-east, braking at 4 m/s² from 2 s to 3.5 s, then standing still.
    const brake = (s: number) => (s >= 2 && s < 3.5 ? -4 : 0)
    const samples = signal(10, rate_hz, (s) => [brake(s) * Math.SQRT1_2, brake(s) * Math.SQRT1_2, 0, 0, 0, 0])
    const events = detect(readings(samples, rate_hz))
    t.equal(events.length, 1, `${rate_hz} Hz: one event`)
    const e = events[0]!
    t.equal(e.type, 'harsh_longitudinal', `${rate_hz} Hz: longitudinal`)
    t.match(e, { policyId: 'pol-1', deviceId: 'phone-1', evidence: { source: 'imu', unit: 'm/s²', threshold: cfg.longitudinal_ms2, rate_hz, peakYaw_rads: 0 } })
    t.ok(Math.abs(e.evidence.peak - 4) < 0.01, `${rate_hz} Hz: peak ${e.evidence.peak} m/s²`)
    // The event lasts while the trailing average is above active_ms2: it starts an eighth of a window
    // after the braking does and ends three quarters of a window after it.
    t.ok(e.from >= T0 + 2000 && e.from <= T0 + 2000 + cfg.smooth_s * 1000, `${rate_hz} Hz: starts with the braking`)
    t.ok(e.to >= T0 + 3500 && e.to <= T0 + 3500 + cfg.smooth_s * 1000, `${rate_hz} Hz: ends with it`)
    t.ok(Math.abs(e.evidence.duration_s - (e.to - e.from) / 1000) < 0.001 && e.evidence.duration_s >= 1.5 && e.evidence.duration_s <= 1.5 + cfg.smooth_s, `${rate_hz} Hz: duration ${e.evidence.duration_s} s`)
    t.equal(e.evidence.samples, Math.round(e.evidence.duration_s * rate_hz) + 1, `${rate_hz} Hz: samples`)
  }
  t.end()
})

t.test('a turn at 0.6 rad/s with 4 m/s² of lateral acceleration is harsh_lateral', (t) => {
  const rate_hz = 50
  // 3 s of turning left: the centripetal acceleration points left of the heading, which rotates.
  const samples = signal(9, rate_hz, (s) => {
    if (s < 2 || s >= 5) return [0, 0, 0, 0, 0, 0]
    const heading = 0.6 * (s - 2)
    return [-4 * Math.sin(heading + Math.PI / 2), 4 * Math.cos(heading + Math.PI / 2), 0, 0, 0, 0.6]
  })
  const events = detect(readings(samples, rate_hz))
  t.equal(events.length, 1)
  t.equal(events[0]?.type, 'harsh_lateral')
  t.ok(Math.abs((events[0]!.evidence.peakYaw_rads as number) - 0.6) < 0.01, 'peak yaw rate 0.6 rad/s')
  t.equal(events[0]?.evidence.threshold, cfg.lateral_ms2)
  t.end()
})

t.test('quiet driving: vibration, gentle speed changes and bends yield nothing', (t) => {
  const rate_hz = 50
  const r = noise(7)
  const samples = signal(120, rate_hz, (s) => [
    0.8 * Math.sin(s / 7) + 1.2 * r(), 0.6 * Math.cos(s / 5) + 1.2 * r(), 0.5 * r(), 0.02 * r(), 0.02 * r(), 0.15 * Math.sin(s / 9) + 0.05 * r(),
  ])
  t.same(detect(readings(samples, rate_hz)), [])
  t.end()
})

t.test('a hard launch from rest is harsh_longitudinal; the same pattern while moving is not', (t) => {
  const rate_hz = 50
  // The phone's linear acceleration shows a launch as a surge, a dip while the car accelerates in
  // first gear (the sensor's gravity estimate absorbs steady acceleration), then the opposite surge
  // at the gear change: 1.8 m/s² for 1 s, quiet for 2.5 s, 2.5 m/s² the other way for 1.5 s.
  const launch = (s: number) => (s >= 3 && s < 4 ? 1.8 : s >= 6.5 && s < 8 ? -2.5 : 0)
  const r = noise(3)
  const fromRest = signal(14, rate_hz, (s) => [0.05 * r(), launch(s) + 0.05 * r(), 0, 0, 0, 0])
  const events = detect(readings(fromRest, rate_hz))
  t.equal(events.length, 1)
  t.match(events[0], { type: 'harsh_longitudinal', evidence: { threshold: cfg.launch_ms2 } })
  // Moving: the road shakes the phone (≥ 0.35 m/s² of vibration) before the same pattern.
  const moving = signal(14, rate_hz, (s) => [1.2 * r(), launch(s) + 1.2 * r(), 0, 0, 0, 0])
  t.same(detect(readings(moving, rate_hz)), [])
  t.end()
})

t.test('a gap in device time resets the detector', (t) => {
  const rate_hz = 50
  // Two 1 s brakings 2.2 s of device time apart: close enough to be one manoeuvre, but the readings
  // between are missing (a gap above maxGap_s), so they are two events and nothing is bridged.
  t.ok(2.2 > cfg.maxGap_s && 2.2 < cfg.mergeGap_s)
  const pulse = (s: number) => (s < 1 ? [0, -4, 0, 0, 0, 0] : [0, 0, 0, 0, 0, 0])
  const before = readings(signal(1, rate_hz, pulse), rate_hz, T0)
  const after = readings(signal(4, rate_hz, pulse), rate_hz, T0 + 1000 + 2200)
  const d = manoeuvreDetector(cfg, 'phone-1', 'pol-1')
  t.same(before.flatMap((r) => d.push(r)), [], 'the first braking is still open')
  const onGap = d.push(after[0]!)
  t.equal(onGap.length, 1, 'the reading after the gap closes the first braking')
  t.ok(onGap[0]!.to < T0 + 1000, 'which ends before the gap')
  const rest = [...after.slice(1).flatMap((r) => d.push(r)), ...d.flush()]
  t.equal(rest.length, 1, 'the second braking is its own event')
  t.ok(rest[0]!.from >= T0 + 3200, 'starting after the gap')
  t.end()
})

t.test('the stage: one detector per device, events tagged with their device, idle devices flushed', async (t) => {
  const rate_hz = 50
  const brake = signal(8, rate_hz, (s) => (s >= 1 && s < 2.5 ? [0, -4, 0, 0, 0, 0] : [0, 0, 0, 0, 0, 0]))
  const a = readings(brake, rate_hz).map((r) => ({ ...r, deviceId: 'phone-a', policyId: 'pol-a' }))
  const b = readings(brake.slice(0, 2 * rate_hz), rate_hz).map((r) => ({ ...r, deviceId: 'phone-b', policyId: 'pol-b' }))
  const interleaved = a.flatMap((r, i) => (b[i] ? [r, b[i]] : [r]))
  const events = await lastValueFrom(from(interleaved).pipe(detectManoeuvres(cfg, 60_000), toArray()))
  t.same(events.map((e) => [e.deviceId, e.policyId, e.type]).sort(), [['phone-a', 'pol-a', 'harsh_longitudinal'], ['phone-b', 'pol-b', 'harsh_longitudinal']],
    'phone-b\'s braking, cut off by the end of its stream, is flushed')
})

t.test('marbles: a device that falls silent mid-manoeuvre is flushed when its group expires, idleMs after its last reading, not before', async (t) => {
  const rate_hz = 10
  // Three 1 s readings, the braking still under way when the device goes quiet (a tunnel, a dead phone).
  const [r1, r2, r3] = readings(signal(3, rate_hz, (s) => (s >= 1 ? [0, -4, 0, 0, 0, 0] : [0, 0, 0, 0, 0, 0])), rate_hz)
  const scheduler = new TestScheduler((actual, expected) => t.same(actual, expected))
  scheduler.run(({ cold, expectObservable }) => {
    const source = cold('a 999ms b 999ms c 29999ms |', { a: r1!, b: r2!, c: r3! })
    // 10 s after the last reading the device's group expires and the detector emits what it held.
    const events = source.pipe(detectManoeuvres(cfg, 10_000, scheduler), map((e) => e.type))
    expectObservable(events).toBe('12000ms x 19999ms |', { x: 'harsh_longitudinal' })
  })
})
