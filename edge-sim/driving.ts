/**
 * Driving that looks like driving (issue #4): a vehicle follows its trip's route through the
 * city, pulling away, cruising near the limit as its persona does, slowing for bends and lower
 * limits ahead, stopping at red lights and in queues, now and then braking hard. Its device sends
 * 1 Hz `obd` and `gps`, batched `imu` at 10–100 Hz, and `status` at ignition on/off and every
 * minute, with the ground truth of each trip (places, distance, harsh events as driven).
 *
 * Motion is integrated once a second with a constant acceleration over the second, so the world
 * does not depend on the sensors' rates: the IMU samples that motion within the second (speed,
 * heading and curvature at each sample's position), and its random noise comes from a stream of
 * its own, so changing the IMU rate never changes how the trip is driven.
 *
 * Speed planning is the usual kinematic rule: the fastest speed now from which the driver can
 * still slow to each constraint ahead (a bend's speed, a lower limit, a stop line) at the
 * deceleration they plan with, √(v² + 2·b·d). A late driver plans a stop with a hard
 * deceleration, so starts braking later and harder: harsh braking emerges from the persona.
 */
import { between, deriveSeed, normal, seededRandom, type Random } from './random.ts'
import { route, toLatLon, type City, type RoadClass } from './roads.ts'
import { drivingPersonas, harshThresholds, type DrivingPersona, type DrivingPersonaName } from './personas.ts'
import { DAY_MS, planTrips, type PlaceName, type Places, type TripPlan } from './trips.ts'
import type { SensorReading } from './device-streams.ts'

/** A simulated vehicle: its driver's persona, places, and the seed its trips derive from. */
export interface Vehicle {
  persona: DrivingPersonaName
  places: Places
  seed: number
}

/** Sensor settings and scenarios of a drive. */
export interface DriveOptions {
  /** IMU samples per second in each 1-second batch (10–100); 0 sends no IMU. Default 25. */
  imuHz?: number
  /** The trip (0-based, counted over this run) that ends in a crash, part-way along its route. */
  crashOnTrip?: number
  /** The crash recorder's window, uploaded at its own rate after the post-crash seconds. */
  crashWindow?: { hz: number; pre_s: number; post_s: number }
  /**
   * A phone instead of a dongle: no OBD and no ignition status, and its IMU as `imu_device`, the
   * phone's own frame with gravity, mounted at this angle (degrees: turned about the car's vertical,
   * then tilted about the phone's y and x axes) (#19, phones in any mount).
   */
  phone?: PhoneMount
}

/** How a phone sits in the car: yaw, then pitch, then roll, degrees (0, 0, 0: screen up, top forward). */
export interface PhoneMount {
  yaw_deg: number
  pitch_deg: number
  roll_deg: number
}

/** A harsh event as driven (not as detected): consecutive seconds beyond the threshold. */
export interface HarshEvent {
  type: 'harsh_brake' | 'harsh_accel' | 'harsh_corner'
  /** First second of the event, ms. */
  ts: number
  duration_s: number
  /** Largest acceleration in the event, m/s² (longitudinal for brake/accel, lateral for corner). */
  peak_ms2: number
}

/** What really happened on a trip. */
export interface TripTruth {
  /** 0-based index over the run. */
  trip: number
  from: PlaceName
  to: PlaceName
  fromNode: number
  toNode: number
  /** Ignition on and off, ms. */
  startTs: number
  endTs: number
  distance_km: number
  maxSpeed_kmh: number
  /** Seconds above the road's limit. */
  speeding_s: number
  harsh: HarshEvent[]
  /** Phone handling episodes (distracted driving). */
  phoneHandling: { ts: number; duration_s: number }[]
  /** Present when the trip ended in a crash (and not at `to`). */
  crash?: { ts: number; peak_ms2: number; delta_v_kmh: number }
}

// 10 s before and 20 s after, the evidence a claim carries (#24): the car stands still for the 20 s,
// which is what the check after an impact looks for (pricing/claims.ts afterImpact).
const DEFAULT_CRASH_WINDOW = { hz: 100, pre_s: 10, post_s: 20 }
/** Length of a 90° bend: r·π/2 for a radius of 12 m in town, 25 m on arterials, 60 m on highway ramps. */
const BEND_M: Record<RoadClass, number> = { urban: 19, arterial: 39, highway: 94 }
const LOOKAHEAD_M = 600
/** Km/h per 1000 rpm in each gear of a typical six-speed car. */
const GEARS = [8, 14, 21, 29, 37, 46]

