/**
 * `npm run bench:feed` (issue #7): the policyholders' live feed under load, on real Mosquitto and
 * InfluxDB, against raw references measured in the same run. Several runs, medians.
 *
 * 1,000 websocket clients (one per policy, in a separate process) follow the feed while scores
 * for their policies are handed to the dashboards server at 10,000 a second in total. Measured:
 * - delivery latency, handed to the server → parsed by the client, p50 and p99, beside the same
 *   messages fanned out by a bare `ws` server (the raw reference: no auth, journal or framework);
 * - ingest throughput (bench:ingest's queue drain) alone, and again while the feed runs in the
 *   same process, as it does in `ubiq start`: the drop is the feed's cost to ingest.
 *
 * The scores are made here, not by scoring: 10,000 scores a second would need far more telemetry
 * than one machine carries. They go through the same server, journal and sockets as real ones.
 */
import { fork } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import { Registry } from 'prom-client'
import { NEVER, Subject } from 'rxjs'
import { WebSocketServer, type WebSocket } from 'ws'
import { connectInflux } from '../ingest/index.ts'
import type { Score } from '../scoring/index.ts'
import { startDashboards, tokenAuthority } from '../dashboards/index.ts'
import { startInfluxd, startMosquitto } from '../bin/local-services.ts'
import { drainBench, log, median } from './drain.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const CLIENTS = Number(process.env.BENCH_FEED_CLIENTS ?? 1000)
const RATE = Number(process.env.BENCH_FEED_RATE ?? 10_000)
const SECONDS = Number(process.env.BENCH_FEED_SECONDS ?? 10)

const dir = mkdtempSync(join(tmpdir(), 'ubiq-bench-feed-'))
const broker = await startMosquitto(join(dir, 'mosquitto'))
const influx = await startInfluxd(join(dir, 'influxdb'))
const drain = drainBench({ brokerUrl: broker.url, influxUrl: influx.url, dir, devices: 1000, perDevice: Number(process.env.BENCH_PER_DEVICE ?? 100) })
const policies = Array.from({ length: CLIENTS }, (_, i) => `bench-feed-${i}`)
log(`Mosquitto ${broker.url}, InfluxDB ${influx.url}; ${CLIENTS} clients, ${RATE} scores/s for ${SECONDS} s, ingest drain of ${drain.messages} messages; ${RUNS} runs`)

/** A score as scoring makes them (reasons and features of the usual size), handed over now. */
function scoreFor(policyId: string, n: number): Score {
  const to = performance.timeOrigin + performance.now()
  const reason = (code: string, label: string, unit: string, value: number, baseline: number, impact: number) => ({ code, label, unit, value, baseline, impact, text: `${label} ${value} ${unit} (typical ${baseline}): ${impact} points` })
  return {
    policyId, subject: 'driving', value: 50 + (n % 50), model: 'driving-frequency@2',
    reasons: [reason('harsh_braking_per_100km', 'harsh braking', 'per 100 km', 4.1, 2, -6), reason('night_share', 'night driving', '% of km', 12, 8, -2), reason('speeding_share', 'speeding', '% of time', 1, 3, 4)],
    window: { from: to - 30 * 86_400_000, to }, exposure: { days: 30, distance_km: 812 },
    features: { harsh_braking_per_100km: 4.1, night_share: 0.12, speeding_share: 0.01, km_per_day: 27 },
  }
}

/** Hands out `RATE` scores a second, round robin over the policies, until stopped; how many. */
function emitter(hand: (score: Score) => void): { stop(): number } {
  const t0 = performance.now()
  let sent = 0
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) / 1000) * RATE)
    for (; sent < due; sent++) hand(scoreFor(policies[sent % CLIENTS]!, sent))
  }, 2)
  return { stop: () => (clearInterval(timer), sent) }
}

/** The clients' process. */
const clients = fork(fileURLToPath(new URL('./feed-clients.ts', import.meta.url)), { execArgv: ['--import', 'tsx'] })
const ask = <T>(cmd: object, answer: string) => new Promise<T>((resolve) => {
  const on = (msg: { type: string }) => msg.type === answer && (clients.off('message', on), resolve(msg as T))
  clients.on('message', on)
  clients.send(cmd)
})
type Report = { latencies: number[]; closes: Record<string, number> }

/** The feed's delivery while `during` runs (by default, SECONDS of waiting), through the connected clients. */
async function deliver(hand: (score: Score) => void, during = () => new Promise((r) => setTimeout(r, SECONDS * 1000))) {
  await ask({ type: 'start' }, 'started')
  const cpu0 = process.cpuUsage()
  const e = emitter(hand)
  const result = await during()
  const sent = e.stop()
  await new Promise((r) => setTimeout(r, 500)) // the last ones in flight
  const cpu = process.cpuUsage(cpu0)
  const report = await ask<Report>({ type: 'stop' }, 'report')
  const sorted = report.latencies.sort((a, b) => a - b)
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN
  // This process's CPU time per message (user + system, µs): the cost of the fan-out.
  return { sent, delivered: sorted.length, p50: q(0.5), p99: q(0.99), closes: report.closes, result, cpuPerMsg: (cpu.user + cpu.system) / sent }
}

