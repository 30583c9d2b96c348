import t from 'tap'
import type { Reading } from '../ingest/index.ts'
import { choosePlaces, driveVehicle, drivingPersonas, makeCity, type DrivingPersonaName, type TripTruth } from '../edge-sim/index.ts'
import { crashDetector, defaultCrashConfig as cfg } from './crash.ts'
import type { PolicyEvent } from './events.ts'

const T0 = 1_767_225_600_000

/** A reading as ingest hands it on (ingest/decode.ts): the body's `samples` apart, the rest as fields. */
function reading(kind: string, ts: number, body: Record<string, unknown>, seq = 0): Reading {
  const { samples, ...fields } = body as { samples?: number[][] } & Record<string, number | boolean>
  return { deviceId: 'phone-1', policyId: 'pol-1', kind, subject: 'driving', seq, ts, receivedAt: ts, fields, ...(samples ? { samples } : {}) }
}

/** `seconds` of IMU as 1 s batches from `T0 + from_s`, row i from `accel(t_s)` = [ax, ay, az] (no rotation). */
function imu(seconds: number, rate_hz: number, accel: (t_s: number) => number[], from_s = 0): Reading[] {
  return Array.from({ length: seconds }, (_, s) => reading('imu', T0 + (from_s + s) * 1000, {
    rate_hz, samples: Array.from({ length: rate_hz }, (_, i) => [...accel(from_s + s + i / rate_hz), 0, 0, 0]),
  }))
}

/** The events each push returns, by reading. */
function pushes(rs: readonly Reading[], d = crashDetector(cfg, 'phone-1', 'pol-1')): PolicyEvent[][] {
  return rs.map((r) => d.push(r))
}

/** A half-sine deceleration of a car heading north-east, `peak_ms2` at its middle, from `at_s` for `dur_s`. */
const crash = (at_s: number, dur_s: number, peak_ms2: number) => (t_s: number) => {
  const u = (t_s - at_s) / dur_s
  const a = u > 0 && u < 1 ? -peak_ms2 * Math.sin(Math.PI * u) * Math.SQRT1_2 : 0
  return [a, a, 0]
}

t.test('a 6 g, 0.25 s crash pulse: one urgent event from the push of its batch, with its evidence, at 10, 25 and 100 Hz', (t) => {
  const deltaV_kmh = (2 / Math.PI) * 60 * 0.25 * 3.6 // the half-sine's integral: 34.4 km/h
  for (const rate_hz of [10, 25, 100]) {
    const byPush = pushes(imu(8, rate_hz, crash(3.33, 0.25, 60)))
    t.same(byPush.map((es) => es.length), [0, 0, 0, 1, 0, 0, 0, 0], `${rate_hz} Hz: one event, from the push of second 3`)
    const e = byPush[3]![0]!
    t.match(e, { type: 'crash', urgent: true, subject: 'driving', policyId: 'pol-1', deviceId: 'phone-1', evidence: { source: 'imu', unit: 'm/s²', threshold: cfg.impulse_ms2, rate_hz } })
    // It starts where the pulse reaches edge_ms2: 20 ms into it (sin(πu) = 1.5 g / 6 g), or the first sample after.
    t.ok(e.from >= T0 + 3350 && e.from < T0 + 3350 + 1000 / rate_hz, `${rate_hz} Hz: starts with the pulse (${e.from - T0} ms)`)
    t.ok(e.to > e.from && e.to < T0 + 3580, `${rate_hz} Hz: ends within it (${e.to - T0} ms)`)
    t.ok(e.evidence.peak >= 48 && e.evidence.peak <= 60, `${rate_hz} Hz: peak ${e.evidence.peak} m/s²`)
    t.ok(Math.abs(Number(e.evidence.delta_v_kmh) - deltaV_kmh) < 0.15 * deltaV_kmh, `${rate_hz} Hz: Δv ${e.evidence.delta_v_kmh} km/h (${deltaV_kmh.toFixed(1)})`)
    t.equal(e.evidence.duration_s, e.evidence.samples! / rate_hz)
    const window = e.evidence.window as number[][]
    const step = 1000 / rate_hz
    t.ok(window.every((row) => row.length === 4), `${rate_hz} Hz: window rows of [t_ms, ax, ay, az]`)
    t.ok(window[0]![0]! >= -cfg.pre_s * 1000 && window[0]![0]! < -cfg.pre_s * 1000 + step, `${rate_hz} Hz: from ${window[0]![0]} ms: pre_s before the pulse`)
    t.equal(window.at(-1)![0], Math.round(T0 + 3000 + (rate_hz - 1) * step - e.from), `${rate_hz} Hz: to the end of the batch`)
    t.equal(window.length, Math.round((window.at(-1)![0]! - window[0]![0]!) / step) + 1, `${rate_hz} Hz: every sample in between`)
    t.ok(Math.min(...window.map((row) => row[1]!)) < -30, `${rate_hz} Hz: the pulse is in it`)
  }
  t.end()
})

