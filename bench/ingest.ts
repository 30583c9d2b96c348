/**
 * `npm run bench:ingest`: ingest throughput, latency and memory against raw references measured
 * in the same run, on real Mosquitto and InfluxDB (DESIGN.md "Performance"). Several runs, medians.
 *
 * Throughput is measured draining a broker queue: the messages are published (by two separate
 * publisher processes) while the consumer is away, then the consumer connects and the time to
 * take them all is measured, so the publishers' speed does not cap the figure.
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import type { Registry } from 'prom-client'
import { deviceRegistry, retentionPolicyNames } from '../ingest/index.ts'
import { startInfluxd, startMosquitto } from '../bin/local-services.ts'
import { drainBench, log, median, metric } from './drain.ts'
import { serverRss } from './server-rss.ts'
import { benchRegistry, linesOf, message } from './traffic.ts'

// BENCH_PATH=jetstream: the worker path (`ubiq start --worker`) against its own reference instead.
if (process.env.BENCH_PATH === 'jetstream') await import('./ingest-jetstream.ts')

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const DEVICES = 1000
const PER_DEVICE = Number(process.env.BENCH_PER_DEVICE ?? 100)

const dir = mkdtempSync(join(tmpdir(), 'ubiq-bench-'))
const broker = await startMosquitto(join(dir, 'mosquitto'))
const influx = await startInfluxd(join(dir, 'influxdb'))
const serverRssNow = serverRss(dir)
const { messages: MESSAGES, points: POINTS, rawMqtt, pipelineFor, ubiqRun } = drainBench({ brokerUrl: broker.url, influxUrl: influx.url, dir, devices: DEVICES, perDevice: PER_DEVICE })
log(`Mosquitto ${broker.url}, InfluxDB ${influx.url}; ${MESSAGES} messages (${POINTS} points) per run, ${RUNS} runs`)

/** The raw reference: the same points as line protocol posted straight to /write, 5000 a batch, two at a time. */
async function rawInflux(run: number): Promise<number> {
  const db = `bench_raw_${run}`
  await fetch(`${influx.url}/query`, { method: 'POST', body: new URLSearchParams({ q: `CREATE DATABASE ${db}` }) })
  const lines: string[] = []
  const start = Date.now() - PER_DEVICE * 1000
  for (let seq = 0; seq < PER_DEVICE; seq++) {
    for (let i = 0; i < DEVICES; i++) lines.push(...linesOf(i, message(i, seq, start + seq * 1000)[1]))
  }
  const batches: string[] = []
  for (let k = 0; k < lines.length; k += 5000) batches.push(lines.slice(k, k + 5000).join('\n'))
  const t0 = performance.now()
  let next = 0
  await Promise.all([0, 1].map(async () => {
    while (next < batches.length) {
      const body = batches[next++]!
      const res = await fetch(`${influx.url}/write?db=${db}&precision=ms`, { method: 'POST', body })
      if (res.status !== 204) throw new Error(`raw write: ${res.status} ${await res.text()}`)
    }
  }))
  return (lines.length / (performance.now() - t0)) * 1000
}

