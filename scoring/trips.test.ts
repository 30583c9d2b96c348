import t from 'tap'
import { from, lastValueFrom, toArray } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import type { Reading } from '../ingest/index.ts'
import { makeCity, makePolicies, type TripTruth } from '../edge-sim/index.ts'
import { simReadings } from '../test/sim-readings.ts'
import { defaultManoeuvreConfig, manoeuvreDetector } from './manoeuvres.ts'
import { defaultTripConfig as cfg, trackTrips, tripTracker, type OpenTripSource, type Trip, type TripOutput } from './trips.ts'
import type { Detector, DrivingEvent } from './events.ts'

const T0 = Date.UTC(2026, 10, 16, 8) // a Monday, 08:00 UTC
let seq = 0
const reading = (kind: string, ts: number, fields: Reading['fields'], samples?: number[][]): Reading =>
  ({ deviceId: 'car-1', policyId: 'pol-1', kind, subject: 'driving', seq: seq++, ts, receivedAt: ts, fields, ...(samples ? { samples } : {}) })
const obd = (ts: number, speed_kmh: number) => reading('obd', ts, { speed_kmh })
const gps = (ts: number, lat_deg: number, lon_deg: number, speed_kmh: number, heading_deg = 90) => reading('gps', ts, { lat_deg, lon_deg, accuracy_m: 5, speed_kmh, heading_deg })
const ignition = (ts: number, on: boolean) => reading('status', ts, { ignition_on: on })
/** `seconds` of 1 Hz OBD from `from`, speed `kmh(i)`. */
const drive = (from: number, seconds: number, kmh: (i: number) => number) => Array.from({ length: seconds }, (_, i) => obd(from + i * 1000, kmh(i)))

function run(readings: readonly Reading[], detectors: () => Detector[] = () => []) {
  const tracker = tripTracker(cfg, 'car-1', 'pol-1', detectors())
  const out: TripOutput[] = [...readings.flatMap((r) => tracker.push(r)), ...tracker.flush()]
  return {
    trips: out.flatMap((o) => ('trip' in o ? [o.trip] : [])),
    events: out.flatMap((o) => ('event' in o ? [o.event] : [])),
  }
}

t.test('ignition on to off is one trip; distance integrates speed', async (t) => {
  const { trips } = run([ignition(T0, true), ...drive(T0 + 1000, 121, () => 36), ignition(T0 + 122_000, false)])
  t.equal(trips.length, 1)
  t.match(trips[0], { from: T0, to: T0 + 122_000, ended: 'ignition', source: 'obd', distance_km: 1.2, moving_s: 120, max_speed_kmh: 36 })
})

t.test('without ignition: motion starts a trip, standing still for stopGap_s ends it where it last moved', async (t) => {
  const moving = drive(T0, 300, () => 50)
  const standing = drive(T0 + 300_000, cfg.stopGap_s + 5, () => 0)
  const { trips } = run([...moving, ...standing, ...drive(T0 + 900_000, 200, () => 40)])
  t.equal(trips.length, 2, 'the stop splits the drive')
  t.match(trips[0], { from: T0, to: T0 + 299_000, ended: 'stop' })
  t.match(trips[1], { from: T0 + 900_000, ended: 'gap' }, 'the last trip ends when the device falls silent')
})

t.test('a long red light does not end a trip of a device with an ignition signal', async (t) => {
  const rs = [ignition(T0, true), ...drive(T0, 300, () => 50), ...drive(T0 + 300_000, cfg.stopGap_s + 60, () => 0), ...drive(T0 + 600_000, 100, () => 50), ignition(T0 + 700_000, false)]
  const { trips } = run(rs)
  t.equal(trips.length, 1)
  t.equal(trips[0]!.ended, 'ignition')
})

t.test('too short or too little distance is not a trip; a silent gap ends a trip', async (t) => {
  t.equal(run(drive(T0, 30, () => 20)).trips.length, 0, '30 s')
  t.equal(run(drive(T0, 120, (i) => (i % 2 ? 5 : 6))).trips.length, 0, '120 s creeping under 0.2 km')
  const { trips } = run([...drive(T0, 120, () => 50), ...drive(T0 + 120_000 + cfg.maxGap_s * 1000 + 1000, 120, () => 50)])
  t.same(trips.map((x) => x.ended), ['gap', 'gap'])
})

