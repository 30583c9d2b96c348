/**
 * Road map (issue #5): OSM `maxspeed` values, file validation, the spatial index against a brute
 * force search, and matching the simulated city's noisy GPS fixes to the road actually driven.
 */
import t from 'tap'
import fc from 'fast-check'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  choosePlaces, cityGeoJson, distanceToRoad_m, driveVehicle, drivingPersonas, fromLatLon, makeCity, roadBetween, route, toLatLon,
  type DrivingPersonaName, type TripTruth,
} from '../edge-sim/index.ts'
import { codes } from '../ingest/index.ts'
import { loadRoadMap, parseMaxspeed, roadMap } from './road-map.ts'

const LAT = 51.5, LON = -0.12
const M_PER_DEG = 111_320
/** A point `east_m`, `north_m` from (LAT, LON), as GeoJSON [lon, lat]. */
const at = (east_m: number, north_m: number): [number, number] => [LON + east_m / (M_PER_DEG * Math.cos((LAT * Math.PI) / 180)), LAT + north_m / M_PER_DEG]
const road = (maxspeed: unknown, ...coordinates: [number, number][]) => ({ type: 'Feature', geometry: { type: 'LineString', coordinates }, properties: { maxspeed } })
const collection = (...features: unknown[]) => ({ type: 'FeatureCollection', features })

t.test('maxspeed: numbers in km/h, OSM strings with units converted, no-number values refused', async (t) => {
  const cases: [unknown, number | undefined][] = [
    [50, 50], ['50', 50], [' 50 ', 50], ['50 km/h', 50], ['50kmh', 50], ['30 mph', 48.3], ['70 MPH', 112.7], ['10 knots', 18.5], ['7.5', 7.5],
    ['none', Infinity],
    ['signals', undefined], ['walk', undefined], ['DE:urban', undefined], ['GB:nsl_single', undefined], ['50;30', undefined],
    ['0', undefined], [0, undefined], [-30, undefined], [Number.NaN, undefined], [Infinity, undefined], ['', undefined], ['mph', undefined],
    [null, undefined], [true, undefined], [['50'], undefined],
  ]
  for (const [value, kmh] of cases) t.equal(parseMaxspeed(value), kmh, `${JSON.stringify(value)} → ${kmh}`)
})

t.test('an invalid road map is a coded startup error naming the feature and the reason', async (t) => {
  const line = [at(0, 0), at(100, 0)]
  const cases: [unknown, RegExp][] = [
    [null, /not a GeoJSON FeatureCollection/],
    [{ type: 'Feature', geometry: null, properties: {} }, /not a GeoJSON FeatureCollection/],
    [{ type: 'FeatureCollection' }, /needs "type": "FeatureCollection" and a "features" array/],
    [collection(road(50, ...line), 42), /^feature 1: not a GeoJSON Feature$/],
    [collection({ ...road(50, at(0, 0)), id: 'way/7' }), /^feature 0 \(id "way\/7"\): a line needs at least two positions$/],
    [collection(road(50, [51.5, 95] as [number, number], at(0, 0))), /^feature 0: position 0 is \[51.5,95\], not \[longitude, latitude\] in degrees \(GeoJSON order\)$/],
    [collection(road('50', at(0, 0), ['-0.1', '51.5'] as unknown as [number, number])), /^feature 0: position 1 is \["-0.1","51.5"\]/],
    [collection({ type: 'Feature', geometry: { type: 'MultiLineString', coordinates: 'x' }, properties: { maxspeed: 50 } }), /^feature 0: MultiLineString has no coordinates array$/],
    [collection(road('signals', ...line), road(undefined, ...line)), /^no road with a usable maxspeed \(skipped: \{"maxspeed \\"signals\\"":1,"no maxspeed":1\}\)$/],
    [collection(), /no road with a usable maxspeed/],
  ]
  for (const [input, message] of cases) t.throws(() => roadMap(input), { code: 'UBIQ_ROAD_MAP_INVALID', message }, String(message))
})

