import t from 'tap'
import type { Reading } from '../ingest/index.ts'
import { choosePlaces, driveVehicle, drivingPersonas, makeCity, type DrivingPersonaName, type SensorReading, type TripTruth } from '../edge-sim/index.ts'
import { defaultPhoneHandlingConfig as cfg, phoneHandlingDetector } from './phone-handling.ts'
import type { PolicyEvent } from './events.ts'

const T0 = 1_767_225_600_000

/** A reading as ingest hands it on (ingest/decode.ts): the body's `samples` apart, the rest as fields. */
function reading(kind: string, ts: number, body: Record<string, unknown>, seq = 0): Reading {
  const { samples, ...fields } = body as { samples?: number[][] } & Record<string, number | boolean>
  return { deviceId: 'phone-1', policyId: 'pol-1', kind, subject: 'driving', seq, ts, receivedAt: ts, fields, ...(samples ? { samples } : {}) }
}

/**
 * `seconds` of driving as 1 s readings: an `obd` speed (unless `speed_kmh` is undefined: an
 * IMU-only phone), then the IMU batch whose row i is `row(t_s)`.
 */
function drive(seconds: number, rate_hz: number, speed_kmh: number | undefined, row: (t_s: number) => number[]): Reading[] {
  return Array.from({ length: seconds }, (_, s) => [
    ...(speed_kmh === undefined ? [] : [reading('obd', T0 + s * 1000, { speed_kmh })]),
    reading('imu', T0 + s * 1000, { rate_hz, samples: Array.from({ length: rate_hz }, (_, i) => row(s + i / rate_hz)) }),
  ]).flat()
}

function detect(rs: readonly Reading[]): PolicyEvent[] {
  const d = phoneHandlingDetector(cfg, 'phone-1', 'pol-1')
  return [...rs.flatMap((r) => d.push(r)), ...d.flush()]
}

/** A hand's swings about the horizontal axes between 10 s and 20 s, on a car turning gently (yaw 0.05 rad/s). */
const handled = (t_s: number) => {
  const hand = t_s >= 10 && t_s < 20 ? 1 : 0
  return [0.1, -0.2, 0.05, hand * Math.sin(2 * Math.PI * 0.7 * t_s), hand * 0.7 * Math.sin(2 * Math.PI * 0.45 * t_s), 0.05]
}

t.test('10 s of handling at 50 km/h is one phone_handling event, at 10, 25 and 100 Hz', (t) => {
  for (const rate_hz of [10, 25, 100]) {
    const events = detect(drive(40, rate_hz, 50, handled))
    t.equal(events.length, 1, `${rate_hz} Hz: one event`)
    const e = events[0]!
    t.match(e, { type: 'phone_handling', subject: 'driving', urgent: false, evidence: { source: 'imu', unit: 'rad/s', threshold: cfg.rate_rads, rate_hz, minSpeed_kmh: 50 } })
    // The trailing window delays the start until enough of it holds the swings, and holds the end as long.
    t.ok(e.from >= T0 + 10_000 && e.from <= T0 + 10_000 + cfg.smooth_s * 1000, `${rate_hz} Hz: starts with the handling (${e.from - T0} ms)`)
    t.ok(e.to >= T0 + 19_000 && e.to <= T0 + 20_000 + cfg.smooth_s * 1000, `${rate_hz} Hz: ends with it (${e.to - T0} ms)`)
    t.ok(e.evidence.peak >= 0.6 && e.evidence.peak <= 1.2, `${rate_hz} Hz: peak ${e.evidence.peak} rad/s (RMS of the swings ≈ 0.86)`)
    t.equal(e.evidence.duration_s, (e.to - e.from) / 1000)
    t.equal(e.evidence.samples, Math.round(e.evidence.duration_s * rate_hz) + 1)
  }
  t.end()
})

t.test('a mounted phone: turns, bumps and a 1 s nudge of the mount are not handling', (t) => {
  for (const rate_hz of [10, 25, 100]) {
    const events = detect(drive(60, rate_hz, 50, (t_s) => {
      const turn = t_s % 20 < 8 ? 0.8 : 0 // 90° turns and roundabouts: yaw only
      const bump = t_s % 2 < 0.2 ? 0.5 : 0 // a car pitching over a bump, every 2 s
      const nudge = t_s >= 30 && t_s < 31 ? 1 : 0 // the driver pushes the mount back into place
      return [0.5, 0.5, 0.3, bump + nudge, nudge, turn]
    }))
    t.same(events, [], `${rate_hz} Hz: no event`)
  }
  t.end()
})

