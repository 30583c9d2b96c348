/**
 * A trip's route for its policyholder (#23 item 1): the trip's fixes, downsampled, and its events
 * placed on them. Positions reach no analyst (README "Privacy"): only the policyholder's own
 * token opens this route. The fixes are those kept in `raw_positions`; after that retention, the
 * coarse cells the trip keeps (`trip_area`, about 1.2 × 0.6 km each) stand for it, with why.
 */
import { Type, type Static } from '@sinclair/typebox'
import { geohashCell, qualified, quoteString, ROUTE_FIELDS, seriesRows, type Influx } from '../ingest/index.ts'
import { tripHistory } from './history.ts'
import { strict } from './schemas.ts'

/** The most points a route is drawn with: a phone's screen shows no more, and a long trip's 1 Hz fixes would be thousands. */
export const ROUTE_POINTS = 500

const LatLon = { lat: Type.Number({ minimum: -90, maximum: 90, description: 'WGS84 degrees' }), lon: Type.Number({ minimum: -180, maximum: 180, description: 'WGS84 degrees' }) }
export const TripRoute = strict({
  policyId: Type.String(),
  deviceId: Type.String(),
  from: Type.String(),
  to: Type.String(),
  points: Type.Array(strict({ t: Type.String(), ...LatLon }), { maxItems: ROUTE_POINTS, description: `the trip's fixes in time order, at most ${ROUTE_POINTS} (evenly picked, the last one kept)` }),
  events: Type.Array(strict({
    type: Type.String(), from: Type.String(), to: Type.String(),
    at: Type.Number({ minimum: 0, maximum: 1, description: 'where along the trip it ended, 0 (start) to 1 (end), by time' }),
    lat: Type.Optional(LatLon.lat), lon: Type.Optional(LatLon.lon),
  }, { description: 'where the event ended: the fix nearest its end, when the trip has fixes' })),
  cells: Type.Optional(Type.Array(strict({
    south: LatLon.lat, west: LatLon.lon, north: LatLon.lat, east: LatLon.lon, seconds: Type.Number({ minimum: 0, description: 'time moving in the cell' }),
  }), { description: "where the trip went, coarsely, once its fixes are gone: the cells it keeps (geohash, 6 characters)" })),
  reason: Type.Optional(Type.String({ description: 'why the route is empty' })),
  tiles: Type.Optional(strict({ url: Type.String({ description: 'XYZ template, {z}/{x}/{y}' }), attribution: Type.Optional(Type.String()) }, { description: 'map tiles to draw under the route (MAP_TILES_URL); without them, the route alone' })),
})
export type TripRoute = Static<typeof TripRoute>

/** Every `n`-th of `xs` so that at most `max` remain, the last always kept (where the trip ended). */
export function downsample<T>(xs: readonly T[], max: number): T[] {
  if (xs.length <= max) return [...xs]
  const step = (xs.length - 1) / (max - 1)
  return Array.from({ length: max }, (_, i) => xs[Math.round(i * step)]!)
}

/**
 * The route of the policy's trip that started at `fromMs`; undefined when there is no such trip.
 * `gpsStored`: whether the policy's consent lets its location be stored now (any purpose), for the
 * reason an empty route gives. Stored fixes are the policyholder's own data, shown whatever the purposes.
 */
export async function tripRoute(influx: Influx, policyId: string, fromMs: number, gpsStored: boolean): Promise<Omit<TripRoute, 'tiles'> | undefined> {
  const [trip] = await tripHistory(influx, policyId, { from: fromMs, to: fromMs + 1, limit: 1 })
  if (!trip) return undefined
  const toMs = Date.parse(trip.to)
  const fixes = seriesRows(await influx.of(policyId).query(`SELECT ${ROUTE_FIELDS.join(', ')} FROM ${qualified('gps')} WHERE device_id = ${quoteString(trip.deviceId)} AND time >= ${fromMs}ms AND time <= ${toMs}ms ORDER BY time ASC`))
    .filter((r) => typeof r.lat_deg === 'number' && typeof r.lon_deg === 'number')
    .map((r) => ({ ms: Number(r.time), lat: r.lat_deg as number, lon: r.lon_deg as number }))
  const nearest = (ms: number) => fixes.reduce((best, f) => (Math.abs(f.ms - ms) < Math.abs(best.ms - ms) ? f : best))
  const events = trip.events.map((e) => {
    const end = Date.parse(e.to)
    const fix = fixes.length ? nearest(end) : undefined
    return { type: e.type, from: e.from, to: e.to, at: toMs > fromMs ? Math.min(1, Math.max(0, (end - fromMs) / (toMs - fromMs))) : 0, ...(fix ? { lat: fix.lat, lon: fix.lon } : {}) }
  })
  const route = {
    policyId, deviceId: trip.deviceId, from: trip.from, to: trip.to,
    points: downsample(fixes, ROUTE_POINTS).map((f) => ({ t: new Date(f.ms).toISOString(), lat: f.lat, lon: f.lon })),
    events,
  }
  if (fixes.length) return route
  // The trip's coarse cells, written at its start when its features were computed.
  const [area] = seriesRows(await influx.of(policyId).query(`SELECT cells FROM ${qualified('trip_area')} WHERE policy_id = ${quoteString(policyId)} AND device_id = ${quoteString(trip.deviceId)} AND time = ${fromMs}ms`))
  const cells = String(area?.cells ?? '').split(' ').flatMap((c) => {
    const [hash, seconds] = c.split(':'), cell = geohashCell(hash ?? '')
    return cell && hash ? [{ ...cell, seconds: Number(seconds) || 0 }] : []
  })
  return cells.length
    ? { ...route, cells, reason: 'this trip\'s positions are no longer kept (POSITION_RETENTION_DAYS): the cells of about 1.2 × 0.6 km it went through stand for them' }
    : { ...route, reason: gpsStored ? 'no position of this trip is kept: positions are kept only for a while (POSITION_RETENTION_DAYS), and none are stored without GPS or while location is paused'
      : 'no position of this trip is kept: your consent to store your location (gps) is withdrawn for every purpose, so none is stored' }
}
