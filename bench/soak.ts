/**
 * `npm run bench:soak` (issue #20, "Beyond the list"): the whole pipeline for a bounded time
 * (BENCH_SOAK_MINUTES) under churning devices with the faults mixed in, its memory and event-loop
 * delay sampled beside a raw reference's, to see whether memory is bounded by activity (#20 item
 * 5: RSS flat within ±5% over an hour with device churn) or grows with every device ever seen.
 *
 * - Services: its own Mosquitto (ubiq's broker config: per-device credentials, the ACL, the
 *   packet limit) and InfluxDB; the pipeline in this process, as `ubiq start` runs it.
 * - Load (soak-load.ts, a process of its own): a fixed number of policies active at a time, each
 *   publishing one simulated day (edge-sim: vehicles' OBD, GPS and 25 Hz IMU, phones, wearables,
 *   homes) through its devices' own connections, then leaving for the next of a pool; edge-sim's
 *   device faults and the #20 attacks at low rates; feed clients connecting and leaving with their
 *   policies; REST queries, the #20 times among them.
 * - Raw reference (soak-raw.ts, a process of its own): mqtt.js subscribed to the same traffic,
 *   doing only JSON.parse.
 * - Every BENCH_SOAK_SAMPLE_S: in both processes, event-loop delay over the interval, then RSS
 *   and heap after a forced full collection (soak-sampler.ts); ubiq's counters (its /metrics
 *   registry), the load's, and Mosquitto's and InfluxDB's RSS. All of it goes to a CSV.
 *
 * Figures exclude the warm-up (BENCH_SOAK_WARMUP_MIN: JIT, the first scores, InfluxDB's and the
 * broker's first allocations): the median of the first window after it is compared with the last
 * window's, the slope is fitted over everything after it, and the heap's growth per device first
 * seen is its slope against the devices seen so far (zero if memory follows the active devices).
 * BENCH_SOAK_HEAP_SNAPSHOTS=1 adds heap snapshots after the warm-up and at the end, and what grew
 * between them (soak-heap.ts): for finding a growth, not for figures (writing one raises RSS for good).
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process'
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { writeHeapSnapshot } from 'node:v8'
import pino from 'pino'
import { randomBytes } from 'node:crypto'
import { startInfluxd, startMosquitto } from '../bin/local-services.ts'
import { serverRss as serverRssOf } from './server-rss.ts'
import { startPipeline } from '../bin/pipeline.ts'
import { cityGeoJson } from '../edge-sim/index.ts'
import { deviceRegistry, newCredentials, SERVICE_USER, writeBrokerAuth } from '../ingest/index.ts'
import { log, median } from './drain.ts'
import type { LoadConfig, LoadStats } from './soak-load.ts'
import { poolRegistry, soakCity, soakPool } from './soak-fleet.ts'
import { heapGrowth } from './soak-heap.ts'
import { loopSampler, type Sample } from './soak-sampler.ts'

const env = process.env
const MINUTES = Number(env.BENCH_SOAK_MINUTES ?? 10)
const POOL = Number(env.BENCH_SOAK_POLICIES ?? 5000)
const ACTIVE = Number(env.BENCH_SOAK_ACTIVE ?? 120)
const SESSION_S = Number(env.BENCH_SOAK_SESSION_S ?? 360)
const SAMPLE_S = Number(env.BENCH_SOAK_SAMPLE_S ?? 5)
const WARMUP_MIN = Number(env.BENCH_SOAK_WARMUP_MIN ?? 3)
const WINDOW_MIN = Number(env.BENCH_SOAK_WINDOW_MIN ?? Math.max(1, (MINUTES - WARMUP_MIN) / 5))
const ATTACK_RATE = Number(env.BENCH_SOAK_ATTACK_RATE ?? 1 / 2000)
const FEED_SHARE = Number(env.BENCH_SOAK_FEED_SHARE ?? 0.5)
if (MINUTES - WARMUP_MIN < 2 * WINDOW_MIN) throw new Error(`BENCH_SOAK_MINUTES=${MINUTES} leaves no two windows of ${WINDOW_MIN} min after a warm-up of ${WARMUP_MIN} min`)
const stamp = new Date().toISOString().slice(0, 16).replace(/[:T]/g, '-')
const CSV = env.BENCH_SOAK_CSV ?? join(tmpdir(), `ubiq-soak-${stamp}.csv`)
const LOG = CSV.replace(/\.csv$/, '') + '.log'
const RAW_USER = 'soak-raw'
/** Heap snapshots after the warm-up and at the end, and what grew between them (a pause of seconds each, and memory to read them). */
const SNAPSHOTS = env.BENCH_SOAK_HEAP_SNAPSHOTS === '1' ? [`${CSV.replace(/\.csv$/, '')}-start.heapsnapshot`, `${CSV.replace(/\.csv$/, '')}-end.heapsnapshot`] as const : undefined