/** The raw reference: a bare ws server sending each policy's messages to its client. */
async function rawServer() {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  await new Promise((r) => wss.once('listening', r))
  const byPolicy = new Map<string, WebSocket>()
  wss.on('connection', (ws, req) => byPolicy.set(new URL(req.url!, 'http://x').searchParams.get('policy')!, ws))
  let seq = 0
  const { port } = wss.address() as { port: number }
  return {
    urls: policies.map((p) => `ws://127.0.0.1:${port}/?policy=${p}`),
    hand: (score: Score) => byPolicy.get(score.policyId)?.send(JSON.stringify({ type: 'score', score, seq: ++seq })),
    close: () => new Promise((r) => wss.close(r)),
  }
}

/** ubiq's dashboards server, fed the scores through the stream scoring would feed it. */
async function ubiqServer() {
  const scores$ = new Subject<Score>()
  const auth = tokenAuthority('a benchmark secret of at least thirty-two bytes')
  const server = await startDashboards({
    scores$, events$: NEVER, premiums$: NEVER,
    influx: await connectInflux({ api: 'v1', url: influx.url, database: 'bench_feed', retentionPolicy: 'autogen' }),
    auth, metrics: new Registry(), deviceClock: () => undefined, whatIf: async () => undefined,
    health: () => ({ ok: true, checks: {} }), logger: pino({ level: 'warn' }), host: '127.0.0.1', port: 0,
    // The clients all come from one address here; in the field each has its own.
    rateLimitPerMinute: 100 * CLIENTS,
  })
  const ws = server.url.replace('http', 'ws')
  return { urls: policies.map((p) => `${ws}/feed?token=${auth.issue({ role: 'policyholder', policyId: p }, 3600_000)}`), hand: (s: Score) => scores$.next(s), close: () => server.close() }
}

const ms = (x: number) => `${x.toFixed(1)} ms`
type Delivery = Awaited<ReturnType<typeof deliver>>
const rows: { raw: Delivery; idle: Delivery; loaded: Delivery; alone: number; withFeed: number }[] = []
for (let run = 1; run <= RUNS; run++) {
  const raw = await rawServer()
  await ask({ type: 'open', urls: raw.urls }, 'ready')
  const rawResult = await deliver(raw.hand)
  await ask({ type: 'close' }, 'closed')
  await raw.close()

  const ubiq = await ubiqServer()
  await ask({ type: 'open', urls: ubiq.urls }, 'ready')
  const idle = await deliver(ubiq.hand)
  const alone = (await drain.ubiqRun(`feed_alone_${run}`)).msgs
  const loaded = await deliver(ubiq.hand, () => drain.ubiqRun(`feed_loaded_${run}`))
  await ask({ type: 'close' }, 'closed')
  await ubiq.close()
  const withFeed = (loaded.result as { msgs: number }).msgs
  rows.push({ raw: rawResult, idle, loaded, alone, withFeed })
  log(`run ${run}/${RUNS}: p99 raw ${ms(rawResult.p99)}, ubiq ${ms(idle.p99)}, ubiq during ingest ${ms(loaded.p99)}; CPU per message raw ${rawResult.cpuPerMsg.toFixed(1)} µs, ubiq ${idle.cpuPerMsg.toFixed(1)} µs; ingest ${alone.toFixed(0)} msg/s alone, ${withFeed.toFixed(0)} with the feed; delivered ${idle.delivered}/${idle.sent}, closes ${JSON.stringify(idle.closes)}`)
}
clients.kill()
await broker.stop()
await influx.stop()

const med = (f: (r: typeof rows[0]) => number) => median(rows.map(f))
const lost = (r: typeof rows[0]) => [r.raw, r.idle, r.loaded].reduce((a, d) => a + d.sent - d.delivered, 0)
const alone = med((r) => r.alone)
const withFeed = med((r) => r.withFeed)
console.log(`
ubiq feed benchmark: ${CLIENTS} websocket clients, ${RATE} scores/s in total for ${SECONDS} s, median of ${RUNS} runs
  raw reference  bare ws server, JSON.stringify + send   delivery p50 ${ms(med((r) => r.raw.p50))}, p99 ${ms(med((r) => r.raw.p99))}; server CPU ${med((r) => r.raw.cpuPerMsg).toFixed(1)} µs/message
  ubiq           /feed: token, journal, seq              delivery p50 ${ms(med((r) => r.idle.p50))}, p99 ${ms(med((r) => r.idle.p99))} (goal p99 ≤ 50 ms); server CPU ${med((r) => r.idle.cpuPerMsg).toFixed(1)} µs/message
  ubiq           /feed while ingest drains its queue     delivery p50 ${ms(med((r) => r.loaded.p50))}, p99 ${ms(med((r) => r.loaded.p99))}
  ingest alone                                          ${alone.toFixed(0).padStart(8)} msg/s
  ingest while the feed runs in the same process        ${withFeed.toFixed(0).padStart(8)} msg/s   ratio ${med((r) => r.withFeed / r.alone).toFixed(2)} (goal ≥ 0.90; median of each run's ratio: ${rows.map((r) => (r.withFeed / r.alone).toFixed(2)).join(', ')})
  messages not delivered, all runs: ${rows.reduce((a, r) => a + lost(r), 0)}; feed clients cut off: ${rows.reduce((a, r) => a + (r.idle.closes['1013'] ?? 0) + (r.loaded.closes['1013'] ?? 0), 0)}
`)
process.exit(0)
