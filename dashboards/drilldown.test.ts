/**
 * The analyst's drill-down into one policy (issue #7) against the real pipeline fed by edge-sim's
 * policies (a car, a wearable and a home each): the readings route gives, per device, stream and
 * field, the mean of what the devices published in each bucket (computed here from the published
 * messages, not through ubiq), never a position, to analysts only; the page charts the readings
 * with the events as markers and the scores with their reasons, in a real headless Chromium.
 */
import t from 'tap'
import { makeCity, makePolicies, policyDevices, policyRegistry, runSimulation, type DeviceMessage } from '../edge-sim/index.ts'
import { deviceRegistry, qualified, sensorsByKind } from '../ingest/index.ts'
import type { PolicyEvent, Score } from '../scoring/index.ts'
import { cells, downloadCsv, openBrowser, painted, screenshot } from '../test/browser.ts'
import { startServices, startTestPipeline, twoPolicies } from '../test/harness.ts'
import { stepFor, type PolicyReadings } from './drilldown.ts'
import { analystsOnly, fetchCsv, openApi, parseCsv, refused } from './page-test-helpers.ts'

const DAY = 86_400_000
const HOUR = 3600_000
/** Where a device is: what the route must never give. */
const positions = ['lat_deg', 'lon_deg', 'alt_m']
/** A score as the history route gives it. */
type ApiScore = { subject: string; value: number; model: string; window: { from?: string; to: string }; reasons: { text: string }[] }
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b))

/**
 * What InfluxDB holds of the published messages: a value per device, stream, field and time.
 * InfluxDB keeps one point per series and time, and a crash's IMU window repeats the times of
 * regular samples with other values: which of the two is stored depends on the order the writes
 * reach InfluxDB, which ingest does not fix. Such a point's value is NaN: its bucket is not compared.
 */
function storedValues(messages: readonly DeviceMessage[]): Map<string, { key: string; ts: number; value: number }> {
  const values = new Map<string, { key: string; ts: number; value: number }>()
  const put = (key: string, ts: number, value: number) => {
    const before = values.get(`${key}@${ts}`)
    values.set(`${key}@${ts}`, { key, ts, value: before && before.value !== value ? NaN : value })
  }
  for (const m of messages) {
    const { seq: _seq, ts, rate_hz, samples, ...fields } = JSON.parse(m.payload) as Record<string, unknown> & { ts: number }
    if (Array.isArray(samples)) {
      // A batch: sample i was taken at ts + i·1000/rate_hz (the device contract), one value per column.
      const columns = sensorsByKind.get(m.kind)!.batch!.columns
      ;(samples as number[][]).forEach((row, i) => row.forEach((v, j) => put(`${m.deviceId}/${m.kind}/${columns[j]!.name}`, Math.round(ts + (i * 1000) / Number(rate_hz)), v)))
    } else {
      for (const [field, v] of Object.entries(fields)) if (typeof v === 'number') put(`${m.deviceId}/${m.kind}/${field}`, ts, v)
    }
  }
  return values
}

/** Per device/stream/field but positions, the mean of the stored values in each bucket of [from, to), as [bucket start, mean]. */
function expectedMeans(stored: Map<string, { key: string; ts: number; value: number }>, from: number, to: number, step: number): Map<string, [number, number][]> {
  const sums = new Map<string, Map<number, { sum: number; n: number }>>()
  for (const { key, ts, value } of stored.values()) {
    if (ts < from || ts >= to || positions.includes(key.split('/')[2]!)) continue
    const bucket = Math.floor(ts / step) * step
    const buckets = sums.get(key) ?? sums.set(key, new Map()).get(key)!
    const b = buckets.get(bucket) ?? buckets.set(bucket, { sum: 0, n: 0 }).get(bucket)!
    b.sum += value
    b.n++
  }
  return new Map([...sums].map(([key, buckets]) => [key, [...buckets].sort(([a], [b]) => a - b).map(([time, b]) => [time, b.sum / b.n] as [number, number])]))
}

