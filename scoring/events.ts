/**
 * Events: what scoring detects in a policy's streams, each with its evidence, published on
 * `ubiq/v1/events/{policyId}` and stored in InfluxDB (measurement `event`, tagged policy, device,
 * subject, type and source). Urgent events (crash, leak, smoke, health alert) are published the
 * moment they are seen; the others when the episode behind them has ended.
 */
import { Type, type Static } from '@sinclair/typebox'
import { Subject, type CommandName, type Reading } from '../ingest/index.ts'

const literals = <T extends string>(names: readonly T[], description: string) => Type.Union(names.map((n) => Type.Literal(n)), { description })
/** Driving event types. IMU-only phones cannot tell braking from acceleration (no speed, no heading): theirs are `harsh_longitudinal`. */
export const DrivingEventType = literals(['harsh_longitudinal', 'harsh_lateral', 'harsh_braking', 'harsh_acceleration', 'speeding', 'night_driving', 'phone_handling', 'continuous_driving', 'crash'] as const, 'a driving event')
export type DrivingEventType = Static<typeof DrivingEventType>
/** Home event types. */
export const HomeEventType = literals(['leak', 'smoke', 'co_alarm', 'freeze_warning', 'freeze_risk', 'humidity_exposure', 'sensor_offline', 'low_battery', 'valve_shutoff'] as const, 'a home event')
export type HomeEventType = Static<typeof HomeEventType>
/** Health event types. */
export const HealthEventType = literals(['resting_hr_rise', 'low_spo2', 'scripted_data'] as const, 'a health event')
export type HealthEventType = Static<typeof HealthEventType>
export const EventType = Type.Union([DrivingEventType, HomeEventType, HealthEventType])
export type EventType = Static<typeof EventType>

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
export const EventEvidence = Type.Intersect([
  Type.Object({
    source: Type.String({ description: 'Where it was seen: the sensor kind (`imu`, `obd`, `gps`, `leak`, `hr` …)' }),
    peak: Type.Number({ description: 'The largest value of the quantity the threshold applies to' }),
    threshold: Type.Number({ description: 'The threshold that peak crossed, same unit' }),
    unit: Type.String(),
    duration_s: Type.Number(),
    samples: Type.Optional(Type.Number({ description: 'Samples (or readings) the event spans' })),
    rate_hz: Type.Optional(Type.Number({ description: 'Their rate, where it has one' })),
  }),
  Type.Record(Type.String(), Type.Union([Type.Number(), Type.String(), Type.Array(Type.Array(Type.Number()))]), { description: "A detector's own numbers (e.g. `peakYaw_rads`, `limit_kmh`), and a crash's recorded samples" }),
])
export type EventEvidence = Static<typeof EventEvidence>

/** One detected event, for one device of a policy, as published on `ubiq/v1/events/{policyId}`. */
export const PolicyEvent = Type.Object({
  policyId: Type.String(),
  deviceId: Type.String(),
  subject: Subject,
  type: EventType,
  urgent: Type.Boolean({ description: 'Published at once, not when an episode ends (crash, leak, smoke, health alerts)' }),
  from: Type.Number({ description: "Device time of the event's start, ms since the Unix epoch" }),
  to: Type.Number({ description: "Device time of the event's end, ms since the Unix epoch" }),
  evidence: EventEvidence,
}, { additionalProperties: false })
export type PolicyEvent<T extends EventType = EventType> = Omit<Static<typeof PolicyEvent>, 'type'> & { type: T }

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
