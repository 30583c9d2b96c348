/**
 * A small seeded city to drive in (issue #4: "trips between places on a road grid with urban,
 * arterial and highway segments and their speed limits"). A grid of streets around a real city
 * centre: urban streets at 50 km/h, an arterial every fifth street at 80 km/h with traffic lights
 * at its junctions, and a limited-access highway at 120 km/h south of the grid, reached only by
 * the arterials and running through a tunnel for part of its length. Junctions are jittered so
 * that streets bend a little, as real ones do.
 *
 * Positions are local metres (x east, y north of the centre), turned into WGS84 with an
 * equirectangular projection: over 10 km its error is well under a metre, far below GPS noise.
 */
import { between, seededRandom } from './random.ts'

/** Kinds of road, each with its speed limit. */
export type RoadClass = 'urban' | 'arterial' | 'highway'

/** Speed limit of each road class, km/h. */
export const speedLimits_kmh: Readonly<Record<RoadClass, number>> = { urban: 50, arterial: 80, highway: 120 }

/** A two-way road between junctions `a` and `b`. */
export interface Road {
  a: number
  b: number
  length_m: number
  road: RoadClass
  limit_kmh: number
  /** No GNSS fix in here. */
  tunnel: boolean
}

/** A simulated town: junctions (nodes) and the roads between them. */
export interface City {
  seed: number
  center: { lat_deg: number; lon_deg: number }
  cols: number
  rows: number
  /** Junction positions, m east and north of the centre, indexed by node (row · cols + col). */
  x: Float64Array
  y: Float64Array
  roads: Road[]
  /** For each node, its neighbours and the road to each. */
  links: { node: number; road: number }[][]
  /** 1 where a junction has traffic lights. */
  lights: Uint8Array
  /** Within this distance of the centre, tall buildings make GNSS worse (urban canyon). */
  canyonRadius_m: number
  /** Shortest-path trees by source node, built on first use (routes are asked for millions of times). */
  trees: Map<number, { prev: Int32Array; dist_m: Float64Array }>
}

/** How to build a city; every field has a default. */
export interface CityOptions {
  seed?: number
  /** Junctions east–west and north–south (18 × 18 at 500 m: a town of about 8.5 km square). */
  cols?: number
  rows?: number
  spacing_m?: number
  /** Defaults to central London, where UTC is local time in winter. */
  center?: { lat_deg: number; lon_deg: number }
}

const M_PER_DEG_LAT = 111_320
const ARTERIAL_EVERY = 5
const isArterialLine = (i: number) => i % ARTERIAL_EVERY === 3

/** Builds the city for a seed: the same seed always gives the same streets, lights and tunnel. */
export function makeCity(opts: CityOptions = {}): City {
  const { seed = 1, cols = 18, rows = 18, spacing_m = 500, center = { lat_deg: 51.5074, lon_deg: -0.1278 } } = opts
  const rand = seededRandom(seed)
  const n = cols * rows
  const x = new Float64Array(n)
  const y = new Float64Array(n)
  const jitter = spacing_m * 0.06
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c
      x[i] = (c - (cols - 1) / 2) * spacing_m + between(rand, -jitter, jitter)
      // Row 0 is the highway: a straight bypass one and a half blocks south of the town.
      y[i] = r === 0 ? (1 - (rows - 1) / 2 - 1.5) * spacing_m : (r - (rows - 1) / 2) * spacing_m + between(rand, -jitter, jitter)
    }
  }
  const tunnelFrom = 2 + Math.floor(rand() * (cols - 6))
  const roads: Road[] = []
  const links: { node: number; road: number }[][] = Array.from({ length: n }, () => [])
  const addRoad = (a: number, b: number, road: RoadClass, tunnel = false) => {
    const length_m = Math.hypot(x[b]! - x[a]!, y[b]! - y[a]!)
    links[a]!.push({ node: b, road: roads.length })
    links[b]!.push({ node: a, road: roads.length })
    roads.push({ a, b, length_m, road, limit_kmh: speedLimits_kmh[road], tunnel })
  }
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const i = r * cols + c
      if (c + 1 < cols) {
        if (r === 0) addRoad(i, i + 1, 'highway', c >= tunnelFrom && c < tunnelFrom + 2)
        else addRoad(i, i + 1, isArterialLine(r) ? 'arterial' : 'urban')
      }
      // Limited access: only the arterials lead down to the highway.
      if (r + 1 < rows && (r > 0 || isArterialLine(c))) addRoad(i, i + cols, isArterialLine(c) ? 'arterial' : 'urban')
    }
  }
  const lights = new Uint8Array(n)
  for (let r = 1; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      // Lights where an arterial meets another street, and at a few busy town junctions.
      if (isArterialLine(r) || isArterialLine(c) || rand() < 0.15) lights[r * cols + c] = 1
    }
  }
  return { seed, center, cols, rows, x, y, roads, links, lights, canyonRadius_m: 1500, trees: new Map() }
}

/** The node at a column and row. */
export const nodeAt = (city: City, col: number, row: number): number => row * city.cols + col

/** The road between two adjacent junctions. */
export function roadBetween(city: City, a: number, b: number): Road {
  const link = city.links[a]!.find((l) => l.node === b)
  if (!link) throw new Error(`no road between nodes ${a} and ${b}`)
  return city.roads[link.road]!
}

