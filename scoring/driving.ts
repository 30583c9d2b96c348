/**
 * Driving features: trips summed per UTC day, and features over the last 30 and 90 days of them.
 *
 * A policy's driving state is at most 90 day records, whatever it drives. The same records are
 * stored as trips in InfluxDB (measurement `trip`), so after a restart, or when an idle policy
 * comes back, `restoreDays` rebuilds them exactly and the next score is what an uninterrupted run
 * would give.
 */
import type { DrivingEventType } from './events.ts'
import type { ScoreInput } from './score.ts'
import type { Trip } from './trips.ts'

/** A policy's driving on one UTC day. */
export interface DrivingDay {
  /** Days since the Unix epoch (UTC). */
  day: number
  trips: number
  distance_km: number
  moving_s: number
  night_s: number
  speeding_s: number
  phone_s: number
  /** Events by type. */
  events: Partial<Record<DrivingEventType, number>>
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
  const prev = days.find((d) => d.day === day) ?? { day, trips: 0, distance_km: 0, moving_s: 0, night_s: 0, speeding_s: 0, phone_s: 0, events: {} }
  const events = { ...prev.events }
  for (const [type, n] of Object.entries(trip.events) as [DrivingEventType, number][]) events[type] = (events[type] ?? 0) + n
  const next: DrivingDay = {
    day,
    trips: prev.trips + 1,
    distance_km: prev.distance_km + trip.distance_km,
    moving_s: prev.moving_s + trip.moving_s,
    night_s: prev.night_s + trip.night_s,
    speeding_s: prev.speeding_s + trip.speeding_s,
    phone_s: prev.phone_s + trip.phone_s,
    events,
  }
  return [...kept, next].sort((a, b) => a.day - b.day)
}

/** Rates per 100 km use at least this distance, so a short first trip cannot produce extremes. */
export const MIN_DISTANCE_KM = 50

/**
 * Features over the `window` days up to and including `asOfDay`: rates per 100 km, shares of
 * moving time, km per day observed (days from the first day with a trip, at most the window).
 */
export function drivingFeatures(days: readonly DrivingDay[], asOfDay: number, window: number): Record<string, number> {
  const inWindow = days.filter((d) => d.day > asOfDay - window && d.day <= asOfDay)
  const sum = (f: (d: DrivingDay) => number) => inWindow.reduce((a, d) => a + f(d), 0)
  const count = (...types: DrivingEventType[]) => sum((d) => types.reduce((a, t) => a + (d.events[t] ?? 0), 0))
  const distance_km = sum((d) => d.distance_km)
  const moving_s = sum((d) => d.moving_s)
  const per100km = (n: number) => round4((n * 100) / Math.max(distance_km, MIN_DISTANCE_KM))
  const share = (s: number) => (moving_s > 0 ? round4(s / moving_s) : 0)
  const first = inWindow[0]?.day ?? asOfDay
  const observed = asOfDay - first + 1
  return {
    distance_km: round4(distance_km),
    days_observed: observed,
    km_per_day: round4(distance_km / observed),
    harsh_braking_per_100km: per100km(count('harsh_braking', 'harsh_longitudinal')),
    harsh_acceleration_per_100km: per100km(count('harsh_acceleration')),
    harsh_lateral_per_100km: per100km(count('harsh_lateral')),
    speeding_share: share(sum((d) => d.speeding_s)),
    night_share: share(sum((d) => d.night_s)),
    phone_min_per_100km: per100km(sum((d) => d.phone_s) / 60),
    continuous_driving_per_100km: per100km(count('continuous_driving')),
    crashes: count('crash'),
  }
}

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
  return { policyId: trip.policyId, subject: 'driving', window: { from: windowStart(trip.to), to: trip.to }, features, exposure: { days: long.days_observed!, distance_km: long.distance_km! } }
}

/** The InfluxDB fields of a trip (measurement `trip`, tagged policy and device). */
export function tripFields(trip: Trip): Record<string, number> {
  const fields: Record<string, number> = {
    end_ms: trip.to, distance_km: trip.distance_km, duration_s: trip.duration_s, moving_s: trip.moving_s, night_s: trip.night_s,
    speeding_s: trip.speeding_s, phone_s: trip.phone_s, max_speed_kmh: trip.max_speed_kmh,
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
      dyn_s: n('dyn_s'), accel_s: n('accel_s'), brake_s: n('brake_s'), corner_s: n('corner_s'), long_sq: n('long_sq'), lat_sq: n('lat_sq'), events,
    })
  }
  return days
}

const round4 = (x: number) => Math.round(x * 10_000) / 10_000
