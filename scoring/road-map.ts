/**
 * Speed limits by position (issue #5): devices do not send the limit of the road they are on, so
 * insurers take it from a road map, such as OpenStreetMap's `maxspeed` tags exported as GeoJSON.
 *
 * The map is a GeoJSON FeatureCollection of LineString (or MultiLineString) roads, each with a
 * `maxspeed` property: km/h as a number, or an OSM value ("50", "30 mph", "none"). Roads without a
 * usable limit are skipped and counted by reason; anything else that is wrong with the file is a
 * startup error naming the feature.
 *
 * Lookups run for every 1 Hz fix of every vehicle, so roads are cut into pieces no longer than a
 * grid cell and filed in a hash grid of fixed-size cells: a lookup reads the few cells around the
 * fix and measures the distance to each piece in a local flat frame (exact enough within metres).
 */
import { readFile } from 'node:fs/promises'
import { codes } from '../ingest/device-contract.ts'

/** Where a fix is on the map: the limit of the matched road and how far the fix is from it. */
export interface RoadMatch {
  limit_kmh: number
  distance_m: number
}

/** A loaded road map. */
export interface RoadMap {
  /**
   * The limit of the road nearest to a position, within `maxMatch_m`; undefined off the map. With
   * a heading, roads along it are preferred (at a junction the crossing street can be nearer).
   * `limit_kmh` is Infinity on roads without a limit (`maxspeed=none`).
   */
  limitAt(lat_deg: number, lon_deg: number, heading_deg?: number): RoadMatch | undefined
  /** Roads loaded, and the pieces they were cut into. */
  roads: number
  pieces: number
  /** Features left out, by reason (e.g. `no maxspeed`, `maxspeed "signals"`, `geometry Point`). */
  skipped: Record<string, number>
}

/** How fixes are matched to roads. */
export interface RoadMapOptions {
  /** Farthest a fix may be from a road to match it, m: well beyond GNSS error (3–10 m), short of the next street. */
  maxMatch_m: number
  /**
   * Metres added to a road's distance for a heading across it (scaled by the sine of the angle):
   * a fix near a junction matches the street it drives along unless the crossing one is this much nearer.
   */
  headingWeight_m: number
  /** Grid cell size, m: roads are cut into pieces no longer than this. */
  cell_m: number
}

/** Defaults for urban and rural maps. */
export const defaultRoadMapOptions: RoadMapOptions = { maxMatch_m: 30, headingWeight_m: 20, cell_m: 50 }

const M_PER_DEG = 111_320
const RAD = Math.PI / 180
const UNITS: Record<string, number> = { '': 1, 'km/h': 1, kmh: 1, kph: 1, mph: 1.609344, knots: 1.852 }

/**
 * An OSM `maxspeed` value in km/h: a number (km/h), "50", "50 km/h", "30 mph", "10 knots", or
 * "none" (no limit: Infinity). Undefined for values that carry no number ("signals", "walk",
 * zone codes such as "DE:urban") and for several values ("50;30"), which depend on the lane or time.
 */
export function parseMaxspeed(value: unknown): number | undefined {
  if (typeof value === 'number') return value > 0 && Number.isFinite(value) ? value : undefined
  if (typeof value !== 'string') return undefined
  const v = value.trim().toLowerCase()
  if (v === 'none') return Infinity
  const m = /^(\d+(?:\.\d+)?)\s*(km\/h|kmh|kph|mph|knots)?$/.exec(v)
  const kmh = m ? Number(m[1]) * UNITS[m[2] ?? '']! : 0
  return kmh > 0 ? Math.round(kmh * 10) / 10 : undefined
}

