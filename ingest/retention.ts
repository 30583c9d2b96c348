/**
 * How long ubiq keeps what it stores, declared once (issue #21): the InfluxDB retention policies,
 * the one each measurement is stored in (a sensor kind declares its own in ingest/sensors/; the
 * measurements scoring and pricing derive are declared here), what each stored field is for and
 * who reads it. docs/data-inventory.md is generated from it (data-inventory.ts).
 *
 * InfluxDB enforces it, not a sweep of ubiq's: connectInflux creates each policy at start and
 * alters it when its declared duration changed, writes each measurement to its policy, and
 * InfluxDB drops a policy's shard groups once they are older than its duration (every
 * `[retention] check-interval`, 30 min by default) and refuses points already older than that.
 * Crash windows outlive positions by being copied, at the crash, into `crash_track` in the
 * `claims` policy: a policy cannot keep some of a measurement's points longer than others, and a
 * DELETE sweep would be a second mechanism that has to run to work.
 */
import { sensors, sensorsByKind } from './sensors/index.ts'
import type { SensorKind } from './contract.ts'
import { codes } from './errors.ts'

/** A retention policy as declared: how long, and why that long. */
export interface RetentionPolicyDecl {
  /** Default duration, days; 0 keeps for ever (for tests that replay fixed past dates only). */
  days: number
  /** Why its points are kept that long, for the data inventory. */
  why: string
  /** The environment variable that changes `days`, if any (bin/config.ts). */
  env?: string
  /** InfluxDB's default policy for the database: what an unqualified query (Grafana, an analyst's InfluxQL) reads. */
  isDefault?: boolean
}

/**
 * The retention policies, by their InfluxDB names. A name is stable: a changed duration is an
 * ALTER at the next start, never a new policy beside the old one.
 */
export const retentionPolicies = {
  raw_imu: {
    days: 7,
    why: 'batched IMU samples, the largest stream: trips, events and their evidence are computed from them as they arrive; a restart rebuilds an open trip from its last 12 h, and a week covers that, late uploads from a phone offline for days, and an analyst looking into a recent event',
  },
  raw_positions: {
    days: 14,
    env: 'POSITION_RETENTION_DAYS',
    why: 'full-precision positions: speeding (against the road map) and night driving (by the sun) are computed from them as they arrive, and a restart rebuilds an open trip from its last 12 h; two weeks also lets a disputed recent trip be checked, and the policyholder see their recent trips\' routes. After that only the trip\'s coarse cells (`trip_area`) and crash tracks (`claims`) remain',
  },
  raw: {
    days: 90,
    why: 'the other device readings (vehicle, wearable, home): the open day of health and home is rebuilt from them after a restart, the analyst\'s drill-down reads up to 31 days of them, and 90 days is the longest window a feature is computed over',
  },
  aggregates: {
    days: 1095,
    isDefault: true,
    why: 'trips, days, events, scores and premiums: features are rebuilt from them, and pricing is monitored, back-tested and retrained on them across policy renewals; three years of them',
  },
  claims: {
    days: 2190,
    why: 'crash reports and the positions just before a crash: evidence for a claim, which can be brought for years after the event (six years is a common limitation period)',
  },
} as const satisfies Record<string, RetentionPolicyDecl>

export type RetentionPolicyName = keyof typeof retentionPolicies
export const retentionPolicyNames = Object.keys(retentionPolicies) as RetentionPolicyName[]

/** Who reads a stored field, for the data inventory. */
export type Reader = 'policyholder' | 'analyst' | 'service'

/** A stored field: its name (or a pattern in words, for fields named by a model or detector) and meaning with unit. */
export interface StoredField {
  name: string
  meaning: string
  /** Who reads it beyond ubiq's own stages (default: the measurement's readers). */
  readers?: readonly Reader[]
}

