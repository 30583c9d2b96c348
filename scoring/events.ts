/**
 * Events: what scoring detects in a policy's streams, each with its evidence, published on
 * `ubiq/v1/events/{policyId}` and stored in InfluxDB (measurement `event`, tagged policy, device,
 * subject, type and source). Urgent events (crash, leak, smoke, health alert) are published the
 * moment they are seen; the others when the episode behind them has ended.
 */
import { Type, type Static, type TLiteral, type TUnion } from '@sinclair/typebox'
import { Subject, type CommandName, type Reading } from '../ingest/index.ts'

/** What the catalogue says of an event type. */
export interface EventTypeEntry {
  subject: Subject
  /** The type in a policyholder's words (the pages show these). */
  words: string
  /**
   * The unit of its evidence's `peak` and `threshold`, as stored with every event; by the evidence's
   * `source` where the sources measure different things.
   */
  unit: string | Readonly<Record<string, string>>
  /** Published the moment it is seen, not when the episode behind it ends. */
  urgent: boolean
  /** The detector's own numbers in its evidence, beyond those every event has (EventEvidence), and what each is. */
  evidence?: Readonly<Record<string, string>>
}

/**
 * The catalogue of event types (#22): one line per type, read by the detectors (subject, urgency,
 * unit), the pages (words, served as /assets/catalogue.js), the contract docs and the schemas
 * below. IMU-only phones cannot tell braking from acceleration (no speed, no heading): theirs are
 * `harsh_longitudinal`.
 */
export const eventTypes = {
  harsh_longitudinal: { subject: 'driving', words: 'hard braking or acceleration', unit: 'm/s²', urgent: false, evidence: { peakYaw_rads: 'the largest smoothed yaw rate during it, rad/s' } },
  harsh_lateral: { subject: 'driving', words: 'hard cornering or lane change', unit: 'm/s²', urgent: false, evidence: { peakYaw_rads: 'the largest smoothed yaw rate during it, rad/s (from the IMU)' } },
  harsh_braking: { subject: 'driving', words: 'hard braking', unit: 'm/s²', urgent: false },
  harsh_acceleration: { subject: 'driving', words: 'hard acceleration', unit: 'm/s²', urgent: false },
  speeding: { subject: 'driving', words: 'speeding', unit: 'km/h', urgent: false, evidence: { limit_kmh: 'the road\'s limit where the excess was largest', max_speed_kmh: 'the highest speed during it' } },
  night_driving: { subject: 'driving', words: 'driving at night', unit: 's', urgent: false },
  phone_handling: { subject: 'driving', words: 'phone in hand while driving', unit: 'rad/s', urgent: false, evidence: { minSpeed_kmh: 'the lowest speed during it, when the speed was known throughout' } },
  continuous_driving: { subject: 'driving', words: 'long drive without a break', unit: 's', urgent: false },
  crash: { subject: 'driving', words: 'crash', unit: 'm/s²', urgent: true, evidence: { delta_v_kmh: 'the speed change, km/h', direction_deg: 'the impact\'s direction (the device\'s report), °', window: 'the accelerations around the pulse: rows [t_ms from its start, ax, ay, az]' } },
  leak: { subject: 'home', words: 'water leak', unit: 'detected', urgent: true },
  smoke: { subject: 'home', words: 'smoke', unit: 'detected', urgent: true, evidence: { co_ppm: 'carbon monoxide when the alarm went off, ppm' } },
  co_alarm: { subject: 'home', words: 'carbon monoxide', unit: 'ppm', urgent: true },
  freeze_warning: { subject: 'home', words: 'pipes about to freeze', unit: '°C', urgent: true, evidence: { falling_c_per_h: 'how fast the pipes cool, °C per hour' } },
  freeze_risk: { subject: 'home', words: 'risk of frost', unit: '°C', urgent: false },
  humidity_exposure: { subject: 'home', words: 'damp', unit: '% RH', urgent: false },
  sensor_offline: { subject: 'home', words: 'sensor silent', unit: 's', urgent: false, evidence: { heartbeat_s: 'how often the sensor reports when all is well, s' } },
  low_battery: { subject: 'home', words: 'low battery', unit: '%', urgent: false },
  valve_shutoff: { subject: 'home', words: 'water shut off', unit: 's', urgent: false, evidence: { response_s: 'from the leak to the valve closed, s' } },
  resting_hr_rise: { subject: 'health', words: 'resting heart rate up', unit: 'bpm', urgent: true, evidence: { baseline_bpm: 'the resting heart rate before, bpm', days: 'days it has lasted' } },
  low_spo2: { subject: 'health', words: 'low blood oxygen', unit: '%', urgent: true },
  scripted_data: { subject: 'health', words: 'readings look made up', unit: { steps: 'of mean daily steps', hr: 'bpm (standard deviation)' }, urgent: false, evidence: { days: 'days it has lasted' } },
} as const satisfies Record<string, EventTypeEntry>

