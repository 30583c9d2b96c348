/**
 * Physics and statistics of simulated driving (issue #4, "done when"): trips start and end where
 * they should, the sensors agree with each other and with the road graph, and personas are
 * separated the way their names promise.
 */
import t from 'tap'
import type { SensorReading } from './device-streams.ts'
import { driveTrips, driveVehicle, type TripTruth } from './driving.ts'
import { drivingPersonas, type DrivingPersonaName } from './personas.ts'
import { distanceToRoad_m, fromLatLon, makeCity, nodeAt, route, roadBetween, routeLength_m, type City } from './roads.ts'
import { choosePlaces } from './trips.ts'

const city = makeCity({ seed: 1 })
const start = Date.UTC(2026, 0, 5) // a Monday in winter
const DAYS = 10
type Body = Record<string, number>
const body = (r: SensorReading) => r.body as Body

interface Drive {
  trips: TripTruth[]
  readings: SensorReading[]
}
const drives = new Map<string, Drive>()
/** `days` of a persona's driving, from the same home and work for every commuter (so only behaviour differs). */
function drive(name: DrivingPersonaName, opts: { days?: number; imuHz?: number; crashOnTrip?: number } = {}): Drive {
  const key = `${name}:${JSON.stringify(opts)}`
  const cached = drives.get(key)
  if (cached) return cached
  const seed = 21
  const places = choosePlaces(city, drivingPersonas[name === 'low-mileage' ? name : 'average'], seed)
  const trips: TripTruth[] = []
  const readings = [...driveVehicle(city, { persona: name, places, seed }, { startTs: start, days: opts.days ?? DAYS, imuHz: opts.imuHz ?? 10, crashOnTrip: opts.crashOnTrip }, (trip) => trips.push(trip))]
  const result = { trips, readings }
  drives.set(key, result)
  return result
}

/** The readings of each trip, ignition on to ignition off (the minute heartbeats say "on" too). */
function segments(readings: SensorReading[]): SensorReading[][] {
  const out: SensorReading[][] = []
  let trip: SensorReading[] | undefined
  for (const r of readings) {
    if (!trip && r.kind === 'status' && r.body.ignition_on === true) out.push((trip = []))
    trip?.push(r)
    if (isOff(r)) trip = undefined
  }
  return out
}
const isOff = (r?: SensorReading) => r?.kind === 'status' && r.body.ignition_on === false

const percentile = (xs: number[], p: number) => {
  const s = Float64Array.from(xs).sort()
  return s[Math.min(s.length - 1, Math.floor(p * s.length))]!
}
const nodeGap_m = (c: City, node: number, x: number, y: number) => Math.hypot(c.x[node]! - x, c.y[node]! - y)
const fixXY = (r: SensorReading) => fromLatLon(city, body(r).lat_deg!, body(r).lon_deg!)

/** Speed change between consecutive OBD seconds of a trip, m/s². */
function obdAccels(readings: SensorReading[]): number[] {
  const out: number[] = []
  for (const trip of segments(readings)) {
    const obd = trip.filter((r) => r.kind === 'obd')
    for (let i = 1; i < obd.length; i++) out.push((body(obd[i]!).speed_kmh! - body(obd[i - 1]!).speed_kmh!) / 3.6)
  }
  return out
}

t.test('trips start and end at their places, standing, between ignition on and off', async (t) => {
  for (const name of ['average', 'aggressive', 'low-mileage'] as const) {
    const { trips, readings } = drive(name)
    const segs = segments(readings)
    t.equal(segs.length, trips.length, `${name}: one ignition cycle per trip (${trips.length})`)
    const problems: string[] = []
    segs.forEach((seg, i) => {
      const truth = trips[i]!
      const obd = seg.filter((r) => r.kind === 'obd')
      const gps = seg.filter((r) => r.kind === 'gps')
      if (seg[0]!.ts !== truth.startTs || !isOff(seg.at(-1)) || seg.at(-1)!.ts !== truth.endTs) problems.push(`${i}: ignition times`)
      if (body(obd[0]!).speed_kmh !== 0 || body(obd.at(-1)!).speed_kmh !== 0) problems.push(`${i}: not standing at the start and end`)
      const first = fixXY(gps[0]!), last = fixXY(gps.at(-1)!)
      // A fix is within a few σ (3–7 m) of where the car stands.
      if (nodeGap_m(city, truth.fromNode, first.x, first.y) > 30) problems.push(`${i}: first fix ${nodeGap_m(city, truth.fromNode, first.x, first.y).toFixed(0)} m from ${truth.from}`)
      if (nodeGap_m(city, truth.toNode, last.x, last.y) > 30) problems.push(`${i}: last fix ${nodeGap_m(city, truth.toNode, last.x, last.y).toFixed(0)} m from ${truth.to}`)
      // Distance by integrating the OBD speed (trapezoids) is the route's length.
      let m = 0
      for (let k = 1; k < obd.length; k++) m += (body(obd[k]!).speed_kmh! + body(obd[k - 1]!).speed_kmh!) / 2 / 3.6
      const routeKm = routeLength_m(city, truth.fromNode, truth.toNode) / 1000
      if (Math.abs(m / 1000 - routeKm) > 0.02 * routeKm + 0.01) problems.push(`${i}: OBD ${(m / 1000).toFixed(2)} km, route ${routeKm.toFixed(2)} km`)
      if (Math.abs(truth.distance_km - routeKm) > 0.001) problems.push(`${i}: truth ${truth.distance_km} km`)
    })
    t.same(problems, [], `${name}: ${segs.length} trips checked`)
  }
})