t.test('not crashes: a one-sample spike, a pothole, the hardest braking, a dropped phone', (t) => {
  for (const rate_hz of [10, 25, 100]) {
    const at = (t_s: number, s: number) => Math.abs(t_s - s) < 0.5 / rate_hz
    const spike = (t_s: number) => (at(t_s, 2) ? [150, 0, 0] : [0, 0, 0])
    const pothole = (t_s: number) => (t_s >= 2 && t_s < 2.05 ? [2, 2, 60] : [0, 0, 0])
    const braking = (t_s: number) => (t_s >= 2 && t_s < 4 ? [-6.5, -6.5, 0] : [0, 0, 0]) // 9.2 m/s² ≈ 0.94 g
    // The phone falls 0.4 s (about 80 cm: no specific force, so linear acceleration is −g), then lands.
    const landing = crash(2.43, 0.25, 60)
    const drop = (t_s: number) => (t_s >= 2 && t_s < 2.4 ? [0, 0, -9.81] : landing(t_s))
    for (const [name, accel] of [['spike', spike], ['pothole', pothole], ['braking', braking], ['drop', drop]] as const) {
      t.same(pushes(imu(6, rate_hz, accel)).flat(), [], `${rate_hz} Hz: ${name}`)
    }
    t.equal(pushes(imu(6, rate_hz, landing)).flat().length, 1, `${rate_hz} Hz: the same landing without the fall is a crash`)
  }
  t.end()
})

t.test('implausible pulses are no crash: the issue\'s 0.001 Hz batch, a 5 g held for 3 s (#20)', (t) => {
  // Before the contract bounded rate_hz: two 5 g samples a thousand seconds apart.
  const slow = reading('imu', T0, { rate_hz: 0.001, samples: [[35, 35, 0, 0, 0, 0], [35, 35, 0, 0, 0, 0]] })
  t.same(pushes([slow]).flat(), [], 'Δv 509,116 km/h over 2,000 s: no event')
  // Within the contract (10 Hz, a 3.1 s batch): a stuck sensor, Δv 552 km/h.
  const stuck = reading('imu', T0, { rate_hz: 10, samples: Array.from({ length: 31 }, () => [35, 35, 0, 0, 0, 0]) })
  t.same(pushes([stuck]).flat(), [], 'a 3 s pulse: no event')
  // Bounds that let them through: they were events, so the bounds are what drops them.
  const loose = { ...cfg, maxDeltaV_kmh: Infinity, maxPulse_s: Infinity }
  t.equal(pushes([slow], crashDetector(loose, 'phone-1', 'pol-1')).flat().length, 1, 'without the bounds: an event')
  t.end()
})

t.test('a pulse across two batches: one event, from the first batch once it holds the peak', (t) => {
  const byPush = pushes(imu(6, 100, crash(2.85, 0.25, 60)))
  t.same(byPush.map((es) => es.length), [0, 0, 1, 0, 0, 0])
  t.ok(byPush[2]![0]!.evidence.peak > 55, 'the peak was in the first batch')
  // Starting at 2.95 s, the first batch shows 50 ms of the pulse, under 4 g: the event waits for the second.
  t.same(pushes(imu(6, 100, crash(2.95, 0.25, 60))).map((es) => es.length), [0, 0, 0, 1, 0, 0])
  t.end()
})