t.test('moving: handling in a standing car is not counted; an IMU-only phone is taken as moving', (t) => {
  for (const rate_hz of [10, 25, 100]) {
    t.same(detect(drive(40, rate_hz, 0, handled)), [], `${rate_hz} Hz: standing still (OBD 0 km/h)`)
    const imuOnly = detect(drive(40, rate_hz, undefined, handled))
    t.equal(imuOnly.length, 1, `${rate_hz} Hz: IMU only, one event`)
    t.equal(imuOnly[0]?.evidence.minSpeed_kmh, undefined, `${rate_hz} Hz: its speed is not claimed`)
  }
  // Stale speed: the last OBD reading says 0 km/h, but 10 s ago; the phone's IMU says a trip goes on.
  const stale = [reading('obd', T0 - 10_000, { speed_kmh: 0 }), ...drive(40, 25, undefined, handled)]
  t.equal(detect(stale).length, 1, 'a speed older than speedMaxAge_s is not used')
  t.end()
})

t.test('re-sent batches (and a crash recorder\'s upload of past seconds) do not count twice', (t) => {
  const rs = drive(40, 25, 50, handled)
  const d = phoneHandlingDetector(cfg, 'phone-1', 'pol-1')
  const first = rs.flatMap((r) => d.push(r))
  const again = [...rs.flatMap((r) => d.push(r)), ...d.flush()]
  t.equal(first.length, 1, 'one event')
  t.same(again, [], 'nothing from the same seconds sent again')
  t.end()
})

const city = makeCity({ seed: 1 })

/** Simulated days of a persona's driving as ingest's readings, with the trips' truth. */
function simulate(persona: DrivingPersonaName, imuHz: number, days: number): { readings: Reading[]; trips: TripTruth[] } {
  const trips: TripTruth[] = []
  const seed = 21
  const places = choosePlaces(city, drivingPersonas.average, seed)
  const sim = driveVehicle(city, { persona, places, seed }, { startTs: Date.UTC(2026, 0, 5), days, imuHz }, (trip) => trips.push(trip))
  return { readings: [...sim].map((r: SensorReading, seq) => reading(r.kind, r.ts, r.body, seq)), trips }
}

const ratio = (a: number, b: number) => (b ? (a / b).toFixed(3) : '–')

t.test('simulated trips: phone handling against the truth, at 10, 25 and 100 Hz', (t) => {
  const runs = [...[10, 25, 100].map((imuHz) => ['distracted', imuHz] as const), ['cautious', 25] as const, ['aggressive', 25] as const]
  for (const [persona, imuHz] of runs) {
    const { readings, trips } = simulate(persona, imuHz, 20)
    const events = detect(readings)
    const truth = trips.flatMap((trip) => trip.phoneHandling).map((p) => ({ from: p.ts, to: p.ts + p.duration_s * 1000 }))
    // Matched when the detection overlaps the episode (a second of slack for the 1 Hz truth).
    const overlaps = (a: { from: number; to: number }, b: { from: number; to: number }) => a.from <= b.to + 1000 && b.from <= a.to + 1000
    const found = truth.filter((p) => events.some((e) => overlaps(e, p)))
    const correct = events.filter((e) => truth.some((p) => overlaps(e, p))).length
    // Episodes the detector must see: the car moved through at least min_s + 2 s of them.
    const movingSeconds = (p: { from: number; to: number }) => readings.filter((r) => r.kind === 'obd' && r.ts >= p.from && r.ts < p.to && Number(r.fields.speed_kmh) >= cfg.minSpeed_kmh).length
    const whileMoving = truth.filter((p) => movingSeconds(p) >= cfg.min_s + 2)
    t.comment(`${imuHz} Hz, '${persona}', ${trips.length} trips: ${truth.length} episodes (${whileMoving.length} while moving), ${found.length} found ` +
      `(recall ${ratio(found.length, truth.length)}); ${events.length} events, ${correct} correct (precision ${ratio(correct, events.length)})`)
    t.equal(correct, events.length, `'${persona}' ${imuHz} Hz: every event is an episode of handling`)
    t.same(whileMoving.filter((p) => !found.includes(p)), [], `'${persona}' ${imuHz} Hz: every episode while moving is found`)
    if (persona === 'distracted') {
      t.ok(truth.length >= 50, `${truth.length} episodes to judge by`)
      t.ok(found.length / truth.length >= 0.95, `recall ${ratio(found.length, truth.length)}`)
    }
  }
  t.end()
})