type EventTypes = typeof eventTypes
type TypeOf<S extends Subject> = { [T in keyof EventTypes]: EventTypes[T]['subject'] extends S ? T : never }[keyof EventTypes]
const typesOf = <S extends Subject>(subject: S, description: string) =>
  Type.Union((Object.keys(eventTypes) as (keyof EventTypes)[]).filter((t) => eventTypes[t].subject === subject).map((t) => Type.Literal(t)), { description }) as unknown as TUnion<TLiteral<TypeOf<S>>[]>

/** Driving event types. */
export const DrivingEventType = typesOf('driving', 'a driving event')
export type DrivingEventType = TypeOf<'driving'>
/** Home event types. */
export const HomeEventType = typesOf('home', 'a home event')
export type HomeEventType = TypeOf<'home'>
/** Health event types. */
export const HealthEventType = typesOf('health', 'a health event')
export type HealthEventType = TypeOf<'health'>
export const EventType = Type.Union([DrivingEventType, HomeEventType, HealthEventType])
export type EventType = keyof EventTypes

/** The unit of an event's peak and threshold, by its type (and source, where that decides). */
export function eventUnit(type: EventType, source: string): string {
  const unit: EventTypeEntry['unit'] = eventTypes[type].unit
  return typeof unit === 'string' ? unit : unit[source] ?? ''
}

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
const EvidenceBase = Type.Object({
    source: Type.String({ description: 'Where it was seen: the sensor kind (`imu`, `obd`, `gps`, `leak`, `hr` …)' }),
    peak: Type.Number({ description: 'The largest value of the quantity the threshold applies to' }),
    threshold: Type.Number({ description: 'The threshold that peak crossed, same unit' }),
    unit: Type.String(),
    duration_s: Type.Number(),
    samples: Type.Optional(Type.Number({ description: 'Samples (or readings) the event spans' })),
    rate_hz: Type.Optional(Type.Number({ description: 'Their rate, where it has one' })),
  })
const DetectorNumbers = Type.Record(Type.String(), Type.Union([Type.Number(), Type.String(), Type.Array(Type.Array(Type.Number()))]), { description: "A detector's own numbers (e.g. `peakYaw_rads`, `limit_kmh`), and a crash's recorded samples: each type's are in the event catalogue" })
export const EventEvidence = Type.Intersect([EvidenceBase, DetectorNumbers])
export type EventEvidence = Static<typeof EventEvidence>
/** A type's own evidence numbers, as the catalogue declares them. */
type OwnEvidence<T extends EventType> = EventTypes[T] extends { evidence: infer E } ? { [K in keyof E]?: Static<typeof DetectorNumbers>[string] } : unknown
/**
 * Evidence as a detector of type `T` gives it: all but the unit, which is its type's, and only
 * the numbers the catalogue declares for it (a detector that adds another does not compile).
 */
export type DetectedEvidence<T extends EventType = EventType> = T extends EventType ? Omit<Static<typeof EvidenceBase>, 'unit'> & OwnEvidence<T> : never

/** An event of `type` on device `deviceId` of a policy: its subject, urgency and evidence unit are the catalogue's. */
export function policyEvent<T extends EventType>(type: T, policyId: string, deviceId: string, from: number, to: number, evidence: DetectedEvidence<T>): PolicyEvent<T> {
  const { source, peak, threshold, ...rest } = evidence
  const { subject, urgent } = eventTypes[type]
  return { policyId, deviceId, subject, type, urgent, from, to, evidence: { source, peak, threshold, unit: eventUnit(type, source), ...rest } as EventEvidence }
}

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
