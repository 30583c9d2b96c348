/**
 * Events: what scoring detects in a policy's streams, each with its evidence, published on
 * `ubiq/v1/events/{policyId}` and stored in InfluxDB (measurement `event`, tagged policy, device,
 * subject, type and source). Urgent events (crash, leak, smoke, health alert) are published the
 * moment they are seen; the others when the episode behind them has ended.
 */
import type { CommandName, Reading, Subject } from '../ingest/index.ts'

/** Driving event types. IMU-only phones cannot tell braking from acceleration (no speed, no heading): theirs are `harsh_longitudinal`. */
export type DrivingEventType =
  | 'harsh_longitudinal' | 'harsh_lateral'
  | 'harsh_braking' | 'harsh_acceleration'
  | 'speeding' | 'night_driving' | 'phone_handling' | 'continuous_driving' | 'crash'
/** Home event types. */
export type HomeEventType = 'leak' | 'smoke' | 'co_alarm' | 'freeze_warning' | 'freeze_risk' | 'humidity_exposure' | 'sensor_offline' | 'low_battery' | 'valve_shutoff'
/** Health event types. */
export type HealthEventType = 'resting_hr_rise' | 'low_spo2' | 'scripted_data'
export type EventType = DrivingEventType | HomeEventType | HealthEventType

/**
 * What an urgent event asks of the policy's devices that can do it (#24): a leak shuts the main
 * water valve, through every device of the policy registered for the command's stream.
 */
export const eventCommands: Partial<Record<EventType, CommandName>> = { leak: 'close_valve' }

/**
 * Why an event fired: the numbers a policyholder or an analyst can check against the raw data.
 * `source`, `peak`, `threshold`, `unit` and `duration_s` are always there; detectors add their own
 * numbers (e.g. `peakYaw_rads`, `limit_kmh`), which are stored as InfluxDB fields too.
 */
export interface EventEvidence {
  /** Where it was seen: the sensor kind (`imu`, `obd`, `gps`, `leak`, `hr` …). */
  source: string
  /** The largest value of the quantity the threshold applies to. */
  peak: number
  /** The threshold that peak crossed, same unit. */
  threshold: number
  unit: string
  duration_s: number
  /** Samples (or readings) the event spans, and their rate where it has one. */
  samples?: number
  rate_hz?: number
  [extra: string]: number | string | undefined | readonly (readonly number[])[]
}

/** One detected event, for one device of a policy. */
export interface PolicyEvent<T extends EventType = EventType> {
  policyId: string
  deviceId: string
  subject: Subject
  type: T
  /** Published at once, not when an episode ends (crash, leak, smoke, health alerts). */
  urgent: boolean
  /** Device time of the event's start and end, ms. */
  from: number
  to: number
  evidence: EventEvidence
}

/** A driving event. */
export type DrivingEvent = PolicyEvent<DrivingEventType>

/**
 * A per-device detector: fed the device's readings in device-time order, it returns the events
 * they complete. `flush()` ends whatever is open (the trip ended, the device went quiet) and returns
 * the events that ending completes. Trips own one of each detector per device, so every event a
 * trip's readings produce is known when the trip closes.
 */
export interface Detector {
  push(r: Reading): PolicyEvent[]
  flush(): PolicyEvent[]
  /**
   * A reading older than one already pushed (a crash recorder's window, uploaded after the crash).
   * Only detectors that can use such readings define this; the others never see them.
   */
  late?(r: Reading): PolicyEvent[]
}
