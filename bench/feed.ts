/**
 * `npm run bench:feed` (issue #7): the policyholders' live feed under load, on real Mosquitto and
 * InfluxDB, against raw references measured in the same run. Several runs, medians.
 *
 * 1,000 websocket clients (one per policy, in a separate process) follow the feed while scores
 * for their policies are handed to the dashboards server at 10,000 a second in total. Measured:
 * - delivery latency, due (feed-scores.ts) → parsed by the client, p50 and p99, beside the same
 *   messages fanned out by a bare `ws` server in a process of its own (the raw reference: no
 *   auth, journal or framework);
 * - ingest throughput (bench:ingest's queue drain) alone, and again while the feed runs in the
 *   same process, as in `ubiq start`: the drop is the feed's cost to ingest. The same drop with
 *   the bare server sending instead is the raw reference: on a small machine, the clients'
 *   parsing and the socket writes take cores that ingest, InfluxDB and Mosquitto would otherwise
 *   have.
 * - the same with the dashboards as a process of their own (`ubiq start --dashboards`) following
 *   the scores on Mosquitto, published there by a process standing in for scoring (which publishes
 *   every score anyway): its ingest ratio is taken against the bare server's in the same run (#25's
 *   goal ≥ 0.9), and its delivery p99 during the drain (goal ≤ 100 ms).
 *
 * BENCH_FEED_PROFILE=1 runs the dashboards process with --cpu-prof (profiles in the run's folder).
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import { Registry } from 'prom-client'
import { NEVER, Subject } from 'rxjs'
import { connectInflux, consentStore, deviceRegistry } from '../ingest/index.ts'
import type { Score } from '../scoring/index.ts'
import { startDashboards, tokenAuthority } from '../dashboards/index.ts'
import { startInfluxd, startMosquitto } from '../bin/local-services.ts'
import { drainBench, log, median } from './drain.ts'
import { CLIENTS, RATE, emitter, policies } from './feed-scores.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 5)
const SECONDS = Number(process.env.BENCH_FEED_SECONDS ?? 10)

const dir = mkdtempSync(join(tmpdir(), 'ubiq-bench-feed-'))
const broker = await startMosquitto(join(dir, 'mosquitto'))
const influx = await startInfluxd(join(dir, 'influxdb'))
const drain = drainBench({ brokerUrl: broker.url, influxUrl: influx.url, dir, devices: 1000, perDevice: Number(process.env.BENCH_PER_DEVICE ?? 100) })
log(`Mosquitto ${broker.url}, InfluxDB ${influx.url}; ${CLIENTS} clients, ${RATE} scores/s for ${SECONDS} s, ingest drain of ${drain.messages} messages; ${RUNS} runs`)

const script = (name: string) => fileURLToPath(new URL(name, import.meta.url))
const ask = <T>(child: ChildProcess, cmd: object | undefined, answer: string) => new Promise<T>((resolve) => {
  const on = (msg: { type: string }) => msg.type === answer && (child.off('message', on), resolve(msg as T))
  child.on('message', on)
  if (cmd) child.send(cmd)
})
const clients = fork(script('./feed-clients.ts'), { execArgv: ['--import', 'tsx'] })
type Report = { latencies: number[]; closes: Record<string, number> }

/** A feed server under test: where its clients connect, and how it is made to send. */
interface Server { urls: string[]; start(): Promise<void>; stop(): Promise<{ sent: number; cpuMicros: number }>; close(): Promise<unknown> }

/** The feed's delivery while `during` runs (by default, SECONDS of waiting), through the connected clients. */
async function deliver(server: Server, during = () => new Promise((r) => setTimeout(r, SECONDS * 1000))) {
  await ask(clients, { type: 'start' }, 'started')
  await server.start()
  const result = await during()
  const { sent, cpuMicros } = await server.stop()
  const report = await ask<Report>(clients, { type: 'stop' }, 'report')
  const sorted = report.latencies.sort((a, b) => a - b)
  const q = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN
  // The server's CPU time per message (user + system, µs), making the scores included: the cost of the fan-out.
  return { sent, delivered: sorted.length, p50: q(0.5), p99: q(0.99), closes: report.closes, result, cpuPerMsg: cpuMicros / sent }
}

/** The raw reference: a bare ws server in a process of its own, making and sending the same scores. */
async function rawServer(): Promise<Server> {
  const child = fork(script('./feed-raw.ts'), { execArgv: ['--import', 'tsx'] })
  const { urls } = await ask<{ urls: string[] }>(child, undefined, 'listening')
  return {
    urls,
    start: () => ask(child, { type: 'start' }, 'started'),
    stop: () => ask(child, { type: 'stop' }, 'stopped'),
    close: () => new Promise((r) => (child.once('exit', r), child.kill())),
  }
}