t.test('a GPS-only device through a tunnel: the straight line between the fixes on either side', async (t) => {
  // Due east along the equator at 72 km/h (20 m/s): 0.00017966° of longitude per 20 m.
  const step = 20 / 111_319.49
  const fixes = Array.from({ length: 200 }, (_, i) => i).filter((i) => i < 60 || i >= 90).map((i) => gps(T0 + i * 1000, 0, i * step, 72))
  const { trips } = run(fixes)
  t.equal(trips.length, 1)
  t.equal(trips[0]!.source, 'gps')
  t.ok(Math.abs(trips[0]!.distance_km - 199 * 0.02) < 0.01, `${trips[0]!.distance_km} km ≈ 3.98 km, the 30 s tunnel included`)
})

t.test('harsh braking and acceleration from the speed change, one event per episode, with evidence', async (t) => {
  // 60 km/h, then -14.4 km/h per s for 2 s (4 m/s²), then +11.52 km/h per s for 2 s (3.2 m/s²).
  const speeds = [...Array(60).fill(60), 45.6, 31.2, 31.2, 42.72, 54.24, ...Array(60).fill(54.24)]
  const { events, trips } = run([ignition(T0, true), ...drive(T0, speeds.length, (i) => speeds[i]!), ignition(T0 + speeds.length * 1000, false)])
  t.same(events.map((e) => e.type), ['harsh_braking', 'harsh_acceleration'])
  t.match(events[0], { from: T0 + 59_000, to: T0 + 61_000, evidence: { source: 'obd', peak: 4, threshold: 3.5, unit: 'm/s²', duration_s: 2, samples: 3, rate_hz: 1 } })
  t.match(events[1]!.evidence, { peak: 3.2, threshold: 3.0 })
  t.same(trips[0]!.events, { harsh_braking: 1, harsh_acceleration: 1 })
})

t.test('an IMU longitudinal event is judged by the speed when the device has speed, kept when it has none', async (t) => {
  const rate_hz = 25
  // 2 s of 4 m/s² deceleration northwards on a phone (IMU frame east/north/up), quiet otherwise.
  const imu = (ts: number, braking: boolean) => reading('imu', ts, { rate_hz }, Array.from({ length: rate_hz }, () => [0, braking ? -4 : 0, 0, 0, 0, 0]))
  const imuOnly = Array.from({ length: 30 }, (_, i) => imu(T0 + i * 1000, i === 10 || i === 11))
  const detectors = () => [manoeuvreDetector(defaultManoeuvreConfig, 'car-1', 'pol-1')]
  t.same(run(imuOnly, detectors).events.map((e) => e.type), ['harsh_longitudinal'], 'no speed: the IMU event stands')
  const withSpeed = imuOnly.flatMap((r) => [r, obd(r.ts, 40)])
  t.same(run(withSpeed, detectors).events.map((e) => e.type), [], 'speed says nobody braked: no event')
})

