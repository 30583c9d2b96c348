/**
 * The Grafana provisioning in dashboards/grafana/ against what ubiq does (#22 item 7): every panel
 * reads a provisioned data source; a running pipeline fed by edge-sim's policies writes its
 * scores, shadow scores, events, trips and premiums to a real InfluxDB 1.6, and every InfluxQL
 * query, run there as Grafana expands it, finds them; every PromQL query reads metrics the running
 * pipeline exposes on /metrics; and no query singles out a policy or a device, as these dashboards
 * are for a wide audience.
 */
import t from 'tap'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse } from 'yaml' // already here through @fastify/swagger and tap
import { policyRegistry, runSimulation, type DeviceMessage } from '../edge-sim/index.ts'
import { deviceRegistry, qualified } from '../ingest/index.ts'
import { examplePlans, loadPlans } from '../pricing/index.ts'
import { choiceFile, defaultChoice } from '../scoring/index.ts'
import { startServices, startTestPipeline, twoPolicies } from '../test/harness.ts'

const root = join(import.meta.dirname, '..')
const read = (path: string) => readFileSync(join(root, path), 'utf8')
const dir = 'dashboards/grafana'

interface Ref { type: string; uid: string }
interface Target { refId: string; datasource?: Ref; query?: string; rawQuery?: boolean; expr?: string }
interface Panel { id: number; type: string; title: string; datasource?: Ref; targets?: Target[]; gridPos: { x: number; y: number; w: number; h: number } }
interface Variable { name: string; datasource?: Ref; query: string | { query: string } }
interface Dashboard { id: null; uid: string; title: string; panels: Panel[]; templating: { list: Variable[] } }

const datasources = (parse(read(`${dir}/provisioning/datasources/ubiq.yaml`)) as { datasources: { name: string; uid: string; type: string; url: string; jsonData?: Record<string, string> }[] }).datasources
const provisioned = new Map(datasources.map((d) => [d.uid, d.type]))
const providers = (parse(read(`${dir}/provisioning/dashboards/ubiq.yaml`)) as { providers: { type: string; options: { path: string } }[] }).providers
const files = readdirSync(join(root, dir, 'dashboards')).filter((f) => f.endsWith('.json'))
const dashboards = files.map((f) => JSON.parse(read(`${dir}/dashboards/${f}`)) as Dashboard)

/** Every query of a dashboard (panel targets and variables) with the data source it goes to. */
const queries = (d: Dashboard) => [
  ...d.panels.flatMap((p) => (p.targets ?? []).map((q) => ({ where: `${d.uid} "${p.title}" ${q.refId}`, ds: q.datasource ?? p.datasource, text: q.query ?? q.expr ?? '' }))),
  ...d.templating.list.map((v) => ({ where: `${d.uid} $${v.name}`, ds: v.datasource, text: typeof v.query === 'string' ? v.query : v.query.query })),
]
const all = dashboards.flatMap(queries)
const influxql = all.filter((q) => q.ds?.type === 'influxdb')
const promql = all.filter((q) => q.ds?.type === 'prometheus')

t.test('the provisioning files name the data sources by the environment, as the README says', async (t) => {
  const influx = datasources.find((d) => d.uid === 'ubiq-influxdb')
  t.match(influx, { name: 'ubiq-influxdb', type: 'influxdb', url: '${INFLUX_URL}', jsonData: { dbName: '${INFLUX_DATABASE}', version: 'InfluxQL' } })
  t.match(datasources.find((d) => d.uid === 'ubiq-prometheus'), { name: 'ubiq-prometheus', type: 'prometheus', url: '${PROMETHEUS_URL}' })
  t.equal(providers.length, 1)
  t.equal(providers[0]!.type, 'file')
  const readme = read(`${dir}/README.md`)
  // Where the dashboards must be mounted is only useful if the README says it.
  t.ok(readme.includes(providers[0]!.options.path), 'the README names the provider path')
  for (const v of ['INFLUX_URL', 'INFLUX_DATABASE', 'PROMETHEUS_URL']) t.ok(readme.includes(v), `the README documents ${v}`)
  for (const f of files) t.ok(readme.includes(f), `the README describes ${f}`)
})

t.test('every dashboard is well formed and reads only provisioned data sources', async (t) => {
  t.ok(dashboards.length >= 2)
  t.equal(new Set(dashboards.map((d) => d.uid)).size, dashboards.length, 'dashboard uids are unique')
  for (const d of dashboards) {
    t.equal(d.id, null, `${d.uid}: no database id, so it provisions anywhere`)
    t.equal(new Set(d.panels.map((p) => p.id)).size, d.panels.length, `${d.uid}: panel ids are unique`)
    for (const p of d.panels) {
      const where = `${d.uid} "${p.title}"`
      t.ok(p.gridPos.x + p.gridPos.w <= 24, `${where} fits the 24-column grid`)
      t.equal(provisioned.get(p.datasource?.uid ?? ''), p.datasource?.type, `${where}: a provisioned data source of its type`)
      t.ok(p.targets?.length, `${where} has queries`)
      for (const q of p.targets ?? []) {
        t.same(q.datasource, p.datasource, `${where} ${q.refId}: the panel's data source`)
        t.ok(p.datasource?.type === 'influxdb' ? q.query && q.rawQuery : q.expr, `${where} ${q.refId}: a query in the data source's language`)
      }
    }
    for (const v of d.templating.list) t.equal(provisioned.get(v.datasource?.uid ?? ''), v.datasource?.type, `${d.uid} $${v.name}: a provisioned data source`)
  }
  t.equal(influxql.length + promql.length, all.length, 'every query is InfluxQL or PromQL')
})

