/**
 * A trip's route laid out for fast lookups (issue #4): legs between junctions, each bend's length
 * and curvature, and where the vehicle is at a distance along it. The driving model and the
 * vehicle's sensors (sensors/) both read it.
 */
import type { City, RoadClass } from './roads.ts'

/** Length of a 90° bend: r·π/2 for a radius of 12 m in town, 25 m on arterials, 60 m on highway ramps. */
const BEND_M: Record<RoadClass, number> = { urban: 19, arterial: 39, highway: 94 }

/** A route laid out for fast lookups: legs between junctions, and the bend at each junction. */
export interface Geometry {
  /** Number of legs. */
  k: number
  x0: Float64Array
  y0: Float64Array
  ux: Float64Array
  uy: Float64Array
  /** Distance along the route where each leg starts; start[k] is the route's length. */
  start: Float64Array
  /** Heading of each leg, radians clockwise from north. */
  heading: Float64Array
  limit_ms: Float64Array
  road: RoadClass[]
  tunnel: Uint8Array
  /** At the junction where leg j starts (j ≥ 1): half the bend's length, its signed turn (+ right), curvature. */
  half: Float64Array
  turn: Float64Array
  curv: Float64Array
  nodes: number[]
}

export function geometry(city: City, nodes: number[]): Geometry {
  const k = nodes.length - 1
  const g: Geometry = {
    k, x0: new Float64Array(k), y0: new Float64Array(k), ux: new Float64Array(k), uy: new Float64Array(k), start: new Float64Array(k + 1),
    heading: new Float64Array(k), limit_ms: new Float64Array(k), road: [], tunnel: new Uint8Array(k),
    half: new Float64Array(k), turn: new Float64Array(k), curv: new Float64Array(k), nodes,
  }
  for (let i = 0; i < k; i++) {
    const a = nodes[i]!, b = nodes[i + 1]!
    const link = city.links[a]!.find((l) => l.node === b)!
    const r = city.roads[link.road]!
    const dx = city.x[b]! - city.x[a]!, dy = city.y[b]! - city.y[a]!
    const len = Math.hypot(dx, dy)
    g.x0[i] = city.x[a]!
    g.y0[i] = city.y[a]!
    g.ux[i] = dx / len
    g.uy[i] = dy / len
    g.start[i + 1] = g.start[i]! + len
    g.heading[i] = Math.atan2(dx, dy)
    g.limit_ms[i] = r.limit_kmh / 3.6
    g.road.push(r.road)
    g.tunnel[i] = r.tunnel ? 1 : 0
    if (i > 0) {
      let turn = g.heading[i]! - g.heading[i - 1]!
      turn = Math.atan2(Math.sin(turn), Math.cos(turn)) // (−π, π]
      const bend = g.road[i] === 'highway' || g.road[i - 1] === 'highway' ? BEND_M.highway : Math.min(BEND_M[g.road[i]!], BEND_M[g.road[i - 1]!])
      // Every bend of a road class is as long as its 90° turn: a gentle bend is a wide one (r = length / |θ|).
      g.half[i] = Math.min(bend / 2, 0.4 * len, 0.4 * (g.start[i]! - g.start[i - 1]!))
      g.turn[i] = turn
      g.curv[i] = turn / (2 * g.half[i]!)
    }
  }
  return g
}

/** The leg that contains distance `s`. */
export function legAt(g: Geometry, s: number): number {
  let lo = 0, hi = g.k - 1
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1
    if (g.start[mid]! <= s) lo = mid
    else hi = mid - 1
  }
  return lo
}

/** Where the vehicle is at distance `s`: position, heading (turning through bends) and curvature (+ right). */
export function locate(g: Geometry, s: number, out: { x: number; y: number; heading: number; curv: number; leg: number }) {
  const i = legAt(g, s)
  const d = s - g.start[i]!
  out.x = g.x0[i]! + g.ux[i]! * d
  out.y = g.y0[i]! + g.uy[i]! * d
  out.heading = g.heading[i]!
  out.curv = 0
  out.leg = i
  if (i > 0 && d < g.half[i]!) {
    out.heading = g.heading[i - 1]! + g.turn[i]! * ((d + g.half[i]!) / (2 * g.half[i]!))
    out.curv = g.curv[i]!
  } else if (i + 1 < g.k && g.start[i + 1]! - s < g.half[i + 1]!) {
    out.heading = g.heading[i]! + g.turn[i + 1]! * ((g.half[i + 1]! - (g.start[i + 1]! - s)) / (2 * g.half[i + 1]!))
    out.curv = g.curv[i + 1]!
  }
  return out
}
