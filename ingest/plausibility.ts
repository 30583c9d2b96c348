/**
 * Checks that need a device's history, after decoding: a GPS fix that implies an impossible
 * speed since the device's last good fix (a "teleport": multipath, a cold start, a spoofed
 * position) is rejected. A fix that is consistent with the rejected one before it is accepted,
 * so a device that really moved (a ferry, GPS off for a flight) recovers after one fix.
 */
import { map, type OperatorFunction } from 'rxjs'
import type { Reading } from './contract.ts'
import type { Rejection } from './decode.ts'
import { haversine_km, type LatLon } from './geo.ts'
import { idleMap } from './idle-map.ts'

interface Fix extends LatLon {
  ts: number
  acc: number
}

/**
 * Stage: rejects GPS fixes implying more than `maxSpeedKmh` since the last good fix (accuracy
 * allowed for). A device silent for `idleMs` of receive time is forgotten (its next fix starts
 * afresh): after an hour, a jump the limit allows covers most of a country anyway.
 */
export function rejectJumps(maxSpeedKmh: number, idleMs = 3600_000): OperatorFunction<Reading | Rejection, Reading | Rejection> {
  const devices = idleMap<{ good: Fix; candidate?: Fix }>(idleMs)
  return map((r) => {
    if ('reason' in r || r.kind !== 'gps') return r
    const fix = { ts: r.ts, lat_deg: Number(r.fields.lat_deg), lon_deg: Number(r.fields.lon_deg), acc: Number(r.fields.accuracy_m) }
    const state = devices.touch(r.deviceId, r.receivedAt)
    if (!state) {
      devices.set(r.deviceId, { good: fix }, r.receivedAt)
      return r
    }
    const speed = impliedSpeedKmh(state.good, fix)
    if (speed <= maxSpeedKmh) {
      if (fix.ts > state.good.ts) state.good = fix
      state.candidate = undefined
      return r
    }
    if (state.candidate && impliedSpeedKmh(state.candidate, fix) <= maxSpeedKmh) {
      state.good = fix
      state.candidate = undefined
      return r
    }
    state.candidate = fix
    // The speed, not the positions: a rejection must not carry location.
    return { deviceId: r.deviceId, kind: r.kind, reason: 'implausible_jump', detail: `implies ${Math.round(speed)} km/h since the last good fix (limit ${maxSpeedKmh})`, seq: r.seq, receivedAt: r.receivedAt }
  })
}

/** Speed needed to get from `a` to `b`, km/h, after allowing for both fixes' accuracy. */
function impliedSpeedKmh(a: Fix, b: Fix): number {
  const dt = Math.abs(b.ts - a.ts) / 3600_000
  const km = Math.max(0, haversine_km(a, b) - (a.acc + b.acc) / 1000)
  if (km === 0) return 0
  return dt === 0 ? Infinity : km / dt
}
