/**
 * The analyst's monitoring pages (issue #7) against the real pipeline fed by edge-sim, with a
 * shadow model scoring beside the shipped driving champion: score drift per bucket and model, the
 * champion-against-shadow comparison and ingest's health give what InfluxDB holds, what scores$
 * carried and what the metrics registry counted, as JSON and as CSV, to analysts only; the pages
 * chart them with uPlot in a real headless Chromium and show the same numbers.
 */
import t from 'tap'
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { Counter, Histogram, Registry } from 'prom-client'
import { makeFleet, runFleet } from '../edge-sim/index.ts'
import { topics } from '../ingest/index.ts'
import { choiceFile, defaultChoice, drivingFrequency, modelId, shippedModels, writeChoice, type ModelDefinition, type Score } from '../scoring/index.ts'
import { firstMatch, startServices, startTestPipeline } from '../test/harness.ts'
import { cells, downloadCsv, openBrowser, painted, screenshot, untilCells } from '../test/browser.ts'
import { analystsOnly, fetchCsv, openApi, parseCsv, refused } from './page-test-helpers.ts'
import { compareShadows, correlation, histogramQuantile, ingestHealth, RECENT_MS, SAMPLE_SIZE, sampleOf, type IngestHealth, type ScoreDrift, type ShadowReport, type StoredScore } from './monitoring.ts'
import { csvLine } from './tables.ts'

const HOUR = 3600_000
const close = (a: number | null | undefined, b: number | null | undefined) => (a === null && b === null) || (typeof a === 'number' && typeof b === 'number' && Math.abs(a - b) < 1e-9)
/** A row's cells as the server writes them (numbers to 12 significant digits). */
const csvCells = (row: readonly (string | number | null)[]) => parseCsv(csvLine(row))[0]!
const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0)
const avg = (xs: readonly number[]) => sum(xs) / xs.length
/** InfluxDB's PERCENTILE: nearest rank round(n·p/100), none below rank 1. */
const nearestRank = (sorted: readonly number[], p: number) => sorted[Math.floor((sorted.length * p) / 100 + 0.5) - 1] ?? null

t.test('histogram quantiles: linear within the bucket holding the rank, the highest finite bound in +Inf', async (t) => {
  const buckets = [{ le: 0.1, count: 1 }, { le: 1, count: 3 }, { le: 5, count: 3 }, { le: Infinity, count: 4 }]
  const cases: [number, number | null][] = [[0.1, 0.04], [0.25, 0.1], [0.5, 0.55], [0.75, 1], [0.99, 5]]
  for (const [q, expected] of cases) t.ok(close(histogramQuantile(buckets, q), expected), `q ${q}: ${expected}`)
  t.equal(histogramQuantile(buckets.map((b) => ({ ...b, count: 0 })), 0.5), null, 'no observations: none')
  t.equal(histogramQuantile([], 0.5), null, 'no buckets: none')
})

t.test('correlation: Pearson\'s, none without variation', async (t) => {
  t.ok(close(correlation([1, 2, 3], [2, 4, 6]), 1))
  t.ok(close(correlation([1, 2, 3], [3, 2, 1]), -1))
  t.ok(close(correlation([50, 40, 60], [45, 48, 48]), 0))
  t.equal(correlation([1, 2, 3], [5, 5, 5]), null)
  t.equal(correlation([1], [1]), null)
})