t.test('GPS hygiene: a cold start\'s inaccurate fixes and a speed jump make no harsh event; nothing fires before a trusted speed', async (t) => {
  const fix = (ts: number, speed_kmh: number, accuracy_m: number) => reading('gps', ts, { lat_deg: 0, lon_deg: 0, accuracy_m, speed_kmh, heading_deg: 90 })
  // As phones record it: speed 0 at 30–2,000 m while the receiver warms up, then the car's speed.
  const coldStart = [fix(T0, 0, 2000), fix(T0 + 1000, 0, 300), fix(T0 + 2000, 0, 40), ...Array.from({ length: 120 }, (_, i) => fix(T0 + 3000 + i * 1000, 72, 5))]
  const cold = run(coldStart)
  t.same(cold.events, [], 'no harsh acceleration from 0 to 72 km/h in a second')
  t.equal(cold.trips[0]!.from, T0 + 3000, 'the trip starts at the first trusted fix')
  // A multipath jump at good accuracy: 72 → 10 → 72 km/h.
  const jump = Array.from({ length: 120 }, (_, i) => fix(T0 + i * 1000, i === 60 ? 10 : 72, 5))
  t.same(run(jump).events, [], 'faster than any car brakes: a jump, not a braking')
  // The same braking (4 m/s² for 2 s) read by a phone's GNSS and by the wheels (OBD): one event each, the same.
  const speeds = [...Array(60).fill(60), 45.6, 31.2, ...Array(60).fill(31.2)]
  const judged = (rs: Reading[]) => run(rs).events.map((e) => [e.type, e.from, e.to, e.evidence.peak, e.evidence.threshold])
  t.same(judged(speeds.map((v, i) => fix(T0 + i * 1000, v, 5))), judged(drive(T0, speeds.length, (i) => speeds[i]!)), 'GNSS and OBD: the same event')
  t.equal(judged(drive(T0, speeds.length, (i) => speeds[i]!)).length, 1)

  // An IMU event in the first seconds of a phone that sends GNSS, before its first trusted fix.
  const rate_hz = 25
  const imu = (ts: number, swerve: boolean) => reading('imu', ts, { rate_hz }, Array.from({ length: rate_hz }, () => [swerve ? 5 : 0, 0, 0, 0, 0, swerve ? 0.6 : 0]))
  const phone = Array.from({ length: 40 }, (_, i) => [imu(T0 + i * 1000, i === 2 || i === 25), fix(T0 + i * 1000 + 500, i < 8 ? 0 : 40, i < 8 ? 500 : 5)]).flat()
  const detectors = () => [manoeuvreDetector(defaultManoeuvreConfig, 'car-1', 'pol-1')]
  const events = run(phone, detectors).events
  t.same(events.map((e) => [e.type, Math.round((e.from - T0) / 1000)]), [['harsh_lateral', 25]], 'the swerve before the first trusted fix is dropped, the one after it stands')
})

t.test('driving dynamics: seconds beyond the speed-banded limits and the sums of squares, the same per second for a longer trip', async (t) => {
  // Town driving at 40 km/h with a 2 m/s² launch and a 2 m/s² braking each minute, and a GPS heading that turns 15° a second for 5 s (v·ω = 2.9 m/s²).
  const minute = (m: number) => Array.from({ length: 60 }, (_, i) => {
    const kmh = i < 5 ? 40 + i * 7.2 : i < 10 ? 76 - (i - 5) * 7.2 : 40
    const turned = Math.min(Math.max(i - 20, 0), 5) * 15
    return reading('gps', T0 + m * 60_000 + i * 1000, { lat_deg: 0, lon_deg: 0, accuracy_m: 5, speed_kmh: kmh, heading_deg: (m * 75 + turned) % 360 })
  })
  const trip = (minutes: number) => run(Array.from({ length: minutes }, (_, m) => minute(m)).flat()).trips[0]!
  const short = trip(5), long = trip(10)
  t.ok(short.accel_s > 0 && short.brake_s > 0 && short.corner_s > 0, `accel ${short.accel_s} s, brake ${short.brake_s} s, corner ${short.corner_s} s of ${short.dyn_s} s`)
  const perSecond = (x: Trip) => [x.accel_s, x.brake_s, x.corner_s, x.long_sq, x.lat_sq].map((v) => Math.round((v / x.dyn_s) * 100) / 100)
  t.same(perSecond(long), perSecond(short), 'twice the driving, the same dynamics per second')
  t.same([short.dyn_s, short.accel_s, short.brake_s, short.corner_s], [299, 25, 25, 25], 'each minute: 5 s of 2 m/s² up, 5 s down (both over the 1.5 and 1.2 m/s² limits of their bands), 5 s of 2.9 m/s² lateral (over 2.5)')
  t.equal(short.long_sq, 25 * 2 * 2 ** 2, 'Σ a²·dt of the longitudinal steps')
})

