import t from 'tap'
import { drivingPersonas, type DrivingPersonaName } from './personas.ts'
import { makeCity, nodeDistance_m, route } from './roads.ts'
import { choosePlaces, DAY_MS, planTrips, plannedKm, type TripPlan } from './trips.ts'

const city = makeCity({ seed: 3 })
const start = Date.UTC(2026, 0, 5) // a Monday
const WEEKS = 26
const hourOf = (ts: number) => (ts % DAY_MS) / 3_600_000
const weekend = (ts: number) => [0, 6].includes(new Date(ts).getUTCDay())

function plans(name: DrivingPersonaName, seed: number, weeks = WEEKS): { places: ReturnType<typeof choosePlaces>; trips: TripPlan[] } {
  const persona = drivingPersonas[name]
  const places = choosePlaces(city, persona, seed)
  return { places, trips: [...planTrips(city, persona, places, start, weeks * 7, seed)] }
}

t.test('places: work is a commute away, the shops are near home, some drivers have no work', async (t) => {
  for (let seed = 1; seed <= 20; seed++) {
    const { home, work, shops } = choosePlaces(city, drivingPersonas.average, seed)
    t.ok(nodeDistance_m(city, home, work!) >= 3000, `work ${(nodeDistance_m(city, home, work!) / 1000).toFixed(1)} km from home`)
    t.ok(nodeDistance_m(city, home, shops) <= 1500 && shops !== home, 'shops within 1.5 km')
    t.ok(home >= city.cols && work! >= city.cols && shops >= city.cols, 'places are in town, not on the highway')
  }
  t.equal(choosePlaces(city, drivingPersonas['low-mileage'], 1).work, undefined)
})

t.test('trips chain place to place, in order, never overlapping, deterministic', async (t) => {
  for (const name of Object.keys(drivingPersonas) as DrivingPersonaName[]) {
    const { places, trips } = plans(name, 11)
    const problems: string[] = []
    trips.forEach((trip, i) => {
      const prev = trips[i - 1]
      if (prev && prev.toNode !== trip.fromNode) problems.push(`${i}: starts where the last one did not end`)
      if (prev && trip.startTs - prev.startTs < 75 * 60_000) problems.push(`${i}: less than 75 min after the last`)
      if (trip.fromNode === trip.toNode) problems.push(`${i}: goes nowhere`)
      if ((trip.from === 'home' ? places.home : trip.fromNode) !== trip.fromNode) problems.push(`${i}: home is not home`)
    })
    t.same(problems, [], `${name}: ${trips.length} trips`)
    t.equal(trips[0]!.fromNode, places.home, `${name} starts from home`)
    t.same(plans(name, 11).trips, trips, `${name}: the same seed plans the same trips`)
    t.not(JSON.stringify(plans(name, 12).trips), JSON.stringify(trips), `${name}: another seed plans others`)
  }
})

t.test('commuters commute on weekdays, in the morning and evening, and not at weekends', async (t) => {
  const { trips } = plans('average', 5)
  const toWork = trips.filter((p) => p.to === 'work')
  const fromWork = trips.filter((p) => p.from === 'work')
  t.equal(toWork.length, WEEKS * 5, 'one commute each weekday')
  t.equal(fromWork.length, WEEKS * 5)
  t.ok(toWork.every((p) => !weekend(p.startTs) && hourOf(p.startTs) > 6.5 && hourOf(p.startTs) < 9.5), 'leaves between 06:30 and 09:30')
  t.ok(fromWork.every((p) => hourOf(p.startTs) > 15 && hourOf(p.startTs) < 20.5), 'comes back between 15:00 and 20:30')
  const weekendTrips = trips.filter((p) => weekend(p.startTs))
  t.ok(weekendTrips.length >= WEEKS * 2 * 2, `${weekendTrips.length} weekend trips (outings there and back)`)
})

t.test('night owls drive at night, low-mileage drivers little', async (t) => {
  const night = (name: DrivingPersonaName) => plans(name, 9).trips.filter((p) => p.from === 'home' && hourOf(p.startTs) >= 21.5).length
  // Binomial: 4 nights a week of 7 for the night owl, 0.2 for a commuter; 26 weeks.
  const owl = night('night-owl')
  t.ok(Math.abs(owl - WEEKS * 4) < 4 * Math.sqrt(WEEKS * 7 * (4 / 7) * (3 / 7)), `night owl: ${owl} night trips in ${WEEKS} weeks (expected ${WEEKS * 4})`)
  t.ok(night('average') < WEEKS * 0.2 + 4 * Math.sqrt(WEEKS * 0.2), `average: ${night('average')}`)
  t.ok(plans('night-owl', 9).trips.filter((p) => p.to === 'work').every((p) => hourOf(p.startTs) > 9.5), 'the night owl starts work late')

  const km = (name: DrivingPersonaName) => plannedKm(city, plans(name, 9).trips) / WEEKS
  t.ok(km('low-mileage') < 0.5 * km('average'), `low mileage ${km('low-mileage').toFixed(0)} km/week, average ${km('average').toFixed(0)}`)
  t.ok(km('night-owl') > km('average'), `night owl ${km('night-owl').toFixed(0)} km/week`)
})

t.test('planned km are the routes\' lengths', async (t) => {
  const { trips } = plans('average', 2, 1)
  let m = 0
  for (const p of trips) {
    const path = route(city, p.fromNode, p.toNode)
    for (let i = 1; i < path.length; i++) m += Math.hypot(city.x[path[i]!]! - city.x[path[i - 1]!]!, city.y[path[i]!]! - city.y[path[i - 1]!]!)
  }
  t.ok(Math.abs(plannedKm(city, trips) - m / 1000) < 1e-9)
})