t.test('one sample a second, physically plausible values', async (t) => {
  for (const name of Object.keys(drivingPersonas) as DrivingPersonaName[]) {
    const { readings } = drive(name)
    const problems: string[] = []
    for (const seg of segments(readings)) {
      const obd = seg.filter((r) => r.kind === 'obd')
      obd.forEach((r, i) => {
        const b = body(r)
        if (i > 0 && r.ts - obd[i - 1]!.ts !== 1000) problems.push(`obd gap at ${r.ts}`)
        if (b.speed_kmh! < 0 || b.speed_kmh! > 170) problems.push(`speed ${b.speed_kmh}`)
        if (b.engine_rpm! < 700 || b.engine_rpm! > 4500) problems.push(`rpm ${b.engine_rpm}`)
        if (b.speed_kmh! > 5 && b.engine_rpm! < 900) problems.push(`rpm ${b.engine_rpm} at ${b.speed_kmh} km/h`)
        if (b.coolant_temp_c! < 0 || b.coolant_temp_c! > 95) problems.push(`coolant ${b.coolant_temp_c}`)
      })
      const odo = obd.map((r) => body(r).odometer_km!)
      if (odo.some((x, i) => i > 0 && x < odo[i - 1]!)) problems.push('odometer went back')
      const imu = seg.filter((r) => r.kind === 'imu')
      if (imu.length !== obd.length) problems.push('an IMU batch per second')
    }
    const accels = obdAccels(readings)
    t.same(problems, [], `${name}: 1 Hz, rpm, coolant, odometer, IMU batches`)
    // A car pulls away at under 0.5 g and brakes at most at about 1 g (the tyres' limit).
    t.ok(Math.max(...accels) <= 4.5 && Math.min(...accels) >= -10, `${name}: accelerations ${Math.min(...accels).toFixed(1)} to ${Math.max(...accels).toFixed(1)} m/s²`)
  }
})

t.test('the IMU measures the motion the OBD reports: |a| = √(a_long² + (v·ω)²)', async (t) => {
  const { readings, trips } = drive('average')
  const phone = trips.flatMap((p) => p.phoneHandling.map((h) => [h.ts, h.ts + h.duration_s * 1000]))
  const errors: number[] = []
  let lateral = 0
  for (const seg of segments(readings)) {
    const obd = seg.filter((r) => r.kind === 'obd')
    const imu = seg.filter((r) => r.kind === 'imu')
    for (let k = 0; k + 1 < obd.length; k++) {
      if (phone.some(([a, b]) => obd[k]!.ts >= a! && obd[k]!.ts < b!)) continue
      const v0 = body(obd[k]!).speed_kmh! / 3.6
      const a = body(obd[k + 1]!).speed_kmh! / 3.6 - v0
      const rows = imu[k]!.body.samples as number[][]
      rows.forEach(([ax, ay, , , , gz], i) => {
        const v = v0 + (a * i) / rows.length
        if (v < 2) return
        if (Math.abs(v * gz!) > 1) lateral++
        errors.push(Math.abs(Math.hypot(ax!, ay!) - Math.hypot(a, v * gz!)))
      })
    }
  }
  const mean = errors.reduce((s, e) => s + e, 0) / errors.length
  t.ok(mean < 0.15, `mean |error| ${mean.toFixed(3)} m/s² over ${errors.length} moving samples`)
  t.ok(percentile(errors, 0.99) < 0.5, `p99 |error| ${percentile(errors, 0.99).toFixed(2)} m/s²`)
  t.ok(lateral > 500, `${lateral} samples turning with over 1 m/s² lateral acceleration`)
})