/** A measurement as stored: where, why, who reads it, and its tags and fields. */
export interface StoredMeasurement {
  name: string
  retention: RetentionPolicyName
  /** What writes it. */
  writer: string
  why: string
  readers: readonly Reader[]
  tags: readonly string[]
  fields: readonly StoredField[]
}

/** The analyst may read a raw reading's numeric fields as means over time (the drill-down), never a position. */
const analystMeans: readonly Reader[] = ['service', 'analyst']

/**
 * Fields that say where a device is (declared by the sensor kinds, e.g. `gps`): never served to
 * an analyst, kept only in `raw_positions` (and crash tracks), coarsened into `trip_area` once a
 * trip's features are computed. A policyholder reads their own (ROUTE_FIELDS, and their export).
 */
export const POSITION_FIELDS: ReadonlySet<string> = new Set(sensors.flatMap((s) => s.storage.positions ?? []))

/** The `gps` fields a policyholder's own trip route is drawn from (dashboards/route.ts), while `raw_positions` keeps them; after that, the trip's cells (`trip_area`). */
export const ROUTE_FIELDS = ['lat_deg', 'lon_deg'] as const
/** Who reads a trip's positions and cells: ubiq, and the policyholder their own trip's route; never an analyst. */
const routeReaders: readonly Reader[] = ['service', 'policyholder']

const ENVELOPE = new Set(['seq', 'ts', 'rate_hz', 'samples'])

/** A stream's own fields in the catalogue's order: a batched stream's sample columns, else what its messages carry besides the envelope. */
export const streamFields = (sensor: SensorKind): string[] =>
  sensor.batch ? sensor.batch.columns.map((c) => c.name) : Object.keys(sensor.schema.properties as object).filter((name) => !ENVELOPE.has(name))

/**
 * The fields of a sensor kind an analyst may read, as means over time (the drill-down): its
 * numeric fields (a batched kind: its sample columns), positions left out.
 */
export function analystFields(kind: string): string[] {
  const sensor = sensorsByKind.get(kind)
  if (!sensor) return []
  const props = sensor.schema.properties as Record<string, { type?: string }>
  return streamFields(sensor).filter((f) => !POSITION_FIELDS.has(f) && (sensor.batch || props[f]!.type === 'number' || props[f]!.type === 'integer'))
}

/** A sensor kind's measurement: its payload fields, `seq`, and a batch's sample columns, index and rate. */
function sensorMeasurement(s: (typeof sensors)[number]): StoredMeasurement {
  const props = s.schema.properties as Record<string, { description?: string }>
  const payload = s.batch
    ? [
      ...s.batch.columns.map((c) => ({ name: c.name, meaning: c.description })),
      { name: 'i', meaning: 'index of the sample in its message' },
      { name: 'rate_hz', meaning: 'samples per second (on the first sample of a message)' },
    ]
    : Object.entries(props).filter(([name]) => name !== 'seq' && name !== 'ts').map(([name, p]) => ({ name, meaning: p.description ?? '' }))
  const served = new Set(analystFields(s.kind))
  return {
    name: s.kind,
    retention: s.storage.retention,
    writer: 'ingest',
    why: s.storage.why,
    readers: ['service'],
    tags: s.batch ? ['device_id', 'hz'] : ['device_id'],
    fields: [
      ...payload.map((f) => (served.has(f.name) ? { ...f, readers: analystMeans } : s.kind === 'gps' && (ROUTE_FIELDS as readonly string[]).includes(f.name) ? { ...f, readers: routeReaders } : f)),
      { name: 'seq', meaning: 'the message\'s sequence number: (device, seq) identifies it' },
    ],
  }
}

const own: readonly Reader[] = ['service', 'policyholder', 'analyst']