const script = (name: string) => fileURLToPath(new URL(name, import.meta.url))
const ask = <T>(child: ChildProcess, cmd: object, answer: string) => new Promise<T>((resolve) => {
  const on = (msg: { type: string }) => msg.type === answer && (child.off('message', on), resolve(msg as T))
  child.on('message', on)
  child.send(cmd)
})
const mib = (bytes: number) => bytes / 1048576

// ─── services ────────────────────────────────────────────────────────────────────────────────
const dir = mkdtempSync(join(tmpdir(), 'ubiq-bench-soak-'))
const city = soakCity()
const pool = soakPool(city, POOL)
const entries = poolRegistry(pool)
const credentials = newCredentials(entries)
const conf = writeBrokerAuth(join(dir, 'mosquitto', 'auth'), credentials)
// The raw reference's own user, reading what ingest reads (its client id is its name, as for every user).
const rawPassword = randomBytes(18).toString('base64url')
const confFile = (key: string) => conf.global.find((l) => l.startsWith(`${key} `))!.slice(key.length + 1)
appendFileSync(confFile('acl_file'), `\nuser ${RAW_USER}\ntopic read ubiq/v1/dev/#\n`)
execFileSync('mosquitto_passwd', ['-b', confFile('password_file'), RAW_USER, rawPassword])
const broker = await startMosquitto(join(dir, 'mosquitto'), { conf, username: SERVICE_USER, password: credentials.service })
const influx = await startInfluxd(join(dir, 'influxdb'))
const serviceUrl = new URL(broker.url)
serviceUrl.username = SERVICE_USER
serviceUrl.password = encodeURIComponent(credentials.service)
const roadMapFile = join(dir, 'roads.geojson')
writeFileSync(roadMapFile, JSON.stringify(cityGeoJson(city)))
const tokenSecret = randomBytes(32).toString('hex')
writeFileSync(LOG, '')
const pipeline = await startPipeline({
  mqttUrl: serviceUrl.toString(),
  influx: { api: 'v1', url: influx.url, database: 'soak' },
  devices: deviceRegistry(entries),
  dataDir: join(dir, 'ubiq'),
  host: '127.0.0.1',
  port: 0,
  roadMapFile,
  tokenSecret,
  // The feed and REST clients all come from one address here; in the field each has its own.
  rateLimitPerMinute: 1_000_000,
}, pino({ level: 'warn' }, pino.destination({ dest: LOG, sync: true })))

const serverRss = serverRssOf(dir)

/** A counter or gauge of the pipeline's registry, summed over its labels (by label `by`, when given). */
async function metric(name: string): Promise<number>
async function metric(name: string, by: string): Promise<Record<string, number>>
async function metric(name: string, by?: string): Promise<number | Record<string, number>> {
  const values = (await pipeline.metrics.getSingleMetric(name)?.get())?.values ?? []
  if (!by) return values.reduce((a, v) => a + v.value, 0)
  return Object.fromEntries(values.map((v) => [String(v.labels[by]), v.value]))
}

// ─── the reference and the load ──────────────────────────────────────────────────────────────
const sampler = loopSampler()
const raw = fork(script('./soak-raw.ts'), { execArgv: ['--expose-gc', '--import', 'tsx'] })
await ask(raw, { type: 'start', url: broker.url, username: RAW_USER, password: rawPassword }, 'started')
const load = fork(script('./soak-load.ts'), { execArgv: ['--import', 'tsx'] })
const loadConfig: LoadConfig = {
  brokerUrl: broker.url, passwords: [...credentials.devices], dashboardsUrl: pipeline.url, tokenSecret,
  pool: POOL, active: ACTIVE, sessionS: SESSION_S, attackRate: ATTACK_RATE, feedShare: FEED_SHARE,
}
await ask(load, { type: 'start', ...loadConfig }, 'started')
log(`Mosquitto ${broker.url}, InfluxDB ${influx.url}, dashboards ${pipeline.url}; ${MINUTES} min, ${ACTIVE} policies active at a time of ${POOL} (${entries.length} devices), a simulated day each in ${SESSION_S} s`)
log(`samples every ${SAMPLE_S} s to ${CSV}; the pipeline's log: ${LOG}`)
if (SNAPSHOTS) log("BENCH_SOAK_HEAP_SNAPSHOTS=1: heap snapshots raise RSS for good (V8's writer); this run finds what grows, its RSS figures are not a measure")

