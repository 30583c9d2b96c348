/** A WGS84 position, as the contract's `gps` fields name it. */
export interface LatLon {
  lat_deg: number
  lon_deg: number
}

/** Great-circle distance, km (haversine on the mean Earth radius; rounding can put h a hair over 1). */
export function haversine_km(a: LatLon, b: LatLon): number {
  const rad = Math.PI / 180
  const h = Math.sin(((b.lat_deg - a.lat_deg) * rad) / 2) ** 2 +
    Math.cos(a.lat_deg * rad) * Math.cos(b.lat_deg * rad) * Math.sin(((b.lon_deg - a.lon_deg) * rad) / 2) ** 2
  return 2 * 6371.0088 * Math.asin(Math.min(1, Math.sqrt(h)))
}

const BASE32 = '0123456789bcdefghjkmnpqrstuvwxyz'

/**
 * The geohash of a position, `precision` characters (5 bits each, longitude first): 6 characters
 * are a cell of about 1.2 km × 0.6 km at the equator (narrower in longitude towards the poles),
 * the grain ubiq keeps a trip's positions at once its features are computed (#21).
 */
export function geohash(lat_deg: number, lon_deg: number, precision: number): string {
  let [latLo, latHi, lonLo, lonHi] = [-90, 90, -180, 180]
  let out = ''
  let bits = 0
  let value = 0
  for (let i = 0; out.length < precision; i++) {
    if (i % 2 === 0) {
      const mid = (lonLo + lonHi) / 2
      value = value * 2 + (lon_deg >= mid ? 1 : 0)
      if (lon_deg >= mid) lonLo = mid
      else lonHi = mid
    } else {
      const mid = (latLo + latHi) / 2
      value = value * 2 + (lat_deg >= mid ? 1 : 0)
      if (lat_deg >= mid) latLo = mid
      else latHi = mid
    }
    if (++bits === 5) {
      out += BASE32[value]
      bits = 0
      value = 0
    }
  }
  return out
}

/** The cell a geohash names, WGS84 degrees: the inverse of geohash (a character not in its alphabet: undefined). */
export function geohashCell(hash: string): { south: number; west: number; north: number; east: number } | undefined {
  let [south, north, west, east] = [-90, 90, -180, 180]
  let even = true // longitude first
  for (const c of hash) {
    const value = BASE32.indexOf(c)
    if (value < 0) return undefined
    for (let bit = 4; bit >= 0; bit--) {
      const on = ((value >> bit) & 1) === 1
      if (even) [west, east] = on ? [(west + east) / 2, east] : [west, (west + east) / 2]
      else [south, north] = on ? [(south + north) / 2, north] : [south, (south + north) / 2]
      even = !even
    }
  }
  return { south, west, north, east }
}
