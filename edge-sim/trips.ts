/**
 * Days and weeks of a driver (issue #4: "commutes, weekends, night trips"): where they live, work
 * and shop, and which trips they make on each day, from their persona's schedule. Plans are cheap
 * (no physics), so exposure in km can be computed for a whole fleet-year without driving it.
 * Times are UTC, taken as local time (the default city is London, on UTC in winter).
 */
import { between, deriveSeed, normal, pick, seededRandom, type Random } from './random.ts'
import { nodeDistance_m, routeLength_m, type City } from './roads.ts'
import type { DrivingPersona } from './personas.ts'

/** A driver's places, as junctions of the city. */
export interface Places {
  home: number
  /** Absent for drivers who do not commute. */
  work?: number
  shops: number
}

/** Where a trip starts or ends (an outing goes to a junction chosen for that trip). */
export type PlaceName = 'home' | 'work' | 'shops' | 'outing'

/** One planned trip. */
export interface TripPlan {
  startTs: number
  from: PlaceName
  to: PlaceName
  fromNode: number
  toNode: number
}

/** A day in ms: plans are per UTC day. */
export const DAY_MS = 86_400_000
const HOUR_MS = 3_600_000
/** Trips of a day start at least this far apart, so that none can overlap the next. */
const MIN_GAP_MS = 75 * 60_000

/** Seeded choice of home, work (at least 3 km away, for commuters) and shops (within 1.5 km of home). */
export function choosePlaces(city: City, persona: DrivingPersona, seed: number): Places {
  const rand = seededRandom(deriveSeed(seed, 0x91ace))
  const home = townNode(city, rand)
  const shops = nodeNear(city, rand, home, 0.3, 1.5)
  if (persona.schedule.workStart_h === undefined) return { home, shops }
  return { home, work: nodeNear(city, rand, home, 3, 99), shops }
}

/**
 * The trips of the day starting at `dayStartTs` (UTC midnight), in order of start. Round trips
 * only, so each trip starts where the last one ended. Deterministic for (seed, day).
 */
export function planDay(city: City, persona: DrivingPersona, places: Places, dayStartTs: number, seed: number): TripPlan[] {
  const rand = seededRandom(deriveSeed(seed, 0xda7, Math.floor(dayStartTs / DAY_MS)))
  const s = persona.schedule
  const at = (hours: number) => dayStartTs + Math.round(hours * HOUR_MS)
  const trips: TripPlan[] = []
  let earliest = at(5)
  const go = (from: PlaceName, fromNode: number, to: PlaceName, toNode: number, startTs: number) => {
    const ts = Math.max(startTs, earliest)
    trips.push({ startTs: ts, from, to, fromNode, toNode })
    earliest = ts + MIN_GAP_MS
    return ts
  }
  /** Out from home, a stay of `stay_h`, and back. */
  const roundTrip = (to: PlaceName, node: number, startTs: number, stay_h: number) => {
    const out = go('home', places.home, to, node, startTs)
    go(to, node, 'home', places.home, out + Math.round(stay_h * HOUR_MS))
  }
  const weekday = new Date(dayStartTs).getUTCDay()
  const weekend = weekday === 0 || weekday === 6
  if (!weekend && s.workStart_h !== undefined && places.work !== undefined) {
    roundTrip('work', places.work, at(s.workStart_h - 0.5 + normal(rand, 0, 0.25)), s.workHours + normal(rand, 0, 0.4))
  }
  if (rand() < s.errandsPerWeek / 7) roundTrip('shops', places.shops, at(between(rand, 17.5, 20)), between(rand, 0.3, 0.8))
  if (weekend) {
    const [lo, hi] = s.weekendOutings
    const outings = lo + Math.floor(rand() * (hi - lo + 1))
    for (let i = 0, t = between(rand, 9.5, 11.5); i < outings; i++, t += between(rand, 3, 4.5)) {
      const to = rand() < 0.3 ? { name: 'shops' as const, node: places.shops } : { name: 'outing' as const, node: nodeNear(city, rand, places.home, 0.5, s.outingRadius_km) }
      roundTrip(to.name, to.node, at(t), between(rand, 1, 2.5))
    }
  }
  if (rand() < s.nightTripsPerWeek / 7) roundTrip('outing', nodeNear(city, rand, places.home, 0.5, s.outingRadius_km), at(between(rand, 21.5, 23.5)), between(rand, 1, 2.5))
  return trips
}

/** The trips starting in the `days` days from `startTs` (any time of day: each day is planned whole). */
export function* planTrips(city: City, persona: DrivingPersona, places: Places, startTs: number, days: number, seed: number): Generator<TripPlan> {
  const endTs = startTs + days * DAY_MS
  for (let day = Math.floor(startTs / DAY_MS) * DAY_MS; day < endTs; day += DAY_MS) {
    for (const trip of planDay(city, persona, places, day, seed)) if (trip.startTs >= startTs && trip.startTs < endTs) yield trip
  }
}

/** Km the plans add up to: the driving exposure, without simulating a second of driving. */
export function plannedKm(city: City, plans: Iterable<TripPlan>): number {
  let m = 0
  for (const p of plans) m += routeLength_m(city, p.fromNode, p.toNode)
  return m / 1000
}

/** A junction in town (not on the highway). */
function townNode(city: City, rand: Random): number {
  return city.cols + Math.floor(rand() * (city.x.length - city.cols))
}

/** A town junction between `min_km` and `max_km` from `from`, uniformly (the nearest to that band if none is in it). */
function nodeNear(city: City, rand: Random, from: number, min_km: number, max_km: number): number {
  const key = `${from}:${min_km}:${max_km}`
  const bands = bandCache.get(city) ?? new Map<string, number[]>()
  bandCache.set(city, bands)
  let band = bands.get(key)
  if (!band) bands.set(key, (band = townBand(city, from, min_km, max_km)))
  return pick(rand, band)
}

/** Planning asks for the same few bands around each home again and again. */
const bandCache = new WeakMap<City, Map<string, number[]>>()

function townBand(city: City, from: number, min_km: number, max_km: number): number[] {
  const band: number[] = []
  let nearest = -1
  let nearestMiss = Infinity
  for (let n = city.cols; n < city.x.length; n++) {
    if (n === from) continue
    const km = nodeDistance_m(city, from, n) / 1000
    const miss = Math.max(min_km - km, km - max_km, 0)
    if (miss === 0) band.push(n)
    else if (miss < nearestMiss) [nearest, nearestMiss] = [n, miss]
  }
  return band.length > 0 ? band : [nearest]
}