// ─── sampling ────────────────────────────────────────────────────────────────────────────────
interface Row {
  t: number
  ubiq: Sample
  raw: Sample & { received: number; unparsed: number }
  load: LoadStats
  received: number
  stored: number
  rejected: number
  duplicates: number
  scores: number
  premiums: number
  journalPending: number
  feedClients: number
  mosquittoRss: number
  influxdRss: number
}
const columns: [string, (r: Row) => number | string][] = [
  ['t_s', (r) => r.t.toFixed(1)],
  ['phase', (r) => (r.t <= WARMUP_MIN * 60 ? 'warmup' : 'steady')],
  ['rss_mib', (r) => mib(r.ubiq.rss).toFixed(1)],
  ['rss_before_gc_mib', (r) => mib(r.ubiq.rssBeforeGc).toFixed(1)],
  ['heap_used_mib', (r) => mib(r.ubiq.heapUsed).toFixed(1)],
  ['heap_total_mib', (r) => mib(r.ubiq.heapTotal).toFixed(1)],
  ['external_mib', (r) => mib(r.ubiq.external).toFixed(1)],
  ['array_buffers_mib', (r) => mib(r.ubiq.arrayBuffers).toFixed(1)],
  ['loop_p50_ms', (r) => r.ubiq.loopP50.toFixed(2)],
  ['loop_p99_ms', (r) => r.ubiq.loopP99.toFixed(2)],
  ['loop_max_ms', (r) => r.ubiq.loopMax.toFixed(2)],
  ['received', (r) => r.received],
  ['stored', (r) => r.stored],
  ['rejected', (r) => r.rejected],
  ['duplicates', (r) => r.duplicates],
  ['scores', (r) => r.scores],
  ['premiums', (r) => r.premiums],
  ['journal_pending_lines', (r) => r.journalPending],
  ['feed_clients', (r) => r.feedClients],
  ['raw_rss_mib', (r) => mib(r.raw.rss).toFixed(1)],
  ['raw_heap_used_mib', (r) => mib(r.raw.heapUsed).toFixed(1)],
  ['raw_loop_p50_ms', (r) => r.raw.loopP50.toFixed(2)],
  ['raw_loop_p99_ms', (r) => r.raw.loopP99.toFixed(2)],
  ['raw_loop_max_ms', (r) => r.raw.loopMax.toFixed(2)],
  ['raw_received', (r) => r.raw.received],
  ['active_policies', (r) => r.load.activePolicies],
  ['active_devices', (r) => r.load.activeDevices],
  ['policies_seen', (r) => r.load.policiesSeen],
  ['devices_seen', (r) => r.load.devicesSeen],
  ['sent', (r) => r.load.sent],
  ['load_behind_ms', (r) => r.load.behindMs.toFixed(0)],
  ['mosquitto_rss_mib', (r) => mib(r.mosquittoRss).toFixed(1)],
  ['influxd_rss_mib', (r) => mib(r.influxdRss).toFixed(1)],
]
writeFileSync(CSV, `${columns.map(([c]) => c).join(',')}\n`)