t.test('a turn faster than any car corners is a jump of the heading or the yaw rate, not a harsh lateral event nor cornering (#20)', async (t) => {
  const fix = (ts: number, heading_deg: number) => gps(ts, 52.37, 4.89, 50, heading_deg)
  // Two fixes 1 ms apart, 180° apart, at 50 km/h: 43,633 m/s² across the track.
  const jump = [...Array.from({ length: 60 }, (_, i) => fix(T0 + i * 1000, 90)), fix(T0 + 59_001, 270), ...Array.from({ length: 60 }, (_, i) => fix(T0 + 60_000 + i * 1000, 270))]
  const { trips, events } = run(jump)
  t.same(events.filter((e) => e.type === 'harsh_lateral').map((e) => e.evidence.peak), [], 'no harsh_lateral (before: a peak of 43,633 m/s²)')
  t.ok(trips[0]!.lat_sq < 100 && trips[0]!.corner_s === 0, `nor cornering in the trip's dynamics: lat_sq ${trips[0]!.lat_sq}`)
  // A real swerve: 30° in a second at 50 km/h, 7.3 m/s².
  const swerve = [...Array.from({ length: 60 }, (_, i) => fix(T0 + i * 1000, 90)), ...Array.from({ length: 60 }, (_, i) => fix(T0 + 60_000 + i * 1000, 120))]
  t.same(run(swerve).events.map((e) => [e.type, e.evidence.peak]), [['harsh_lateral', 7.272]], 'a real one still is')
  // The IMU's yaw rate, in the dynamics: 35 rad/s at 60 km/h (583 m/s²) is a spun phone, not a turn.
  const rate_hz = 10
  const spun = Array.from({ length: 120 }, (_, i) => [reading('imu', T0 + i * 1000 - 1000, { rate_hz }, Array.from({ length: rate_hz }, () => [0, 0, 0, 0, 0, i >= 50 && i < 60 ? 35 : 0])), obd(T0 + i * 1000, 60)]).flat()
  t.same([run(spun).trips[0]!.corner_s, run(spun).trips[0]!.lat_sq], [0, 0], 'nor is a 35 rad/s spin cornering')
})

t.test('driving dynamics without a GNSS heading: lateral from the IMU\'s yaw rate', async (t) => {
  // A dongle with OBD speed and an IMU: 60 km/h, turning at 0.2 rad/s for 10 s (v·ω = 3.3 m/s², over the 50–90 km/h band's 2.0).
  const rate_hz = 10
  const rs = Array.from({ length: 120 }, (_, i) => [reading('imu', T0 + i * 1000 - 1000, { rate_hz }, Array.from({ length: rate_hz }, () => [0, 0, 0, 0, 0, i >= 50 && i < 60 ? 0.2 : 0])), obd(T0 + i * 1000, 60)]).flat()
  const trip = run(rs).trips[0]!
  t.same([trip.corner_s, trip.accel_s, trip.brake_s], [10, 0, 0])
  t.ok(Math.abs(trip.lat_sq - 10 * (60 / 3.6 * 0.2) ** 2) < 0.01, `Σ a_lat²·dt ${trip.lat_sq}`)
})

t.test('a phone that sends only its IMU: its stream is its trip, with its events and no distance', async (t) => {
  const rate_hz = 10
  const imu = (ts: number, swerve: boolean) => reading('imu', ts, { rate_hz }, Array.from({ length: rate_hz }, () => [swerve ? 5 : 0.2, 0, 0, 0, 0, swerve ? 0.6 : 0]))
  const stream = (from: number, seconds: number) => Array.from({ length: seconds }, (_, i) => imu(from + i * 1000, i === 100))
  const detectors = () => [manoeuvreDetector(defaultManoeuvreConfig, 'car-1', 'pol-1')]
  const { trips, events } = run([...stream(T0, 300), ...stream(T0 + 300_000 + cfg.maxGap_s * 1000 + 1000, 200)], detectors)
  t.same(trips.map((x) => [x.source, x.from - T0, x.duration_s, x.moving_s, x.distance_km]), [['imu', 0, 300, 300, 0], ['imu', 901_000, 200, 200, 0]], 'two streams, two trips')
  t.same(trips.map((x) => x.events), [{ harsh_lateral: 1 }, { harsh_lateral: 1 }], 'each with its swerve')
  t.equal(events.length, 2)
  const withGps = stream(T0, 300).flatMap((r, i) => [r, reading('gps', r.ts + 500, { lat_deg: 0, lon_deg: i * 0.0002, accuracy_m: 5, speed_kmh: 80, heading_deg: 90 })])
  t.same(run(withGps).trips.map((x) => x.source), ['gps'], 'a phone that sends GNSS too: its trip is the GNSS one')
})

