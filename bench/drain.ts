/**
 * Ingest's throughput, measured draining a broker queue (bench:ingest, bench:feed): the messages
 * are published (by two separate publisher processes) while the consumer is away, then the
 * consumer connects and the time to take them all is measured, so the publishers' speed does not
 * cap the figure.
 */
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import pino from 'pino'
import type { Registry } from 'prom-client'
import { deviceRegistry, retentionPolicyNames } from '../ingest/index.ts'
import { startPipeline, type Pipeline } from '../bin/pipeline.ts'
import { benchRegistry, pointsOf } from './traffic.ts'

const publisherScript = fileURLToPath(new URL('./publisher.ts', import.meta.url))

export const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
export const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`)

/** A metric's (single) value. */
export const metric = async (metrics: Registry, name: string) => {
  const text = await metrics.getSingleMetricAsString(name)
  return Number(/ ([\d.e+-]+)$/.exec(text.trim())?.[1] ?? NaN)
}

export interface DrainSetup {
  brokerUrl: string
  influxUrl: string
  /** Where pipelines keep their data. */
  dir: string
  devices: number
  perDevice: number
}

export function drainBench(s: DrainSetup) {
  const messages = s.devices * s.perDevice
  const points = Array.from({ length: s.devices }, (_, i) => pointsOf(i) * s.perDevice).reduce((a, b) => a + b, 0)

  /** Publishes the run's traffic from two separate processes. */
  async function publishAll(devices = s.devices, perDevice = s.perDevice, url = s.brokerUrl): Promise<void> {
    const half = Math.floor(devices / 2)
    await Promise.all([[0, half], [half, devices]].map(([from, to]) => new Promise<void>((resolve, reject) => {
      const p = spawn(process.execPath, ['--import', 'tsx', publisherScript, url, String(from), String(to), String(perDevice)], { stdio: ['ignore', 'ignore', 'inherit'] })
      p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`publisher exited ${code}`))))
    })))
  }

  /** Ends a persistent session, so the broker stops queueing for it. */
  async function forgetSession(clientId: string): Promise<void> {
    await (await mqtt.connectAsync(s.brokerUrl, { clientId, clean: true })).endAsync()
  }

  /** The raw reference: mqtt.js at QoS 1 doing only JSON.parse, draining the same queue. */
  async function rawMqtt(run: number): Promise<number> {
    const opts = { clientId: `bench-raw-${run}`, clean: false }
    const first = await mqtt.connectAsync(s.brokerUrl, opts)
    await first.subscribeAsync('ubiq/v1/dev/+/+', { qos: 1 })
    await first.endAsync()
    await publishAll()
    let count = 0
    const t0 = performance.now()
    const client = mqtt.connect(s.brokerUrl, opts)
    const ms = await new Promise<number>((resolve) => {
      client.on('message', (_topic, payload) => {
        JSON.parse(payload.toString())
        if (++count === messages) resolve(performance.now() - t0)
      })
    })
    await client.endAsync()
    await forgetSession(opts.clientId)
    return (messages / ms) * 1000
  }

  function pipelineFor(db: string, devices = deviceRegistry(benchRegistry(s.devices))): Promise<Pipeline> {
    return startPipeline({
      mqttUrl: s.brokerUrl,
      influx: { api: 'v1', url: s.influxUrl, database: db },
      devices,
      dataDir: join(s.dir, `ubiq-${db}`),
      host: '127.0.0.1',
      port: 0,
    }, pino({ level: 'warn' }))
  }

  /**
   * ubiq draining the queue through validation, dedupe, journal and InfluxDB (confirmed), into a
   * fresh database `db`; msg/s and points/s. Every point is checked to be in InfluxDB after.
   */
  async function ubiqRun(db: string): Promise<{ msgs: number; points: number }> {
    await forgetSession('ubiq-ingest') // drop what it queued before
    await (await pipelineFor(db)).stop() // leaves ingest's persistent session subscribed
    await publishAll()
    const t0 = performance.now()
    const pipeline = await pipelineFor(db)
    while ((await metric(pipeline.metrics, 'ubiq_ingest_messages_stored_total')) < messages ||
      (await metric(pipeline.metrics, 'ubiq_ingest_journal_pending_lines')) > 0) {
      await new Promise((r) => setTimeout(r, 20))
    }
    const ms = performance.now() - t0
    await pipeline.stop()
    await forgetSession('ubiq-ingest')
    await checkStored(db)
    return { msgs: (messages / ms) * 1000, points: (points / ms) * 1000 }
  }

  /** Throws unless database `db` holds every point of a run, each once. */
  async function checkStored(db: string): Promise<void> {
    const res = await fetch(`${s.influxUrl}/query?${new URLSearchParams({ db, q: `SELECT count(seq) FROM ${retentionPolicyNames.map((rp) => `"${rp}"./.*/`).join(', ')}` })}`)
    const body = (await res.json()) as { results: { series?: { values: number[][] }[] }[] }
    const stored = (body.results[0]?.series ?? []).reduce((a, x) => a + x.values[0]![1]!, 0)
    if (stored !== points) throw new Error(`${db}: InfluxDB holds ${stored} points, expected ${points}`)
  }

  return { messages, points, publishAll, forgetSession, rawMqtt, pipelineFor, ubiqRun, checkStored }
}