const rows: Row[] = []
const t0 = performance.now()
const PROGRESS_EVERY = Math.max(1, Math.round(30 / SAMPLE_S))
for (let k = 1; ; k++) {
  await sleep(Math.max(0, t0 + k * SAMPLE_S * 1000 - performance.now()))
  const t = (performance.now() - t0) / 1000
  const ubiq = sampler.sample()
  const [rawSample, loadStats] = await Promise.all([ask<Row['raw']>(raw, { type: 'sample' }, 'sample'), ask<LoadStats>(load, { type: 'stats' }, 'stats')])
  const row: Row = {
    t, ubiq, raw: rawSample, load: loadStats,
    received: await metric('ubiq_ingest_messages_received_total'),
    stored: await metric('ubiq_ingest_messages_stored_total'),
    rejected: await metric('ubiq_ingest_messages_rejected_total'),
    duplicates: await metric('ubiq_ingest_duplicates_total'),
    scores: await metric('ubiq_scores_total'),
    premiums: await metric('ubiq_premium_adjustments_total'),
    journalPending: await metric('ubiq_ingest_journal_pending_lines'),
    feedClients: await metric('ubiq_feed_clients'),
    mosquittoRss: serverRss('mosquitto'),
    influxdRss: serverRss('influxd'),
  }
  rows.push(row)
  appendFileSync(CSV, `${columns.map(([, f]) => f(row)).join(',')}\n`)
  if (k % PROGRESS_EVERY === 0) {
    log(`${(t / 60).toFixed(1)}/${MINUTES} min${t <= WARMUP_MIN * 60 ? ' (warm-up)' : ''}: RSS ${mib(ubiq.rss).toFixed(0)} MiB (raw ${mib(rawSample.rss).toFixed(0)}), heap ${mib(ubiq.heapUsed).toFixed(0)} MiB, ` +
      `loop p99 ${ubiq.loopP99.toFixed(1)} ms (raw ${rawSample.loopP99.toFixed(1)}); ${row.received} received (raw ${rawSample.received}), ${row.stored} stored, ${row.rejected} rejected, ` +
      `${row.scores} scores; ${loadStats.activeDevices} devices active, ${loadStats.devicesSeen} seen (${loadStats.policiesSeen} policies), ${row.feedClients} feed clients; load behind ${(loadStats.behindMs / 1000).toFixed(1)} s`)
  }
  const ending = t >= MINUTES * 60
  if (SNAPSHOTS && (ending || (t > WARMUP_MIN * 60 && (rows.at(-2)?.t ?? 0) <= WARMUP_MIN * 60))) {
    log(`writing ${writeHeapSnapshot(SNAPSHOTS[ending ? 1 : 0])}`)
    sampler.reset()
  }
  if (ending) break
}

// ─── stop ────────────────────────────────────────────────────────────────────────────────────
const final = await ask<LoadStats>(load, { type: 'stop' }, 'stopped')
// What was sent is taken before the pipeline stops: until nothing more comes for 2 s (at most 30 s).
for (let last = -1, waited = 0; waited < 30; waited += 2) {
  const now = await metric('ubiq_ingest_messages_received_total')
  if (now === last) break
  last = now
  await sleep(2000)
}
const totals = {
  received: await metric('ubiq_ingest_messages_received_total'),
  stored: await metric('ubiq_ingest_messages_stored_total'),
  duplicates: await metric('ubiq_ingest_duplicates_total'),
  rejected: await metric('ubiq_ingest_messages_rejected_total', 'reason'),
  quarantined: await metric('ubiq_ingest_lines_quarantined_total'),
  pauses: await metric('ubiq_ingest_backpressure_pauses_total'),
  trips: await metric('ubiq_trips_total'),
  events: await metric('ubiq_events_total'),
  scores: await metric('ubiq_scores_total'),
  premiums: await metric('ubiq_premium_adjustments_total'),
  keyFailures: await metric('ubiq_scoring_key_failures_total'),
  feedSent: await metric('ubiq_feed_messages_sent_total'),
  feedCutOff: await metric('ubiq_feed_clients_cut_off_total'),
}
const rawFinal = await ask<Row['raw']>(raw, { type: 'sample' }, 'sample')
await pipeline.stop()
raw.kill()
load.kill()
await Promise.all([broker.stop(), influx.stop()])
rmSync(dir, { recursive: true, force: true })
const logLines = readFileSync(LOG, 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { level: number; msg: string }))