t.test('the drill-down: a policy\'s readings, events and scores, as JSON, CSV and a page', async (t) => {
  const services = await startServices(t)
  // Two days that ended yesterday: in the page's last 7 days.
  const { policies, start, devices, policy, other } = twoPolicies()
  const mine = devices.filter((d) => d.policyId === policy).flatMap((d) => d.sent)
  const myValues = storedValues(mine)
  const pipeline = await startTestPipeline(t, services, [], 'ubiq_drilldown', { devices: deviceRegistry(policyRegistry(policies)), reorderWindowMs: 100 })
  const url = pipeline.url
  const analyst = pipeline.auth.issue({ role: 'analyst' }, 3600_000)
  const get = (path: string, tok: string | undefined = analyst) => fetch(`${url}${path}`, tok ? { headers: { authorization: `Bearer ${tok}` } } : {})
  const json = async <T>(path: string) => (await (await get(path)).json()) as T

  const scores: Score[] = [], events: PolicyEvent[] = []
  pipeline.scores$.subscribe((s) => s.policyId === policy && scores.push(s))
  pipeline.events$.subscribe((e) => e.policyId === policy && events.push(e))
  const run = await runSimulation({ mqttUrl: services.mqttUrl, devices: devices.map((d) => ({ deviceId: d.deviceId, messages: d.sent.values() as unknown as Generator<DeviceMessage> })), startTs: start, speedup: Infinity })
  await run.done

  // Everything published is in InfluxDB (a batch is a line per sample), then scoring has caught up.
  const kinds = [...new Set(devices.flatMap((d) => d.sent.map((m) => m.kind)))]
  const points = new Set([...storedValues(devices.flatMap((d) => d.sent)).keys()].map((k) => k.replace(/\/[^/@]+@/, '@'))).size
  const stored = async () => (await services.influxql('ubiq_drilldown', `SELECT count(seq) FROM ${kinds.map(qualified).join(', ')}`)).reduce((n, s) => n + Number(s.values[0]![1]), 0)
  while ((await stored()) < points) await new Promise((r) => setTimeout(r, 200))
  await new Promise((r) => setTimeout(r, 1000)) // the reorder window and the last micro-batches
  const scored = (b: { scores: unknown[] }) => b.scores.length >= scores.length
  for (let b = await json<{ scores: unknown[]; events: unknown[] }>(`/api/v1/policies/${policy}/scores?limit=1000`); !scored(b); b = await json(`/api/v1/policies/${policy}/scores?limit=1000`)) await new Promise((r) => setTimeout(r, 200))
  for (let b = await json<{ events: unknown[] }>(`/api/v1/policies/${policy}/events?limit=1000`); b.events.length < events.length; b = await json(`/api/v1/policies/${policy}/events?limit=1000`)) await new Promise((r) => setTimeout(r, 200))
  t.ok(events.some((e) => e.type === 'crash') && events.some((e) => e.subject === 'home'), `${events.length} events, a crash and a home one among them`)
  t.ok(new Set(scores.map((s) => s.subject)).size === 3, `${scores.length} scores of every subject`)

  await t.test('the readings: per device, stream and field, the mean per bucket of what the devices published', async (t) => {
    for (const [name, from, to] of [['the two days', start, start + 2 * DAY], ['an hour of driving', Math.floor(mine.find((m) => m.kind === 'obd')!.ts / HOUR) * HOUR, Math.floor(mine.find((m) => m.kind === 'obd')!.ts / HOUR) * HOUR + HOUR]] as const) {
      const body = await json<PolicyReadings>(`/api/v1/policies/${policy}/readings?from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`)
      const step = name === 'the two days' ? 300_000 : 5000
      t.equal(body.intervalMs, step, `${name}: the shortest step within 1000 buckets`)
      t.ok(body.series.every((s) => s.points.length <= 1000), `${name}: at most 1000 points a field`)
      const expected = expectedMeans(myValues, from, to, step)
      t.same(body.series.map((s) => `${s.deviceId}/${s.kind}/${s.field}`), [...expected.keys()].sort(), `${name}: every numeric field of the policy's devices with readings, no other`)
      const off = body.series.filter((s) => {
        const want = expected.get(`${s.deviceId}/${s.kind}/${s.field}`)!
        return want.length !== s.points.length || s.points.some(([time, mean], i) => time !== want[i]![0] || (!Number.isNaN(want[i]![1]) && !close(mean, want[i]![1])))
      })
      t.same(off.map((s) => s.field), [], `${name}: the buckets and their means`)
      const unsure = [...expected.values()].flat().filter(([, mean]) => Number.isNaN(mean)).length
      t.ok(unsure < [...expected.values()].flat().length / 100, `${name}: ${unsure} buckets not compared (a crash window's repeated times)`)
    }
    const all = await json<PolicyReadings>(`/api/v1/policies/${policy}/readings?from=${new Date(start).toISOString()}&to=${new Date(start + 2 * DAY).toISOString()}`)
    t.same(all.devices.map((d) => d.deviceId).sort(), devices.filter((d) => d.policyId === policy).map((d) => d.deviceId).sort(), "the policy's devices")
    t.ok(['obd', 'gps', 'imu', 'hr', 'climate'].every((k) => all.series.some((s) => s.kind === k)), 'car, wearable and home readings')
  })

  await t.test('never a position', async (t) => {
    const car = devices.find((d) => d.policyId === policy && d.device === 'vehicle')!.deviceId
    const [stored] = await services.influxql('ubiq_drilldown', `SELECT count(lat_deg) FROM ${qualified('gps')} WHERE device_id = '${car}'`)
    t.ok(Number(stored!.values[0]![1]) > 0, 'InfluxDB holds the car\'s positions')
    const period = `from=${new Date(start).toISOString()}&to=${new Date(start + 2 * DAY).toISOString()}`
    const gps = await json<PolicyReadings>(`/api/v1/policies/${policy}/readings?${period}&kind=gps`)
    t.same(gps.series.map((s) => s.field), ['accuracy_m', 'heading_deg', 'speed_kmh'], 'gps: its other fields only')
    const csv = await (await get(`/api/v1/policies/${policy}/readings?${period}&format=csv`)).text()
    t.notOk(positions.some((p) => csv.includes(p)), 'none in the CSV')
    for (const field of positions) {
      const res = await get(`/api/v1/policies/${policy}/readings?field=${field}`)
      t.equal(res.status, 400, `field=${field}: 400`)
      t.match(await res.json(), { error: 'bad_request', message: /position/ })
    }
  })

  await t.test('filters and CSV', async (t) => {
    const period = `from=${new Date(start).toISOString()}&to=${new Date(start + 2 * DAY).toISOString()}`
    const car = devices.find((d) => d.policyId === policy && d.device === 'vehicle')!.deviceId
    const all = await json<PolicyReadings>(`/api/v1/policies/${policy}/readings?${period}`)
    const one = await json<PolicyReadings>(`/api/v1/policies/${policy}/readings?${period}&device=${car}&kind=obd&field=speed_kmh`)
    t.same(one.series, all.series.filter((s) => s.deviceId === car && s.kind === 'obd' && s.field === 'speed_kmh'), 'one device, stream and field')
    const speeds = await json<PolicyReadings>(`/api/v1/policies/${policy}/readings?${period}&field=speed_kmh`)
    t.same(speeds.series.map((s) => s.kind), ['gps', 'obd'], 'a field in every stream that has it')
    const csv = await fetchCsv(t, url, analyst, `/api/v1/policies/${policy}/readings?${period}&device=${car}&kind=obd&field=speed_kmh&format=csv`, `readings-${policy}-${car}-obd-speed_kmh`)
    t.same(csv, [['time', 'device_id', 'kind', 'field', 'mean'], ...one.series[0]!.points.map(([time, mean]) => [new Date(time).toISOString(), car, 'obd', 'speed_kmh', String(Number(mean.toPrecision(12)))])], 'the CSV: a line per point')
    const whole = parseCsv(await (await get(`/api/v1/policies/${policy}/readings?${period}&format=csv`)).text())
    t.equal(whole.length - 1, all.series.reduce((n, s) => n + s.points.length, 0), 'every point of every field')
  })

  await t.test('analysts only; bad queries are named', async (t) => {
    const own = pipeline.auth.issue({ role: 'policyholder', policyId: policy }, 3600_000)
    const path = `/api/v1/policies/${policy}/readings`
    // Not even to the policyholder's own token,
    await analystsOnly(t, url, [path], own)
    t.equal((await get(`/api/v1/policies/${policy}/scores`, own)).status, 200, 'while the policy\'s scores are open to it')
    const otherCar = devices.find((d) => d.policyId === other && d.device === 'vehicle')!.deviceId
    await refused(t, url, analyst, [
      [`${path}?colour=red`, /additional properties \(colour\)/],
      [`${path}?format=xml`, /format/],
      [`${path}?from=yesterday`, /from/],
      [`${path}?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z`, /before/],
      [`${path}?from=2026-01-01T00:00:00Z&to=2026-03-01T00:00:00Z`, /31 days/],
      [`${path}?device=${otherCar}`, /not registered to this policy/],
      [`${path}?kind=gps&field=hr_bpm`, /no numeric field hr_bpm in stream gps/],
      [`${path}?field=nothing`, /no numeric field nothing/],
    ])
    await refused(t, url, analyst, [['/api/v1/policies/pol-nobody/readings', /no policy pol-nobody in the device registry/]], 404, 'unknown_policy')
    const route = (await openApi(url))('/api/v1/policies/{policy}/readings')
    t.same(route.parameters.sort(), ['device', 'field', 'format', 'from', 'kind', 'policy', 'to'], 'in the OpenAPI document')
    t.match(route.description, /Positions \(lat_deg, lon_deg, alt_m\) are never served/, 'which says positions are never served')
  })

  t.equal(stepFor(0, 31 * DAY), 3600_000, 'a month: hourly buckets')
  t.equal(stepFor(999, 1000 * 1000 + 999), 2000, 'buckets cut by the period count')

  await t.test('the page charts the readings with events as markers, the scores with their reasons', async (t) => {
    const { page, newPage, errors } = await openBrowser(t)
    await page.goto(`${url}/analyst/policy?period=7d#token=${analyst}&policy=${policy}`)
    await page.locator('body[data-loaded]').waitFor()
    t.equal(new URL(page.url()).hash, `#policy=${policy}`, 'the token leaves the address bar, the policy stays')
    for (const id of ['chart-readings', 'chart-scores']) t.ok((await painted(page, id)) > 0, `${id}: drawn`)
    // One format for times everywhere, 24-hour with the zone named (#23: 12-hour charts, local time in the status line).
    t.match(await page.locator('#status').textContent(), new RegExp(`^${policy}, \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2} UTC – now · updated \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2} UTC, every 5 s$`), 'the period shown, in UTC, live until now (#23)')
    await page.locator('#chart-scores .u-over').hover()
    t.match(await page.locator('#chart-scores .u-legend .u-series').first().locator('.u-value').textContent(), /^\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC$/, "the chart's cursor time: 24-hour, UTC")

    // The page's period (body[data-from], body[data-to]), and the API's answers for it.
    const period = await page.evaluate(() => ({ from: document.body.dataset.from!, to: document.body.dataset.to! }))
    const q = new URLSearchParams(period)
    const readings = await json<PolicyReadings>(`/api/v1/policies/${policy}/readings?${q}`)
    const { scores: apiScores } = await json<{ scores: ApiScore[] }>(`/api/v1/policies/${policy}/scores?${q}&limit=1000`)
    const { events: apiEvents } = await json<{ events: { from: string; to: string; type: string; subject: string; deviceId: string; urgent: boolean; evidence: Record<string, unknown> }[] }>(`/api/v1/policies/${policy}/events?${q}&limit=1000`)
    const time = (s: string) => `${s.slice(0, 10)} ${s.slice(11, 16)}`

    const key = (s: { deviceId: string; kind: string; field: string }) => `${s.deviceId}/${s.kind}/${s.field}`
    t.same(await page.locator('#field option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value)), readings.series.map(key), 'a field to pick for every series')
    const busiest = readings.series.reduce((a, b) => (b.points.length > a.points.length ? b : a))
    t.equal(await page.locator('#field').inputValue(), key(busiest), 'the busiest first')
    const rows = (s: PolicyReadings['series'][number]) => s.points.map(([ts, x]) => [new Date(ts).toISOString().replace('T', ' ').slice(0, 19), String(Number(x.toPrecision(4)))])
    t.same(await cells(page, 'readings-table'), rows(busiest), 'the readings table: its buckets and means')
    const hr = readings.series.find((s) => s.field === 'hr_bpm')!
    await page.locator('#field').selectOption(key(hr))
    t.same(await cells(page, 'readings-table'), rows(hr), 'the table follows the field picked')
    t.ok((await painted(page, 'chart-readings')) > 0, 'and so does the chart')

    t.ok(apiScores.length > 0 && apiEvents.length > 0, `${apiScores.length} scores, ${apiEvents.length} events in the period`)
    t.same(await cells(page, 'scores-table'), apiScores.map((s) => [time(s.window.to), s.subject, s.value.toFixed(1), s.model, s.reasons.length ? s.reasons.map((r) => r.text).join('; ') : 'like a typical policyholder']), 'scores with their reasons in plain words')
    t.ok(apiScores.some((s) => s.reasons.length > 0), 'some with reasons')
    const eventRows = await cells(page, 'events-table')
    t.same(eventRows.map((r) => r.slice(0, 2).concat(r.slice(3, 5))), apiEvents.map((e) => [time(e.from), time(e.to), e.subject, e.deviceId]), 'events with their times, cover and device')
    t.ok(eventRows.every((r) => !r[2]!.includes('_')), 'each event\'s type in words')
    // Evidence with its units: "peak 6.4 m/s², threshold 3.5 m/s², for 2 s, samples 3 …" (#23: it was "peak 6.361, threshold 3.5").
    const units = (e: { evidence: Record<string, unknown> }) => String(e.evidence.unit).replace(/[/²]/g, '\\$&')
    const withUnits = apiEvents.filter((e) => e.evidence.unit !== 's' && e.evidence.threshold !== 0)
    t.ok(withUnits.length > 0 && withUnits.every((e) => typeof e.evidence.unit === 'string'), 'the API gives each event\'s unit')
    t.ok(apiEvents.every((e, i) => e.evidence.unit === 's' || e.evidence.threshold === 0 || new RegExp(`^peak [\\d.]+ ${units(e)}, threshold [\\d.]+ ${units(e)}`).test(eventRows[i]![5]!)), `evidence with units: ${eventRows[0]![5]}`)
    t.equal(await page.locator('#events-table tr.urgent').count(), apiEvents.filter((e) => e.urgent).length, 'urgent events stand out')

    // CSV: the server's, for what the page shows.
    const r = await downloadCsv(page, 'readings')
    t.equal(r.name, `readings-${policy}-${hr.deviceId}-${hr.kind}-hr_bpm.csv`)
    t.equal(r.text, await (await get(`/api/v1/policies/${policy}/readings?${q}&device=${hr.deviceId}&kind=${hr.kind}&field=hr_bpm&format=csv`)).text(), "the readings download is the server's CSV of the field picked")
    // The scores and events as the server's CSV of the policy's history (#23: the page made its own).
    const s = await downloadCsv(page, 'scores')
    t.equal(s.name, `scores-${policy}.csv`)
    const scoreCsv = parseCsv(s.text)
    t.same(scoreCsv.slice(1).map((r) => [r[1], r[2], r[3], r[4], r[9]]), apiScores.map((x) => [x.window.to, x.subject, String(x.value), x.model, x.reasons.map((y) => y.text).join(' | ')]), 'the scores CSV')
    t.equal(s.text, await (await get(`/api/v1/policies/${policy}/scores?${q}&limit=1000&format=csv`)).text(), 'is the server\'s')
    const e = await downloadCsv(page, 'events')
    t.equal(e.name, `events-${policy}.csv`)
    t.same(parseCsv(e.text).slice(1).map((r) => [r[0], r[1], r[2], r[3], r[4]]), apiEvents.map((x) => [x.from, x.to, x.subject, x.type, x.deviceId]), 'the events CSV')

    await page.locator('#field').selectOption(key(readings.series.find((x) => x.kind === 'obd' && x.field === 'speed_kmh')!))
    await screenshot(page, 'policy')

    // Time controls: periods shorter than a day, and the charts fitted to the data (#23: a week's axis, a sliver of data).
    // The page loads again every 5 s: a load begun before the pick is dropped by it, so the first
    // load drawn after the pick is the pick's.
    const loaded = async (value: string) => {
      await page.locator('#period').selectOption(value)
      const n = Number(await page.evaluate(() => document.body.dataset.loaded))
      await page.waitForFunction((n) => Number(document.body.dataset.loaded) > n, n)
      return page.evaluate(() => ({ ...document.body.dataset }) as Record<string, string>)
    }
    const hour = await loaded('1h')
    t.equal(Date.parse(hour.to!) - Date.parse(hour.from!), 3600_000, 'the last hour')
    t.same([hour.xFrom, hour.xTo], [hour.from, hour.to], 'the charts span the period')
    const fit = await loaded('fit')
    const fq = new URLSearchParams({ from: fit.from!, to: fit.to! })
    const [fr, { scores: fs }, { events: fe }] = await Promise.all([json<PolicyReadings>(`/api/v1/policies/${policy}/readings?${fq}`),
      json<{ scores: ApiScore[] }>(`/api/v1/policies/${policy}/scores?${fq}&limit=1000`), json<{ events: { from: string; to: string }[] }>(`/api/v1/policies/${policy}/events?${fq}&limit=1000`)])
    const times = [...fr.series.flatMap((x) => x.points.map(([ms]) => ms)), ...fs.map((x) => Date.parse(x.window.to)), ...fe.flatMap((x) => [Date.parse(x.from), Date.parse(x.to)])]
    t.equal(Date.parse(fit.to!) - Date.parse(fit.from!), 31 * DAY, 'fit to the data: over the longest period')
    t.same([fit.xFrom, fit.xTo], [new Date(Math.min(...times)).toISOString(), new Date(Math.max(...times)).toISOString()], 'the charts from the first to the last reading, score or event')
    await loaded('7d')

    // Another policy, named in the page: its own readings.
    await page.locator('#policy').fill(other)
    await page.locator('#policy').dispatchEvent('change')
    await page.locator('#title', { hasText: other }).waitFor()
    const before = Number(await page.evaluate(() => document.body.dataset.loaded))
    await page.waitForFunction((n) => Number(document.body.dataset.loaded) > n, before)
    t.ok((await page.locator('#field option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value))).every((v) => v.includes('-000002/')), "the other policy's devices only")

    // From the portfolio: the lowest scores lead here.
    const portfolio = await newPage()
    await portfolio.goto(`${url}/analyst#token=${analyst}`)
    await portfolio.locator('body[data-loaded]').waitFor()
    await portfolio.locator(`#drill a[href="/analyst/policy#policy=${policy}"]`).click()
    await portfolio.locator('body[data-loaded]').waitFor()
    t.equal(await portfolio.locator('#title').textContent(), policy, "the portfolio's lowest scores drill down to the policy")

    const stranger = await newPage()
    await stranger.goto(`${url}/analyst/policy#token=${pipeline.auth.issue({ role: 'policyholder', policyId: policy }, 60_000)}&policy=${policy}`)
    await stranger.locator('#signin').waitFor()
    t.equal(await stranger.locator('#status').textContent(), 'not an analyst token')
    t.equal(await stranger.locator('.uplot').count(), 0, 'no chart without an analyst token')
    t.same(errors, [], 'no script errors on the pages')
  })
})
