/**
 * The analyst's portfolio (issue #7) against the real pipeline fed by edge-sim: the aggregate
 * routes give what scoring and pricing produced (the latest score distribution, premium changes
 * per bucket, events per type and hour of day), as JSON and as CSV, to analysts only; the page
 * charts them with uPlot in a real headless Chromium and shows the same numbers.
 */
import t from 'tap'
import { makeFleet, runFleet } from '../edge-sim/index.ts'
import { examplePlans, loadPlans, type PremiumAdjustment } from '../pricing/index.ts'
import type { PolicyEvent, Score, Trip } from '../scoring/index.ts'
import { firstMatch, startServices, startTestPipeline } from '../test/harness.ts'
import { cells, downloadCsv, openBrowser, painted, untilCells } from '../test/browser.ts'
import { analystsOnly, fetchCsv, openApi, parseCsv, refused } from './page-test-helpers.ts'
import { distributionOf, eventTable, type EventsByHour, type PremiumChanges, type ScoreDistribution } from './portfolio.ts'
import { csvNumber, toCsv } from './tables.ts'

const HOUR = 3600_000
const until = async (ok: () => boolean) => {
  while (!ok()) await new Promise((r) => setTimeout(r, 20))
}
const close = (a: number | null, b: number | null) => a !== null && b !== null && Math.abs(a - b) < 1e-9

t.test('score bins: 10 points wide, 100 in the last; median and mean; the lowest first', async (t) => {
  const cases: [string, number[], number[], number | null, number | null][] = [
    ['none', [], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], null, null],
    ['one', [42], [0, 0, 0, 0, 1, 0, 0, 0, 0, 0], 42, 42],
    ['edges', [0, 9.99, 10, 89.9, 90, 100], [2, 1, 0, 0, 0, 0, 0, 0, 1, 2], 49.95, 49.98166666666667],
    ['odd count', [70, 10, 55], [0, 1, 0, 0, 0, 1, 0, 1, 0, 0], 55, 45],
  ]
  for (const [name, values, counts, median, mean] of cases) {
    const d = distributionOf('home', values.map((value, i) => ({ policyId: `pol-${i}`, value })))
    t.same(d.bins.map((b) => b.count), counts, `${name}: counts`)
    t.same(d.bins.map((b) => [b.from, b.to]), Array.from({ length: 10 }, (_, i) => [i * 10, i * 10 + 10]), `${name}: bins`)
    t.equal(d.n, values.length)
    t.equal(d.median, median, `${name}: median`)
    t.ok(mean === null ? d.mean === null : close(d.mean, mean), `${name}: mean`)
  }
  const many = distributionOf('driving', Array.from({ length: 12 }, (_, i) => ({ policyId: `pol-${String(i).padStart(2, '0')}`, value: 50 - (i % 6) })))
  t.same(many.lowest.map((x) => `${x.policyId} ${x.value}`), ['pol-05 45', 'pol-11 45', 'pol-04 46', 'pol-10 46', 'pol-03 47', 'pol-09 47', 'pol-02 48', 'pol-08 48', 'pol-01 49', 'pol-07 49'], 'the ten lowest, ties by policy')
})

t.test('CSV: a header line, CRLF, cells quoted where they need it', async (t) => {
  t.equal(toCsv({ columns: ['a', 'b'], rows: [[1, 'x,y'], [null, 'say "hi"']] }), '\ufeffa,b\r\n1,"x,y"\r\n,"say ""hi"""\r\n')
  t.equal(toCsv(eventTable({ from: '', to: '', zone: 'UTC', types: [], hours: [{ hour: 0, counts: {} }] })), '\ufeffhour\r\n0\r\n', 'no event types: the hours alone')
})