// ─── figures ─────────────────────────────────────────────────────────────────────────────────
const steady = rows.filter((r) => r.t > WARMUP_MIN * 60)
const end = rows.at(-1)!.t
const first = steady.filter((r) => r.t <= WARMUP_MIN * 60 + WINDOW_MIN * 60)
const last = steady.filter((r) => r.t > end - WINDOW_MIN * 60)
/** Least-squares slope of y on x. */
const slope = (xs: number[], ys: number[]) => {
  const [mx, my] = [xs.reduce((a, b) => a + b, 0) / xs.length, ys.reduce((a, b) => a + b, 0) / ys.length]
  const sxx = xs.reduce((a, x) => a + (x - mx) ** 2, 0)
  return sxx === 0 ? NaN : xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0) / sxx
}
/** A memory figure of a process over the steady part: windows' medians, growth, slope per hour, band of minute medians. */
function flatness(of: (r: Row) => number) {
  const [a, b] = [median(first.map(of)), median(last.map(of))]
  const all = median(steady.map(of))
  const minutes = new Map<number, number[]>()
  for (const r of steady) minutes.set(Math.floor(r.t / 60), [...(minutes.get(Math.floor(r.t / 60)) ?? []), of(r)])
  const band = Math.max(...[...minutes.values()].map((xs) => Math.abs(median(xs) - all) / all))
  return { first: a, last: b, growth: (b - a) / a, perHour: slope(steady.map((r) => r.t / 3600), steady.map(of)), band }
}
const rss = flatness((r) => r.ubiq.rss)
const heap = flatness((r) => r.ubiq.heapUsed)
const rawRss = flatness((r) => r.raw.rss)
const rawHeap = flatness((r) => r.raw.heapUsed)
// Memory kept per device (policy) first seen after the warm-up: zero if memory follows the active ones.
const perDevice = slope(steady.map((r) => r.load.devicesSeen), steady.map((r) => r.ubiq.heapUsed))
const perPolicy = slope(steady.map((r) => r.load.policiesSeen), steady.map((r) => r.ubiq.heapUsed))
const loop = (of: (r: Row) => Sample) => ({ p50: median(steady.map((r) => of(r).loopP50)), p99: median(steady.map((r) => of(r).loopP99)), worstP99: Math.max(...steady.map((r) => of(r).loopP99)), max: Math.max(...steady.map((r) => of(r).loopMax)) })
const [ubiqLoop, rawLoop] = [loop((r) => r.ubiq), loop((r) => r.raw)]
const s0 = steady[0]!
const steadyS = end - s0.t
const rate = (a: number, b: number) => ((b - a) / steadyS).toFixed(0)
const newDevices = rows.at(-1)!.load.devicesSeen - s0.load.devicesSeen
const newPolicies = rows.at(-1)!.load.policiesSeen - s0.load.policiesSeen
const sum = (o: Record<string, number>) => Object.values(o).reduce((a, b) => a + b, 0)