/** Drives the vehicle's planned trips for `days` days from `startTs`. */
export function driveVehicle(city: City, vehicle: Vehicle, opts: DriveOptions & { startTs: number; days: number }, onTrip?: (t: TripTruth) => void): Generator<SensorReading> {
  const plans = planTrips(city, drivingPersonas[vehicle.persona], vehicle.places, opts.startTs, opts.days, vehicle.seed)
  return driveTrips(city, vehicle, plans, opts, onTrip)
}

/** Drives the given trips in order, yielding the device's readings; `onTrip` gets each trip's truth as it ends. */
export function* driveTrips(city: City, vehicle: Vehicle, plans: Iterable<TripPlan>, opts: DriveOptions = {}, onTrip?: (t: TripTruth) => void): Generator<SensorReading> {
  const car: CarState = { odometer_km: 8_000 + (vehicle.seed % 90_000), fuel_pct: 40 + (vehicle.seed % 55), coolant_c: 12, lastEndTs: -Infinity }
  let index = 0
  for (const plan of plans) {
    const truth = yield* driveTrip(city, drivingPersonas[vehicle.persona], vehicle.seed, car, plan, index++, opts)
    if (truth) onTrip?.(truth)
  }
}

interface CarState {
  odometer_km: number
  fuel_pct: number
  coolant_c: number
  lastEndTs: number
}

/** A route laid out for fast lookups: legs between junctions, and the bend at each junction. */
interface Geometry {
  /** Number of legs. */
  k: number
  x0: Float64Array
  y0: Float64Array
  ux: Float64Array
  uy: Float64Array
  /** Distance along the route where each leg starts; start[k] is the route's length. */
  start: Float64Array
  /** Heading of each leg, radians clockwise from north. */
  heading: Float64Array
  limit_ms: Float64Array
  road: RoadClass[]
  tunnel: Uint8Array
  /** At the junction where leg j starts (j ≥ 1): half the bend's length, its signed turn (+ right), curvature. */
  half: Float64Array
  turn: Float64Array
  curv: Float64Array
  nodes: number[]
}

function geometry(city: City, nodes: number[]): Geometry {
  const k = nodes.length - 1
  const g: Geometry = {
    k, x0: new Float64Array(k), y0: new Float64Array(k), ux: new Float64Array(k), uy: new Float64Array(k), start: new Float64Array(k + 1),
    heading: new Float64Array(k), limit_ms: new Float64Array(k), road: [], tunnel: new Uint8Array(k),
    half: new Float64Array(k), turn: new Float64Array(k), curv: new Float64Array(k), nodes,
  }
  for (let i = 0; i < k; i++) {
    const a = nodes[i]!, b = nodes[i + 1]!
    const link = city.links[a]!.find((l) => l.node === b)!
    const r = city.roads[link.road]!
    const dx = city.x[b]! - city.x[a]!, dy = city.y[b]! - city.y[a]!
    const len = Math.hypot(dx, dy)
    g.x0[i] = city.x[a]!
    g.y0[i] = city.y[a]!
    g.ux[i] = dx / len
    g.uy[i] = dy / len
    g.start[i + 1] = g.start[i]! + len
    g.heading[i] = Math.atan2(dx, dy)
    g.limit_ms[i] = r.limit_kmh / 3.6
    g.road.push(r.road)
    g.tunnel[i] = r.tunnel ? 1 : 0
    if (i > 0) {
      let turn = g.heading[i]! - g.heading[i - 1]!
      turn = Math.atan2(Math.sin(turn), Math.cos(turn)) // (−π, π]
      const bend = g.road[i] === 'highway' || g.road[i - 1] === 'highway' ? BEND_M.highway : Math.min(BEND_M[g.road[i]!], BEND_M[g.road[i - 1]!])
      // Every bend of a road class is as long as its 90° turn: a gentle bend is a wide one (r = length / |θ|).
      g.half[i] = Math.min(bend / 2, 0.4 * len, 0.4 * (g.start[i]! - g.start[i - 1]!))
      g.turn[i] = turn
      g.curv[i] = turn / (2 * g.half[i]!)
    }
  }
  return g
}

