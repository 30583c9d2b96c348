/**
 * `BENCH_PATH=jetstream npm run bench:ingest`: ubiq's worker path (`ubiq start --worker`, #25,
 * docs/scale-out.md) against a minimal same-run reference, on real nats-server and InfluxDB.
 *
 * Each run publishes the mixed traffic over MQTT 3.1.1 to nats-server's listener (the fill), which
 * maps it to the partitions of the device stream, then times two drains of the same messages:
 * - the reference: one pull consumer over the stream, JSON.parse, line protocol, batches POSTed to
 *   `/write`, two in flight, each acknowledged after its write (as fair as ubiq's writer);
 * - ubiq: `startWorker` (one worker, every partition) until it has acknowledged every message,
 *   each after InfluxDB stored it; InfluxDB is checked to hold every point once.
 * Then, for the capacity model (docs/scale-out.md section 4), the same fill drained by 1, 2, 3
 * (BENCH_WORKERS) worker processes, `ubiq start --worker`: CPU-seconds a message of the workers,
 * nats-server and InfluxDB, from /proc.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { jetstreamManager } from '@nats-io/jetstream'
import { connect } from '@nats-io/transport-node'
import pino from 'pino'
import { freePort, startInfluxd, startNatsCluster } from '../bin/local-services.ts'
import { startWorker } from '../bin/worker.ts'
import { DEVICE_STREAM, deviceRegistry } from '../ingest/index.ts'
import { drainBench, log, median } from './drain.ts'
import { drainStream, measured, prioritise, us, type Measured } from './jetstream.ts'
import { cpuSeconds, serverPid } from './server-rss.ts'
import { benchRegistry, linesOf } from './traffic.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const DEVICES = 1000
const PER_DEVICE = Number(process.env.BENCH_PER_DEVICE ?? 100)
/** P, as `ubiq start --worker`'s default WORKER_PARTITIONS. */
const PARTITIONS = 16
/** Worker counts of the capacity model's check ('' for none). */
const WORKERS = (process.env.BENCH_WORKERS ?? '1,2,3').split(',').filter(Boolean).map(Number)
const ubiqCli = fileURLToPath(new URL('../bin/ubiq.js', import.meta.url))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const dir = mkdtempSync(join(tmpdir(), 'ubiq-bench-js-'))
const influx = await startInfluxd(join(dir, 'influxdb'))
const [nats] = await startNatsCluster(join(dir, 'nats'), 1, PARTITIONS)
const { messages: MESSAGES, points: POINTS, publishAll, checkStored } = drainBench({ brokerUrl: nats!.mqttUrl, influxUrl: influx.url, dir, devices: DEVICES, perDevice: PER_DEVICE })
const pids = { nats: serverPid(dir, 'nats-server')!, influxd: serverPid(dir, 'influxd')! }
const prioritised = prioritise([process.pid, ...Object.values(pids)])
log(`nats-server ${nats!.url} (MQTT ${nats!.mqttUrl}, ${PARTITIONS} partitions), InfluxDB ${influx.url}; ${MESSAGES} messages (${POINTS} points) per run, ${RUNS} runs; autogroups at nice -20: ${prioritised ? 'yes' : 'no (not permitted)'}`)

const registryFile = join(dir, 'devices.json')
writeFileSync(registryFile, JSON.stringify({ devices: benchRegistry(DEVICES) }))
const workerConfig = (db: string) => ({
  servers: [nats!.url], partitions: PARTITIONS, workerId: 'bench', replicas: 1,
  influx: { api: 'v1' as const, url: influx.url, database: db }, devices: deviceRegistry(benchRegistry(DEVICES)), host: '127.0.0.1', port: 0,
})
const quiet = pino({ level: 'warn' })
// The first worker makes the streams, as in a deployment; then the fill has a stream to land in.
await (await startWorker(workerConfig('bench_js_setup'), quiet)).stop()

const nc = await connect({ servers: nats!.url })
const jsm = await jetstreamManager(nc)

/** Publishes the run's messages over MQTT to nats-server and waits until the device stream holds them all. */
async function fill(): Promise<void> {
  await jsm.streams.purge(DEVICE_STREAM)
  await publishAll()
  while ((await jsm.streams.info(DEVICE_STREAM)).state.messages < MESSAGES) await sleep(50)
}
/**
 * Until every partition's consumer has acknowledged every message, i.e. the worker(s) stored them
 * all (the journal is trimmed a round later). A null in the list: a consumer being taken afresh.
 */
async function drained(): Promise<void> {
  for (;;) {
    // (A request nats-server did not answer in time, on the loaded machine: asked again.)
    const parts = (await jsm.consumers.list(DEVICE_STREAM).next().catch(() => [])).filter((c) => c?.name.startsWith('part-'))
    if (parts.length === PARTITIONS && parts.every((c) => c.num_pending + c.num_ack_pending === 0)) return
    await sleep(100)
  }
}

const decoder = new TextDecoder()
/** The reference drains the stream without taking it away (a consumer of its own, no purge). */
async function reference(run: number): Promise<Measured> {
  const db = `bench_js_ref_${run}`
  await fetch(`${influx.url}/query`, { method: 'POST', body: new URLSearchParams({ q: `CREATE DATABASE ${db}` }) })
  return measured(MESSAGES, pids, () => drainStream(nc, DEVICE_STREAM, `reference-${run}`, MESSAGES, async (batch) => {
    // ubiq.part.{p}.bench-{i}.{stream}
    const lines = batch.flatMap((m) => linesOf(Number(m.subject.split('.')[3]!.slice('bench-'.length)), decoder.decode(m.data)))
    const res = await fetch(`${influx.url}/write?db=${db}&precision=ms`, { method: 'POST', body: lines.join('\n') })
    if (res.status !== 204) throw new Error(`write: ${res.status} ${await res.text()}`)
  }, 2))
}

