/**
 * What a simulated vehicle sensor is given (#22): the trip being driven and, each second, the
 * motion of that second. The driving model (driving.ts) moves the car; each sensor kind turns the
 * motion into its own readings, so a new vehicle kind is simulated by a file here and a line in
 * the catalogue (index.ts), without touching the driving model.
 */
import type { SensorReading } from '../device-streams.ts'
import type { DrivingPersona } from '../personas.ts'
import type { Random } from '../random.ts'
import type { City } from '../roads.ts'
import type { Geometry } from '../route.ts'

/** How a phone sits in the car: yaw, then pitch, then roll, degrees (0, 0, 0: screen up, top forward). */
export interface PhoneMount {
  yaw_deg: number
  pitch_deg: number
  roll_deg: number
}

/** The car between trips: what its dongle reads off the engine. */
export interface CarState {
  odometer_km: number
  fuel_pct: number
  coolant_c: number
  lastEndTs: number
}

/** The phone in the driver's hand, swinging. */
export interface PhoneInHand {
  startTs: number
  untilTs: number
  amp: number
  phase: number
}

/** One second of motion: position along the route, speed and the constant acceleration over it. */
export interface DrivenSecond {
  ts: number
  s: number
  v: number
  a: number
  phone?: PhoneInHand
  /** The crash in this second: when in it (s), the pulse's length (s), peak (m/s²) and Δv (m/s). */
  crash?: { tau: number; dur: number; peak: number; dv: number }
}

/** A trip as its vehicle's sensors see it. */
export interface TripContext {
  city: City
  route: Geometry
  persona: DrivingPersona
  car: CarState
  startTs: number
  /** A phone instead of a dongle, in this mount: no OBD and no ignition status, its IMU in its own frame. */
  phone?: PhoneMount
  /** IMU samples per second (0: none). */
  imuHz: number
  /** The crash recorder's window, uploaded at its own rate after the post-crash seconds. */
  crashWindow: { hz: number; pre_s: number; post_s: number }
  /** The 1 Hz sensors' noise, and the IMU's own (so the IMU rate changes nothing else). */
  noise: Random
  imuNoise: Random
  /** The vehicle's seed: what stays the same across its trips. */
  seed: number
  /**
   * A random stream of this trip for a sensor of its own (streams 1–3 are the driving's, `noise`
   * and `imuNoise`): a new kind drawing from its own changes no other kind's readings.
   */
  random(stream: number): Random
}

/** A sensor on one trip: its readings at ignition on, each second, and at ignition off. */
export interface SensorOnTrip {
  start?(ts: number): SensorReading[]
  second(sec: DrivenSecond): SensorReading[]
  end?(ts: number): SensorReading[]
}

/**
 * A vehicle sensor kind's simulation. It always draws its noise, even when the device does not
 * have it (a phone has no OBD), so a dongle's and a phone's drives of one trip are the same drive.
 */
export type VehicleSensor = (trip: TripContext) => SensorOnTrip

export const r1 = (x: number) => Math.round(x * 10) / 10
export const r3 = (x: number) => Math.round(x * 1000) / 1000
export const clamp = (x: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, x))
/** Bounded, roughly normal sensor noise with unit variance (sum of three uniforms). */
export const jitter = (rand: Random) => (rand() + rand() + rand() - 1.5) * 2