t.test('one reading dated ahead cannot hide a device\'s driving: the readings after it outvote its clock', async (t) => {
  // 5 minutes at 50 km/h with a harsh braking at 200 s; at 120 s one OBD reading claims to be from 4 min 50 s later.
  const speeds = Array.from({ length: 300 }, (_, i) => (i === 200 ? 36 : 50))
  const honest = [ignition(T0, true), ...drive(T0, 300, (i) => speeds[i]!), ignition(T0 + 300_000, false)]
  const forged = [...honest.slice(0, 121), obd(T0 + 120_000 + 290_000, 50), ...honest.slice(121)]
  const [a, b] = [run(honest), run(forged)]
  t.equal(b.trips.length, 1, 'the trip is still there')
  t.ok(Math.abs(b.trips[0]!.distance_km - a.trips[0]!.distance_km) < 0.05, `its distance: ${b.trips[0]!.distance_km} km (${a.trips[0]!.distance_km} without the forged reading)`)
  t.same(b.events.map((e) => [e.type, e.from]), a.events.map((e) => [e.type, e.from]), 'and its harsh braking after the forged reading')
  t.equal(b.trips[0]!.to, T0 + 300_000, 'it ends at the ignition off, not at the forged time')
  // A crash recorder's window (IMU, seconds behind) stays late: it never moves the timeline.
  const rate_hz = 25
  const window = Array.from({ length: 5 }, (_, i) => reading('imu', T0 + 150_000 + i * 1000, { rate_hz }, Array.from({ length: rate_hz }, () => [0, 0, 0, 0, 0, 0])))
  const withWindow = [...honest.slice(0, 181), ...window, ...honest.slice(181)]
  t.same(run(withWindow).trips.map((x) => x.distance_km), a.trips.map((x) => x.distance_km), 'an IMU window behind does not')
  // One ignition-on dated 10 h ahead, before the drive: the trip it opens is the outvoted clock's, not the drive's.
  const early = run([ignition(T0 + 10 * 3600_000, true), ...honest])
  t.same(early.trips.map((x) => [x.from, x.to]), [[T0 + 1000, T0 + 300_000]], 'the drive is a trip, from the reading that outvoted the clock (before: no trip at all)')
  t.ok(Math.abs(early.trips[0]!.distance_km - a.trips[0]!.distance_km) < 0.05, `its distance: ${early.trips[0]!.distance_km} km`)
})

t.test('continuous driving: one event when a stretch without a break reaches continuous_s', async (t) => {
  const long = drive(T0, cfg.continuous_s + 600, () => 100)
  const { events } = run(long)
  const continuous = events.filter((e) => e.type === 'continuous_driving')
  t.equal(continuous.length, 1)
  t.match(continuous[0], { from: T0, to: T0 + cfg.continuous_s * 1000, evidence: { threshold: cfg.continuous_s } })
  const withBreak = [...drive(T0, 3600, () => 100), ...drive(T0 + 3600_000 + cfg.break_s * 1000, 3600, () => 100)]
  t.equal(run(withBreak).events.filter((e) => e.type === 'continuous_driving').length, 0, 'a 15 min break resets the stretch')
})