/** ubiq's worker, in this process, from its start until it has acknowledged every message. */
async function ubiqWorker(run: number): Promise<Measured> {
  const db = `bench_js_ubiq_${run}`
  let worker: Awaited<ReturnType<typeof startWorker>> | undefined
  const m = await measured(MESSAGES, pids, async () => {
    worker = await startWorker(workerConfig(db), quiet)
    await drained()
  })
  await worker!.stop()
  await checkStored(db)
  return m
}

/**
 * `n` worker processes drain a fill: the rate from their start until the stream is empty, and
 * CPU-seconds a message of the workers (from each one's /healthz answering: its start-up is not a
 * message's cost), nats-server and InfluxDB.
 */
async function workers(n: number, run: number): Promise<Measured> {
  const db = `bench_js_workers_${n}_${run}`
  const started: { child: ChildProcess; cpu: number }[] = []
  const m = await measured(MESSAGES, pids, async () => {
    await Promise.all(Array.from({ length: n }, async (_, k) => {
      const port = await freePort()
      const child = spawn(process.execPath, [ubiqCli, 'start', '--worker'], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: {
          ...process.env, NATS_URL: nats!.url, INFLUX_URL: influx.url, INFLUX_DATABASE: db, DEVICE_REGISTRY: registryFile,
          WORKER_PARTITIONS: String(PARTITIONS), WORKER_ID: `w${k + 1}`, PORT: String(port), LOG_LEVEL: 'warn',
        },
      })
      while (!(await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false))) {
        if (child.exitCode !== null) throw new Error(`worker w${k + 1} exited with ${child.exitCode}`)
        await sleep(20)
      }
      started.push({ child, cpu: cpuSeconds(child.pid!) })
    }))
    await drained()
  })
  const workerCpu = started.reduce((a, w) => a + cpuSeconds(w.child.pid!) - w.cpu, 0)
  await Promise.all(started.map((w) => new Promise((resolve) => w.child.once('exit', resolve).kill())))
  await checkStored(db)
  return { rate: m.rate, perMessage: { ...m.perMessage, consumer: workerCpu / MESSAGES } }
}

const results = { reference: [] as Measured[], ubiq: [] as Measured[], workers: new Map(WORKERS.map((n) => [n, [] as Measured[]])) }
const loads: number[] = []
for (let run = 1; run <= RUNS; run++) {
  await fill()
  loads.push(loadavg()[0]!)
  results.reference.push(await reference(run))
  results.ubiq.push(await ubiqWorker(run))
  const [r, u] = [results.reference.at(-1)!, results.ubiq.at(-1)!]
  log(`run ${run}/${RUNS}: reference ${r.rate.toFixed(0)} msg/s, ubiq worker ${u.rate.toFixed(0)} msg/s (${(u.rate / r.rate).toFixed(2)}); load ${loads.at(-1)!.toFixed(1)}`)
  for (const n of WORKERS) {
    await fill()
    results.workers.get(n)!.push(await workers(n, run))
    const w = results.workers.get(n)!.at(-1)!
    log(`run ${run}/${RUNS}: ${n} worker processes ${w.rate.toFixed(0)} msg/s; CPU a message: workers ${us(w.perMessage.consumer!)}, nats-server ${us(w.perMessage.nats!)}, InfluxDB ${us(w.perMessage.influxd!)}`)
  }
}
await nc.close()
await nats!.stop()
await influx.stop()

const med = (xs: Measured[], f: (x: Measured) => number) => median(xs.map(f))
const row = (label: string, xs: Measured[], part = 'consumer') =>
  `  ${label.padEnd(52)}${med(xs, (x) => x.rate).toFixed(0).padStart(8)} msg/s   CPU a message: ${part} ${us(med(xs, (x) => x.perMessage.consumer!))}, nats-server ${us(med(xs, (x) => x.perMessage.nats!))}, InfluxDB ${us(med(xs, (x) => x.perMessage.influxd!))}`
const ratio = med(results.ubiq, (x) => x.rate) / med(results.reference, (x) => x.rate)
console.log(`
ubiq ingest benchmark, JetStream worker path: ${MESSAGES} mixed messages (${POINTS} InfluxDB points) per run from ${DEVICES} devices, ${PARTITIONS} partitions, median of ${RUNS} runs
  runs (msg/s): reference ${results.reference.map((x) => x.rate.toFixed(0)).join(', ')}; ubiq ${results.ubiq.map((x) => x.rate.toFixed(0)).join(', ')}
${row('reference  pull, JSON.parse, /write ×2 in flight, ack', results.reference)}
${row('ubiq       startWorker, one worker, all partitions', results.ubiq, 'worker')}   ratio ${ratio.toFixed(2)} (goal ≥ 0.8)
${[...results.workers].map(([n, xs]) => row(`${n} worker process${n > 1 ? 'es' : ''} (ubiq start --worker)`, xs, 'workers')).join('\n')}
  load average (1 min) at each run's start: ${loads.map((l) => l.toFixed(1)).join(', ')} on ${availableParallelism()} cores
`)
process.exit(0)