/** What scoring and pricing derive and store. Field lists are checked against a real run in test/retention.test.ts. */
export const derivedMeasurements: readonly StoredMeasurement[] = [
  {
    name: 'trip', retention: 'aggregates', writer: 'scoring', readers: own,
    why: 'a closed trip\'s exposure and behaviour: driving features over 30 and 90 days are rebuilt from trips, and policyholders and analysts see their history',
    tags: ['policy_id', 'device_id', 'ended', 'source'],
    fields: [
      { name: 'end_ms', meaning: 'end of the trip, ms since the epoch' },
      { name: 'distance_km', meaning: 'distance driven, km' },
      { name: 'duration_s', meaning: 'duration, s' },
      { name: 'moving_s', meaning: 'time moving, s' },
      { name: 'night_s', meaning: 'time moving at night (22:00–05:00 solar time), s' },
      { name: 'speeding_s', meaning: 'time speeding, s' },
      { name: 'phone_s', meaning: 'time handling the phone, s' },
      { name: 'max_speed_kmh', meaning: 'highest speed, km/h' },
      { name: 'dyn_s', meaning: 'moving time measured with a trusted speed, s' },
      { name: 'accel_s', meaning: 'seconds above the acceleration limit' },
      { name: 'brake_s', meaning: 'seconds above the braking limit' },
      { name: 'corner_s', meaning: 'seconds above the lateral limit' },
      { name: 'long_sq', meaning: 'sum of squared longitudinal accelerations, m²/s⁴·s' },
      { name: 'lat_sq', meaning: 'sum of squared lateral accelerations, m²/s⁴·s' },
      { name: 'paused_s', meaning: 'time moving while location was paused (privacy mode), s: speeding was not measured in it' },
      { name: 'events_<type>', meaning: 'events of each type in the trip' },
    ],
  },
  {
    name: 'trip_area', retention: 'aggregates', writer: 'scoring', readers: routeReaders,
    why: 'where a trip went, coarsened once its features are computed: what location features (territory, urban or rural driving) can be computed from after the positions are gone. Served to the policyholder alone, as their trip\'s map once its positions are gone; never to an analyst',
    tags: ['policy_id', 'device_id'],
    fields: [{ name: 'cells', meaning: 'moving seconds per geohash cell of 6 characters (about 1.2 × 0.6 km), as `cell:seconds` separated by spaces' }],
  },
  {
    name: 'crash_track', retention: 'claims', writer: 'scoring', readers: ['service'],
    why: 'the full-precision fixes of the 30 s before a crash, kept for the claim when the trip\'s other positions are gone. Never served: claims handlers read it from InfluxDB',
    tags: ['policy_id', 'device_id'],
    fields: [
      { name: 'lat_deg', meaning: 'latitude, WGS84 degrees' },
      { name: 'lon_deg', meaning: 'longitude, WGS84 degrees' },
      { name: 'accuracy_m', meaning: 'horizontal accuracy, m' },
      { name: 'speed_kmh', meaning: 'speed from the receiver, km/h' },
      { name: 'heading_deg', meaning: 'heading, degrees from north' },
      { name: 'crash_ms', meaning: 'time of the crash this fix led to, ms since the epoch' },
    ],
  },
  {
    name: 'event', retention: 'aggregates', writer: 'scoring', readers: own,
    why: 'each detected event with its evidence: what a score\'s reasons point to, shown to the policyholder and the analyst',
    tags: ['policy_id', 'device_id', 'subject', 'type', 'source'],
    fields: [
      { name: 'urgent', meaning: 'published at once (crash, leak, smoke, health alert)' },
      { name: 'end_ms', meaning: 'end of the event, ms since the epoch' },
      { name: 'peak', meaning: 'largest value of the quantity judged, in `unit` of the evidence' },
      { name: 'threshold', meaning: 'the threshold it crossed' },
      { name: 'unit', meaning: 'the unit of `peak` and `threshold` (`m/s²`, `km/h`, `s` …)' },
      { name: 'duration_s', meaning: 'duration, s' },
      { name: 'samples', meaning: 'samples or readings it spans' },
      { name: 'rate_hz', meaning: 'their rate, Hz' },
      { name: '<evidence>', meaning: 'each detector\'s own numbers (e.g. `limit_kmh`, `max_speed_kmh`, `peakYaw_rads`, `delta_v_kmh`)' },
    ],
  },
  {
    name: 'score', retention: 'aggregates', writer: 'scoring', readers: own,
    why: 'every score with the features and reasons behind it: the score history, model monitoring and what pricing priced',
    tags: ['policy_id', 'subject', 'model'],
    fields: [
      { name: 'value', meaning: 'the score, 0–100, higher is safer' },
      { name: 'window_from', meaning: 'start of the window scored, ms since the epoch' },
      { name: 'days', meaning: 'days of data in the window' },
      { name: 'distance_km', meaning: 'km driven in the window (driving)' },
      { name: 'moving_s', meaning: 'time moving in the window, s (driving)' },
      { name: 'night_s', meaning: 'time moving at night in the window, s (driving)' },
      { name: '<feature>', meaning: 'each feature of the model, named as in its model card' },
      { name: 'reasons', meaning: 'the reasons, as JSON' },
      { name: 'consent', meaning: 'the streams of the subject whose pricing consent was withdrawn within the window, as JSON (only then)' },
      { name: 'privacy', meaning: 'the driving in privacy mode within the window (trips, seconds, share, what was not measured), as JSON (only then)' },
    ],
  },
  {
    name: 'shadow_score', retention: 'aggregates', writer: 'scoring', readers: ['service', 'analyst'],
    why: 'a shadow model\'s score beside the champion\'s, for comparing before a promotion; never published or priced',
    tags: ['policy_id', 'subject', 'model'],
    fields: [{ name: 'value', meaning: 'the score, 0–100' }],
  },
  {
    name: 'premium', retention: 'aggregates', writer: 'pricing', readers: own,
    why: 'each premium adjustment with its reasons and hashes: the premium history (the audit log in UBIQ_DATA_DIR holds the same, chained)',
    tags: ['policy_id', 'subject', 'ruleset'],
    fields: [
      { name: 'factor', meaning: 'premium factor' },
      { name: 'previous_factor', meaning: 'the factor before' },
      { name: 'premium', meaning: 'premium, in the plan\'s currency' },
      { name: 'currency', meaning: 'the plan\'s currency, ISO 4217' },
      { name: 'period_from', meaning: 'start of the rating period, ms since the epoch' },
      { name: 'period_factor', meaning: 'the factor at the start of the rating period' },
      { name: 'models', meaning: 'the models whose scores were priced, as JSON' },
      { name: 'limited', meaning: 'the plan\'s limit that held the factor back, if one did, as JSON' },
      { name: 'credibility', meaning: 'credibility Z, 0–1' },
      { name: 'inputs_hash', meaning: 'hash of the inputs priced' },
      { name: 'prev_hash', meaning: 'hash of the previous adjustment' },
      { name: 'hash', meaning: 'hash of this adjustment' },
      { name: 'reasons', meaning: 'the reasons in plain words, as JSON' },
    ],
  },
  {
    name: 'health_day', retention: 'aggregates', writer: 'scoring', readers: ['service'],
    why: 'a policy\'s wearable data summed per UTC day: health features over 30 and 90 days are computed from these, not from raw heart rates',
    tags: ['policy_id'],
    fields: [
      { name: 'steps', meaning: 'steps' },
      { name: 'active_min', meaning: 'minutes at or above the active heart rate' },
      { name: 'hr_n', meaning: 'heart-rate readings' },
      { name: 'hr_sum_bpm', meaning: 'their sum, bpm' },
      { name: 'hr_sumsq_bpm2', meaning: 'their sum of squares, bpm²' },
      { name: 'rest_n', meaning: 'resting readings' },
      { name: 'rest_sum_bpm', meaning: 'their sum, bpm' },
      { name: 'sleep_s', meaning: 'sleep, s' },
      { name: 'main_sleep_s', meaning: 'the longest sleep, s' },
      { name: 'bedtime_h', meaning: 'its bedtime, hours after noon UTC the day before' },
      { name: 'spo2_n', meaning: 'SpO2 readings' },
      { name: 'spo2_sum_pct', meaning: 'their sum, %' },
      { name: 'points', meaning: 'activity points earned' },
      { name: 'goal_streak_days', meaning: 'goal days in a row ending with it' },
    ],
  },
  {
    name: 'home_day', retention: 'aggregates', writer: 'scoring', readers: ['service'],
    why: 'a policy\'s home sensors summed per UTC day: home features are computed from these',
    tags: ['policy_id'],
    fields: [
      { name: 'leaks', meaning: 'leak episodes started' },
      { name: 'smokes', meaning: 'smoke episodes started' },
      { name: 'climate_s', meaning: 'time covered by climate readings, s' },
      { name: 'freeze_s', meaning: 'of it below the freeze threshold, s' },
      { name: 'humid_s', meaning: 'of it above the humidity threshold, s' },
      { name: 'sensor_s', meaning: 'time between sensor readings, summed over sensors, s' },
      { name: 'offline_s', meaning: 'of it offline, s' },
      { name: 'low_battery', meaning: '1 when a sensor reported a low battery' },
      { name: 'valve_n', meaning: 'valve shut-offs after a leak' },
      { name: 'valve_s', meaning: 'their response times summed, s' },
      { name: 'co_n', meaning: 'carbon monoxide readings outside alarms' },
      { name: 'co_ppm', meaning: 'their sum, ppm' },
    ],
  },
]