t.test('night is by the sun at the vehicle\'s longitude', async (t) => {
  const at = Date.UTC(2026, 10, 16, 21, 30) // 21:30 UTC
  const trip = (lon_deg: number) => run([gps(at - 5000, 0, lon_deg, 0), ...drive(at, 600, () => 50)]).trips[0]!
  t.equal(trip(0).night_s, 0, '21:30 at Greenwich is evening')
  t.equal(trip(45).night_s, 599, '21:30 UTC at 45° E is 00:30 solar time: night')
})

t.test('simulated fleet: trips and distances as driven, harsh braking and acceleration as the simulator made them', async (t) => {
  const city = makeCity()
  const policies = makePolicies(city, 6, { devices: ['vehicle'] })
  const truth = new Map<string, TripTruth[]>()
  const readings = simReadings(city, policies, { startTs: Date.UTC(2026, 10, 16), days: 7, imuHz: 0, onTrip: (d, x) => truth.set(d, [...(truth.get(d) ?? []), x]) })
  const got = new Map<string, { trips: Trip[]; events: DrivingEvent[] }>()
  for (const p of policies) got.set(p.vehicle!.deviceId, run(readings.filter((r) => r.deviceId === p.vehicle!.deviceId)))
  let trueHarsh = 0
  let foundHarsh = 0
  for (const p of policies) {
    const id = p.vehicle!.deviceId
    const want = truth.get(id) ?? []
    const { trips, events } = got.get(id)!
    t.equal(trips.length, want.length, `${id} (${p.vehicle!.persona}): ${want.length} trips`)
    const km = trips.reduce((a, x) => a + x.distance_km, 0)
    const wantKm = want.reduce((a, x) => a + x.distance_km, 0)
    t.ok(Math.abs(km - wantKm) <= 0.01 * wantKm, `${id}: ${km.toFixed(1)} km of ${wantKm.toFixed(1)}`)
    trueHarsh += want.reduce((a, x) => a + x.harsh.filter((h) => h.type !== 'harsh_corner').length, 0)
    foundHarsh += events.filter((e) => e.type === 'harsh_braking' || e.type === 'harsh_acceleration').length
  }
  t.ok(trueHarsh > 50, `${trueHarsh} simulated harsh brakings and accelerations`)
  t.ok(Math.abs(foundHarsh - trueHarsh) <= 0.05 * trueHarsh, `${foundHarsh} detected of ${trueHarsh} simulated`)
})

t.test('marble: a device gone silent ends its trip exactly idleMs after its last reading, not before', async (t) => {
  const short = { ...cfg, minTrip_s: 5, minTrip_km: 0.1 }
  const scheduler = new TestScheduler((a, b) => t.same(a, b))
  scheduler.run(({ hot, expectObservable }) => {
    // One reading per frame of virtual time, device times 1 s apart, then silence.
    const values = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [String(i), obd(T0 + i * 1000, 60)]))
    const trips$ = hot('0123456789', values).pipe(trackTrips(short, () => [], 100, undefined, scheduler))
    const trip = { policyId: 'pol-1', deviceId: 'car-1', from: T0, to: T0 + 9000, ended: 'gap', source: 'obd', distance_km: 0.15, duration_s: 9, moving_s: 9, paused_s: 0, night_s: 0, speeding_s: 0, phone_s: 0, max_speed_kmh: 60, dyn_s: 9, accel_s: 0, brake_s: 0, corner_s: 0, long_sq: 0, lat_sq: 0, events: {} }
    expectObservable(trips$, '^ 300ms !').toBe('109ms a', { a: { trip } })
  })
})

