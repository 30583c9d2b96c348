/**
 * Driving features: trips summed per UTC day, and features over the last 30 and 90 days of them.
 *
 * A policy's driving state is at most 90 day records, whatever it drives. The same records are
 * stored as trips in InfluxDB (measurement `trip`), so after a restart, or when an idle policy
 * comes back, `restoreDays` rebuilds them exactly and the next score is what an uninterrupted run
 * would give.
 */
import type { DrivingEventType } from './events.ts'
import type { Exposure, PrivacyNote, ScoreInput } from './score.ts'
import type { Trip } from './trips.ts'

/** The sums a day adds up from its trips. */
const sums = ['distance_km', 'moving_s', 'night_s', 'speeding_s', 'phone_s', 'dyn_s', 'accel_s', 'brake_s', 'corner_s', 'long_sq', 'lat_sq', 'paused_s'] as const

/** A policy's driving on one UTC day: its trips' sums (see `Trip`). */
export interface DrivingDay extends Pick<Trip, (typeof sums)[number]> {
  /** Days since the Unix epoch (UTC). */
  day: number
  trips: number
  /** Events by type. */
  events: Partial<Record<DrivingEventType, number>>
  /** Trips with driving in privacy mode (`paused_s` > 0). */
  privacy_trips: number
}

/** The longest window kept, days. */
export const HISTORY_DAYS = 90
export const DAY_MS = 86_400_000
export const dayOf = (ts: number) => Math.floor(ts / DAY_MS)
/** The first ms of the longest window that ends on the day of `ts`. */
export const windowStart = (ts: number) => (dayOf(ts) - HISTORY_DAYS + 1) * DAY_MS

/** Adds a trip to a policy's days (a trip belongs to the day it started); keeps the last 90 days. */
export function addTrip(days: readonly DrivingDay[], trip: Trip): DrivingDay[] {
  const day = dayOf(trip.from)
  const kept = days.filter((d) => d.day > day - HISTORY_DAYS && d.day !== day)
  const prev = days.find((d) => d.day === day)
  const events = { ...prev?.events }
  for (const [type, n] of Object.entries(trip.events) as [DrivingEventType, number][]) events[type] = (events[type] ?? 0) + n
  const next = { day, trips: (prev?.trips ?? 0) + 1, events, privacy_trips: (prev?.privacy_trips ?? 0) + (trip.paused_s > 0 ? 1 : 0) } as DrivingDay
  for (const k of sums) next[k] = (prev?.[k] ?? 0) + trip[k]
  return [...kept, next].sort((a, b) => a.day - b.day)
}

/**
 * A policy's days as they wait between its trips: a row a day, a column for each of a day's
 * numbers that is not zero on every day (its day, trips, sums and event counts). Columns a Float32
 * holds exactly (counts, seconds, most days' sums) take 4 bytes a day, the others 8. As objects,
 * 90 days took 36 KiB a policy (a number a HeapNumber, an events object a day; #25).
 * `unpackDays` gives back days `addTrip` and the features read as they were: a number not stored
 * is 0, an event type not stored was not counted.
 */
export interface PackedDays {
  /** Column names, with their values day by day (`rows` of them). */
  wide: { columns: readonly string[]; values: Float64Array }
  narrow: { columns: readonly string[]; values: Float32Array }
  rows: number
}

const dayNumbers = ['day', 'trips', 'privacy_trips', ...sums] as const