/** p-quantile from a Prometheus histogram (linear within the bucket). */
async function quantile(metrics: Registry, name: string, q: number): Promise<number> {
  const text = await metrics.getSingleMetricAsString(name)
  const buckets = [...text.matchAll(/_bucket\{le="([^"]+)"\} (\d+)/g)].map((m) => [m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2])] as const)
  const total = buckets.at(-1)![1]
  let prev: readonly [number, number] = [0, 0]
  for (const b of buckets) {
    if (b[1] >= q * total) return b[0] === Infinity ? prev[0] : prev[0] + ((q * total - prev[1]) / Math.max(1, b[1] - prev[1])) * (b[0] - prev[0])
    prev = b
  }
  return NaN
}

/** Latency at a steady rate: receive → InfluxDB confirmed, and publish → receive (device lag). */
async function latency(ratePerS: number, seconds: number) {
  const pipeline = await pipelineFor('bench_latency')
  const client = await mqtt.connectAsync(broker.url, { clientId: 'bench-steady' })
  for (let s = 0; s < seconds * 10; s++) {
    const tick = performance.now()
    for (let k = 0; k < ratePerS / 10; k++) {
      const i = (s * ratePerS / 10 + k) % DEVICES
      const [topic, payload] = message(i, 1_000_000 + s, Date.now())
      client.publish(topic, payload, { qos: 1 })
    }
    await new Promise((r) => setTimeout(r, Math.max(0, 100 - (performance.now() - tick))))
  }
  await client.endAsync()
  await new Promise((r) => setTimeout(r, 2000))
  const result = {
    storeP50: await quantile(pipeline.metrics, 'ubiq_ingest_store_latency_seconds', 0.5),
    storeP99: await quantile(pipeline.metrics, 'ubiq_ingest_store_latency_seconds', 0.99),
    lagP50: await quantile(pipeline.metrics, 'ubiq_ingest_device_lag_seconds', 0.5),
    lagP99: await quantile(pipeline.metrics, 'ubiq_ingest_device_lag_seconds', 0.99),
  }
  await pipeline.stop()
  return result
}

/** Device counts of the memory phase (BENCH_RSS_DEVICES, comma-separated; 100,000 needs watching memory). */
const RSS_DEVICES = (process.env.BENCH_RSS_DEVICES ?? '10000,100000').split(',').map(Number)

/** What one step of the memory phase measured. */
interface MemoryStep {
  devices: number
  /** ubiq's RSS above its start, per active device, bytes. */
  ubiqPerDevice: number
  /** InfluxDB's RSS above its own before the phase, bytes; and its peak over the step. */
  influxd: number
  influxdPeak: number
  /** Series InfluxDB holds in the phase's database. */
  series: number
  /** Write batches that failed (time-outs included) and were retried. */
  writeErrors: number
}

/**
 * RSS per active device, ubiq's and InfluxDB's: one message from each of n devices into a fresh
 * pipeline. Measured first, before the throughput runs leave garbage and freed pages behind that
 * blur RSS. InfluxDB's is sampled every 200 ms for its peak: the 100k phase once took it to 22 GB (#25).
 */
async function rssPerDevice(counts: number[]): Promise<MemoryStep[]> {
  const max = Math.max(...counts)
  const devices = deviceRegistry(benchRegistry(max))
  const influxdBase = serverRssNow('influxd')
  let influxdPeak = influxdBase
  const sampler = setInterval(() => (influxdPeak = Math.max(influxdPeak, serverRssNow('influxd'))), 200)
  const pipeline = await pipelineFor('bench_rss', devices)
  const gc = () => (globalThis as { gc?: () => void }).gc?.()
  gc()
  gc()
  const base = process.memoryUsage().rss
  const client = await mqtt.connectAsync(broker.url, { clientId: 'bench-rss' })
  const out: MemoryStep[] = []
  let active = 0
  for (const n of counts) {
    for (; active < n; active++) {
      const [topic, payload] = message(active, 1, Date.now())
      await client.publishAsync(topic, payload, { qos: 1 })
    }
    while ((await metric(pipeline.metrics, 'ubiq_ingest_messages_stored_total')) < n ||
      (await metric(pipeline.metrics, 'ubiq_ingest_journal_pending_lines')) > 0) await new Promise((r) => setTimeout(r, 50))
    gc()
    gc()
    // (Without FROM, InfluxDB 1.6 looks in the default retention policy only.)
    const q = retentionPolicyNames.map((rp) => `SHOW SERIES EXACT CARDINALITY FROM "${rp}"./.*/`).join('; ')
    const res = await fetch(`${influx.url}/query?${new URLSearchParams({ db: 'bench_rss', q })}`)
    const counted = ((await res.json()) as { results: { series?: { values: number[][] }[] }[] }).results.flatMap((r) => r.series ?? [])
    const step = {
      devices: n,
      ubiqPerDevice: (process.memoryUsage().rss - base) / n,
      influxd: serverRssNow('influxd') - influxdBase,
      influxdPeak: influxdPeak - influxdBase,
      series: counted.reduce((a, x) => a + x.values[0]![0]!, 0),
      writeErrors: await metric(pipeline.metrics, 'ubiq_influx_write_errors_total'),
    }
    out.push(step)
    log(`${n} active devices: ubiq RSS +${mb(process.memoryUsage().rss - base)} MB; InfluxDB RSS +${mb(step.influxd)} MB (peak +${mb(step.influxdPeak)}), ${step.series} series, ${step.writeErrors} failed writes`)
  }
  clearInterval(sampler)
  await client.endAsync()
  await pipeline.stop()
  return out
}
const mb = (bytes: number) => (bytes / 1e6).toFixed(0)
const kib = (bytes: number) => (bytes / 1024).toFixed(2)

const memory = await rssPerDevice(RSS_DEVICES)
const memoryReport = memory.map((m) => `  ${m.devices} active devices: ubiq RSS ${kib(m.ubiqPerDevice)} KiB a device; InfluxDB RSS ${kib(m.influxd / m.devices)} KiB a device (peak ${kib(m.influxdPeak / m.devices)}), ${kib(m.influxd / m.series)} KiB a series of ${m.series}; ${m.writeErrors} failed writes`).join('\n')
if (RUNS === 0) {
  // BENCH_RUNS=0: the memory phase alone.
  await broker.stop()
  await influx.stop()
  console.log(`ubiq ingest benchmark, memory phase\n${memoryReport}`)
  process.exit(0)
}
const raw: number[] = []
const ubiq: { msgs: number; points: number }[] = []
const rawPoints: number[] = []
for (let run = 1; run <= RUNS; run++) {
  raw.push(await rawMqtt(run))
  ubiq.push(await ubiqRun(`bench_${run}`))
  rawPoints.push(await rawInflux(run))
  log(`run ${run}/${RUNS}: raw MQTT ${raw.at(-1)!.toFixed(0)} msg/s, ubiq ${ubiq.at(-1)!.msgs.toFixed(0)} msg/s (${ubiq.at(-1)!.points.toFixed(0)} points/s), raw InfluxDB ${rawPoints.at(-1)!.toFixed(0)} points/s`)
}
const lat = await latency(2000, 10)
await broker.stop()
await influx.stop()

const m = { raw: median(raw), msgs: median(ubiq.map((u) => u.msgs)), points: median(ubiq.map((u) => u.points)), rawPoints: median(rawPoints) }
const ms = (s: number) => `${(s * 1000).toFixed(0)} ms`
console.log(`
ubiq ingest benchmark: ${MESSAGES} mixed messages (${POINTS} InfluxDB points) per run, median of ${RUNS} runs
  raw reference  Mosquitto → mqtt.js, JSON.parse only      ${m.raw.toFixed(0).padStart(8)} msg/s
  ubiq           validate, dedupe, journal, InfluxDB ack   ${m.msgs.toFixed(0).padStart(8)} msg/s   ratio ${(m.msgs / m.raw).toFixed(2)} (goal ≥ 0.5)
  raw reference  line protocol POSTed to /write            ${m.rawPoints.toFixed(0).padStart(8)} points/s
  ubiq           points written and confirmed               ${m.points.toFixed(0).padStart(8)} points/s   ratio ${(m.points / m.rawPoints).toFixed(2)} (goal ≥ 0.7)
  latency at 2000 msg/s: receive → stored p50 ${ms(lat.storeP50)}, p99 ${ms(lat.storeP99)}; publish → receive p50 ${ms(lat.lagP50)}, p99 ${ms(lat.lagP99)}
${memoryReport}
`)
process.exit(0)