/** The leg that contains distance `s`. */
function legAt(g: Geometry, s: number): number {
  let lo = 0, hi = g.k - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (g.start[mid]! <= s) lo = mid
    else hi = mid - 1
  }
  return lo
}

/** Where the vehicle is at distance `s`: position, heading (turning through bends) and curvature (+ right). */
function locate(g: Geometry, s: number, out: { x: number; y: number; heading: number; curv: number; leg: number }) {
  const i = legAt(g, s)
  const d = s - g.start[i]!
  out.x = g.x0[i]! + g.ux[i]! * d
  out.y = g.y0[i]! + g.uy[i]! * d
  out.heading = g.heading[i]!
  out.curv = 0
  out.leg = i
  if (i > 0 && d < g.half[i]!) {
    out.heading = g.heading[i - 1]! + g.turn[i]! * ((d + g.half[i]!) / (2 * g.half[i]!))
    out.curv = g.curv[i]!
  } else if (i + 1 < g.k && g.start[i + 1]! - s < g.half[i + 1]!) {
    out.heading = g.heading[i]! + g.turn[i + 1]! * ((g.half[i + 1]! - (g.start[i + 1]! - s)) / (2 * g.half[i + 1]!))
    out.curv = g.curv[i + 1]!
  }
  return out
}

interface Stop {
  s: number
  wait_s: number
  /** The deceleration the driver plans this stop with. */
  brake: number
  end?: boolean
}

/** One second of motion: position, speed and the constant acceleration over it. */
interface Second {
  ts: number
  s: number
  v: number
  a: number
  phone?: Phone
  crash?: { tau: number; dur: number; peak: number; dv: number }
}

interface Phone {
  startTs: number
  untilTs: number
  amp: number
  phase: number
}

const r1 = (x: number) => Math.round(x * 10) / 10
const r3 = (x: number) => Math.round(x * 1000) / 1000
const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x))
/** An accelerometer reading, clipped to the sensor's range (a crash pulse may exceed it). */
const saturate = (x: number) => clamp(r3(x), -159.9, 159.9)
/** Bounded, roughly normal sensor noise with unit variance (sum of three uniforms). */
const jitter = (rand: Random) => (rand() + rand() + rand() - 1.5) * 2