t.test('features without a usable limit and non-road geometry are skipped and counted by reason', async (t) => {
  const map = roadMap(collection(
    road('50', at(0, 0), at(200, 0)),
    { type: 'Feature', geometry: { type: 'MultiLineString', coordinates: [[at(0, 100), at(200, 100)], [at(300, 100), at(500, 100)]] }, properties: { maxspeed: '30 mph' } },
    road('signals', at(0, 20), at(200, 20)),
    road('none', at(0, 300), at(200, 300)),
    { type: 'Feature', geometry: { type: 'Point', coordinates: at(0, 0) }, properties: { highway: 'traffic_signals' } },
    { type: 'Feature', geometry: null, properties: {} },
    { type: 'Feature', geometry: { type: 'LineString', coordinates: [at(0, 200), at(200, 200)] }, properties: { highway: 'residential' } },
  ))
  t.equal(map.roads, 3)
  t.same(map.skipped, { 'maxspeed "signals"': 1, 'geometry Point': 1, 'geometry null': 1, 'no maxspeed': 1 })
  t.equal(map.limitAt(...latLon(at(100, 3)))?.limit_kmh, 50)
  t.equal(map.limitAt(...latLon(at(400, 95)))?.limit_kmh, 48.3, 'the second line of a MultiLineString')
  t.equal(map.limitAt(...latLon(at(100, 20)))?.limit_kmh, 50, 'a road without a usable limit is not there: the nearest one with a limit is')
  t.equal(map.limitAt(...latLon(at(100, 300)))?.limit_kmh, Infinity, 'maxspeed=none: no limit')
  t.equal(map.limitAt(...latLon(at(100, 200))), undefined, 'an untagged road is off the map')
})
const latLon = ([lon, lat]: [number, number]): [number, number] => [lat, lon]

t.test('loadRoadMap reads a file; unreadable and unparsable files are UBIQ_ROAD_MAP_INVALID naming the path', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-roads-'))
  const file = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name))
  const good = file('good.geojson', JSON.stringify(collection(road(50, at(0, 0), at(200, 0)))))
  t.equal((await loadRoadMap(good)).limitAt(LAT, LON + 0.001)?.limit_kmh, 50)
  await t.rejects(loadRoadMap(join(dir, 'missing.geojson')), { code: 'UBIQ_ROAD_MAP_INVALID', message: /^cannot read the road map .*missing.geojson: ENOENT/ })
  await t.rejects(loadRoadMap(file('bad.geojson', '{"type":')), { code: 'UBIQ_ROAD_MAP_INVALID', message: /^road map .*bad.geojson is not JSON/ })
  await t.rejects(loadRoadMap(file('points.geojson', JSON.stringify(collection(42)))), new codes.UBIQ_ROAD_MAP_INVALID(`road map ${join(dir, 'points.geojson')}: feature 0: not a GeoJSON Feature`))
})

t.test('limitAt: the nearest road within the match distance; along the heading at a junction', async (t) => {
  // A 50 street east–west and an 80 arterial north–south crossing at (0, 0), each 2 km long.
  const map = roadMap(collection(road(50, at(-1000, 0), at(1000, 0)), road(80, at(0, -1000), at(0, 1000))))
  const near = map.limitAt(...latLon(at(10, 6)))!
  t.equal(near.limit_kmh, 50, 'nearest by distance: 6 m from the street, 10 m from the arterial')
  t.ok(Math.abs(near.distance_m - 6) < 0.01, `${near.distance_m} m`)
  t.equal(map.limitAt(...latLon(at(10, 6)), 0)?.limit_kmh, 80, 'heading north: the arterial')
  t.equal(map.limitAt(...latLon(at(10, 6)), 180)?.limit_kmh, 80, 'heading south: the arterial (roads are two-way)')
  t.equal(map.limitAt(...latLon(at(10, 6)), 90)?.limit_kmh, 50, 'heading east: the street')
  t.equal(map.limitAt(...latLon(at(5, 28)), 90)?.limit_kmh, 80, 'a heading does not beat a much nearer road')
  t.equal(map.limitAt(...latLon(at(600, 29)))?.limit_kmh, 50, 'within 30 m')
  t.equal(map.limitAt(...latLon(at(600, 31))), undefined, 'beyond 30 m: off the map')
  t.equal(map.limitAt(...latLon(at(1040, 0))), undefined, 'beyond the end of the street')
  t.equal(roadMap(collection(road(50, at(-1000, 0), at(1000, 0))), { maxMatch_m: 60 }).limitAt(...latLon(at(600, 50)))?.limit_kmh, 50, 'the match distance is configurable')
})