const SECRET = 'a benchmark secret of at least thirty-two bytes'
const profile = process.env.BENCH_FEED_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${join(dir, 'profiles')}`] : []
const exited = (child: ChildProcess) => new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)))

/**
 * ubiq's dashboards process (`ubiq start --dashboards`) following the scores on the broker, where a
 * process of its own publishes them as scoring does; the CPU counted is the dashboards process's.
 */
async function followerServer(run: number): Promise<Server> {
  const child = fork(script('./feed-follower.ts'), [JSON.stringify({ mqttUrl: broker.url, influxUrl: influx.url, dataDir: join(dir, `follower-${run}`), tokenSecret: SECRET })], { execArgv: ['--import', 'tsx', ...profile] })
  const publisher = fork(script('./feed-publisher.ts'), [broker.url], { execArgv: ['--import', 'tsx'] })
  const [{ url }] = await Promise.all([ask<{ url: string }>(child, undefined, 'listening'), ask(publisher, undefined, 'ready')])
  const auth = tokenAuthority(SECRET)
  return {
    urls: policies.map((p) => `${url.replace('http', 'ws')}/feed?token=${auth.issue({ role: 'policyholder', policyId: p }, 3600_000)}`),
    async start() {
      await ask(child, { type: 'start' }, 'started')
      await ask(publisher, { type: 'start' }, 'started')
    },
    async stop() {
      const { sent } = await ask<{ sent: number }>(publisher, { type: 'stop' }, 'stopped')
      await new Promise((r) => setTimeout(r, 500)) // the last ones in flight
      const { cpuMicros } = await ask<{ cpuMicros: number }>(child, { type: 'stop' }, 'stopped')
      return { sent, cpuMicros }
    },
    // A clean stop: its broker session ends, and a profile is written.
    close: () => (child.send({ type: 'close' }), publisher.kill(), Promise.all([exited(child), exited(publisher)])),
  }
}

/** ubiq's dashboards server, fed the scores through the stream scoring would feed it, in this process, as in `ubiq start`. */
async function ubiqServer(): Promise<Server> {
  const scores$ = new Subject<Score>()
  const auth = tokenAuthority(SECRET)
  const server = await startDashboards({
    consents: consentStore({ registry: deviceRegistry([]), record: () => '' }),
    scores$, events$: NEVER, premiums$: NEVER,
    influx: await connectInflux({ api: 'v1', url: influx.url, database: 'bench_feed' }),
    auth, metrics: new Registry(), deviceClock: () => undefined, whatIf: async () => undefined,
    health: () => ({ ok: true, checks: {} }), logger: pino({ level: 'warn' }), host: '127.0.0.1', port: 0,
    // The clients all come from one address here; in the field each has its own.
    rateLimitPerMinute: 100 * CLIENTS,
  })
  const ws = server.url.replace('http', 'ws')
  let running: { stop(): number; cpu0: NodeJS.CpuUsage } | undefined
  return {
    urls: policies.map((p) => `${ws}/feed?token=${auth.issue({ role: 'policyholder', policyId: p }, 3600_000)}`),
    start: async () => void (running = { cpu0: process.cpuUsage(), ...emitter((s) => scores$.next(s)) }),
    async stop() {
      const sent = running!.stop()
      await new Promise((r) => setTimeout(r, 500)) // the last ones in flight
      const cpu = process.cpuUsage(running!.cpu0)
      return { sent, cpuMicros: cpu.user + cpu.system }
    },
    close: () => server.close(),
  }
}

const ms = (x: number) => `${x.toFixed(1)} ms`
type Delivery = Awaited<ReturnType<typeof deliver>>
const rows: { raw: Delivery; rawLoaded: Delivery; idle: Delivery; loaded: Delivery; alone: number; follower: Delivery; followerLoaded: Delivery }[] = []
const msgs = (d: Delivery) => (d.result as { msgs: number }).msgs
for (let run = 1; run <= RUNS; run++) {
  const raw = await rawServer()
  await ask(clients, { type: 'open', urls: raw.urls }, 'ready')
  const rawIdle = await deliver(raw)
  const rawLoaded = await deliver(raw, () => drain.ubiqRun(`feed_raw_${run}`))
  await ask(clients, { type: 'close' }, 'closed')
  await raw.close()

  const ubiq = await ubiqServer()
  await ask(clients, { type: 'open', urls: ubiq.urls }, 'ready')
  const idle = await deliver(ubiq)
  const alone = (await drain.ubiqRun(`feed_alone_${run}`)).msgs
  const loaded = await deliver(ubiq, () => drain.ubiqRun(`feed_loaded_${run}`))
  await ask(clients, { type: 'close' }, 'closed')
  await ubiq.close()

  const follower = await followerServer(run)
  await ask(clients, { type: 'open', urls: follower.urls }, 'ready')
  const followerIdle = await deliver(follower)
  const followerLoaded = await deliver(follower, () => drain.ubiqRun(`feed_follower_${run}`))
  await ask(clients, { type: 'close' }, 'closed')
  await follower.close()
  rows.push({ raw: rawIdle, rawLoaded, idle, loaded, alone, follower: followerIdle, followerLoaded })
  log(`run ${run}/${RUNS}: p99 raw ${ms(rawIdle.p99)}, ubiq ${ms(idle.p99)}, ubiq during ingest ${ms(loaded.p99)}, dashboards process ${ms(followerIdle.p99)}, during ingest ${ms(followerLoaded.p99)}; CPU per message raw ${rawIdle.cpuPerMsg.toFixed(1)} µs, ubiq ${idle.cpuPerMsg.toFixed(1)} µs, dashboards process ${followerIdle.cpuPerMsg.toFixed(1)} µs; ingest ${alone.toFixed(0)} msg/s alone, ${msgs(loaded).toFixed(0)} with ubiq's feed, ${msgs(rawLoaded).toFixed(0)} with the bare server's, ${msgs(followerLoaded).toFixed(0)} with the dashboards process's; delivered ${idle.delivered}/${idle.sent}, ${followerIdle.delivered}/${followerIdle.sent}, closes ${JSON.stringify(idle.closes)} ${JSON.stringify(followerIdle.closes)}`)
}
clients.kill()
await broker.stop()
await influx.stop()

