import t from 'tap'
import { distanceToRoad_m, fromLatLon, makeCity, nodeAt, roadBetween, route, routeLength_m, toLatLon } from './roads.ts'

const city = makeCity({ seed: 7 })
const n = city.x.length

t.test('the same seed builds the same city; another seed another', async (t) => {
  const again = makeCity({ seed: 7 })
  t.same([...again.x], [...city.x])
  t.same(again.roads, city.roads)
  t.same([...again.lights], [...city.lights])
  t.not([...makeCity({ seed: 8 }).x].join(), [...city.x].join())
})

t.test('urban streets, arterials and a highway with their limits; the highway is reached only by arterials', async (t) => {
  const limits = new Map(city.roads.map((r) => [r.road, r.limit_kmh]))
  t.same(Object.fromEntries(limits), { urban: 50, arterial: 80, highway: 120 })
  const onHighway = (node: number) => node < city.cols
  for (const r of city.roads) {
    if (r.road === 'highway') t.ok(onHighway(r.a) && onHighway(r.b), 'highway roads run along the bypass')
    else if (onHighway(r.a) || onHighway(r.b)) t.equal(r.road, 'arterial', 'only arterials lead to the highway')
  }
  t.equal(city.roads.filter((r) => r.tunnel).length, 2, 'a tunnel of two highway sections')
  t.ok(city.roads.filter((r) => r.tunnel).every((r) => r.road === 'highway'))
  t.equal([...city.lights.slice(0, city.cols)].filter(Boolean).length, 0, 'no traffic lights on the highway')
  const share = [...city.lights].filter(Boolean).length / n
  t.ok(share > 0.3 && share < 0.6, `${(share * 100).toFixed(0)}% of junctions have lights`)
  // Blocks are about 500 m, jittered a little so that streets bend.
  const town = city.roads.filter((r) => r.road === 'urban').map((r) => r.length_m)
  t.ok(Math.min(...town) > 400 && Math.max(...town) < 600, 'town blocks 400–600 m')
})

t.test('positions are around central London and convert both ways', async (t) => {
  for (let i = 0; i < n; i += 17) {
    const { lat_deg, lon_deg } = toLatLon(city, city.x[i]!, city.y[i]!)
    t.ok(Math.abs(lat_deg - 51.5074) < 0.06 && Math.abs(lon_deg + 0.1278) < 0.09, `node ${i} at ${lat_deg.toFixed(4)}, ${lon_deg.toFixed(4)}`)
    const back = fromLatLon(city, lat_deg, lon_deg)
    t.ok(Math.hypot(back.x - city.x[i]!, back.y - city.y[i]!) < 0.001, 'round trip within a millimetre')
  }
})

t.test('every junction is reachable, along roads, and route length adds up', async (t) => {
  const from = nodeAt(city, 5, 9)
  const wrong: string[] = []
  for (let to = 0; to < n; to++) {
    const path = route(city, from, to)
    if (path[0] !== from || path.at(-1) !== to) wrong.push(`${from}→${to}: ends`)
    let m = 0
    // roadBetween throws for junctions that are not neighbours.
    for (let i = 1; i < path.length; i++) m += roadBetween(city, path[i - 1]!, path[i]!).length_m
    if (Math.abs(m - routeLength_m(city, from, to)) > 1e-6) wrong.push(`${from}→${to}: length`)
  }
  t.same(wrong, [], `${n} routes`)
  t.same(route(city, from, from), [from])
})

t.test('the highway is the quick way across town', async (t) => {
  const path = route(city, nodeAt(city, 3, 1), nodeAt(city, 13, 1))
  const classes = path.slice(1).map((b, i) => roadBetween(city, path[i]!, b).road)
  t.ok(classes.filter((c) => c === 'highway').length >= 8, `${classes.join(' ')}`)
})

t.test('distance to the road graph', async (t) => {
  t.equal(distanceToRoad_m(city, city.x[100]!, city.y[100]!), 0, 'a junction is on the road')
  const [a, b] = [nodeAt(city, 6, 6), nodeAt(city, 7, 7)]
  const mid = distanceToRoad_m(city, (city.x[a]! + city.x[b]!) / 2, (city.y[a]! + city.y[b]!) / 2)
  t.ok(mid > 150 && mid < 350, `the middle of a block is ${mid.toFixed(0)} m from the nearest street`)
})
