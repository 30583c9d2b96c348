/**
 * `npm run bench:engine`: the distributed engine candidate for scale-out (#25, docs/scale-out.md),
 * NATS JetStream, against the Mosquitto → mqtt.js raw reference, in the same run, same messages.
 *
 * Devices publish over MQTT to nats-server's own MQTT listener; a JetStream stream on
 * `ubiq.v1.dev.>` keeps them (the journal). Two consumers drain it:
 * - JetStream → JSON.parse, acknowledged a batch at a time: the engine's own cost;
 * - JetStream → JSON.parse → line protocol → POST /write → then the batch's acknowledgement:
 *   the minimal worker, acknowledgement after the durable write (#25 item 3).
 * Beside each rate, the CPU-seconds per message of each process (the consumer, nats-server,
 * InfluxDB), read from /proc: the inputs of the capacity model (scale-out cannot be timed on two cores).
 */
import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import { connect } from '@nats-io/transport-node'
import { findCommand, freePort, startInfluxd, startMosquitto } from '../bin/local-services.ts'
import { drainBench, log, median } from './drain.ts'
import { BATCH, drainStream, measured, us, type Measured } from './jetstream.ts'
import { serverPid } from './server-rss.ts'
import { linesOf } from './traffic.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
const DEVICES = 1000
const PER_DEVICE = Number(process.env.BENCH_PER_DEVICE ?? 50)

const dir = mkdtempSync(join(tmpdir(), 'ubiq-bench-engine-'))
const broker = await startMosquitto(join(dir, 'mosquitto'))
const influx = await startInfluxd(join(dir, 'influxdb'))
const nats = await startNats(join(dir, 'nats'))
const { messages: MESSAGES, rawMqtt, publishAll } = drainBench({ brokerUrl: broker.url, influxUrl: influx.url, dir, devices: DEVICES, perDevice: PER_DEVICE })
log(`Mosquitto ${broker.url}, nats-server ${nats.url} (MQTT ${nats.mqttUrl}), InfluxDB ${influx.url}; ${MESSAGES} messages per run, ${RUNS} runs`)

/** nats-server with JetStream and its MQTT listener, on loopback; its data in `dir`. */
async function startNats(dir: string) {
  const bin = findCommand('nats-server')
  if (!bin) throw new Error('nats-server is not installed (Debian: apt-get install nats-server)')
  mkdirSync(dir, { recursive: true })
  const [port, mqttPort] = [await freePort(), await freePort()]
  const conf = join(dir, 'nats.conf')
  // MQTT needs JetStream and a server name; its sessions and QoS 1 state live in JetStream.
  writeFileSync(conf, `server_name: ubiq-bench\nlisten: 127.0.0.1:${port}\njetstream { store_dir: "${dir}/js" }\nmqtt { listen: 127.0.0.1:${mqttPort} }\n`)
  const child = spawn(bin, ['-c', conf], { stdio: 'ignore' })
  for (;;) {
    try {
      await (await connect({ servers: `127.0.0.1:${port}` })).close()
      break
    } catch {
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  return { url: `nats://127.0.0.1:${port}`, mqttUrl: `mqtt://127.0.0.1:${mqttPort}`, pid: child.pid!, stop: () => child.kill() }
}

const influxdPid = serverPid(dir, 'influxd')!

const nc = await connect({ servers: nats.url })
const jsm = await jetstreamManager(nc)
// MQTT topic levels become subject tokens: ubiq/v1/dev/{deviceId}/{stream} is ubiq.v1.dev.{deviceId}.{stream}.
await jsm.streams.add({ name: 'DEV', subjects: ['ubiq.v1.dev.>'] })

/** Publishes the run's messages over MQTT to nats-server and waits until the stream holds them all. */
async function publishToStream(): Promise<void> {
  await jsm.streams.purge('DEV')
  await publishAll(DEVICES, PER_DEVICE, nats.mqttUrl)
  while ((await jsm.streams.info('DEV')).state.messages < MESSAGES) await new Promise((r) => setTimeout(r, 50))
}

const decoder = new TextDecoder()
const results = { raw: [] as number[], js: [] as Measured[], worker: [] as Measured[] }
const pids = { nats: nats.pid, influxd: influxdPid }
for (let run = 1; run <= RUNS; run++) {
  results.raw.push(await rawMqtt(run))
  await publishToStream()
  results.js.push(await measured(MESSAGES, pids, () => drainStream(nc, 'DEV', `parse-${run}`, MESSAGES, async (batch) => {
    for (const m of batch) JSON.parse(decoder.decode(m.data))
  })))
  const db = `engine_${run}`
  await fetch(`${influx.url}/query`, { method: 'POST', body: new URLSearchParams({ q: `CREATE DATABASE ${db}` }) })
  results.worker.push(await measured(MESSAGES, pids, () => drainStream(nc, 'DEV', `worker-${run}`, MESSAGES, async (batch) => {
    // ubiq.v1.dev.bench-{i}.{stream}
    const lines = batch.flatMap((m) => linesOf(Number(m.subject.split('.')[3]!.slice('bench-'.length)), decoder.decode(m.data)))
    const res = await fetch(`${influx.url}/write?db=${db}&precision=ms`, { method: 'POST', body: lines.join('\n') })
    if (res.status !== 204) throw new Error(`write: ${res.status} ${await res.text()}`)
  })))
  log(`run ${run}/${RUNS}: Mosquitto → mqtt.js ${results.raw.at(-1)!.toFixed(0)} msg/s; JetStream → parse ${results.js.at(-1)!.rate.toFixed(0)} msg/s; JetStream → InfluxDB → ack ${results.worker.at(-1)!.rate.toFixed(0)} msg/s`)
}
await nc.close()
nats.stop()
await broker.stop()
await influx.stop()

const raw = median(results.raw)
const row = (label: string, xs: Measured[]) => {
  const m = (f: (x: (typeof xs)[number]) => number) => median(xs.map(f))
  return `  ${label.padEnd(44)}${m((x) => x.rate).toFixed(0).padStart(8)} msg/s  ratio ${(m((x) => x.rate) / raw).toFixed(2)}   CPU a message: consumer ${us(m((x) => x.perMessage.consumer!))}, nats-server ${us(m((x) => x.perMessage.nats!))}, InfluxDB ${us(m((x) => x.perMessage.influxd!))}`
}
console.log(`
ubiq engine benchmark: ${MESSAGES} mixed messages per run from ${DEVICES} devices, median of ${RUNS} runs, batches of ${BATCH}
  Mosquitto → mqtt.js QoS 1, JSON.parse only  ${raw.toFixed(0).padStart(8)} msg/s
${row('JetStream pull → JSON.parse, ack a batch', results.js)}
${row('JetStream pull → InfluxDB /write → ack', results.worker)}
`)
process.exit(0)