export function packDays(days: readonly DrivingDay[]): PackedDays {
  const numbers = days.map((d) => new Map<string, number>([...dayNumbers.map((k): [string, number] => [k, d[k]]), ...Object.entries(d.events).map(([t, n]): [string, number] => [`events.${t}`, n])]))
  const columns = [...new Set(numbers.flatMap((m) => [...m].filter(([, v]) => v !== 0).map(([k]) => k)))]
  const narrow = columns.filter((c) => numbers.every((m) => Math.fround(m.get(c) ?? 0) === (m.get(c) ?? 0)))
  const wide = columns.filter((c) => !narrow.includes(c))
  const fill = <A extends Float32Array | Float64Array>(cs: string[], values: A) => {
    numbers.forEach((m, i) => cs.forEach((c, j) => (values[i * cs.length + j] = m.get(c) ?? 0)))
    return { columns: cs, values }
  }
  return { wide: fill(wide, new Float64Array(days.length * wide.length)), narrow: fill(narrow, new Float32Array(days.length * narrow.length)), rows: days.length }
}

export function unpackDays({ wide, narrow, rows }: PackedDays): DrivingDay[] {
  return Array.from({ length: rows }, (_, i) => {
    const day = { day: 0, trips: 0, events: {}, privacy_trips: 0, ...Object.fromEntries(sums.map((k) => [k, 0])) } as DrivingDay
    for (const { columns, values } of [wide, narrow]) {
      columns.forEach((c, j) => {
        const v = values[i * columns.length + j]!
        if (!c.startsWith('events.')) day[c as (typeof dayNumbers)[number]] = v
        else if (v !== 0) day.events[c.slice(7) as DrivingEventType] = v
      })
    }
    return day
  })
}

/**
 * The features the driving model may use: how someone drives, per km and per hour driven, so the
 * same driving scores the same over a short trip and a long one (#19). No distance floor: a rate
 * over little driving is noisy, and the rating plan's credibility weighting is what answers that.
 */
export const behaviourFeatures = [
  'harsh_braking_per_100km', 'harsh_acceleration_per_100km', 'harsh_lateral_per_100km',
  'harsh_braking_per_hour', 'harsh_acceleration_per_hour', 'harsh_lateral_per_hour',
  'speeding_share', 'phone_min_per_hour', 'continuous_driving_per_100km',
  'accel_share', 'braking_share', 'cornering_share', 'long_accel_rms_ms2', 'lat_accel_rms_ms2',
] as const

/**
 * Features over the `window` days up to and including `asOfDay`. Behaviour (`behaviourFeatures`):
 * event rates per 100 km and per hour of moving time (per hour serves devices without distance),
 * speeding share of moving time, phone minutes per hour, and the dynamics: shares of trusted-speed
 * moving time above the acceleration, braking and lateral limits, and RMS accelerations. A rate
 * whose denominator is zero is left out (nothing measured is typical to a model, not safe).
 * Exposure, for the rating plan and never a model input: distance, moving hours, night share, km
 * and hours per day observed (days from the first day with a trip, at most the window).
 */
export function drivingFeatures(days: readonly DrivingDay[], asOfDay: number, window: number): Record<string, number> {
  const { sum, count, observed } = windowOf(days, asOfDay, window)
  const [distance_km, moving_s, dyn_s] = [sum('distance_km'), sum('moving_s'), sum('dyn_s')]
  const rates = (name: string, n: number) => ({ ...per(distance_km, 100, `${name}_per_100km`, n), ...per(moving_s, 3600, `${name}_per_hour`, n) })
  return {
    ...rates('harsh_braking', count('harsh_braking', 'harsh_longitudinal')),
    ...rates('harsh_acceleration', count('harsh_acceleration')),
    ...rates('harsh_lateral', count('harsh_lateral')),
    ...per(moving_s, 1, 'speeding_share', sum('speeding_s')),
    ...per(moving_s, 60, 'phone_min_per_hour', sum('phone_s')),
    ...per(distance_km, 100, 'continuous_driving_per_100km', count('continuous_driving')),
    ...per(dyn_s, 1, 'accel_share', sum('accel_s')),
    ...per(dyn_s, 1, 'braking_share', sum('brake_s')),
    ...per(dyn_s, 1, 'cornering_share', sum('corner_s')),
    ...(dyn_s > 0 ? { long_accel_rms_ms2: round4(Math.sqrt(sum('long_sq') / dyn_s)), lat_accel_rms_ms2: round4(Math.sqrt(sum('lat_sq') / dyn_s)) } : {}),
    crashes: count('crash'),
    distance_km: round4(distance_km),
    moving_h: round4(moving_s / 3600),
    days_observed: observed,
    km_per_day: round4(distance_km / observed),
    hours_per_day: round4(moving_s / 3600 / observed),
    ...per(moving_s, 1, 'night_share', sum('night_s')),
  }
}