t.test('no query picks out a policy or a device: scores, premiums and events are about people, shown only in aggregate', async (t) => {
  for (const q of all) t.notMatch(q.text, /policy_id|device_id/, q.where)
})

t.test('against a running pipeline: every InfluxQL query finds what it wrote, every PromQL query reads a metric it exposes', async (t) => {
  const services = await startServices(t)
  const { policies, start, devices } = twoPolicies()
  // The shipped driving model as its own shadow too: its shadow scores are written as any other's.
  const choice = defaultChoice()
  choice.driving.shadows.push(choice.driving.champion)
  mkdirSync(services.dataDir, { recursive: true })
  writeFileSync(choiceFile(services.dataDir), JSON.stringify(choice))
  // The example plan moves no premium before 50 km: let it price from the first score.
  const [plan] = loadPlans(examplePlans)
  const driving = { ...plan!.subjects.driving!, credibility: { exposure: 'distance_km' as const, full: 1000, minimum: 0 } }
  const db = 'ubiq_grafana'
  const pipeline = await startTestPipeline(t, services, [], db, {
    devices: deviceRegistry(policyRegistry(policies)), reorderWindowMs: 100, plans: [{ ...plan!, subjects: { ...plan!.subjects, driving } }],
  })
  const run = await runSimulation({ mqttUrl: services.mqttUrl, devices: devices.map((d) => ({ deviceId: d.deviceId, messages: d.sent.values() as unknown as Generator<DeviceMessage> })), startTs: start, speedup: Infinity })
  await run.done

  const influxQuery = async (q: string) => {
    const res = await fetch(`${services.influxUrl}/query?${new URLSearchParams({ db, q })}`, { method: 'POST' })
    // A query that does not parse is answered with a top-level error and no results.
    const body = (await res.json()) as { error?: string; results?: { error?: string; series?: unknown[] }[] }
    const results = body.results ?? []
    return { error: body.error ?? results.find((r) => r.error)?.error, series: results.flatMap((r) => r.series ?? []) }
  }
  // Grafana's macros as it expands them for the last week and the $subject variable's "All".
  const expand = (q: string) => q.replaceAll('$timeFilter', 'time >= now() - 7d and time <= now()')
    .replaceAll('$__interval', '1h').replaceAll('$subject', '(driving|health|home)')
  // Until the pipeline has written each measurement the dashboards read (tap's per-file timeout guards a hang).
  const measurements = new Set(influxql.flatMap((q) => [...q.text.matchAll(/\bFROM\s+"(\w+)"/gi)].map((m) => m[1]!)))
  t.ok(measurements.size >= 5, `the dashboards read ${[...measurements].join(', ')}`)
  for (const m of measurements) while ((await influxQuery(`SELECT count(*) FROM ${qualified(m)}`)).series.length === 0) await new Promise((r) => setTimeout(r, 200))
  for (const q of influxql) {
    const { error, series } = await influxQuery(expand(q.text))
    t.equal(error, undefined, `${q.where} runs`)
    t.ok(series.length, `${q.where} finds what the pipeline wrote`)
  }

  // What Prometheus scrapes: each metric's # TYPE line (a histogram's series are name_bucket, _sum, _count).
  const exposition = await (await fetch(`${pipeline.url}/metrics`, { headers: { authorization: `Bearer ${pipeline.auth.issue({ role: 'analyst' }, 60_000)}` } })).text()
  const exposed = new Map([...exposition.matchAll(/^# TYPE (\w+) (\w+)$/gm)].map((m) => [m[1]!, m[2]!]))
  t.ok(exposed.size >= 10, `${exposed.size} metrics on /metrics`)
  const isExposed = (name: string) => {
    const base = /^(\w+)_(bucket|sum|count)$/.exec(name)
    return exposed.has(name) || (base !== null && ['histogram', 'summary'].includes(exposed.get(base[1]!) ?? ''))
  }
  for (const q of promql) {
    const names = new Set([
      ...[...q.text.matchAll(/([a-zA-Z_:][\w:]*)\s*[{[]/g)].map((m) => m[1]!),
      ...[...q.text.matchAll(/label_values\(\s*(\w+)/g)].map((m) => m[1]!),
      ...[...q.text.matchAll(/\b(?:ubiq|process|nodejs)_\w+/g)].map((m) => m[0]),
    ])
    t.ok(names.size, `${q.where} reads a metric`)
    for (const n of names) t.ok(isExposed(n), `${q.where}: /metrics has ${n}`)
  }
})
