/**
 * The Grafana provisioning in dashboards/grafana/ against the code it shows: every panel reads a
 * provisioned data source; every InfluxQL query a measurement, tags and fields ubiq writes, and it
 * runs and finds data on a real InfluxDB 1.6; every PromQL query a metric ubiq registers; and no
 * query singles out a policy or a device, as these dashboards are for a wide audience.
 */
import t from 'tap'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parse } from 'yaml' // already here through @fastify/swagger and tap
import { startInfluxd } from '../bin/local-services.ts'
import { resolveRetention, retentionOf } from '../ingest/index.ts'

const root = join(import.meta.dirname, '..')
const read = (path: string) => readFileSync(join(root, path), 'utf8')
const dir = 'dashboards/grafana'

/**
 * What the dashboards read from InfluxDB, and where the code writes it: `file` holds the
 * `toLine('<measurement>', { tags }, fields …)` call; `fieldsFile` names the fields when the call
 * passes them through a variable or function (an event's `numbers`, a trip's `tripFields`).
 */
const written: Record<string, { file: string; fieldsFile?: string }> = {
  score: { file: 'scoring/score.ts' },
  shadow_score: { file: 'scoring/scoring.ts' },
  event: { file: 'scoring/scoring.ts' },
  trip: { file: 'scoring/scoring.ts', fieldsFile: 'scoring/driving.ts' },
  premium: { file: 'pricing/pricing.ts' },
}

/** A measurement's tag keys, and the source text its fields are named in, from its toLine call. */
function writer(measurement: string): { tags: string[]; fieldsSource: string } | undefined {
  const { file, fieldsFile } = written[measurement] ?? {}
  if (!file) return undefined
  const call = new RegExp(`toLine\\('${measurement}',\\s*\\{([^}]*)\\},\\s*(\\{[^}]*\\}|[\\w.]+)`).exec(read(file))
  if (!call) return undefined
  const keys = (s: string) => [...s.matchAll(/(\w+):/g)].map((m) => m[1]!)
  return { tags: keys(call[1]!), fieldsSource: call[2]!.startsWith('{') ? call[2]! : read(fieldsFile ?? file) }
}

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