/** The days of a window: sums of their fields and event counts, and days observed (from the first day with a trip). */
function windowOf(days: readonly DrivingDay[], asOfDay: number, window: number) {
  const inWindow = days.filter((d) => d.day > asOfDay - window && d.day <= asOfDay)
  const sum = (k: (typeof sums)[number] | 'privacy_trips') => inWindow.reduce((a, d) => a + d[k], 0)
  const count = (...types: DrivingEventType[]) => inWindow.reduce((a, d) => a + types.reduce((b, t) => b + (d.events[t] ?? 0), 0), 0)
  return { sum, count, observed: asOfDay - (inWindow[0]?.day ?? asOfDay) + 1 }
}

/** `n` per `over` × `scale` under `name`, or nothing when nothing was measured. */
const per = (over: number, scale: number, name: string, n: number) => (over > 0 ? { [name]: round4((n * scale) / over) } : {})

/**
 * What scoring hands the model after a trip: the 90-day features under their own names, the
 * 30-day ones with a `_30d` suffix (the model uses the longer, more credible window; the shorter
 * one shows a policyholder recent change).
 */
export function drivingScoreInput(days: readonly DrivingDay[], trip: Trip): ScoreInput {
  const asOf = dayOf(trip.to)
  const long = drivingFeatures(days, asOf, HISTORY_DAYS)
  const short = drivingFeatures(days, asOf, 30)
  const features = { ...long }
  for (const [k, v] of Object.entries(short)) features[`${k}_30d`] = v
  const privacy = privacyNote(days, asOf, HISTORY_DAYS)
  return { policyId: trip.policyId, subject: 'driving', window: { from: windowStart(trip.to), to: trip.to }, features, exposure: drivingExposure(days, asOf, HISTORY_DAYS), ...(privacy ? { privacy } : {}) }
}

/**
 * The features that rest on positions (#21 privacy mode): speeding is judged against the road map
 * at each fix. Night needs none (the clock, at the device's last known longitude, else UTC), nor
 * does anything from OBD speed or the IMU.
 */
export const POSITION_FEATURES = ['speeding_share'] as const

/**
 * What a score's window holds of driving in privacy mode (location paused), or undefined when
 * none: its share of moving time is not measured for the position features, which count it at
 * their typical value (scoreBatch), and the rating plan says how much of it is priced so
 * (pricing/plan.ts `privacy`).
 */
export function privacyNote(days: readonly DrivingDay[], asOfDay: number, window: number): PrivacyNote | undefined {
  const { sum } = windowOf(days, asOfDay, window)
  const [paused_s, moving_s, trips] = [sum('paused_s'), sum('moving_s'), sum('privacy_trips')]
  if (!(paused_s > 0 && moving_s > 0)) return undefined
  const share = round4(Math.min(1, paused_s / moving_s))
  const unmeasured = Object.fromEntries(POSITION_FEATURES.map((f) => [f, share]))
  return {
    trips, paused_s: round4(paused_s), share, unmeasured,
    text: `${trips} trip${trips === 1 ? '' : 's'} in privacy mode (${Math.round(paused_s / 60)} min, ${Math.round(share * 100)}% of driving time): speeding not measured there, counted at typical`,
  }
}