function* driveTrip(city: City, persona: DrivingPersona, seed: number, car: CarState, plan: TripPlan, index: number, opts: DriveOptions): Generator<SensorReading, TripTruth | undefined> {
  const nodes = route(city, plan.fromNode, plan.toNode)
  if (nodes.length < 2) return undefined
  const g = geometry(city, nodes)
  const total = g.start[g.k]!
  // Separate streams: the driving, the 1 Hz sensors' noise and the IMU's (so the IMU rate changes nothing else).
  const rand = seededRandom(deriveSeed(seed, 1, plan.startTs / 1000))
  const noise = seededRandom(deriveSeed(seed, 2, plan.startTs / 1000))
  const imuNoise = seededRandom(deriveSeed(seed, 3, plan.startTs / 1000))
  const imuHz = opts.imuHz ?? 25
  const window = opts.crashWindow ?? DEFAULT_CRASH_WINDOW

  // This driver, today.
  const speedFactor = between(rand, ...persona.speedFactor)
  const accel = between(rand, ...persona.accel_ms2)
  const brake = between(rand, ...persona.brake_ms2)
  const planBrake = () => (rand() < persona.lateBrake ? between(rand, ...persona.hardBrake_ms2) : brake)
  const hour = (plan.startTs % DAY_MS) / 3_600_000
  const weekday = new Date(plan.startTs).getUTCDay()
  const rush = weekday >= 1 && weekday <= 5 && ((hour >= 7 && hour < 9.5) || (hour >= 16 && hour < 19))

  // Speeds per leg (congested at rush hour) and per bend (the lateral acceleration this driver accepts).
  const vDes = new Float64Array(g.k)
  const vBend = new Float64Array(g.k).fill(Infinity)
  const stops: Stop[] = []
  for (let i = 0; i < g.k; i++) {
    const congested = rush && g.road[i] !== 'urban' && rand() < 0.3
    vDes[i] = g.limit_ms[i]! * speedFactor * (congested ? between(rand, 0.35, 0.7) : 1)
    if (i > 0 && Math.abs(g.curv[i]!) > 1e-6) vBend[i] = Math.sqrt(between(rand, ...persona.lateral_ms2) / Math.abs(g.curv[i]!))
    if (i > 0 && city.lights[nodes[i]!] && rand() < 0.45) {
      stops.push({ s: Math.max(g.start[i]! - g.half[i]! - 2, g.start[i - 1]! + 1), wait_s: Math.round(between(rand, 5, 45)), brake: planBrake() })
    }
    if (g.road[i] !== 'highway' && rand() < (g.road[i] === 'urban' ? 0.08 : 0.15) * (rush ? 2 : 1)) {
      stops.push({ s: g.start[i]! + between(rand, 0.25, 0.75) * (g.start[i + 1]! - g.start[i]!), wait_s: Math.round(between(rand, 2, 15)), brake: planBrake() })
    }
  }
  stops.sort((a, b) => a.s - b.s)
  stops.push({ s: total, wait_s: Math.round(between(rand, 2, 6)), brake, end: true })
  const crashAt = index === opts.crashOnTrip ? total * between(rand, 0.3, 0.7) : Infinity

  /** The fastest speed at `p` from which every constraint ahead can still be met. */
  const cap = (vmax: number, d: number, b: number) => (d <= 0 ? vmax : Math.sqrt(vmax * vmax + 2 * b * d))
  function allowed(p: number, stop: Stop): number {
    let v = cap(0, stop.s - p, stop.brake)
    const here = legAt(g, p)
    for (let i = here; i < g.k && g.start[i]! - g.half[i]! < p + LOOKAHEAD_M; i++) {
      if (i > here) v = Math.min(v, cap(vDes[i]!, g.start[i]! - p, brake))
      if (i > 0 && p < g.start[i]! + g.half[i]!) v = Math.min(v, cap(vBend[i]!, g.start[i]! - g.half[i]! - p, brake))
    }
    return v
  }

  const truth: TripTruth = {
    trip: index, from: plan.from, to: plan.to, fromNode: plan.fromNode, toNode: plan.toNode, startTs: plan.startTs, endTs: plan.startTs,
    distance_km: 0, maxSpeed_kmh: 0, speeding_s: 0, harsh: [], phoneHandling: [],
  }
  const open: Partial<Record<HarshEvent['type'], HarshEvent>> = {}
  const harsh = (type: HarshEvent['type'], value: number, threshold: number, ts: number) => {
    if (value < threshold) return void (open[type] = undefined)
    const e = open[type]
    if (!e) return void truth.harsh.push((open[type] = { type, ts, duration_s: 1, peak_ms2: r1(value) }))
    e.duration_s++
    e.peak_ms2 = Math.max(e.peak_ms2, r1(value))
  }

  if (car.fuel_pct < 12) car.fuel_pct = between(rand, 85, 98)
  if (plan.startTs - car.lastEndTs > 2 * 3_600_000) car.coolant_c = between(rand, 6, 18)
  const coolantStart = car.coolant_c
  const sensors = sensorState(city, g, persona, noise, imuNoise, opts.phone)
  const imu = (at: number, sendAt: number, hz: number, sec: Second): SensorReading =>
    ({ kind: opts.phone ? 'imu_device' : 'imu', ts: at, ...(sendAt !== at ? { sendAt } : {}), body: { rate_hz: hz, samples: sensors.imu(sec, hz) } })
  const recent: Second[] = []
  let s = 0, v = 0, w = 0, ts = plan.startTs, next = 0
  let wait = Math.round(between(rand, 5, 25)) // engine on, seat belt, mirrors
  let finishing = false
  let hazard: { untilTs: number; v: number; brake: number } | undefined
  let phone: Phone | undefined
  const at = { x: 0, y: 0, heading: 0, curv: 0, leg: 0 }

  // A phone has no ignition signal; its values are drawn all the same, so its drive is the dongle's.
  const status = (body: Record<string, number | boolean>): SensorReading[] => (opts.phone ? [] : [{ kind: 'status', ts, body }])
  yield* status({ ignition_on: true, battery_v: r1(between(noise, 12.3, 12.7)) })
  for (;;) {
    if (ts - plan.startTs > 6 * 3_600_000) throw new Error(`trip ${index} of vehicle ${seed} does not end: stuck at ${s.toFixed(0)} of ${total.toFixed(0)} m`)
    let a = 0, ds = 0, v1 = v
    let crash: Second['crash']
    if (wait > 0) wait--
    else if (finishing) break
    else if (s >= crashAt && v >= 5) {
      // The crash: a half-sine pulse stopping the car (Δv = v) with a peak of 6–15 g; its length follows.
      const peak = between(rand, 60, 150)
      const dur = (Math.PI * v) / (2 * peak)
      crash = { tau: between(rand, 0.05, Math.max(0.05, 0.95 - dur)), dur, peak, dv: v }
      ds = v * crash.tau
      a = -v
      v1 = 0
      wait = window.post_s
      finishing = true
      truth.crash = { ts: ts + Math.round(crash.tau * 1000), peak_ms2: r1(peak), delta_v_kmh: r1(v * 3.6) }
    } else {
      const stop = stops[next]!
      w = 0.95 * w + 0.01 * normal(rand)
      let target = Math.min(vDes[legAt(g, s)]! * (1 + w), allowed(s + v, stop))
      target = Math.min(target, allowed(s + (v + target) / 2, stop))
      if (!hazard && v > 8 && rand() < persona.hazardsPerHour / 3600) {
        hazard = { untilTs: ts + 2000, v: v * between(rand, 0.35, 0.7), brake: between(rand, ...persona.hardBrake_ms2) }
      }
      if (hazard && ts >= hazard.untilTs) hazard = undefined
      if (hazard) target = Math.min(target, hazard.v)
      a = target - v
      if (a > 0) a = Math.min(a, accel * Math.max(0.3, 1 - v / 45))
      else a = Math.max(a, hazard ? -hazard.brake : -9)
      v1 = Math.max(0, v + a)
      a = v1 - v
      ds = (v + v1) / 2
      // At the stop line (or the end): stand still for the light, the queue or to switch off. A
      // crawl short of the line (the look-ahead can stop the car up to b/2 before it) rolls up to it.
      if (s + ds >= stop.s - 0.5 || (v1 < 1 && stop.s - s - ds < 8)) {
        ds = stop.s - s
        v1 = 0
        a = -v
        wait = stop.wait_s
        finishing = stop.end === true
        next++
      }
      if (!phone && v > 3 && rand() < persona.phonePerHour / 3600) {
        phone = { startTs: ts, untilTs: ts + Math.round(between(rand, 4, 15)) * 1000, amp: between(rand, 0.8, 2.5), phase: rand() * 6.28 }
        truth.phoneHandling.push({ ts, duration_s: (phone.untilTs - ts) / 1000 })
      }
    }
    if (phone && ts >= phone.untilTs) phone = undefined

    const sec: Second = { ts, s, v, a, ...(phone ? { phone } : {}), ...(crash ? { crash } : {}) }
    if (ts > plan.startTs && (ts - plan.startTs) % 60_000 === 0) yield* status({ ignition_on: true, battery_v: r1(between(noise, 13.9, 14.4)) })
    car.coolant_c = 90 - (90 - coolantStart) * Math.exp(-(ts - plan.startTs) / 300_000)
    const obd = sensors.obd(car, v, a) // drawn for a phone too, as the status
    if (!opts.phone) yield { kind: 'obd', ts, body: obd }
    const fix = sensors.gps(s, v)
    if (fix) yield { kind: 'gps', ts, body: fix }
    if (imuHz > 0) yield imu(ts, ts, imuHz, sec)
    if (crash) yield { kind: 'crash', ts: truth.crash!.ts, body: { peak_accel_ms2: r1(crash.peak), delta_v_kmh: r1(crash.dv * 3.6), direction_deg: r1((360 + normal(noise, 0, 8)) % 360) } }

    // The truth, as driven.
    if (!crash) {
      locate(g, s, at)
      if (v * 3.6 > g.limit_ms[at.leg]! * 3.6 + 1) truth.speeding_s++
      let lateral = v * v * Math.abs(at.curv)
      lateral = Math.max(lateral, ((v + v1) / 2) ** 2 * Math.abs(locate(g, s + ds / 2, at).curv), v1 * v1 * Math.abs(locate(g, s + ds, at).curv))
      harsh('harsh_brake', -a, harshThresholds.brake_ms2, ts)
      harsh('harsh_accel', a, harshThresholds.accel_ms2, ts)
      harsh('harsh_corner', lateral, harshThresholds.corner_ms2, ts)
    }
    truth.maxSpeed_kmh = Math.max(truth.maxSpeed_kmh, r1(v * 3.6))
    recent.push(sec)
    if (recent.length > window.pre_s + window.post_s + 1) recent.shift()
    car.odometer_km += ds / 1000
    car.fuel_pct = Math.max(0, car.fuel_pct - (ds / 1000) * 0.14) // 7 l/100 km from a 50 l tank
    s = Math.min(total, s + ds)
    v = v1
    ts += 1000
  }

  if (truth.crash) {
    // The crash recorder uploads its ring buffer at full rate once the post-crash window is over.
    const crashSecond = recent.find((sec) => sec.crash)!.ts
    for (const sec of recent) {
      if (sec.ts < crashSecond - window.pre_s * 1000 || sec.ts > crashSecond + window.post_s * 1000) continue
      yield imu(sec.ts, ts, window.hz, sec)
    }
  }
  yield* status({ ignition_on: false, battery_v: r1(between(noise, 12.4, 12.7)) })
  truth.endTs = ts
  truth.distance_km = Math.round(s) / 1000
  car.lastEndTs = ts
  return truth
}

