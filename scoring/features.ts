/**
 * Driving features from the OBD stream: distance, harsh braking and acceleration, speeding,
 * accumulated per policy from 1 Hz speed samples.
 */
import { scan, type OperatorFunction } from 'rxjs'
import type { Reading } from '../ingest/index.ts'

/** Thresholds for 1 Hz OBD speed. Harsh = beyond what smooth traffic needs (≈0.35 g braking). */
export interface DrivingThresholds {
  harshBrake_ms2: number
  harshAccel_ms2: number
  speeding_kmh: number
  /** Below this, the vehicle counts as standing. */
  moving_kmh: number
  /** A gap between samples longer than this is a dropout, not motion to integrate. */
  maxGap_s: number
  /** Rates per 100 km use at least this distance, so a short first trip cannot produce extremes. */
  minDistance_km: number
}

export const defaultThresholds: DrivingThresholds = {
  harshBrake_ms2: 3.5,
  harshAccel_ms2: 3.0,
  speeding_kmh: 120,
  moving_kmh: 5,
  maxGap_s: 5,
  minDistance_km: 10,
}

/** What a policy's driving amounts to so far. */
export interface DrivingTotals {
  policyId: string
  from: number
  to: number
  distance_km: number
  moving_s: number
  speeding_s: number
  harsh_brakes: number
  harsh_accels: number
  /** Per device: the last sample, and whether a harsh event is in progress (counted once). */
  devices: Record<string, { ts: number; speed_kmh: number; braking: boolean; accelerating: boolean }>
}

/** Adds one reading to a policy's totals (pure; readings out of order are skipped, not integrated). */
export function addReading(t: DrivingThresholds, totals: DrivingTotals, r: Reading): DrivingTotals {
  const speed = r.fields.speed_kmh
  if (r.kind !== 'obd' || typeof speed !== 'number') return totals
  const next: DrivingTotals = { ...totals, from: Math.min(totals.from, r.ts), to: Math.max(totals.to, r.ts), devices: { ...totals.devices } }
  const prev = totals.devices[r.deviceId]
  const state = { ts: r.ts, speed_kmh: speed, braking: false, accelerating: false }
  if (prev && r.ts <= prev.ts) return totals
  if (prev) {
    const dt = (r.ts - prev.ts) / 1000
    if (dt <= t.maxGap_s) {
      next.distance_km += ((prev.speed_kmh + speed) / 2) * (dt / 3600)
      if (speed >= t.moving_kmh) next.moving_s += dt
      if (speed > t.speeding_kmh) next.speeding_s += dt
      const accel = (speed - prev.speed_kmh) / 3.6 / dt
      state.braking = accel <= -t.harshBrake_ms2
      state.accelerating = accel >= t.harshAccel_ms2
      if (state.braking && !prev.braking) next.harsh_brakes++
      if (state.accelerating && !prev.accelerating) next.harsh_accels++
    }
  }
  next.devices[r.deviceId] = state
  return next
}

/** Empty totals for a policy. */
export const noDriving = (policyId: string): DrivingTotals => ({
  policyId, from: Infinity, to: -Infinity, distance_km: 0, moving_s: 0, speeding_s: 0, harsh_brakes: 0, harsh_accels: 0, devices: {},
})

/** The model's features from a policy's totals. */
export function drivingFeatures(t: DrivingThresholds, totals: DrivingTotals): Record<string, number> {
  const per100km = (n: number) => (n * 100) / Math.max(totals.distance_km, t.minDistance_km)
  return {
    harsh_brakes_per_100km: per100km(totals.harsh_brakes),
    harsh_accels_per_100km: per100km(totals.harsh_accels),
    speeding_share: totals.moving_s > 0 ? totals.speeding_s / totals.moving_s : 0,
  }
}

/** Stage: one policy's readings → its running totals after each reading. */
export function accumulateDriving(t: DrivingThresholds, policyId: string): OperatorFunction<Reading, DrivingTotals> {
  return scan((totals: DrivingTotals, r: Reading) => addReading(t, totals, r), noDriving(policyId))
}