/** Straight-line distance between two junctions, m. */
export const nodeDistance_m = (city: City, a: number, b: number): number => Math.hypot(city.x[b]! - city.x[a]!, city.y[b]! - city.y[a]!)

/**
 * Shortest-path tree from `from`, by expected travel time: length at the limit plus a delay per
 * junction (longer at lights), which is how drivers (and navigation apps) choose the highway.
 * Plain O(n²) Dijkstra: the town has a few hundred junctions, and each tree is built once.
 */
function tree(city: City, from: number) {
  const cached = city.trees.get(from)
  if (cached) return cached
  const n = city.x.length
  const time = new Float64Array(n).fill(Infinity)
  const dist_m = new Float64Array(n).fill(Infinity)
  const prev = new Int32Array(n).fill(-1)
  const done = new Uint8Array(n)
  time[from] = 0
  dist_m[from] = 0
  for (;;) {
    let u = -1
    for (let i = 0; i < n; i++) if (!done[i] && time[i]! < Infinity && (u < 0 || time[i]! < time[u]!)) u = i
    if (u < 0) break
    done[u] = 1
    for (const { node, road } of city.links[u]!) {
      const r = city.roads[road]!
      const t = time[u]! + r.length_m / (r.limit_kmh / 3.6) + (city.lights[node] ? 20 : 4)
      if (t < time[node]!) {
        time[node] = t
        dist_m[node] = dist_m[u]! + r.length_m
        prev[node] = u
      }
    }
  }
  const built = { prev, dist_m }
  city.trees.set(from, built)
  return built
}

/** The junctions of the quickest route from `from` to `to`, both included. */
export function route(city: City, from: number, to: number): number[] {
  const { prev } = tree(city, from)
  const path = [to]
  for (let at = to; at !== from; ) {
    at = prev[at]!
    if (at < 0) throw new Error(`node ${to} is not reachable from ${from}`)
    path.push(at)
  }
  return path.reverse()
}

/** Length of the quickest route, m (cheap: what exposure in km is computed from). */
export const routeLength_m = (city: City, from: number, to: number): number => tree(city, from).dist_m[to]!

/** WGS84 position of a local point. */
export function toLatLon(city: City, x: number, y: number): { lat_deg: number; lon_deg: number } {
  const { lat_deg, lon_deg } = city.center
  return { lat_deg: lat_deg + y / M_PER_DEG_LAT, lon_deg: lon_deg + x / (M_PER_DEG_LAT * Math.cos((lat_deg * Math.PI) / 180)) }
}

/** Local position of a WGS84 point. */
export function fromLatLon(city: City, lat_deg: number, lon_deg: number): { x: number; y: number } {
  const c = city.center
  return { x: (lon_deg - c.lon_deg) * M_PER_DEG_LAT * Math.cos((c.lat_deg * Math.PI) / 180), y: (lat_deg - c.lat_deg) * M_PER_DEG_LAT }
}

/** Distance from a local point to the nearest road, m (checks every road: for tests and analysis). */
export function distanceToRoad_m(city: City, px: number, py: number): number {
  let best = Infinity
  for (const { a, b } of city.roads) {
    const ax = city.x[a]!, ay = city.y[a]!
    const dx = city.x[b]! - ax, dy = city.y[b]! - ay
    const t = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
    best = Math.min(best, Math.hypot(px - ax - t * dx, py - ay - t * dy))
  }
  return best
}

/** OSM `highway` values of the road classes. */
const OSM_HIGHWAY: Readonly<Record<RoadClass, string>> = { urban: 'residential', arterial: 'primary', highway: 'motorway' }

/** A GeoJSON FeatureCollection of roads (RFC 7946), as an OpenStreetMap export gives them. */
export interface RoadsGeoJson {
  type: 'FeatureCollection'
  features: {
    type: 'Feature'
    id: number
    geometry: { type: 'LineString'; coordinates: [number, number][] }
    properties: { highway: string; maxspeed: string; tunnel?: 'yes' }
  }[]
}

/**
 * The city's roads as an insurer's road map (issue #5): one LineString per road, [lon, lat] as
 * GeoJSON orders them, tagged as OSM tags them (`maxspeed` a string in km/h, `highway` the OSM
 * class, `tunnel=yes`), so scoring reads the simulated city the way it reads an OSM export.
 */
export function cityGeoJson(city: City): RoadsGeoJson {
  // 7 decimals, OSM's precision (about a centimetre).
  const at = (node: number): [number, number] => {
    const { lat_deg, lon_deg } = toLatLon(city, city.x[node]!, city.y[node]!)
    return [Math.round(lon_deg * 1e7) / 1e7, Math.round(lat_deg * 1e7) / 1e7]
  }
  return {
    type: 'FeatureCollection',
    features: city.roads.map((r, id) => ({
      type: 'Feature',
      id,
      geometry: { type: 'LineString', coordinates: [at(r.a), at(r.b)] },
      properties: { highway: OSM_HIGHWAY[r.road], maxspeed: String(r.limit_kmh), ...(r.tunnel ? { tunnel: 'yes' as const } : {}) },
    })),
  }
}