t.test('one crash, one event: the device\'s message, the IMU pulse and the crash recorder\'s upload', (t) => {
  const d = crashDetector(cfg, 'phone-1', 'pol-1')
  const alert = reading('crash', T0 + 3330, { peak_accel_ms2: 58.4, delta_v_kmh: 31, direction_deg: 5 })
  const [live, late] = [imu(8, 25, crash(3.33, 0.25, 60)), imu(8, 100, crash(3.33, 0.25, 60))]
  const fromAlert = d.push(alert)
  t.match(fromAlert, [{ type: 'crash', urgent: true, from: T0 + 3330, to: T0 + 3330, evidence: { source: 'crash', peak: 58.4, unit: 'm/s²', delta_v_kmh: 31, direction_deg: 5 } }])
  t.same([...pushes(live, d), ...pushes(late, d)].flat(), [], 'the same crash from the IMU, live and uploaded later at 100 Hz: no second event')
  const next = pushes(imu(8, 25, crash(63.33, 0.25, 60), 60), d).flat()
  t.equal(next.length, 1, 'a crash a minute later is another one')
  // And the other way round: the IMU first, then the device's message.
  const d2 = crashDetector(cfg, 'phone-1', 'pol-1')
  t.equal(pushes(live, d2).flat().length, 1)
  t.same(d2.push(alert), [], 'the device\'s message after the IMU event: no second event')
  t.end()
})

const city = makeCity({ seed: 1 })

/** A simulated vehicle's readings as ingest hands them on (in the order the device sends them), and its trips' truth. */
function simulate(persona: DrivingPersonaName, seed: number, opts: { imuHz: number; days: number; crashOnTrip?: number }): { readings: Reading[]; trips: TripTruth[] } {
  const trips: TripTruth[] = []
  const places = choosePlaces(city, drivingPersonas.average, seed)
  const sim = driveVehicle(city, { persona, places, seed }, { startTs: Date.UTC(2026, 0, 5), ...opts }, (trip) => trips.push(trip))
  return { readings: [...sim].map((r, seq) => reading(r.kind, r.ts, r.body, seq)), trips }
}

const personas = Object.keys(drivingPersonas) as DrivingPersonaName[]

t.test('simulated crashes: exactly one event each, within 1 s of the impact, with and without the device\'s message', (t) => {
  for (const imuHz of [10, 25, 100]) {
    for (let seed = 1; seed <= 12; seed++) {
      const { readings, trips } = simulate(personas[seed % personas.length]!, seed, { imuHz, days: 3, crashOnTrip: 0 })
      const truth = trips[0]?.crash
      if (!truth) {
        t.fail(`${imuHz} Hz, seed ${seed}: no crash simulated`)
        continue
      }
      for (const imuOnly of [false, true]) {
        const events = pushes(readings.filter((r) => !imuOnly || r.kind !== 'crash')).flat()
        const what = `${imuHz} Hz, seed ${seed}${imuOnly ? ', IMU only' : ''}`
        t.equal(events.length, 1, `${what}: one event`)
        t.ok(events.every((e) => e.type === 'crash' && e.urgent && Math.abs(e.from - truth.ts) <= 1000), `${what}: at ${events.map((e) => e.from - truth.ts)} ms from the impact`)
      }
    }
  }
  t.end()
})

t.test('simulated normal driving: no crash event in 10 days of each persona, harsh braking and phone handling included', (t) => {
  for (const imuHz of [10, 100]) {
    let harshAll = 0, phoneAll = 0
    for (const persona of personas) {
      const { readings, trips } = simulate(persona, 5, { imuHz, days: 10 })
      const harsh = trips.flatMap((trip) => trip.harsh).length
      harshAll += harsh
      phoneAll += trips.reduce((n, trip) => n + trip.phoneHandling.length, 0)
      t.same(pushes(readings).flat(), [], `${imuHz} Hz, '${persona}': ${trips.length} trips, ${harsh} harsh events as driven, no crash`)
    }
    t.ok(harshAll > 0 && phoneAll > 0, `${imuHz} Hz: ${harshAll} harsh events and ${phoneAll} phone-handling episodes were driven`)
  }
  t.end()
})