t.test('a trip open when the service stops is rebuilt in the next run from the readings the last one took', async (t) => {
  // Two harsh brakings (50 → 30 km/h in a second), one before the stop and one after it, and a harsh acceleration between.
  const brake = (from: number) => drive(from, 60, (i) => (i < 30 ? 50 : 30))
  const rs = [ignition(T0, true), ...brake(T0 + 1000), ...drive(T0 + 61_000, 60, () => 30), ...brake(T0 + 121_000), ignition(T0 + 181_000, false)]
  const split = 100 // inside the trip, after the first braking
  const outputs = async (readings: readonly Reading[], openTrips?: OpenTripSource) => lastValueFrom(from(readings).pipe(trackTrips(cfg, () => [], 60_000, openTrips), toArray()))
  const eventTimes = (os: TripOutput[]) => os.flatMap((o) => ('event' in o ? [o.event.from] : []))

  const uninterrupted = await outputs(rs)
  t.equal(uninterrupted.filter((o) => 'trip' in o).length, 1)
  const asked: Reading[] = []
  const openTrips: OpenTripSource = {
    read: async (first) => (asked.push(first), rs.filter((r) => r.seq < first.seq)),
    onError: (err) => t.fail(String(err)),
  }
  const before = await outputs(rs.slice(0, split), openTrips)
  t.same(before.filter((o) => 'trip' in o), [], 'the stop does not cut the open trip')
  const after = await outputs(rs.slice(split), openTrips)
  t.same(asked.map((r) => r.seq), [rs[0]!.seq, rs[split]!.seq], 'each run asks once per device, with its first reading')
  t.same(after.filter((o) => 'trip' in o), uninterrupted.filter((o) => 'trip' in o), 'the rebuilt trip is the uninterrupted one, both brakings counted')
  t.same([...eventTimes(before), ...eventTimes(after)], eventTimes(uninterrupted), 'each event is published once, by the run that saw it')
  t.same(uninterrupted.flatMap((o) => ('event' in o ? [o.event.type] : [])), ['harsh_braking', 'harsh_acceleration', 'harsh_braking'])
  t.equal(eventTimes(before).length, 1, 'the first braking went out before the stop')

  const failing: OpenTripSource = { read: async () => Promise.reject(new Error('InfluxDB down')), onError: (err, deviceId) => asked.push({ deviceId } as Reading) }
  const cut = (await outputs(rs.slice(split), failing)).flatMap((o) => ('trip' in o ? [o.trip] : []))
  t.equal(cut[0]?.from, rs[split]!.ts, 'when the readings cannot be read, the trip starts where this run began')
  t.equal(asked.at(-1)?.deviceId, 'car-1', 'and the failure is reported')
})

t.test('positions outlive a trip only coarsened, and a crash keeps its last 30 s of fixes (#21)', async (t) => {
  const { crashDetector, defaultCrashConfig } = await import('./crash.ts')
  const tracker = tripTracker(cfg, 'car-1', 'pol-1', [crashDetector(defaultCrashConfig, 'car-1', 'pol-1')])
  // 90 s east along the equator at 72 km/h (0.00017966° a second), a fix a second, one of them 80 m off.
  const fixes = Array.from({ length: 90 }, (_, i) => ({ ...gps(T0 + i * 1000 + 500, 0, i * 0.00017966, 72), ...(i === 45 ? { fields: { lat_deg: 0.3, lon_deg: 0, accuracy_m: 80, speed_kmh: 72 } } : {}) }))
  const rs = [ignition(T0, true), ...drive(T0, 90, () => 72).flatMap((r, i) => [r, fixes[i]!]), reading('crash', T0 + 90_000, { peak_accel_ms2: 58.4 })]
  const out = [...rs.flatMap((r) => tracker.push(r)), ...tracker.flush()]
  const closed = out.find((o) => 'trip' in o)
  t.match(closed, { trip: { ended: 'crash' } })
  const area = closed && 'area' in closed ? closed.area! : {}
  t.same(Object.keys(area), ['s00000', 's00002'], 'the trip\'s cells, in the order driven: the inaccurate fix counts in none')
  t.equal(Object.values(area).reduce((a, b) => a + b), 89, 'each accurate fix counts the time since the one before')
  const crash = out.find((o) => 'event' in o && o.event.type === 'crash')
  const track = crash && 'crashTrack' in crash ? crash.crashTrack! : []
  t.same(track.map((f) => f.ts), fixes.slice(60).map((f) => f.ts), 'the crash keeps the fixes of the 30 s before it')
  t.match(track[0], { lat_deg: 0, lon_deg: 60 * 0.00017966, accuracy_m: 5, speed_kmh: 72, heading_deg: 90 }, 'at full precision')
})