/**
 * A driving score's input with the driving hidden by pauses of all telemetry (`allPausedMs` of its
 * window) counted in privacy mode (#21). Such a pause leaves no trip to see: without this a policy
 * could pause all telemetry for every risky drive and be priced on the calm ones. The hidden moving
 * time is estimated at the policy's own rate, its moving seconds per observed second of the window,
 * and counts toward the share of driving the rating plan allows in privacy mode.
 */
export function withHiddenDriving(input: ScoreInput, allPausedMs: number): ScoreInput {
  const moving_s = input.exposure.moving_s ?? 0
  const observed_s = (input.window.to - input.window.from - allPausedMs) / 1000
  if (!(allPausedMs > 0 && moving_s > 0 && observed_s > 0)) return input
  const hidden_s = round4((moving_s * allPausedMs) / 1000 / observed_s)
  const note = input.privacy
  const paused_s = round4((note?.paused_s ?? 0) + hidden_s)
  const hidden = `all telemetry paused ${Math.round(allPausedMs / 3_600_000 * 10) / 10} h: about ${Math.round(hidden_s / 60)} min of driving at the policy's own rate, not measured`
  return {
    ...input,
    privacy: {
      trips: note?.trips ?? 0, paused_s, hidden_s,
      share: round4(Math.min(1, paused_s / (moving_s + hidden_s))),
      unmeasured: note?.unmeasured ?? {},
      text: note ? `${note.text}; ${hidden}` : hidden,
    },
  }
}

/**
 * How much and when a policy drove over the `window` days up to `asOfDay` (days observed from the
 * first day with a trip): the rating plan's credibility and its pay-as-you-drive relativities.
 */
export function drivingExposure(days: readonly DrivingDay[], asOfDay: number, window: number): Required<Exposure> {
  const { sum, observed } = windowOf(days, asOfDay, window)
  return { days: observed, distance_km: round4(sum('distance_km')), moving_s: round4(sum('moving_s')), night_s: round4(sum('night_s')) }
}

/** The InfluxDB fields of a trip (measurement `trip`, tagged policy and device). */
export function tripFields(trip: Trip): Record<string, number> {
  const fields: Record<string, number> = {
    end_ms: trip.to, distance_km: trip.distance_km, duration_s: trip.duration_s, moving_s: trip.moving_s, night_s: trip.night_s, paused_s: trip.paused_s,
    speeding_s: trip.speeding_s, phone_s: trip.phone_s, max_speed_kmh: trip.max_speed_kmh,
    dyn_s: trip.dyn_s, accel_s: trip.accel_s, brake_s: trip.brake_s, corner_s: trip.corner_s, long_sq: trip.long_sq, lat_sq: trip.lat_sq,
  }
  for (const [type, n] of Object.entries(trip.events)) fields[`events_${type}`] = n
  return fields
}

/** Days rebuilt from stored trips (rows of `tripFields` with their start time), as `addTrip` built them. */
export function restoreDays(rows: readonly { from: number; fields: Record<string, number | null> }[]): DrivingDay[] {
  let days: DrivingDay[] = []
  for (const { from, fields } of rows) {
    const n = (k: string) => fields[k] ?? 0
    const events: Trip['events'] = {}
    for (const [k, v] of Object.entries(fields)) if (k.startsWith('events_') && v) events[k.slice(7) as DrivingEventType] = v
    days = addTrip(days, {
      policyId: '', deviceId: '', from, to: n('end_ms'), ended: 'gap', source: 'obd', distance_km: n('distance_km'), duration_s: n('duration_s'),
      moving_s: n('moving_s'), night_s: n('night_s'), speeding_s: n('speeding_s'), phone_s: n('phone_s'), max_speed_kmh: n('max_speed_kmh'),
      dyn_s: n('dyn_s'), accel_s: n('accel_s'), brake_s: n('brake_s'), corner_s: n('corner_s'), long_sq: n('long_sq'), lat_sq: n('lat_sq'), paused_s: n('paused_s'), events,
    })
  }
  return days
}

const round4 = (x: number) => Math.round(x * 10_000) / 10_000