t.test('the portfolio: score distribution, premium changes and events by hour, as JSON, CSV and a page', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(6, 23)
  // Premiums from the first trip: no minimum distance.
  const [plan] = loadPlans(examplePlans)
  const driving = { ...plan!.subjects.driving!, credibility: { exposure: 'distance_km' as const, full: 1000, minimum: 0 } }
  const pipeline = await startTestPipeline(t, services, fleet, 'ubiq_portfolio', { plans: [{ ...plan!, subjects: { driving } }] })
  const url = pipeline.url
  const analyst = pipeline.auth.issue({ role: 'analyst' }, 3600_000)
  const get = (path: string, tok?: string) => fetch(`${url}${path}`, tok ? { headers: { authorization: `Bearer ${tok}` } } : {})
  const json = async <T>(path: string) => (await (await get(path, analyst)).json()) as T

  const scores: Score[] = [], premiums: PremiumAdjustment[] = [], events: PolicyEvent[] = [], trips: Trip[] = []
  pipeline.scores$.subscribe((s) => scores.push(s))
  pipeline.premiums$.subscribe((p) => premiums.push(p))
  pipeline.events$.subscribe((e) => events.push(e))
  pipeline.trips$.subscribe((x) => trips.push(x))

  // One trip per vehicle, in two groups seven hours apart; the first group's trips cross an hour.
  const first = Math.floor((Date.now() - 20 * HOUR) / HOUR) * HOUR + 55 * 60_000
  const groups = [{ fleet: fleet.slice(0, 3), startTs: first }, { fleet: fleet.slice(3), startTs: first + 7 * HOUR }]
  const finals = groups.flatMap((g) => g.fleet.map((v) => {
    const lastTs = g.startTs + 599_000
    return Promise.all([
      firstMatch(pipeline.scores$, (s) => s.policyId === v.policyId && s.window.to === lastTs),
      firstMatch(pipeline.premiums$, (p) => p.policyId === v.policyId && p.effectiveFrom === new Date(lastTs).toISOString()),
    ])
  }))
  const runs = await Promise.all(groups.map((g) => runFleet({ mqttUrl: services.mqttUrl, fleet: g.fleet, startTs: g.startTs, speedup: Infinity, samples: 600 })))
  await Promise.all(runs.map((r) => r.done))
  await Promise.all(finals)
  // Every event a trip counted has been published.
  await until(() => events.length === trips.reduce((n, x) => n + Object.values(x.events).reduce((a, b) => a + b, 0), 0))
  t.equal(trips.length, fleet.length, 'one trip per vehicle')
  t.ok(events.length > 0, `${events.length} events`)

  // What the routes should answer, from what the pipeline published.
  const latest = new Map<string, Score>()
  for (const s of scores) if (s.subject === 'driving' && (latest.get(s.policyId)?.window.to ?? -Infinity) < s.window.to) latest.set(s.policyId, s)
  const values = [...latest.values()].map((s) => s.value).sort((a, b) => a - b)
  const expectedBins = Array.from({ length: 10 }, (_, i) => ({ from: i * 10, to: i * 10 + 10, count: values.filter((v) => Math.min(9, Math.floor(v / 10)) === i).length }))
  const mid = values.length / 2
  const expectedMedian = values.length % 2 ? values[Math.floor(mid)]! : (values[mid - 1]! + values[mid]!) / 2
  const from = new Date(first - HOUR).toISOString(), to = new Date(Date.now() + HOUR).toISOString()
  const bucketsOf = (ms: number) => {
    const m = new Map<string, { time: string; subject: string; factors: number[] }>()
    for (const p of premiums) {
      const time = new Date(Math.floor(Date.parse(p.effectiveFrom) / ms) * ms).toISOString()
      const b = m.get(`${time} ${p.subject}`) ?? { time, subject: p.subject, factors: [] }
      b.factors.push(p.factor)
      m.set(`${time} ${p.subject}`, b)
    }
    return [...m.values()].sort((a, b) => a.time.localeCompare(b.time) || a.subject.localeCompare(b.subject))
  }
  const types = [...new Set(events.map((e) => e.type))].sort()
  const expectedHours = Array.from({ length: 24 }, (_, hour) => ({ hour, counts: Object.fromEntries(types.map((type) => [type, events.filter((e) => e.type === type && new Date(e.from).getUTCHours() === hour).length])) }))

  // InfluxDB receives in batches: ask again (gently: the rate limit counts) until it has everything.
  const poll = async <T>(path: string, enough: (b: T) => boolean) => {
    for (let b = await json<T>(path); ; b = await json<T>(path)) {
      if (enough(b)) return b
      await new Promise((r) => setTimeout(r, 300))
    }
  }
  const scored = await poll<ScoreDistribution>('/api/v1/portfolio/scores?subject=driving', (b) => b.n >= latest.size)
  const hourly = await poll<PremiumChanges>(`/api/v1/portfolio/premiums?from=${from}&to=${to}&interval=1h`, (b) => b.buckets.reduce((n, x) => n + x.count, 0) >= premiums.length)
  const byHour = await poll<EventsByHour>(`/api/v1/portfolio/events?from=${from}&to=${to}`, (b) => b.hours.reduce((n, h) => n + Object.values(h.counts).reduce((a, c) => a + c, 0), 0) >= events.length)

  await t.test('the score distribution is that of each policy\'s latest score', async (t) => {
    t.equal(scored.n, fleet.length, 'every policy counted once')
    t.same(scored.bins, expectedBins, 'the histogram: 10-point bins')
    t.ok(close(scored.mean, values.reduce((a, b) => a + b, 0) / values.length), 'the mean')
    t.equal(scored.median, expectedMedian, 'the median')
    t.same(scored.lowest, [...latest.values()].sort((a, b) => a.value - b.value).map((s) => ({ policyId: s.policyId, value: s.value })), 'the lowest scores, lowest first')
    t.equal(scored.bins.reduce((n, b) => n + b.count, 0), scored.n, 'each policy in one bin')
    const health = await json<ScoreDistribution>('/api/v1/portfolio/scores?subject=health')
    t.match(health, { subject: 'health', n: 0, mean: null, median: null, lowest: [] }, 'a subject without scores: none')
    t.same(health.bins.map((b) => b.count), Array(10).fill(0))
  })

  await t.test('premium changes per bucket and subject: how many, and the mean factor', async (t) => {
    for (const [interval, ms, body] of [['1h', HOUR, hourly], ['1d', 24 * HOUR, await json<PremiumChanges>(`/api/v1/portfolio/premiums?from=${from}&to=${to}&interval=1d`)]] as const) {
      const expected = bucketsOf(ms)
      t.same(body.buckets.map((b) => [b.time, b.subject, b.count]), expected.map((b) => [b.time, b.subject, b.factors.length]), `${interval}: the buckets and their counts`)
      t.ok(body.buckets.every((b, i) => close(b.meanFactor, expected[i]!.factors.reduce((a, f) => a + f, 0) / expected[i]!.factors.length)), `${interval}: the mean factors`)
      t.match(body, { from, to, interval })
    }
    t.ok(hourly.buckets.length >= 2, 'the two groups fall in different hours')
    const none = await json<PremiumChanges>(`/api/v1/portfolio/premiums?from=${new Date(first - 3 * HOUR).toISOString()}&to=${new Date(first - 2 * HOUR).toISOString()}`)
    t.same(none.buckets, [], 'a period without changes: no buckets')
  })

  await t.test('events per type and UTC hour of the day', async (t) => {
    t.same(byHour.types, types, 'the types seen')
    t.same(byHour.hours, expectedHours, 'per hour of the day, the count of each type')
    t.ok(byHour.hours.filter((h) => Object.values(h.counts).some((n) => n > 0)).length >= 2, 'in more than one hour')
  })

  await t.test('every table as CSV: the same numbers, a header line', async (t) => {
    const csv = (path: string) => fetchCsv(t, url, analyst, `${path}&format=csv`)
    t.same(await csv('/api/v1/portfolio/scores?subject=driving'), [['from', 'to', 'count'], ...scored.bins.map((b) => [b.from, b.to, b.count].map(String))], 'score bins')
    t.same(await csv(`/api/v1/portfolio/premiums?from=${from}&to=${to}&interval=1h`), [['time', 'subject', 'count', 'mean_factor'], ...hourly.buckets.map((b) => [b.time, b.subject, String(b.count), csvNumber(b.meanFactor)])], 'premium changes')
    t.same(await csv(`/api/v1/portfolio/events?from=${from}&to=${to}`), [['hour', ...types], ...byHour.hours.map((h) => [h.hour, ...types.map((x) => h.counts[x])].map(String))], 'events by hour')
  })

  await t.test('analysts only; bad queries are named', async (t) => {
    const policyholder = pipeline.auth.issue({ role: 'policyholder', policyId: fleet[0]!.policyId }, 3600_000)
    await analystsOnly(t, url, ['/api/v1/portfolio/scores?subject=driving', '/api/v1/portfolio/premiums?interval=1h', '/api/v1/portfolio/events', '/api/v1/portfolio/events?format=csv'], policyholder)
    await refused(t, url, analyst, [
      ['/api/v1/portfolio/scores?subject=cars', /^querystring\/subject must be equal to one of the allowed values: driving, health, home$/],
      ['/api/v1/portfolio/scores', /subject/],
      ['/api/v1/portfolio/premiums?interval=5m', /^querystring\/interval must be equal to one of the allowed values: 1m, 10m, 1h, 1d$/],
      ['/api/v1/portfolio/events?colour=red', /additional properties \(colour\)/],
      ['/api/v1/portfolio/events?format=xml', /^querystring\/format must be equal to one of the allowed values: json, csv$/],
      ['/api/v1/portfolio/events?from=yesterday', /from/],
      [`/api/v1/portfolio/events?from=${to}&to=${from}`, /before/],
      ['/api/v1/portfolio/premiums?from=2020-01-01T00:00:00Z&to=2022-01-01T00:00:00Z', /366 days/],
    ])
    const documented = await openApi(url)
    for (const path of ['/api/v1/portfolio/scores', '/api/v1/portfolio/premiums', '/api/v1/portfolio/events']) {
      t.ok(documented(path).parameters.includes('format'), `${path} in the OpenAPI document, with its format parameter`)
    }
  })

  await t.test('the analyst page charts the portfolio and shows the numbers in InfluxDB', async (t) => {
    const { page, newPage, errors } = await openBrowser(t)
    await page.goto(`${url}/analyst?period=7d#token=${analyst}`)
    await page.locator('body[data-loaded]').waitFor()
    t.notOk(page.url().includes('token'), 'the token leaves the address bar')

    // Each chart drawn: a uPlot canvas with something painted on it.
    const charts = ['chart-scores-driving', 'chart-scores-health', 'chart-scores-home', 'chart-premiums', 'chart-events']
    t.equal(await page.locator('.uplot canvas').count(), charts.length, 'one uPlot canvas per chart')
    for (const id of charts) t.ok((await painted(page, id)) > 0, `${id}: drawn`)

    // The tables, against the API with the page's period (the last 7 days, hourly).
    const week = new Date(Date.now() - 7 * 24 * HOUR).toISOString()
    const all = await Promise.all(['driving', 'health', 'home'].map((s) => json<ScoreDistribution>(`/api/v1/portfolio/scores?subject=${s}`)))
    const score = (x: number | null) => (x === null ? '–' : x.toFixed(1))
    t.same(await cells(page, 'scores-table'), [
      ...all[0]!.bins.map((b, i) => [`${b.from}–${b.to}`, ...all.map((d) => String(d.bins[i]!.count))]),
      ['policies', ...all.map((d) => String(d.n))], ['mean', ...all.map((d) => score(d.mean))], ['median', ...all.map((d) => score(d.median))],
    ], 'score bins per subject, n, mean and median')
    const premiumRows = (p: PremiumChanges) => p.buckets.map((b) => [`${b.time.slice(0, 10)} ${b.time.slice(11, 16)}`, b.subject, String(b.count), `×${b.meanFactor.toFixed(3)}`])
    t.same(await cells(page, 'premiums-table'), premiumRows(await json<PremiumChanges>(`/api/v1/portfolio/premiums?from=${week}&interval=1h`)), 'premium changes per hour')
    const ev = await json<EventsByHour>(`/api/v1/portfolio/events?from=${week}`)
    t.same(await cells(page, 'events-table'), ev.types.map((type) => [type.replace(/_/g, ' '), ...ev.hours.map((h) => String(h.counts[type])), String(ev.hours.reduce((n, h) => n + h.counts[type]!, 0))]), 'events per type and hour, with totals')
    t.same(ev.types, types, 'the same events as the pipeline published')
    t.same(await page.locator('#lowest a').evaluateAll((as) => as.map((a) => a.getAttribute('href'))), all[0]!.lowest.map((x) => `/?policy=${x.policyId}`), 'the lowest driving scores link to their policies')

    // The CSV button downloads the server's CSV.
    const download = await downloadCsv(page, 'premiums')
    t.equal(download.name, 'premiums-1h.csv')
    const served = await (await get(`/api/v1/portfolio/premiums?from=${week}&interval=1h&format=csv`, analyst)).text()
    t.same(parseCsv(download.text), parseCsv(served), 'the download is the server\'s CSV')

    // Daily buckets: the premium table follows the picker.
    await page.locator('#interval').selectOption('1d')
    const daily = premiumRows(await json<PremiumChanges>(`/api/v1/portfolio/premiums?from=${week}&interval=1d`))
    await untilCells(page, 'premiums-table', daily)
    t.same(await cells(page, 'premiums-table'), daily, 'the premium table follows the picker: changes per day')


    // The drill-down: the policy's own page, in the same tab, with the same token.
    const lowest = all[0]!.lowest[0]!.policyId
    await page.locator(`#lowest a[href="/?policy=${lowest}"]`).click()
    await page.locator('#status', { hasText: `live for ${lowest}` }).waitFor()
    t.match(await page.locator('#status').textContent(), `live for ${lowest}`, 'a lowest score opens that policy\'s page')

    // A policyholder's link opens no portfolio.
    const stranger = await newPage()
    await stranger.goto(`${url}/analyst#token=${pipeline.auth.issue({ role: 'policyholder', policyId: lowest }, 60_000)}`)
    await stranger.locator('#signin').waitFor()
    t.equal(await stranger.locator('#status').textContent(), 'not an analyst token')
    t.equal(await stranger.locator('.uplot').count(), 0, 'no chart without an analyst token')
    t.same(errors, [], 'no script errors on the page')
  })
})