t.test('personas are separated: acceleration, braking and cornering', async (t) => {
  const stats = (name: DrivingPersonaName) => {
    const { readings, trips } = drive(name)
    const moving: number[] = []
    for (const seg of segments(readings)) {
      const obd = seg.filter((r) => r.kind === 'obd')
      seg.filter((r) => r.kind === 'imu').forEach((r, k) => {
        if (body(obd[k]!).speed_kmh! < 3) return
        for (const [ax, ay] of r.body.samples as number[][]) moving.push(Math.hypot(ax!, ay!))
      })
    }
    const km = trips.reduce((s, p) => s + p.distance_km, 0)
    const decels = obdAccels(readings)
    // Harsh braking as scoring sees it in the OBD stream: seconds at ≤ −3.5 m/s², counted once per run.
    const obdBrakes = decels.filter((a, i) => a <= -3.5 && !(decels[i - 1]! <= -3.5)).length
    const per100 = (type: string) => (trips.flatMap((p) => p.harsh).filter((h) => h.type === type).length / km) * 100
    return { p95: percentile(moving, 0.95), km, obdBrakes, brakes: per100('harsh_brake'), accels: per100('harsh_accel'), corners: per100('harsh_corner'), truthBrakes: trips.flatMap((p) => p.harsh).filter((h) => h.type === 'harsh_brake').length }
  }
  const [cautious, average, aggressive] = [stats('cautious'), stats('average'), stats('aggressive')]
  const show = (s: typeof cautious) => `p95 ${s.p95.toFixed(2)} m/s², per 100 km: ${s.brakes.toFixed(1)} brakes, ${s.accels.toFixed(1)} accels, ${s.corners.toFixed(1)} corners`
  t.comment(`cautious ${show(cautious)}; average ${show(average)}; aggressive ${show(aggressive)}`)
  t.ok(cautious.p95 + 0.3 < average.p95 && average.p95 + 0.3 < aggressive.p95, 'p95 |horizontal acceleration| orders cautious < average < aggressive')
  t.ok(cautious.p95 > 0.8 && cautious.p95 < 2.2 && aggressive.p95 > 2.5 && aggressive.p95 < 5, 'and lies in a plausible range (0.1–0.5 g)')
  t.ok(cautious.brakes < average.brakes && average.brakes < aggressive.brakes, 'harsh brakes per 100 km order by persona')
  t.ok(cautious.accels <= average.accels && average.accels < aggressive.accels, 'harsh accelerations per 100 km order by persona')
  t.ok(cautious.corners <= average.corners && average.corners < aggressive.corners, 'harsh corners per 100 km order by persona')
  t.ok(cautious.brakes < 3 && aggressive.brakes > 10, 'a cautious driver rarely brakes hard; an aggressive one often does')
  for (const s of [cautious, average, aggressive]) {
    t.ok(Math.abs(s.obdBrakes - s.truthBrakes) <= Math.max(2, 0.1 * s.truthBrakes), `the OBD stream shows the harsh brakes driven (${s.obdBrakes} seen, ${s.truthBrakes} driven)`)
  }
})

t.test('personas are separated: speed against the limit', async (t) => {
  /** Speed over the nearest road's limit for moving GPS fixes away from junctions (whose nearest road is ambiguous). */
  const ratios = (name: DrivingPersonaName) => {
    const fixes = drive(name).readings.filter((r, i) => r.kind === 'gps' && i % 3 === 0 && body(r).speed_kmh! > 10)
    const out: { kmh: number; limit: number }[] = []
    for (const r of fixes) {
      const { x, y } = fixXY(r)
      let best = Infinity, limit = 0, nearJunction = false
      for (const road of city.roads) {
        const ax = city.x[road.a]!, ay = city.y[road.a]!, dx = city.x[road.b]! - ax, dy = city.y[road.b]! - ay
        const u = Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / (dx * dx + dy * dy)))
        const d = Math.hypot(x - ax - u * dx, y - ay - u * dy)
        if (d < best) [best, limit, nearJunction] = [d, road.limit_kmh, u * road.length_m < 60 || (1 - u) * road.length_m < 60]
      }
      if (!nearJunction) out.push({ kmh: body(r).speed_kmh!, limit })
    }
    return { over: out.filter((f) => f.kmh > f.limit + 5).length / out.length, p99: percentile(out.map((f) => f.kmh / f.limit), 0.99) }
  }
  const [cautious, average, aggressive] = [ratios('cautious'), ratios('average'), ratios('aggressive')]
  const show = (s: typeof cautious) => `${(s.over * 100).toFixed(1)}% over, p99 ${(s.p99 * 100).toFixed(0)}% of the limit`
  t.comment(`moving time over the limit + 5 km/h: cautious ${show(cautious)}; average ${show(average)}; aggressive ${show(aggressive)}`)
  t.ok(cautious.over < 0.01 && cautious.p99 <= 1.03, 'the cautious driver rarely exceeds the limit')
  t.ok(cautious.over < average.over && average.over < aggressive.over, 'speeding orders by persona')
  t.ok(aggressive.over > 0.3 && aggressive.p99 > 1.15 && aggressive.p99 < 1.45, 'the aggressive driver often exceeds it, by up to a third')
})