t.test('shadow pairs: joined on policy, subject and time; compared per shadow and champion; the latest pair per policy decides the share', async (t) => {
  const s = (policyId: string, time: number, value: number, model: string): StoredScore => ({ policyId, subject: 'driving', model, time, value })
  const champions = [s('p1', 1000, 50, 'c@1'), s('p1', 2000, 60, 'c@1'), s('p2', 1000, 40, 'c@1'), s('p3', 1000, 70, 'c@1'), s('p1', 3000, 80, 'c@2'), { ...s('p2', 2000, 10, 'h@1'), subject: 'health' as const }]
  const shadows = [s('p1', 2000, 48, 's@1'), s('p1', 1000, 45, 's@1'), s('p2', 1000, 48, 's@1'), s('p4', 1000, 30, 's@1'), s('p1', 3000, 81, 's@1'), s('p2', 2000, 10, 's@1')]
  const { models, sample } = compareShadows(champions, shadows)
  t.same(models, [{
    subject: 'driving', shadowModel: 's@1', championModel: 'c@1', pairs: 3, meanChampion: 50, meanShadow: 47, meanDiff: -3, meanAbsDiff: 25 / 3, correlation: 0, policies: 2, shareOver10: 0.5,
  }, {
    subject: 'driving', shadowModel: 's@1', championModel: 'c@2', pairs: 1, meanChampion: 80, meanShadow: 81, meanDiff: 1, meanAbsDiff: 1, correlation: null, policies: 1, shareOver10: 0,
  }], 'a pair only where both scored the same policy, subject and time; a promotion starts a comparison of its own')
  t.same(sample.map((p) => [p.policyId, p.time, p.champion, p.shadow]), [
    ['p1', new Date(1000).toISOString(), 50, 45], ['p2', new Date(1000).toISOString(), 40, 48], ['p1', new Date(2000).toISOString(), 60, 48], ['p1', new Date(3000).toISOString(), 80, 81],
  ], 'the sample: every pair when there are few, in time order')

  const many = Array.from({ length: 1234 }, (_, i) => s(`p${i}`, i, i % 100, 'c@1'))
  const big = compareShadows(many, many.map((x) => ({ ...x, model: 's@1' })))
  t.equal(big.sample.length, SAMPLE_SIZE, `at most ${SAMPLE_SIZE} pairs in the sample`)
  t.equal(new Set(big.sample.map((p) => p.policyId)).size, SAMPLE_SIZE, 'each a different pair')
  t.same([big.sample[0]!.policyId, big.sample.at(-1)!.policyId], ['p0', `p${Math.floor((499 * 1234) / 500)}`], 'spread evenly from the first')
  t.match(big.models[0], { pairs: 1234, meanDiff: 0, shareOver10: 0 })
  t.ok(close(big.models[0]!.correlation, 1), 'a shadow that agrees: correlation 1')
})

t.test('ingest rates: each sampler interval\'s counter differences a second', async (t) => {
  const totals = (received: number, stored: number, rejected: number, duplicates: number) => ({ received, stored, rejected, duplicates })
  const at = (ms: number, t: ReturnType<typeof totals>) => ({ at: ms, totals: t, lag: [], store: [] })
  const h = ingestHealth([], [at(0, totals(0, 0, 0, 0)), at(5000, totals(100, 90, 10, 0)), at(12_000, totals(170, 160, 10, 7))], 12_500)
  t.same(h.rates, [
    { time: new Date(5000).toISOString(), seconds: 5, received: 20, stored: 18, rejected: 2, duplicates: 0 },
    { time: new Date(12_000).toISOString(), seconds: 7, received: 10, stored: 10, rejected: 0, duplicates: 1 },
  ])
  t.match(h, { at: new Date(12_500).toISOString(), totals: totals(0, 0, 0, 0), rejections: [], deviceLag: { count: 0, p50: null, p99: null } }, 'an empty registry: nothing counted')
})

t.test('device lag is current: of the last 5 minutes, not since the start (#23: an hour of catch-up read as an outage)', async (t) => {
  const registry = new Registry()
  const lag = new Histogram({ name: 'ubiq_ingest_device_lag_seconds', help: 'as ingest counts it', buckets: [0.1, 0.25, 0.5, 1, 60, 600, 3600], registers: [registry] })
  const store = new Histogram({ name: 'ubiq_ingest_store_latency_seconds', help: 'as ingest counts it', buckets: [0.1, 1], registers: [registry] })
  const samples = [sampleOf(await registry.getMetricsAsJSON(), 0)] // at the start
  for (let i = 0; i < 100; i++) lag.observe(1800) // the demo's catch-up: readings up to an hour old
  store.observe(0.05)
  samples.push(sampleOf(await registry.getMetricsAsJSON(), 60_000))
  for (let i = 0; i < 10; i++) lag.observe(0.2) // then live
  const live = ingestHealth(await registry.getMetricsAsJSON(), samples, 60_000 + RECENT_MS)
  t.equal(live.deviceLag.count, 10, 'only the readings of the last 5 minutes')
  t.ok(live.deviceLag.p50! > 0.1 && live.deviceLag.p50! <= 0.25 && live.deviceLag.p99! <= 0.25, `p50 ${live.deviceLag.p50} s, p99 ${live.deviceLag.p99} s: live`)
  t.match(live.storeLatency, { count: 0, p50: null }, 'nothing stored in the window')
  const early = ingestHealth(await registry.getMetricsAsJSON(), samples, 120_000)
  t.equal(early.deviceLag.count, 110, 'before 5 minutes have passed: since the first sample')
  t.ok(early.deviceLag.p50! > 600, `while catching up the median is the catch-up's: ${early.deviceLag.p50} s`)
})