const f0 = (x: number) => x.toFixed(0)
const f1 = (x: number) => x.toFixed(1)
const pct = (x: number) => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(1)}%`
const memCell = (f: ReturnType<typeof flatness>) => `${f0(mib(f.first))} → ${f0(mib(f.last))} MiB (${pct(f.growth)})`
const slopeCell = (f: ReturnType<typeof flatness>) => `${f.perHour >= 0 ? '+' : ''}${f1(mib(f.perHour))} MiB/h`
const loopCell = (l: typeof ubiqLoop) => `${f1(l.p50)} / ${f1(l.p99)} ms (worst ${f1(l.worstP99)}, max ${f0(l.max)})`
const kib = (x: number) => `${(x / 1024).toFixed(2)} KiB`
const date = new Date().toISOString().slice(0, 10)
const f = final
const rejectedText = Object.entries(totals.rejected).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(', ')
const attacksText = `${Object.entries(f.attacks).map(([k, v]) => `${k} ${v}`).join(', ')} (of the reused times, ${f.reusedBeyondWindow} from further back than ingest's window)`
const faultsText = `devices with a clock off ${f.faults.clockSkewedDevices}; messages out of range ${f.faults.out_of_range ?? 0}, cut short ${f.faults.malformed ?? 0}, ` +
  `on another device's topic ${f.faults.foreign_topic ?? 0} (the broker refused ${f.refused}), held offline and sent in a burst ${f.faults.offline ?? 0}, reordered ${f.faults.reordered ?? 0}, sent twice ${f.faults.duplicate ?? 0}`
const restText = Object.entries(f.rest).sort().map(([k, v]) => `${k}: ${v}`).join(', ')
const warnings = logLines.filter((l) => l.level >= 40)
const warnText = [...new Set(warnings.map((l) => l.msg))].map((m) => `${m} (${warnings.filter((l) => l.msg === m).length})`).join('; ') || 'none'

console.log(`
ubiq soak benchmark, ${date}: ${f1(end / 60)} min (warm-up ${f1(WARMUP_MIN)} min excluded; windows of ${f1(WINDOW_MIN)} min), a sample every ${SAMPLE_S} s after a forced GC
  load: ${ACTIVE} policies active at a time (${median(steady.map((r) => r.load.activeDevices))} devices), each a simulated day in ${SESSION_S} s, from a pool of ${POOL} (${entries.length} devices);
        ${f.sessionsDone} policy-days, ${f.policiesSeen} policies and ${f.devicesSeen} devices seen (${newPolicies} policies and ${newDevices} devices first seen after the warm-up)
  traffic: ${f.sent} messages sent; ubiq received ${totals.received} (${rate(s0.received, rows.at(-1)!.received)}/s steady), stored ${totals.stored}, duplicates dropped ${totals.duplicates}, lines quarantined ${totals.quarantined}, backpressure pauses ${totals.pauses}
           raw reference received ${rawFinal.received} (${rawFinal.unparsed} not JSON)
  rejected by ubiq: ${rejectedText || 'none'}
  #20 attacks sent: ${attacksText || 'none'}
  device faults: ${faultsText}
  scoring: ${totals.trips} trips, ${totals.events} events, ${totals.scores} scores, ${totals.premiums} premium adjustments, ${totals.keyFailures} key failures
  feed: ${f.feed.connects} connections (${f.feed.reconnects} reconnects with ?since=), ${totals.feedSent} messages sent, ${f.feed.messages} received, ${f.feed.gaps} gaps, cut off ${totals.feedCutOff}, other closes ${JSON.stringify(f.feed.closes)}, errors ${f.feed.errors}
  REST: ${restText}
  load behind schedule at worst ${f1(f.maxBehindMs / 1000)} s; pipeline log warnings/errors: ${warnText}

                                  ubiq                                raw reference (mqtt.js + JSON.parse)
  RSS, first → last window        ${memCell(rss).padEnd(36)}${memCell(rawRss)}
  RSS slope after warm-up         ${slopeCell(rss).padEnd(36)}${slopeCell(rawRss)}
  RSS band, minute medians        ±${f1(rss.band * 100)}% (goal ±5%)${' '.repeat(19)}±${f1(rawRss.band * 100)}%
  heap used, first → last window  ${memCell(heap).padEnd(36)}${memCell(rawHeap)}
  heap slope after warm-up        ${slopeCell(heap).padEnd(36)}${slopeCell(rawHeap)}
  heap per device first seen      ${kib(perDevice)} (per policy ${kib(perPolicy)})
  event-loop delay p50 / p99      ${loopCell(ubiqLoop).padEnd(36)}${loopCell(rawLoop)}
  Mosquitto RSS, first → last     ${memCell(flatness((r) => r.mosquittoRss))}; InfluxDB ${memCell(flatness((r) => r.influxdRss))}
  samples: ${CSV}
${SNAPSHOTS ? `\nBENCH_SOAK_HEAP_SNAPSHOTS=1: writing a heap snapshot raises RSS for good (V8's writer), so the RSS figures above are not a measure.\nWhat grew in ubiq's heap from the end of the warm-up to the end (heap snapshots ${SNAPSHOTS.join(', ')}):\n${heapGrowth(...SNAPSHOTS).join('\n')}\n` : ''}

| figure (${f1(end / 60)} min, ${date}) | ubiq | raw reference (mqtt.js + JSON.parse) |
|---|---|---|
| RSS after GC, median of the first → last ${f1(WINDOW_MIN)}-min window | ${memCell(rss)} | ${memCell(rawRss)} |
| RSS slope after the warm-up; band of minute medians (goal ±5%) | ${slopeCell(rss)}; ±${f1(rss.band * 100)}% | ${slopeCell(rawRss)}; ±${f1(rawRss.band * 100)}% |
| heap used after GC, first → last window; slope | ${memCell(heap)}; ${slopeCell(heap)} | ${memCell(rawHeap)}; ${slopeCell(rawHeap)} |
| heap per device first seen after the warm-up | ${kib(perDevice)} (${newDevices} devices; per policy ${kib(perPolicy)}) | |
| event-loop delay p50 / p99, median of ${SAMPLE_S}-s intervals | ${loopCell(ubiqLoop)} | ${loopCell(rawLoop)} |
| messages received / s, steady | ${rate(s0.received, rows.at(-1)!.received)} (${sum(totals.rejected)} rejected, ${totals.duplicates} duplicates) | ${rate(s0.raw.received, rows.at(-1)!.raw.received)} |
`)
process.exit(0)