t.test('GPS stays on the road graph, with a few metres of noise and some dropouts', async (t) => {
  const { readings } = drive('average')
  const fixes = readings.filter((r) => r.kind === 'gps')
  const obd = readings.filter((r) => r.kind === 'obd')
  const off = fixes.filter((_, i) => i % 4 === 0).map((r) => distanceToRoad_m(city, fixXY(r).x, fixXY(r).y))
  t.ok(percentile(off, 0.99) < 20, `99% of fixes within ${percentile(off, 0.99).toFixed(1)} m of a road`)
  t.ok(Math.max(...off) < 50, `none further than ${Math.max(...off).toFixed(1)} m`)
  const accuracy = fixes.map((r) => body(r).accuracy_m!)
  t.ok(Math.min(...accuracy) >= 2 && Math.max(...accuracy) <= 10, 'reported accuracy 2–10 m')
  const dropped = 1 - fixes.length / obd.length
  t.ok(dropped > 0.002 && dropped < 0.05, `${(dropped * 100).toFixed(1)}% of seconds without a fix`)
  const headings = fixes.filter((r) => body(r).heading_deg !== undefined)
  t.ok(headings.every((r) => body(r).speed_kmh! > 0 && body(r).heading_deg! >= 0 && body(r).heading_deg! <= 360), 'a heading only when moving')
})

t.test('in the tunnel the GPS loses its fix while the OBD goes on', async (t) => {
  const from = nodeAt(city, 3, 1), to = nodeAt(city, 13, 1)
  const path = route(city, from, to)
  t.ok(path.some((n, i) => i > 0 && roadBetween(city, path[i - 1]!, n).tunnel), 'the route goes through the tunnel')
  const readings = [...driveTrips(city, { persona: 'average', places: { home: from, shops: from }, seed: 4 }, [{ startTs: start, from: 'home', to: 'outing', fromNode: from, toNode: to }])]
  const fixes = readings.filter((r) => r.kind === 'gps').map((r) => r.ts)
  const gap = Math.max(...fixes.slice(1).map((ts, i) => ts - fixes[i]!)) / 1000
  t.ok(gap >= 20, `${gap} s without a fix (about 1 km of tunnel)`)
  const obd = readings.filter((r) => r.kind === 'obd')
  t.ok(obd.every((r, i) => i === 0 || r.ts - obd[i - 1]!.ts === 1000), 'OBD every second throughout')
})

t.test('a distracted driver handles the phone: episodes as designed, visible as IMU rotation', async (t) => {
  const rotation = (name: DrivingPersonaName) => {
    const { readings, trips } = drive(name)
    const episodes = trips.flatMap((p) => p.phoneHandling)
    const inEpisode = (ts: number) => episodes.some((e) => ts >= e.ts && ts < e.ts + e.duration_s * 1000)
    const inside: number[] = [], outside: number[] = []
    let moving_s = 0
    for (const r of readings) {
      if (r.kind === 'obd' && body(r).speed_kmh! > 3 * 3.6) moving_s++
      if (r.kind !== 'imu') continue
      const rows = r.body.samples as number[][]
      const rms = Math.sqrt(rows.reduce((s, row) => s + row[3]! ** 2 + row[4]! ** 2, 0) / rows.length)
      ;(inEpisode(r.ts) ? inside : outside).push(rms)
    }
    return { perHour: episodes.length / (moving_s / 3600), inside, outside, hours: moving_s / 3600 }
  }
  const distracted = rotation('distracted')
  const average = rotation('average')
  // Poisson: 8 an hour of moving (phone pick-ups only start above 3 m/s).
  const expected = 8 * distracted.hours
  t.ok(Math.abs(distracted.perHour * distracted.hours - expected) < 4 * Math.sqrt(expected), `distracted: ${distracted.perHour.toFixed(1)} episodes per hour of driving (8 designed)`)
  t.ok(average.perHour < 1.5, `average: ${average.perHour.toFixed(2)} per hour`)
  t.ok(percentile(distracted.inside, 0.5) > 0.5, `pitch/roll rate in an episode: median ${percentile(distracted.inside, 0.5).toFixed(2)} rad/s`)
  t.ok(percentile(distracted.outside, 0.99) < 0.1, `outside: p99 ${percentile(distracted.outside, 0.99).toFixed(3)} rad/s`)
})