const med = (f: (r: typeof rows[0]) => number) => median(rows.map(f))
const phases = (r: typeof rows[0]) => [r.raw, r.rawLoaded, r.idle, r.loaded, r.follower, r.followerLoaded]
const ratios = (f: (r: typeof rows[0]) => number) => `${med(f).toFixed(2)} (runs ${rows.map((r) => f(r).toFixed(2)).join(', ')})`
console.log(`
ubiq feed benchmark: ${CLIENTS} websocket clients, ${RATE} scores/s in total for ${SECONDS} s, median of ${RUNS} runs
  raw reference  bare ws server, own process        delivery p50 ${ms(med((r) => r.raw.p50))}, p99 ${ms(med((r) => r.raw.p99))}; server CPU ${med((r) => r.raw.cpuPerMsg).toFixed(1)} µs/message
  ubiq           /feed: token, journal, seq         delivery p50 ${ms(med((r) => r.idle.p50))}, p99 ${ms(med((r) => r.idle.p99))} (goal p99 ≤ 50 ms); server CPU ${med((r) => r.idle.cpuPerMsg).toFixed(1)} µs/message
  raw reference  while ingest drains its queue      delivery p50 ${ms(med((r) => r.rawLoaded.p50))}, p99 ${ms(med((r) => r.rawLoaded.p99))}
  ubiq           while ingest drains its queue      delivery p50 ${ms(med((r) => r.loaded.p50))}, p99 ${ms(med((r) => r.loaded.p99))}
  ingest alone                                     ${med((r) => r.alone).toFixed(0).padStart(8)} msg/s
  ingest while ubiq's feed runs                    ${med((r) => msgs(r.loaded)).toFixed(0).padStart(8)} msg/s   ratio ${ratios((r) => msgs(r.loaded) / r.alone)}, goal ≥ 0.90
  ingest while the bare server sends (raw)         ${med((r) => msgs(r.rawLoaded)).toFixed(0).padStart(8)} msg/s   ratio ${ratios((r) => msgs(r.rawLoaded) / r.alone)}
  dashboards process (ubiq start --dashboards), following the scores on the broker:
    delivery p50 ${ms(med((r) => r.follower.p50))}, p99 ${ms(med((r) => r.follower.p99))}; its CPU ${med((r) => r.follower.cpuPerMsg).toFixed(1)} µs/message
    while ingest drains: delivery p50 ${ms(med((r) => r.followerLoaded.p50))}, p99 ${ms(med((r) => r.followerLoaded.p99))} (goal ≤ 100 ms)
    ingest while it sends                          ${med((r) => msgs(r.followerLoaded)).toFixed(0).padStart(8)} msg/s   against ingest alone ${ratios((r) => msgs(r.followerLoaded) / r.alone)}
                                                   against the bare server's, same run ${ratios((r) => msgs(r.followerLoaded) / msgs(r.rawLoaded))}, goal ≥ 0.90
  messages not delivered, all runs: ${rows.reduce((a, r) => a + phases(r).reduce((b, d) => b + d.sent - d.delivered, 0), 0)}; feed clients cut off: ${rows.reduce((a, r) => a + phases(r).reduce((b, d) => b + (d.closes['1013'] ?? 0), 0), 0)}
`)
process.exit(0)