t.test('ingest health: the lines InfluxDB refused and ingest quarantined, by kind, most first (#20)', async (t) => {
  const registry = new Registry()
  const quarantined = new Counter({ name: 'ubiq_ingest_lines_quarantined_total', help: 'as ingest counts them', labelNames: ['reason'], registers: [registry] })
  quarantined.inc({ reason: 'unparsable' })
  quarantined.inc({ reason: 'field_type_conflict' }, 3)
  t.same(ingestHealth(await registry.getMetricsAsJSON(), []).quarantined, [{ reason: 'field_type_conflict', lines: 3 }, { reason: 'unparsable', lines: 1 }])
})

t.test('model monitoring and ingest health: drift, champion against shadow, rates and rejections, as JSON, CSV and pages', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(15, 29)
  // The challenger: the shipped driving model judged against half the typical harsh braking, so a
  // typical policy looks riskier to it; the registry makes it a shadow of the driving champion.
  const modelsDir = join(services.dataDir, 'models')
  mkdirSync(modelsDir, { recursive: true })
  const strict: ModelDefinition = {
    ...drivingFrequency, name: 'driving-strict', version: '1', file: 'driving-strict@1.onnx', card: 'driving-strict@1.md',
    features: drivingFrequency.features.map((f) => (f.name === 'harsh_braking_per_hour' ? { ...f, baseline: 1 } : f)),
  }
  copyFileSync(join(shippedModels, drivingFrequency.file), join(modelsDir, strict.file))
  writeFileSync(join(modelsDir, 'driving-strict@1.json'), JSON.stringify(strict))
  writeFileSync(join(modelsDir, strict.card), '# driving-strict@1\n\nThe shipped driving model against a stricter harsh-braking baseline: a challenger for tests.\n')
  const choice = defaultChoice()
  writeChoice(choiceFile(services.dataDir), { ...choice, driving: { ...choice.driving, shadows: [modelId(strict)] } })

  const pipeline = await startTestPipeline(t, services, fleet, 'ubiq_monitoring', { modelsDir })
  t.same(pipeline.models().shadows.driving?.map((m) => modelId(m.definition)), [modelId(strict)], 'the challenger scores as a shadow')
  const url = pipeline.url
  const analyst = pipeline.auth.issue({ role: 'analyst' }, 3600_000)
  const get = (path: string, tok?: string) => fetch(`${url}${path}`, tok ? { headers: { authorization: `Bearer ${tok}` } } : {})
  const json = async <T>(path: string) => (await (await get(path, analyst)).json()) as T
  const scores: Score[] = []
  pipeline.scores$.subscribe((s) => scores.push(s))

  // One trip per vehicle, in three groups hours apart (six, five and four: p10 needs five scores).
  const first = Math.floor((Date.now() - 20 * HOUR) / HOUR) * HOUR + 55 * 60_000
  const groups = [{ fleet: fleet.slice(0, 6), startTs: first }, { fleet: fleet.slice(6, 11), startTs: first + 3 * HOUR }, { fleet: fleet.slice(11), startTs: first + 7 * HOUR }]
  const finals = groups.flatMap((g) => g.fleet.map((v) => firstMatch(pipeline.scores$, (s) => s.policyId === v.policyId && s.window.to === g.startTs + 599_000)))
  const runs = await Promise.all(groups.map((g) => runFleet({ mqttUrl: services.mqttUrl, fleet: g.fleet, startTs: g.startTs, speedup: Infinity, samples: 600 })))
  await Promise.all(runs.map((r) => r.done))
  await Promise.all(finals)
  const sent = sum(runs.map((r) => r.sent))
  // Two messages ingest must refuse: not JSON, and from a device it does not know.
  const bad = await mqtt.connectAsync(services.mqttUrl, { clientId: 'monitoring-bad-device' })
  await bad.publishAsync(topics.device(fleet[0]!.deviceId, 'obd'), 'not json', { qos: 1 })
  await bad.publishAsync(topics.device('veh-9999', 'obd'), JSON.stringify({ seq: 1, ts: Date.now() }), { qos: 1 })
  await bad.endAsync()
  t.equal(scores.length, fleet.length, 'one score per trip')

  // InfluxDB receives in batches: ask again (gently: the rate limit counts) until it has everything.
  const poll = async <T>(load: () => Promise<T>, enough: (b: T) => boolean) => {
    for (let b = await load(); ; b = await load()) {
      if (enough(b)) return b
      await new Promise((r) => setTimeout(r, 300))
    }
  }
  const shadowRows = await poll(async () => (await services.influxql('ubiq_monitoring', 'SELECT value FROM shadow_score GROUP BY policy_id, subject, model'))
    .flatMap((s) => s.values.map((v) => ({ policyId: s.tags!.policy_id!, subject: s.tags!.subject!, model: s.tags!.model!, time: Number(v[0]), value: Number(v[1]) }))), (rows) => rows.length >= scores.length)
  t.same(shadowRows.map((r) => `${r.policyId}@${r.time}`).sort(), scores.map((s) => `${s.policyId}@${s.window.to}`).sort(), 'the shadow scored every input the champion did')

  const from = new Date(first - HOUR).toISOString(), to = new Date(Date.now() + HOUR).toISOString()
  const period = `from=${from}&to=${to}`
  const hourly = await poll(() => json<ScoreDrift>(`/api/v1/models/drift?${period}&interval=1h`), (b) => sum(b.buckets.map((x) => x.count)) >= 2 * scores.length)
  const shadow = await poll(() => json<ShadowReport>(`/api/v1/models/shadow?${period}`), (b) => b.sample.length >= scores.length)

  await t.test('drift: per bucket, subject and model, the count, mean and nearest-rank percentiles of the scores', async (t) => {
    const stored = [
      ...scores.map((s) => ({ subject: s.subject, model: s.model, role: 'champion', time: s.window.to, value: s.value })),
      ...shadowRows.map((r) => ({ ...r, role: 'shadow' })),
    ]
    for (const [interval, ms] of [['1h', HOUR], ['1d', 24 * HOUR]] as const) {
      const body = interval === '1h' ? hourly : await json<ScoreDrift>(`/api/v1/models/drift?${period}&interval=1d`)
      const groups = new Map<string, { time: string; subject: string; model: string; role: string; values: number[] }>()
      for (const s of stored) {
        const time = new Date(Math.floor(s.time / ms) * ms).toISOString()
        const k = `${time} ${s.subject} ${s.role} ${s.model}`
        groups.set(k, { time, subject: s.subject, model: s.model, role: s.role, values: [...(groups.get(k)?.values ?? []), s.value] })
      }
      const expected = [...groups.keys()].sort().map((k) => groups.get(k)!)
      t.same(body.buckets.map((b) => [b.time, b.subject, b.model, b.role, b.count]), expected.map((e) => [e.time, e.subject, e.model, e.role, e.values.length]), `${interval}: the buckets and their counts`)
      t.ok(body.buckets.every((b, i) => close(b.mean, avg(expected[i]!.values))), `${interval}: the means`)
      t.same(body.buckets.map((b) => [b.p10, b.p50, b.p90]), expected.map((e) => {
        const sorted = [...e.values].sort((a, b) => a - b)
        return [nearestRank(sorted, 10), nearestRank(sorted, 50), nearestRank(sorted, 90)]
      }), `${interval}: p10, p50, p90`)
      t.match(body, { from, to, interval })
    }
    t.ok(hourly.buckets.some((b) => b.p10 === null) && hourly.buckets.some((b) => b.p10 !== null), 'p10 of four scores is none, of six a score')
    t.same(new Set(hourly.buckets.map((b) => `${b.role} ${b.model}`)), new Set([`champion ${modelId(drivingFrequency)}`, `shadow ${modelId(strict)}`]), 'the champion and the shadow')
    const health = await json<ScoreDrift>(`/api/v1/models/drift?${period}&subject=health`)
    t.same(health.buckets, [], 'a subject without scores: no buckets')
  })

  await t.test('champion against shadow: the pairs of the same policy and time, their means, differences and correlation', async (t) => {
    const pairs = shadowRows.map((r) => ({ r, c: scores.find((s) => s.policyId === r.policyId && s.window.to === r.time)! }))
      .sort((a, b) => a.r.time - b.r.time || a.r.policyId.localeCompare(b.r.policyId))
    const c = pairs.map((p) => p.c.value), s = pairs.map((p) => p.r.value), d = pairs.map((p) => p.r.value - p.c.value)
    const cov = sum(c.map((x, i) => (x - avg(c)) * (s[i]! - avg(s))))
    const sd = (xs: number[]) => Math.sqrt(sum(xs.map((x) => (x - avg(xs)) ** 2)))
    t.equal(shadow.models.length, 1, 'one shadow against one champion')
    const m = shadow.models[0]!
    t.match(m, { subject: 'driving', shadowModel: modelId(strict), championModel: modelId(drivingFrequency), pairs: fleet.length, policies: fleet.length })
    t.ok(close(m.meanChampion, avg(c)) && close(m.meanShadow, avg(s)), 'the means')
    t.ok(close(m.meanDiff, avg(d)) && close(m.meanAbsDiff, avg(d.map(Math.abs))), 'the mean difference and mean absolute difference')
    t.ok(close(m.correlation, cov / (sd(c) * sd(s))), 'the correlation')
    t.equal(m.shareOver10, d.filter((x) => Math.abs(x) > 10).length / fleet.length, 'the share of policies more than 10 points apart (one score each)')
    t.ok(m.meanDiff < 0, 'the stricter shadow scores lower')
    t.same(shadow.sample, pairs.map((p) => ({ policyId: p.r.policyId, time: new Date(p.r.time).toISOString(), model: modelId(strict), champion: p.c.value, shadow: p.r.value })), 'the scatter sample: every pair, in time order')
    const none = await json<ShadowReport>(`/api/v1/models/shadow?from=${new Date(first - 3 * HOUR).toISOString()}&to=${new Date(first - 2 * HOUR).toISOString()}`)
    t.same([none.models, none.sample], [[], []], 'a period without scores: nothing to compare')
  })

  // Ingest is done once the registry has counted every message and InfluxDB confirmed every line.
  const exposition = async () => {
    const lines = (await pipeline.metrics.metrics()).split('\n').filter((l) => l && !l.startsWith('#'))
    return lines.map((l) => /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(l)!).map(([, name, labels, value]) => ({ name: name!, labels: labels ?? '', value: Number(value) }))
  }
  const counted = (m: Awaited<ReturnType<typeof exposition>>, name: string) => sum(m.filter((x) => x.name === name).map((x) => x.value))
  const metrics = await poll(exposition, (m) => counted(m, 'ubiq_ingest_messages_received_total') === sent + 2 && counted(m, 'ubiq_ingest_journal_pending_lines') === 0)
  const totals = { received: sent + 2, stored: sent, rejected: 2, duplicates: 0 }
  // The rate intervals add up to the totals once the sampler sampled after the last message (and
  // for a series, after at least two intervals).
  const health = await poll(() => json<IngestHealth>('/api/v1/ingest/health'), (h) => h.rates.length >= 2 && Math.round(sum(h.rates.map((r) => r.received * r.seconds))) === totals.received)

  await t.test('ingest health: the registry\'s totals, rejections, journal, lag and latency, and rates that add up', async (t) => {
    t.same(health.totals, totals, 'received, stored, rejected, duplicates: what the fleet and the bad device sent')
    t.same(health.totals, { received: counted(metrics, 'ubiq_ingest_messages_received_total'), stored: counted(metrics, 'ubiq_ingest_messages_stored_total'), rejected: counted(metrics, 'ubiq_ingest_messages_rejected_total'), duplicates: counted(metrics, 'ubiq_ingest_duplicates_total') }, 'as the registry counts them')
    t.same(health.rejections, [{ reason: 'malformed_json', count: 1 }, { reason: 'unknown_device', count: 1 }], 'rejections by reason')
    t.same(health.rejections, metrics.filter((x) => x.name === 'ubiq_ingest_messages_rejected_total').map((x) => ({ reason: /reason="([^"]*)"/.exec(x.labels)![1], count: x.value })).sort((a, b) => a.reason!.localeCompare(b.reason!)), 'as the registry has them')
    t.match(health, { journalPendingLines: 0, quarantined: [], backpressure: false, devicesClockSkewed: counted(metrics, 'ubiq_ingest_devices_clock_skewed'), sampleSeconds: 5, windowSeconds: 900 })
    for (const [key, name] of [['deviceLag', 'ubiq_ingest_device_lag_seconds'], ['storeLatency', 'ubiq_ingest_store_latency_seconds']] as const) {
      const buckets = metrics.filter((x) => x.name === `${name}_bucket`).map((x) => ({ le: Number(/le="([^"]+)"/.exec(x.labels)![1]!.replace('+Inf', 'Infinity')), count: x.value }))
      t.same(health[key], { count: sent, p50: histogramQuantile(buckets, 0.5), p99: histogramQuantile(buckets, 0.99) }, `${key}: one observation a stored message; p50 and p99 from the registry's buckets`)
    }
    t.ok(health.deviceLag.p50! > 3600, 'the fleet drove hours ago: its lag is hours')
    for (const k of ['stored', 'rejected', 'duplicates'] as const) t.equal(Math.round(sum(health.rates.map((r) => r[k] * r.seconds))), totals[k], `${k}: the rates add up to the total`)
    t.ok(health.rates.every((r, i) => r.seconds > 0 && (i === 0 || r.time > health.rates[i - 1]!.time)), 'intervals in time order')
    t.ok(health.rates.some((r) => r.received > 0), 'messages came in during the run')
  })

  await t.test('every table as CSV: the same numbers, a header line', async (t) => {
    const csv = (path: string) => fetchCsv(t, url, analyst, path)
    t.same(await csv(`/api/v1/models/drift?${period}&interval=1h&format=csv`), [['time', 'subject', 'model', 'role', 'count', 'mean', 'p10', 'p50', 'p90'],
      ...hourly.buckets.map((b) => csvCells([b.time, b.subject, b.model, b.role, b.count, b.mean, b.p10, b.p50, b.p90]))], 'drift')
    t.same(await csv(`/api/v1/models/shadow?${period}&format=csv`), [['subject', 'shadow_model', 'champion_model', 'pairs', 'mean_champion', 'mean_shadow', 'mean_diff', 'mean_abs_diff', 'correlation', 'policies', 'share_over_10'],
      ...shadow.models.map((m) => csvCells([m.subject, m.shadowModel, m.championModel, m.pairs, m.meanChampion, m.meanShadow, m.meanDiff, m.meanAbsDiff, m.correlation, m.policies, m.shareOver10]))], 'champion against shadow')
    t.same(await csv('/api/v1/ingest/health?format=csv&table=rejections'), [['reason', 'count'], ...health.rejections.map((r) => csvCells([r.reason, r.count]))], 'rejections')
    // The sampler keeps sampling: the CSV may hold intervals the JSON did not yet.
    const rates = await csv('/api/v1/ingest/health?format=csv&table=rates')
    t.same(rates.slice(0, health.rates.length + 1), [['time', 'seconds', 'received_per_s', 'stored_per_s', 'rejected_per_s', 'duplicates_per_s'],
      ...health.rates.map((r) => csvCells([r.time, r.seconds, r.received, r.stored, r.rejected, r.duplicates]))], 'rates')
  })

  await t.test('analysts only; bad queries are named', async (t) => {
    const policyholder = pipeline.auth.issue({ role: 'policyholder', policyId: fleet[0]!.policyId }, 3600_000)
    await analystsOnly(t, url, ['/api/v1/models/drift', '/api/v1/models/shadow?subject=driving', '/api/v1/ingest/health', '/api/v1/ingest/health?format=csv&table=rates'], policyholder)
    await refused(t, url, analyst, [
      ['/api/v1/models/drift?colour=red', /additional properties \(colour\)/],
      ['/api/v1/models/shadow?colour=red', /additional properties \(colour\)/],
      ['/api/v1/ingest/health?colour=red', /additional properties \(colour\)/],
      ['/api/v1/models/drift?interval=5m', /interval/],
      ['/api/v1/models/shadow?subject=cars', /subject/],
      ['/api/v1/models/drift?format=xml', /format/],
      ['/api/v1/models/shadow?from=yesterday', /from/],
      [`/api/v1/models/drift?from=${to}&to=${from}`, /before/],
      ['/api/v1/models/shadow?from=2020-01-01T00:00:00Z&to=2022-01-01T00:00:00Z', /366 days/],
      ['/api/v1/ingest/health?table=events', /table/],
      ['/api/v1/ingest/health?format=csv', /table=rejections or table=rates/],
    ])
    const documented = await openApi(url)
    for (const path of ['/api/v1/models/drift', '/api/v1/models/shadow', '/api/v1/ingest/health']) {
      t.ok(documented(path).parameters.includes('format'), `${path} in the OpenAPI document, with its format parameter`)
    }
  })

  await t.test('the pages chart drift, shadow scores, rates and rejections, and show the API\'s numbers', async (t) => {
    const { page, newPage, errors } = await openBrowser(t)

    // Models, with the page's period (the last 7 days, hourly).
    await page.goto(`${url}/analyst/models?period=7d#token=${analyst}`)
    await page.locator('body[data-loaded]').waitFor()
    t.notOk(page.url().includes('token'), 'the token leaves the address bar')
    t.equal(await page.locator('.uplot canvas').count(), 2, 'a drift chart for driving, the only subject scored, and the scatter')
    for (const id of ['chart-drift-driving', 'chart-shadow']) t.ok((await painted(page, id)) > 0, `${id}: drawn`)
    t.notOk(await page.locator('#drift-health').isVisible(), 'no health chart without health scores')
    const week = new Date(Date.now() - 7 * 24 * HOUR).toISOString()
    const score = (x: number | null) => (x === null ? '–' : x.toFixed(1))
    const driftRows = (d: ScoreDrift) => d.buckets.map((b) => [`${b.time.slice(0, 10)} ${b.time.slice(11, 16)}`, b.subject, b.model, b.role, String(b.count), score(b.mean), score(b.p10), score(b.p50), score(b.p90)])
    t.same(await cells(page, 'drift-table'), driftRows(await json<ScoreDrift>(`/api/v1/models/drift?from=${week}&interval=1h`)), 'drift per hour and model')
    const compared = await json<ShadowReport>(`/api/v1/models/shadow?from=${week}`)
    t.same(await cells(page, 'shadow-table'), compared.models.map((m) => [m.subject, m.shadowModel, m.championModel, String(m.pairs), score(m.meanChampion), score(m.meanShadow),
      `${m.meanDiff > 0 ? '+' : ''}${m.meanDiff.toFixed(1)}`, score(m.meanAbsDiff), m.correlation === null ? '–' : m.correlation.toFixed(3), String(m.policies), `${(100 * m.shareOver10).toFixed(0)} %`]), 'champion against shadow')
    t.same(await page.locator('nav a').evaluateAll((as) => as.map((a) => a.getAttribute('href'))), ['/analyst', '/analyst/backtest', '/analyst/models', '/analyst/ingest'].map((p) => `${p}?period=7d`), 'links to the other analyst pages, with the period picked')

    const download = await downloadCsv(page, 'drift')
    t.equal(download.name, 'drift-all-1h.csv')
    const served = await (await get(`/api/v1/models/drift?from=${week}&interval=1h&format=csv`, analyst)).text()
    t.same(parseCsv(download.text), parseCsv(served), 'the download is the server\'s CSV')

    await page.locator('#interval').selectOption('1d')
    const daily = driftRows(await json<ScoreDrift>(`/api/v1/models/drift?from=${week}&interval=1d`))
    await untilCells(page, 'drift-table', daily)
    t.equal(JSON.stringify(await cells(page, 'drift-table')), JSON.stringify(daily), 'the drift table follows the picker: per day')
    // The last 24 hours, hourly, for the picture.
    await page.locator('#period').selectOption('1d')
    await page.locator('#interval').selectOption('1h')
    await untilCells(page, 'drift-table', driftRows(await json<ScoreDrift>(`/api/v1/models/drift?from=${new Date(Date.now() - 24 * HOUR).toISOString()}&interval=1h`)))
    // The page's chart objects, in the module it shares with the other analyst pages (importing it
    // again gives the same module, not a new one).
    const span = await page.evaluate<number>("import('/assets/analyst.js').then(({ charts }) => (({ min, max }) => max - min)(charts['chart-drift-driving'].plot.scales.x))")
    t.equal(Math.round(span), 24 * 3600, 'the drift chart spans the period picked')
    await screenshot(page, 'models')

    // Ingest, through the page's own link: the token comes along in the tab's session.
    await page.locator('nav a[href^="/analyst/ingest"]').click()
    await page.waitForURL(`${url}/analyst/ingest?period=1d`)
    await page.locator('body[data-loaded]').waitFor()
    t.ok((await painted(page, 'chart-rates')) > 0, 'the rate chart: drawn')
    const pageRates = await cells(page, 'rates-table')
    const now = await json<IngestHealth>('/api/v1/ingest/health')
    const secs = (x: number | null) => (x === null ? '–' : x < 1 ? `${Math.round(x * 1000)} ms` : x < 120 ? `${x.toFixed(1)} s` : x < 7200 ? `${(x / 60).toFixed(1)} min` : `${(x / 3600).toFixed(1)} h`)
    const figures = Object.fromEntries(await page.locator('.figures dd').evaluateAll((dds) => dds.map((d) => [d.id.replace('fig-', ''), d.textContent])))
    t.same(figures, {
      received: String(now.totals.received), stored: String(now.totals.stored), rejected: String(now.totals.rejected), duplicates: String(now.totals.duplicates),
      pending: String(now.journalPendingLines), quarantined: '0', backpressure: 'off', skewed: String(now.devicesClockSkewed),
      'lag-p50': secs(now.deviceLag.p50), 'lag-p99': secs(now.deviceLag.p99), 'store-p50': secs(now.storeLatency.p50), 'store-p99': secs(now.storeLatency.p99),
    }, 'the figures')
    t.same(await cells(page, 'rejections-table'), now.rejections.map((r) => [r.reason, String(r.count), `${((100 * r.count) / now.totals.rejected).toFixed(1)} %`, '']), 'rejections by reason')
    // Newest first; the API, asked after the page, may have sampled since.
    t.ok(pageRates.length > 0, `${pageRates.length} rate intervals`)
    t.same(pageRates, now.rates.slice(0, pageRates.length).reverse().map((r) => [r.time.slice(11, 19), r.seconds.toFixed(1), ...[r.received, r.stored, r.rejected, r.duplicates].map((x) => x.toFixed(1))]), 'the rates, newest first')
    const rejections = await downloadCsv(page, 'rejections')
    t.equal(rejections.name, 'ingest-rejections.csv')
    t.same(parseCsv(rejections.text), parseCsv(await (await get('/api/v1/ingest/health?format=csv&table=rejections', analyst)).text()), 'the download is the server\'s CSV')
    await screenshot(page, 'ingest')

    // A policyholder's link opens neither page.
    const stranger = await newPage()
    for (const path of ['/analyst/models', '/analyst/ingest']) {
      await stranger.goto(`${url}${path}#token=${pipeline.auth.issue({ role: 'policyholder', policyId: fleet[0]!.policyId }, 60_000)}`)
      await stranger.locator('#signin').waitFor()
      t.equal(await stranger.locator('#status').textContent(), 'not an analyst token', `${path}: not an analyst token`)
      t.equal(await stranger.locator('.uplot').count(), 0, `${path}: no chart`)
    }
    t.same(errors, [], 'no script errors on the pages')
  })
})
