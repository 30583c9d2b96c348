/**
 * A trip's route (#23 item 1): its policyholder's own, served with the trip's events on it and
 * drawn on the page as a line with pins; over XYZ tiles when MAP_TILES_URL names a tile server,
 * without one no tile request. Positions reach nobody else: another policyholder and an analyst
 * get 403.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { fleetCars, makeCity, makeFleet, runSimulation, type DeviceMessage } from '../edge-sim/index.ts'
import { deviceRegistry } from '../ingest/index.ts'
import { startServices, startTestPipeline } from '../test/harness.ts'
import { openBrowser } from '../test/browser.ts'
import { accessibilityProblems } from './page-test-helpers.ts'
import type { TripRoute } from './route.ts'

// A 1×1 PNG: what the tile server answers every tile with.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==', 'base64')

/** Web Mercator world pixels at zoom z (256-pixel tiles), computed here independently of the page. */
const project = (lat: number, lon: number, z: number) => {
  const s = Math.sin((lat * Math.PI) / 180), size = 256 * 2 ** z
  return { x: ((lon + 180) / 360) * size, y: (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * size }
}

t.test("a trip's route: the policyholder's own, with its events, over the tiles when there are any", async (t) => {
  const tiles: string[] = []
  const tileServer = createServer((req, res) => (tiles.push(req.url!), res.writeHead(200, { 'content-type': 'image/png', 'access-control-allow-origin': '*' }).end(PNG)))
  await new Promise<void>((resolve) => tileServer.listen(0, '127.0.0.1', resolve))
  t.teardown(() => tileServer.close())
  const tileUrl = `http://127.0.0.1:${(tileServer.address() as AddressInfo).port}`

  const services = await startServices(t)
  // The aggressive driver's car (the fleet cycles cautious, average, aggressive) on the city's roads, with 1 Hz GPS: its first trip, up to ignition off.
  const fleet = makeFleet(3, 11).slice(2)
  const aggressive = fleet[0]!
  const startTs = Date.now() - 3 * 3600_000
  const cars = fleetCars(fleet, makeCity(), startTs)
  const firstTrip: DeviceMessage[] = []
  for (const m of cars.devices[0]!.messages) {
    firstTrip.push(m)
    if (m.kind === 'status' && JSON.parse(m.payload).ignition_on === false) break
  }
  const withTiles = { mapTiles: { url: `${tileUrl}/{z}/{x}/{y}.png`, attribution: '© the test tiles' } }
  const devices = deviceRegistry(cars.registry)
  let pipeline = await startTestPipeline(t, services, [], 'ubiq_tripmap', { devices, ...withTiles })
  await (await runSimulation({ mqttUrl: services.mqttUrl, devices: [{ deviceId: aggressive.deviceId, messages: (function* () { yield* firstTrip })() }], startTs, speedup: Infinity })).done

  const own = pipeline.auth.issue({ role: 'policyholder', policyId: aggressive.policyId }, 3600_000)
  const get = (path: string, token: string) => fetch(`${pipeline.url}${path}`, { headers: { authorization: `Bearer ${token}` } })
  let trip: { from: string; events: unknown[] } | undefined
  while (!trip) {
    [trip] = ((await (await get(`/api/v1/policies/${aggressive.policyId}/trips`, own)).json()) as { trips: { from: string; events: unknown[] }[] }).trips
    if (!trip) await new Promise((r) => setTimeout(r, 100))
  }
  const path = `/api/v1/policies/${aggressive.policyId}/trips/${trip.from}/route`

  const asked = performance.now()
  const res = await get(path, own)
  t.equal(res.status, 200, 'the policyholder reads their own trip\'s route')
  const body = await res.text()
  const route = JSON.parse(body) as TripRoute
  t.comment(`the route: ${route.points.length} points of a ${((Date.parse(route.to) - Date.parse(route.from)) / 60_000).toFixed(1)} min trip, ${(body.length / 1024).toFixed(1)} KiB, answered in ${(performance.now() - asked).toFixed(0)} ms`)
  t.ok(route.points.length > 100 && route.points.length <= 500, `the trip's fixes, at most 500: ${route.points.length}`)
  t.same(route.points.map((p) => p.t), route.points.map((p) => p.t).sort(), 'in time order')
  t.ok(trip.events.length > 0, 'the aggressive driver\'s trip has events')
  t.equal(route.events.length, trip.events.length, 'each of the trip\'s events')
  t.ok(route.events.every((e) => e.lat !== undefined && e.lon !== undefined), 'each at a position: the trip has fixes')
  t.same(route.tiles, withTiles.mapTiles, 'the tile source the page draws under the route')
  const other = 'another-policy'
  t.equal((await get(path, pipeline.auth.issue({ role: 'policyholder', policyId: other }, 60_000))).status, 403, 'another policyholder: 403')
  const analyst = await get(path, pipeline.auth.issue({ role: 'analyst' }, 60_000))
  t.equal(analyst.status, 403, 'an analyst: 403, positions never reach analysts')
  t.match(await analyst.json(), { error: 'forbidden', message: /policyholder/ })
  t.equal((await get(`/api/v1/policies/${aggressive.policyId}/trips/2020-01-01T00:00:00.000Z/route`, own)).status, 404, 'no such trip: 404')

  const { page, newPage, errors } = await openBrowser(t)
  await page.setViewportSize({ width: 390, height: 844 })
  await page.goto(`${pipeline.url}/#token=${own}`)
  await page.locator('#trip-map polyline.route').waitFor()
  t.equal(await page.locator('#trip-map polyline.route').evaluate((l) => l.getAttribute('points')!.split(' ').length), route.points.length, 'the route as a line, a point a fix')
  t.same(await page.locator('#trip-map circle.pin title').allTextContents(), await page.evaluate(async (types) => {
    const { eventName } = await import('/assets/words.js' as string) as { eventName(type: string): string }
    return types.map(eventName)
  }, route.events.map((e) => e.type)), 'a pin per event, titled in words')
  const box = await page.locator('#trip-map svg').boundingBox()
  t.ok(box!.x >= 0 && box!.x + box!.width <= 390, 'the map fits a phone\'s screen')
  t.same(await accessibilityProblems(page), [], 'no serious or critical WCAG 2.1 AA violation with the route and its tiles at 390×844')
  t.equal(await page.locator('#trip-map-attribution').textContent(), '© the test tiles', 'the tiles\' attribution')
  // The tiles: those of the map's zoom covering the route, fetched from the tile server.
  const zoom = Number(await page.locator('#trip-map svg').getAttribute('data-zoom'))
  const hrefs = await page.locator('#trip-map image.tile').evaluateAll((is) => is.map((i) => i.getAttribute('href')!))
  const needed = [...new Set(route.points.map((p) => project(p.lat, p.lon, zoom)).map(({ x, y }) => `/${zoom}/${Math.floor(x / 256)}/${Math.floor(y / 256)}.png`))]
  t.ok(needed.every((n) => hrefs.includes(`${tileUrl}${n}`)), `every tile under the route is drawn: ${needed.join(' ')}`)
  const extent = (z: number) => {
    const xy = route.points.map((p) => project(p.lat, p.lon, z))
    return [Math.max(...xy.map((p) => p.x)) - Math.min(...xy.map((p) => p.x)), Math.max(...xy.map((p) => p.y)) - Math.min(...xy.map((p) => p.y))]
  }
  t.ok(extent(zoom)[0]! <= 600 && extent(zoom)[1]! <= 360 && (zoom === 18 || extent(zoom + 1)[0]! > 540 || extent(zoom + 1)[1]! > 324), `zoom ${zoom} is the largest that fits the route in the map`)
  await page.waitForFunction((n) => [...document.querySelectorAll('#trip-map image.tile')].length === n, hrefs.length)
  while (hrefs.some((h) => !tiles.includes(h.slice(tileUrl.length)))) await new Promise((r) => setTimeout(r, 50))
  t.ok(hrefs.every((h) => /^\/\d+\/\d+\/\d+\.png$/.test(h.slice(tileUrl.length))), 'XYZ tiles')

  // Without MAP_TILES_URL: the route alone, and no tile request.
  await pipeline.stop()
  pipeline = await startTestPipeline(t, services, [], 'ubiq_tripmap', { devices })
  const tilesAsked = tiles.length
  const plain = await newPage()
  await plain.goto(`${pipeline.url}/#token=${pipeline.auth.issue({ role: 'policyholder', policyId: aggressive.policyId }, 3600_000)}`)
  await plain.locator('#trip-map polyline.route').waitFor()
  t.equal(await plain.locator('#trip-map circle.pin').count(), route.events.length, 'the pins, on the route alone')
  t.equal(await plain.locator('#trip-map image').count(), 0, 'no tile')
  t.equal(await plain.locator('#trip-map-attribution').count(), 0, 'and no attribution')
  t.equal(tiles.length, tilesAsked, 'no tile request')

  // Once raw_positions' retention has dropped the fixes (here dropped at once; DROP SERIES names no
  // retention policy), the coarse cells the trip keeps stand for its route.
  await fetch(`${services.influxUrl}/query?${new URLSearchParams({ db: 'ubiq_tripmap', q: `DROP SERIES FROM "gps" WHERE device_id = '${aggressive.deviceId}'` })}`, { method: 'POST' })
  const coarse = (await (await get(path, own)).json()) as TripRoute
  t.same(coarse.points, [], 'no fix left')
  t.ok(coarse.cells && coarse.cells.length > 0, `the trip's cells instead: ${coarse.cells?.length}`)
  t.match(coarse.reason, /no longer kept/, 'and why')
  t.ok(coarse.cells!.every((c) => route.points.some((p) => p.lat >= c.south && p.lat <= c.north && p.lon >= c.west && p.lon <= c.east)), 'each cell one the route went through')
  const later = await newPage()
  await later.goto(`${pipeline.url}/#token=${own}`)
  await later.locator('#trip-map rect.cell').first().waitFor()
  t.equal(await later.locator('#trip-map rect.cell').count(), coarse.cells!.length, 'the page draws the cells')
  t.equal(await later.locator('#trip-map polyline').count(), 0, 'and no line')
  t.same(await accessibilityProblems(later), [], 'no serious or critical WCAG 2.1 AA violation with the cells')

  // No cell either, and location consent withdrawn for every purpose: the route says so.
  await fetch(`${services.influxUrl}/query?${new URLSearchParams({ db: 'ubiq_tripmap', q: `DROP SERIES FROM "trip_area" WHERE device_id = '${aggressive.deviceId}'` })}`, { method: 'POST' })
  const withdrawn = await fetch(`${pipeline.url}/api/v1/policies/${aggressive.policyId}/consents`, {
    method: 'POST', headers: { authorization: `Bearer ${own}`, 'content-type': 'application/json' }, body: JSON.stringify({ streams: ['gps'], purposes: ['pricing', 'coaching', 'claims'], granted: false }),
  })
  t.equal(withdrawn.status, 200, 'the policyholder withdraws consent to store their location')
  t.match(await (await get(path, own)).json(), { points: [], events: route.events.map(() => ({ lat: undefined })), reason: /consent to store your location \(gps\) is withdrawn/ }, 'no fix, no cell, and why')
  t.same(errors, [], 'no script errors on the page')
})