/** Builds a road map from a parsed GeoJSON FeatureCollection; throws UBIQ_ROAD_MAP_INVALID when it is not one. */
export function roadMap(geojson: unknown, options: Partial<RoadMapOptions> = {}): RoadMap {
  const opts = { ...defaultRoadMapOptions, ...options }
  const fc = geojson as { type?: unknown; features?: unknown }
  if (fc === null || typeof fc !== 'object' || fc.type !== 'FeatureCollection' || !Array.isArray(fc.features)) {
    throw new codes.UBIQ_ROAD_MAP_INVALID('not a GeoJSON FeatureCollection (needs "type": "FeatureCollection" and a "features" array)')
  }
  const skipped: Record<string, number> = {}
  const skip = (reason: string) => void (skipped[reason] = (skipped[reason] ?? 0) + 1)
  // Pieces as [lat0, lon0, lat1, lon1] and their limit, grown as roads are cut.
  const ends: number[] = []
  const limits: number[] = []
  let roads = 0
  fc.features.forEach((f: { type?: unknown; id?: unknown; geometry?: { type?: unknown; coordinates?: unknown }; properties?: Record<string, unknown> | null }, i) => {
    const where = `feature ${i}${f?.id !== undefined ? ` (id ${JSON.stringify(f.id)})` : ''}`
    if (f === null || typeof f !== 'object' || f.type !== 'Feature') throw new codes.UBIQ_ROAD_MAP_INVALID(`${where}: not a GeoJSON Feature`)
    const type = f.geometry?.type
    if (type !== 'LineString' && type !== 'MultiLineString') return skip(`geometry ${String(type ?? f.geometry)}`)
    const raw = f.properties?.maxspeed
    if (raw === undefined || raw === null) return skip('no maxspeed')
    const limit_kmh = parseMaxspeed(raw)
    if (limit_kmh === undefined) return skip(`maxspeed ${JSON.stringify(raw)}`)
    const lines = (type === 'LineString' ? [f.geometry!.coordinates] : f.geometry!.coordinates) as unknown[]
    if (!Array.isArray(lines)) throw new codes.UBIQ_ROAD_MAP_INVALID(`${where}: ${type} has no coordinates array`)
    for (const line of lines) {
      if (!Array.isArray(line) || line.length < 2) throw new codes.UBIQ_ROAD_MAP_INVALID(`${where}: a line needs at least two positions`)
      line.forEach((p: unknown, j) => {
        const [lon, lat] = Array.isArray(p) ? p : []
        if (!(typeof lon === 'number' && Math.abs(lon) <= 180 && typeof lat === 'number' && Math.abs(lat) <= 90)) {
          throw new codes.UBIQ_ROAD_MAP_INVALID(`${where}: position ${j} is ${JSON.stringify(p)}, not [longitude, latitude] in degrees (GeoJSON order)`)
        }
        if (j > 0) cut(line[j - 1] as number[], p as number[], limit_kmh)
      })
    }
    roads++
  })

  /** Files the segment a→b as pieces no longer than a cell, so each covers only a few cells. */
  function cut([lon0, lat0]: number[], [lon1, lat1]: number[], limit_kmh: number) {
    const kx = M_PER_DEG * Math.cos(((lat0! + lat1!) / 2) * RAD)
    const n = Math.max(1, Math.ceil(Math.hypot((lon1! - lon0!) * kx, (lat1! - lat0!) * M_PER_DEG) / opts.cell_m))
    for (let k = 0; k < n; k++) {
      const u = k / n, w = (k + 1) / n
      ends.push(lat0! + (lat1! - lat0!) * u, lon0! + (lon1! - lon0!) * u, lat0! + (lat1! - lat0!) * w, lon0! + (lon1! - lon0!) * w)
      limits.push(limit_kmh)
    }
  }

  if (roads === 0) throw new codes.UBIQ_ROAD_MAP_INVALID(`no road with a usable maxspeed (skipped: ${JSON.stringify(skipped)})`)

  // The grid: cells of cell_m in latitude, and in longitude at the map's highest latitude, so a
  // cell is at least cell_m wide everywhere on the map; counted from the map's south-west corner,
  // so that cell keys stay small integers (fast Map keys). Stored compactly: the pieces of each
  // cell are a run of `items`, found through `cells` (cell key → index into `start`).
  const seg = Float64Array.from(ends)
  const limit = Float64Array.from(limits)
  const pieces = limit.length
  let south = 90, north = -90, west = 180, east = -180
  for (let i = 0; i < seg.length; i += 2) {
    south = Math.min(south, seg[i]!)
    north = Math.max(north, seg[i]!)
    west = Math.min(west, seg[i + 1]!)
    east = Math.max(east, seg[i + 1]!)
  }
  const cellLat = opts.cell_m / M_PER_DEG
  const cellLon = opts.cell_m / (M_PER_DEG * Math.max(0.01, Math.cos(Math.min(89, Math.max(-south, north)) * RAD)))
  const ROWS = Math.floor((north - south) / cellLat) + 1, COLS = Math.floor((east - west) / cellLon) + 1
  const row = (lat: number) => Math.floor((lat - south) / cellLat)
  const col = (lon: number) => Math.floor((lon - west) / cellLon)
  const byCell = new Map<number, number[]>()
  for (let i = 0; i < pieces; i++) {
    const [la0, lo0, la1, lo1] = seg.subarray(4 * i, 4 * i + 4)
    for (let r = row(Math.min(la0!, la1!)); r <= row(Math.max(la0!, la1!)); r++) {
      for (let c = col(Math.min(lo0!, lo1!)); c <= col(Math.max(lo0!, lo1!)); c++) {
        const list = byCell.get(r * COLS + c)
        if (list) list.push(i)
        else byCell.set(r * COLS + c, [i])
      }
    }
  }
  const cells = new Map<number, number>()
  const items = new Int32Array([...byCell.values()].reduce((n, l) => n + l.length, 0))
  const starts: number[] = [0]
  for (const [k, list] of byCell) {
    cells.set(k, starts.length - 1)
    items.set(list, starts.at(-1)!)
    starts.push(starts.at(-1)! + list.length)
  }
  const start = Int32Array.from(starts)

  function limitAt(lat_deg: number, lon_deg: number, heading_deg?: number): RoadMatch | undefined {
    const d = opts.maxMatch_m
    const kx = M_PER_DEG * Math.cos(lat_deg * RAD)
    // Heading as a unit vector (east, north); none: no preference.
    const hx = heading_deg === undefined ? 0 : Math.sin(heading_deg * RAD)
    const hy = heading_deg === undefined ? 0 : Math.cos(heading_deg * RAD)
    const dLat = d / M_PER_DEG, dLon = d / kx
    const r0 = Math.max(0, row(lat_deg - dLat)), r1 = Math.min(ROWS - 1, row(lat_deg + dLat))
    const c0 = Math.max(0, col(lon_deg - dLon)), c1 = Math.min(COLS - 1, col(lon_deg + dLon))
    let best = -1, bestCost = Infinity, bestDistance = 0
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const cell = cells.get(r * COLS + c)
        if (cell === undefined) continue
        for (let j = start[cell]!; j < start[cell + 1]!; j++) {
          const i = items[j]! * 4
          // The piece in metres from the fix: a at (ax, ay), direction (dx, dy).
          const ax = (seg[i + 1]! - lon_deg) * kx, ay = (seg[i]! - lat_deg) * M_PER_DEG
          const dx = (seg[i + 3]! - lon_deg) * kx - ax, dy = (seg[i + 2]! - lat_deg) * M_PER_DEG - ay
          const len2 = dx * dx + dy * dy
          const t = len2 > 0 ? Math.max(0, Math.min(1, -(ax * dx + ay * dy) / len2)) : 0
          const distance = Math.hypot(ax + t * dx, ay + t * dy)
          if (distance > d) continue
          // |sin| of the angle between heading and road: 0 along it (either way), 1 across it.
          const across = len2 > 0 ? Math.abs(dx * hy - dy * hx) / Math.sqrt(len2) : 0
          const cost = distance + opts.headingWeight_m * across
          if (cost < bestCost) {
            best = items[j]!
            bestCost = cost
            bestDistance = distance
          }
        }
      }
    }
    return best < 0 ? undefined : { limit_kmh: limit[best]!, distance_m: bestDistance }
  }

  return { limitAt, roads, pieces, skipped }
}

/** Reads a GeoJSON road map file (see roadMap); a missing or unparsable file is UBIQ_ROAD_MAP_INVALID too. */
export async function loadRoadMap(path: string, options: Partial<RoadMapOptions> = {}): Promise<RoadMap> {
  const text = await readFile(path, 'utf8').catch((err: Error) => {
    throw new codes.UBIQ_ROAD_MAP_INVALID(`cannot read the road map ${path}: ${err.message}`)
  })
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new codes.UBIQ_ROAD_MAP_INVALID(`road map ${path} is not JSON: ${(err as Error).message}`)
  }
  try {
    return roadMap(json, options)
  } catch (err) {
    if (err instanceof codes.UBIQ_ROAD_MAP_INVALID) err.message = `road map ${path}: ${err.message}`
    throw err
  }
}