t.test('InfluxQL queries read measurements, tags and fields the code writes, and no person', async (t) => {
  for (const m of Object.keys(written)) t.ok(writer(m), `${written[m]!.file} writes ${m} with toLine('${m}', { tags }, …)`)
  for (const q of influxql) {
    const from = [...q.text.matchAll(/\bFROM\s+"?([\w.]+)"?/gi)].map((m) => m[1]!)
    t.equal(from.length, 1, `${q.where}: one measurement`)
    const w = writer(from[0]!)
    if (!t.ok(w, `${q.where}: ubiq writes "${from[0]}"`) || !w) continue
    // Grafana's queries name no retention policy: what they read must be in the default one (#21).
    t.equal(retentionOf(from[0]!), resolveRetention().find((p) => p.isDefault)?.name, `${q.where}: ${from[0]} is kept in the default retention policy`)
    const groupBy = /GROUP BY (.*?)(?:\s+fill\(|$)/i.exec(q.text)?.[1] ?? ''
    const tags = [...groupBy.matchAll(/"(\w+)"/g), ...q.text.matchAll(/"(\w+)"\s*=~/g), ...q.text.matchAll(/WITH KEY = "(\w+)"/g)].map((m) => m[1]!)
    for (const tag of tags) t.ok(w.tags.includes(tag), `${q.where}: ${from[0]} is tagged ${tag}`)
    const fields = [...q.text.matchAll(/\b(?:mean|median|percentile|count|sum|min|max|last|first|spread|stddev)\(\s*"(\w+)"/gi)].map((m) => m[1]!)
    for (const f of fields) t.match(w.fieldsSource, new RegExp(`\\b${f}:`), `${q.where}: ${from[0]} has field ${f}`)
    // Scores, premiums and events are about people: the dashboards show them only in aggregate.
    t.notMatch(q.text, /policy_id|device_id/, `${q.where}: no query picks out a policy or device`)
  }
})

t.test('PromQL queries read metrics the code registers', async (t) => {
  const sources = ['ingest', 'scoring', 'pricing', 'bin', 'dashboards'].flatMap((d) =>
    (readdirSync(join(root, d), { recursive: true }) as string[]).filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts')).map((f) => read(join(d, f))))
  const registered = new Map(sources.flatMap((s) =>
    [...s.matchAll(/new (Counter|Gauge|Histogram|Summary)(?:<[^>]*>)?\(\{\s*name:\s*'([^']+)'/g)].map((m) => [m[2]!, m[1]!] as const)))
  t.ok(registered.size >= 10, 'found the registered metrics')
  // prom-client's own process and Node.js metrics, which bin/pipeline.ts turns on.
  const defaults = new Set(readdirSync(join(root, 'node_modules/prom-client/lib/metrics')).filter((f) => f.endsWith('.js'))
    .flatMap((f) => [...read(`node_modules/prom-client/lib/metrics/${f}`).matchAll(/'((?:process|nodejs)_\w+)'/g)].map((m) => m[1]!)))
  const kindOf = (name: string) => {
    if (registered.has(name)) return registered.get(name)
    if (defaults.has(name) && read('bin/pipeline.ts').includes('collectDefaultMetrics(')) return 'default'
    // Histograms are queried by their series: name_bucket, name_sum, name_count.
    const base = /^(\w+)_(bucket|sum|count)$/.exec(name)
    const kind = base ? registered.get(base[1]!) : undefined
    return kind === 'Histogram' || (kind === 'Summary' && base?.[2] !== 'bucket') ? kind : undefined
  }
  for (const q of promql) {
    const names = new Set([
      ...[...q.text.matchAll(/([a-zA-Z_:][\w:]*)\s*[{[]/g)].map((m) => m[1]!),
      ...[...q.text.matchAll(/label_values\(\s*(\w+)/g)].map((m) => m[1]!),
      ...[...q.text.matchAll(/\b(?:ubiq|process|nodejs)_\w+/g)].map((m) => m[0]),
    ])
    t.ok(names.size, `${q.where} reads a metric`)
    for (const n of names) t.ok(kindOf(n), `${q.where}: ubiq exposes ${n}`)
  }
})

t.test('every InfluxQL query runs on InfluxDB 1.6 and finds what ubiq writes', async (t) => {
  const tmp = mkdtempSync(join(tmpdir(), 'ubiq-grafana-'))
  const influx = await startInfluxd(join(tmp, 'influx'))
  t.teardown(async () => {
    await influx.stop()
    rmSync(tmp, { recursive: true, force: true })
  })
  const db = 'ubiq_grafana'
  const influxQuery = async (q: string) => {
    const res = await fetch(`${influx.url}/query?${new URLSearchParams({ db, q })}`, { method: 'POST' })
    // A query that does not parse is answered with a top-level error and no results.
    const body = (await res.json()) as { error?: string; results?: { error?: string; series?: unknown[] }[] }
    const results = body.results ?? []
    return { error: body.error ?? results.find((r) => r.error)?.error, series: results.flatMap((r) => r.series ?? []) }
  }
  await influxQuery(`CREATE DATABASE ${db}`)
  // One point per measurement, with the tags its toLine call writes and every field a query reads.
  const fieldsRead = [...new Set(influxql.flatMap((q) => [...q.text.matchAll(/\(\s*"(\w+)"/g)].map((m) => m[1]!)))]
  const tagValue: Record<string, string> = { subject: 'driving', model: 'driving-frequency@3', type: 'harsh_braking' }
  const lines = Object.keys(written).map((m) => `${m},${writer(m)!.tags.map((k) => `${k}=${tagValue[k] ?? 'x'}`).join(',')} ` +
    `${fieldsRead.map((f) => `${f}=50`).join(',')} ${Date.now() - 300_000}`)
  const res = await fetch(`${influx.url}/write?db=${db}&precision=ms`, { method: 'POST', body: lines.join('\n') })
  t.equal(res.status, 204, await res.text())
  // Grafana's macros as it expands them for a six-hour range and the $subject variable's "All".
  const expand = (q: string) => q.replaceAll('$timeFilter', 'time >= now() - 6h and time <= now()')
    .replaceAll('$__interval', '1m').replaceAll('$subject', '(driving|health|home)')
  for (const q of influxql) {
    const { error, series } = await influxQuery(expand(q.text))
    t.equal(error, undefined, `${q.where} runs`)
    t.ok(series.length, `${q.where} finds the point`)
  }
})