t.test('the IMU rate is configurable and does not change the driving', async (t) => {
  const slow = drive('average', { days: 1, imuHz: 10 })
  const fast = drive('average', { days: 1, imuHz: 100 })
  const none = drive('average', { days: 1, imuHz: 0 })
  const batches = fast.readings.filter((r) => r.kind === 'imu')
  t.ok(batches.length > 0 && batches.every((r) => body(r).rate_hz === 100 && (r.body.samples as number[][]).length === 100), '100 samples in each 1-second batch at 100 Hz')
  t.equal(none.readings.filter((r) => r.kind === 'imu').length, 0, 'no IMU at 0 Hz')
  const notImu = (d: Drive) => JSON.stringify(d.readings.filter((r) => r.kind !== 'imu'))
  t.equal(notImu(fast), notImu(slow), 'OBD, GPS and status are identical at 10 and 100 Hz')
  t.equal(notImu(none), notImu(slow))
  t.same(fast.trips, slow.trips, 'and so is the truth')
})

t.test('a crash: the alert, a high-g pulse in a 100 Hz window around it, then standstill', async (t) => {
  const { readings, trips } = drive('average', { days: 1, crashOnTrip: 0 })
  const truth = trips[0]!.crash!
  t.ok(truth, 'the first trip ended in a crash')
  const alert = readings.find((r) => r.kind === 'crash')!
  t.equal(alert.ts, truth.ts)
  t.ok(body(alert).peak_accel_ms2! >= 60 && body(alert).peak_accel_ms2! <= 150, `peak ${body(alert).peak_accel_ms2} m/s² (6–15 g)`)
  const i = readings.indexOf(alert)
  const before = readings.slice(0, i).filter((r) => r.kind === 'obd').at(-1)!
  t.ok(Math.abs(body(alert).delta_v_kmh! - body(before).speed_kmh!) < 0.2, `Δv ${body(alert).delta_v_kmh} km/h: the car stopped from ${body(before).speed_kmh}`)
  t.ok(body(before).speed_kmh! >= 18, 'at speed')

  const windowed = readings.filter((r) => r.kind === 'imu' && r.sendAt !== undefined)
  const second = truth.ts - (truth.ts - trips[0]!.startTs) % 1000
  t.same(windowed.map((r) => (r.ts - second) / 1000), Array.from({ length: 31 }, (_, k) => k - 10), 'the window: 10 s before to 20 s after the impact')
  t.ok(windowed.every((r) => body(r).rate_hz === 100 && r.sendAt! >= second + 20_000), 'at 100 Hz, uploaded after the post-crash seconds')
  const peak = Math.max(...windowed.flatMap((r) => (r.body.samples as number[][]).map((s) => Math.hypot(s[0]!, s[1]!, s[2]!))))
  t.ok(peak >= 0.8 * Math.min(truth.peak_ms2, 159.9), `the window's largest sample ${peak.toFixed(1)} m/s² is the pulse (peak ${truth.peak_ms2})`)

  const after = readings.slice(i, readings.findIndex((r, k) => k > i && isOff(r)) + 1)
  t.ok(after.filter((r) => r.kind === 'obd').every((r) => body(r).speed_kmh === 0), 'standing still after the crash')
  t.ok(isOff(after.at(-1)) && after.at(-1)!.ts === trips[0]!.endTs, 'then the ignition goes off')
  const lastFix = fixXY(readings.slice(0, readings.indexOf(after.at(-1)!)).filter((r) => r.kind === 'gps').at(-1)!)
  t.ok(nodeGap_m(city, trips[0]!.toNode, lastFix.x, lastFix.y) > 100, 'short of the destination')
  t.ok(trips[0]!.distance_km < routeLength_m(city, trips[0]!.fromNode, trips[0]!.toNode) / 1000)
  t.ok(trips.length > 1 && !trips[1]!.crash, 'the next trip is an ordinary one')
})

t.test('the same seed drives the same; another seed does not', async (t) => {
  const places = choosePlaces(city, drivingPersonas.average, 3)
  const run = (seed: number) => JSON.stringify([...driveVehicle(city, { persona: 'average', places, seed }, { startTs: start, days: 1, imuHz: 10 })])
  t.equal(run(3), run(3))
  t.not(run(3), run(4))
})