/** Every measurement ubiq stores: the sensor kinds', then the derived ones. */
export const storedMeasurements: readonly StoredMeasurement[] = [...sensors.map(sensorMeasurement), ...derivedMeasurements]

const policyOf: ReadonlyMap<string, RetentionPolicyName> = new Map(storedMeasurements.map((m) => [m.name, m.retention]))

/** The retention policy that holds `measurement`; a measurement nobody declared is a programming error. */
export function retentionOf(measurement: string): RetentionPolicyName {
  const rp = policyOf.get(measurement)
  if (rp === undefined) throw new Error(`measurement "${measurement}" has no declared retention (a sensor kind's storage, or derivedMeasurements in ingest/retention.ts)`)
  return rp
}

/**
 * `measurement` as a query's FROM names it: `"policy"."measurement"`. Every query goes through
 * this, as InfluxDB reads an unqualified name from the database's default policy only.
 */
export const qualified = (measurement: string) => `"${retentionOf(measurement)}"."${measurement}"`

/** A retention policy as ubiq runs it: its duration and shard-group duration, hours (0: for ever). */
export interface RetentionPolicy {
  name: RetentionPolicyName
  hours: number
  shardHours: number
  isDefault: boolean
}

/**
 * InfluxDB's own choice of shard-group duration for a policy (1 h up to 2 days, 1 day up to 6
 * months, else 7 days), written out so that an ALTER moves both: a shard group longer than its
 * policy is refused. Points leave in whole shard groups, so a point is gone between `hours` and
 * `hours + shardHours` (plus the check interval) after its time.
 */
export function shardHoursFor(hours: number): number {
  if (hours === 0 || hours > 180 * 24) return 7 * 24
  return hours <= 2 * 24 ? 1 : 24
}

/** The policies with each declared duration, or the one in `days` (e.g. POSITION_RETENTION_DAYS); throws on a duration InfluxDB cannot have. */
export function resolveRetention(days: Partial<Record<RetentionPolicyName, number>> = {}): RetentionPolicy[] {
  return retentionPolicyNames.map((name) => {
    const decl: RetentionPolicyDecl = retentionPolicies[name]
    const d = days[name] ?? decl.days
    if (!Number.isInteger(d) || d < 0) {
      throw new codes.UBIQ_CONFIG_INVALID(`retention of ${name}: ${d} days is not a whole number of days (0: for ever)`)
    }
    return { name, hours: d * 24, shardHours: shardHoursFor(d * 24), isDefault: decl.isDefault === true }
  })
}