/** Standard gravity, m/s². */
const G_MS2 = 9.80665

/** A vector in the car's frame (forward, left, up) as the phone mounted at `m` reads it: Mᵀ·v, M = Rz(yaw)·Ry(pitch)·Rx(roll). */
function phoneFromCar(m: PhoneMount): (v: number[]) => number[] {
  const [a, b, c] = [m.yaw_deg, m.pitch_deg, m.roll_deg].map((d) => (d * Math.PI) / 180) as [number, number, number]
  const [ca, sa, cb, sb, cc, sc] = [Math.cos(a), Math.sin(a), Math.cos(b), Math.sin(b), Math.cos(c), Math.sin(c)]
  const M = [
    [ca * cb, ca * sb * sc - sa * cc, ca * sb * cc + sa * sc],
    [sa * cb, sa * sb * sc + ca * cc, sa * sb * cc - ca * sc],
    [-sb, cb * sc, cb * cc],
  ]
  return (v) => [0, 1, 2].map((j) => M[0]![j]! * v[0]! + M[1]![j]! * v[1]! + M[2]![j]! * v[2]!)
}

/** The device's sensors on one trip: OBD values, a GNSS fix with noise and dropouts, IMU batches. */
function sensorState(city: City, g: Geometry, persona: DrivingPersona, noise: Random, imuNoise: Random, phone?: PhoneMount) {
  let ex = 0, ey = 0
  const toPhone = phone && phoneFromCar(phone)
  const at = { x: 0, y: 0, heading: 0, curv: 0, leg: 0 }
  return {
    obd(car: CarState, v: number, a: number) {
      const kmh = v * 3.6
      const throttle = v < 0.1 && a <= 0 ? 0 : a < -0.3 ? 0 : clamp((100 * (a + 0.12 + 0.0004 * v * v)) / 4, 0, 100)
      return {
        speed_kmh: r1(kmh),
        engine_rpm: Math.round(v < 0.3 ? 800 + jitter(noise) * 15 : gearRpm(kmh, persona.shift_rpm)),
        throttle_pct: r1(throttle),
        engine_load_pct: r1(v < 0.1 && a <= 0 ? 22 : clamp(18 + 0.75 * throttle, 0, 100)),
        coolant_temp_c: r1(car.coolant_c),
        fuel_level_pct: r1(car.fuel_pct),
        odometer_km: r1(car.odometer_km),
      }
    },
    /** A fix, or undefined in a tunnel or a dropout (an urban canyon loses it far more often). */
    gps(s: number, v: number) {
      locate(g, s, at)
      if (g.tunnel[at.leg]) return undefined
      const canyon = Math.hypot(at.x, at.y) < city.canyonRadius_m
      if (noise() < (canyon ? 0.04 : 0.003)) return undefined
      // Position error wanders (multipath, satellites changing) rather than jumping: AR(1), σ per axis.
      const sigma = canyon ? 7 : 3
      ex = 0.9 * ex + 0.436 * sigma * normal(noise)
      ey = 0.9 * ey + 0.436 * sigma * normal(noise)
      const { lat_deg, lon_deg } = toLatLon(city, at.x + ex, at.y + ey)
      return {
        lat_deg: Math.round(lat_deg * 1e6) / 1e6,
        lon_deg: Math.round(lon_deg * 1e6) / 1e6,
        accuracy_m: r1(sigma * between(noise, 0.8, 1.3)),
        speed_kmh: r1(Math.max(0, v * 3.6 + normal(noise, 0, 0.4))),
        ...(v > 1 ? { heading_deg: r1((((at.heading * 180) / Math.PI) % 360 + 360) % 360) } : {}),
      }
    },
    /**
     * One second of IMU rows at `hz`: linear acceleration in the earth frame (east, north, up; the
     * contract's frame, gravity removed) from the motion, plus road vibration, sensor noise, a
     * crash pulse, or the swings of a phone in the hand.
     */
    imu(sec: Second, hz: number): number[][] {
      const rows: number[][] = []
      for (let i = 0; i < hz; i++) {
        const tau = i / hz
        let vt: number, st: number, along: number
        if (sec.crash) {
          const { tau: t0, dur, peak, dv } = sec.crash
          const u = clamp((tau - t0) / dur, 0, 1)
          along = u > 0 && u < 1 ? -peak * Math.sin(Math.PI * u) : 0
          vt = sec.v - dv * (1 - Math.cos(Math.PI * u)) / 2
          st = sec.s + sec.v * Math.min(tau, t0)
        } else {
          vt = Math.max(0, sec.v + sec.a * tau)
          st = sec.s + sec.v * tau + (sec.a * tau * tau) / 2
          along = sec.a
        }
        locate(g, st, at)
        const lateral = vt * vt * at.curv // + to the right of travel
        const sin = Math.sin(at.heading), cos = Math.cos(at.heading)
        const vib = 0.04 + 0.008 * vt
        let ax = along * sin + lateral * cos + jitter(imuNoise) * (0.03 + 0.3 * vib)
        let ay = along * cos - lateral * sin + jitter(imuNoise) * (0.03 + 0.3 * vib)
        let az = jitter(imuNoise) * vib
        // Heading turns clockwise; rotation about "up" is counter-clockwise positive.
        let gx = jitter(imuNoise) * (0.003 + 0.001 * vt), gy = jitter(imuNoise) * (0.003 + 0.001 * vt), gz = -vt * at.curv + jitter(imuNoise) * 0.003
        if (sec.phone) {
          const t = (sec.ts - sec.phone.startTs) / 1000 + tau
          const p = sec.phone
          gx += p.amp * Math.sin(2 * Math.PI * 0.7 * t + p.phase)
          gy += 0.7 * p.amp * Math.sin(2 * Math.PI * 0.45 * t + 2 * p.phase)
          gz += 0.4 * p.amp * Math.sin(2 * Math.PI * 0.3 * t)
          ax += 1.2 * Math.sin(2 * Math.PI * 1.3 * t + p.phase)
          ay += 0.9 * Math.sin(2 * Math.PI * 1.1 * t)
          az += 1.0 * Math.sin(2 * Math.PI * 0.9 * t + p.phase)
        }
        if (toPhone) {
          // Earth (east, north, up) → the car's frame (forward, left, up), gravity added as an
          // accelerometer reads it (+g up at rest), then into the phone's own frame.
          const car = (e: number, n: number, u: number) => [e * sin + n * cos, -e * cos + n * sin, u]
          const a = toPhone(car(ax, ay, az + G_MS2)), w = toPhone(car(gx, gy, gz))
          ;[ax, ay, az, gx, gy, gz] = [a[0]!, a[1]!, a[2]!, w[0]!, w[1]!, w[2]!]
        }
        rows.push([saturate(ax), saturate(ay), saturate(az), r3(gx), r3(gy), r3(gz)])
      }
      return rows
    },
  }
}

/** Engine speed in the lowest gear that keeps it under the driver's upshift point. */
function gearRpm(kmh: number, shift_rpm: number): number {
  for (const kmhPer1000 of GEARS) {
    const rpm = (kmh / kmhPer1000) * 1000
    if (rpm <= shift_rpm) return Math.max(900, rpm)
  }
  return (kmh / GEARS[GEARS.length - 1]!) * 1000
}
