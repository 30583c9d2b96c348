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
import { between, deriveSeed, normal, seededRandom } from './random.ts'
import { route, type City } from './roads.ts'
import { geometry, legAt, locate } from './route.ts'
import { drivingPersonas, harshThresholds, type DrivingPersona, type DrivingPersonaName } from './personas.ts'
import { DAY_MS, planTrips, type PlaceName, type Places, type TripPlan } from './trips.ts'
import { vehicleSensors, type CarState, type DrivenSecond, type PhoneInHand, type PhoneMount, type TripContext } from './sensors/index.ts'
import { r1 } from './sensors/vehicle.ts'
import type { SensorReading } from './device-streams.ts'

export type { PhoneMount }

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
const LOOKAHEAD_M = 600

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

interface Stop {
  s: number
  wait_s: number
  /** The deceleration the driver plans this stop with. */
  brake: number
  end?: boolean
}

function* driveTrip(city: City, persona: DrivingPersona, seed: number, car: CarState, plan: TripPlan, index: number, opts: DriveOptions): Generator<SensorReading, TripTruth | undefined> {
  const nodes = route(city, plan.fromNode, plan.toNode)
  if (nodes.length < 2) return undefined
  const g = geometry(city, nodes)
  const total = g.start[g.k]!
  // Separate streams: the driving, the 1 Hz sensors' noise and the IMU's (so the IMU rate changes nothing else).
  const rand = seededRandom(deriveSeed(seed, 1, plan.startTs / 1000))
  const noise = seededRandom(deriveSeed(seed, 2, plan.startTs / 1000))
  const imuNoise = seededRandom(deriveSeed(seed, 3, plan.startTs / 1000))

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
  // The device's sensors, each turning the motion into its own readings (sensors/).
  const trip: TripContext = {
    city, route: g, persona, car, startTs: plan.startTs, imuHz: opts.imuHz ?? 25, crashWindow: opts.crashWindow ?? DEFAULT_CRASH_WINDOW,
    noise, imuNoise, seed, random: (stream) => seededRandom(deriveSeed(seed, stream, plan.startTs / 1000)), ...(opts.phone ? { phone: opts.phone } : {}),
  }
  const sensors = vehicleSensors.map((simulate) => simulate(trip))
  let s = 0, v = 0, w = 0, ts = plan.startTs, next = 0
  let wait = Math.round(between(rand, 5, 25)) // engine on, seat belt, mirrors
  let finishing = false
  let hazard: { untilTs: number; v: number; brake: number } | undefined
  let phone: PhoneInHand | undefined
  const at = { x: 0, y: 0, heading: 0, curv: 0, leg: 0 }

  for (const sensor of sensors) yield* sensor.start?.(ts) ?? []
  for (;;) {
    if (ts - plan.startTs > 6 * 3_600_000) throw new Error(`trip ${index} of vehicle ${seed} does not end: stuck at ${s.toFixed(0)} of ${total.toFixed(0)} m`)
    let a = 0, ds = 0, v1 = v
    let crash: DrivenSecond['crash']
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
      wait = trip.crashWindow.post_s
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

    car.coolant_c = 90 - (90 - coolantStart) * Math.exp(-(ts - plan.startTs) / 300_000)
    const sec: DrivenSecond = { ts, s, v, a, ...(phone ? { phone } : {}), ...(crash ? { crash } : {}) }
    for (const sensor of sensors) yield* sensor.second(sec)

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
    car.odometer_km += ds / 1000
    car.fuel_pct = Math.max(0, car.fuel_pct - (ds / 1000) * 0.14) // 7 l/100 km from a 50 l tank
    s = Math.min(total, s + ds)
    v = v1
    ts += 1000
  }

  // Ended in reverse order, as they were started: the crash recorder's upload, then ignition off.
  for (const sensor of [...sensors].reverse()) yield* sensor.end?.(ts) ?? []
  truth.endTs = ts
  truth.distance_km = Math.round(s) / 1000
  car.lastEndTs = ts
  return truth
}