t.test('limitAt finds what a search of every road finds (the grid misses no cell)', async (t) => {
  const city = makeCity({ seed: 3 })
  const map = roadMap(cityGeoJson(city))
  fc.assert(fc.property(fc.nat(city.roads.length - 1), fc.double({ min: -0.1, max: 1.1, noNaN: true }), fc.double({ min: -40, max: 40, noNaN: true }), (i, along, off) => {
    const { a, b } = city.roads[i]!
    const dx = city.x[b]! - city.x[a]!, dy = city.y[b]! - city.y[a]!, len = Math.hypot(dx, dy)
    const x = city.x[a]! + along * dx - (off * dy) / len, y = city.y[a]! + along * dy + (off * dx) / len
    const truth_m = distanceToRoad_m(city, x, y)
    const { lat_deg, lon_deg } = toLatLon(city, x, y)
    const match = map.limitAt(lat_deg, lon_deg)
    // The city's flat projection and the map's local one differ by well under 0.1 m at these distances.
    if (Math.abs(truth_m - 30) < 0.1) return
    if (truth_m > 30) return match === undefined
    return match !== undefined && Math.abs(match.distance_m - truth_m) < 0.1
  }), { numRuns: 5000 })
  t.pass('5000 points near the roads of a city')
})

t.test('on the simulated city, noisy GPS fixes match the limit of the road driven for ≥ 95% of fixes', async (t) => {
  const city = makeCity({ seed: 1 })
  const map = roadMap(cityGeoJson(city))
  for (const persona of ['cautious', 'aggressive'] satisfies DrivingPersonaName[]) {
    const trips: TripTruth[] = []
    const places = choosePlaces(city, drivingPersonas.average, 21)
    const readings = [...driveVehicle(city, { persona, places, seed: 21 }, { startTs: Date.UTC(2026, 0, 5), days: 7, imuHz: 0 }, (trip) => trips.push(trip))]
    let fixes = 0, withHeading = 0, withoutHeading = 0
    for (const trip of trips) {
      // The road driven: the leg of the trip's route nearest to the fix (the car is on its route;
      // only where the route turns is this ambiguous, within the GPS error of the junction).
      const nodes = route(city, trip.fromNode, trip.toNode)
      const legs = nodes.slice(1).map((b, i) => ({ a: nodes[i]!, b, limit_kmh: roadBetween(city, nodes[i]!, b).limit_kmh }))
      for (const r of readings) {
        if (r.kind !== 'gps' || r.ts < trip.startTs || r.ts > trip.endTs) continue
        const { lat_deg, lon_deg, heading_deg } = r.body as { lat_deg: number; lon_deg: number; heading_deg?: number }
        const { x, y } = fromLatLon(city, lat_deg, lon_deg)
        const driven = legs.reduce((best, leg) => {
          const d = segmentDistance_m(city, leg.a, leg.b, x, y)
          return d < best.d ? { d, limit_kmh: leg.limit_kmh } : best
        }, { d: Infinity, limit_kmh: 0 })
        fixes++
        if (map.limitAt(lat_deg, lon_deg, heading_deg)?.limit_kmh === driven.limit_kmh) withHeading++
        if (map.limitAt(lat_deg, lon_deg)?.limit_kmh === driven.limit_kmh) withoutHeading++
      }
    }
    t.ok(fixes > 5000, `${persona}: ${fixes} fixes on ${trips.length} trips`)
    t.ok(withHeading / fixes >= 0.95, `${persona}: ${(100 * withHeading / fixes).toFixed(1)}% of fixes match the road driven (with heading)`)
    t.ok(withoutHeading / fixes >= 0.95, `${persona}: ${(100 * withoutHeading / fixes).toFixed(1)}% without heading`)
    t.ok(withHeading > withoutHeading, `the heading helps at junctions: ${withHeading - withoutHeading} fixes more match`)
  }
})

/** Distance from a local point to the road between junctions a and b, m. */
function segmentDistance_m(city: ReturnType<typeof makeCity>, a: number, b: number, px: number, py: number): number {
  const ax = city.x[a]!, ay = city.y[a]!, dx = city.x[b]! - ax, dy = city.y[b]! - ay
  const u = Math.max(0, Math.min(1, ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy)))
  return Math.hypot(px - ax - u * dx, py - ay - u * dy)
}
