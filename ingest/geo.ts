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
