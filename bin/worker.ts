/**
 * `ubiq start --worker` (#25, docs/scale-out.md): one of several ubiq processes that share the
 * devices through NATS JetStream partitions. It runs ingest for the partitions it owns and serves
 * its metrics; scoring, pricing and the dashboards are not in it yet.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { Counter, Registry, collectDefaultMetrics } from 'prom-client'
import { connectInflux, influxUrls, startWorkerIngest, type DeviceRegistry, type InfluxConfig } from '../ingest/index.ts'
import { scoringLimits, untilInfluxAnswers } from './pipeline.ts'

export interface WorkerConfig {
  /** nats-server URLs. */
  servers: string[]
  /** P, as in nats-server's partition mapping. */
  partitions: number
  workerId: string
  /** The streams' replicas, when the worker makes them. */
  replicas: number
  influx: InfluxConfig
  devices: DeviceRegistry
  /** Where /metrics and /healthz listen (port 0: any free port). */
  host: string
  port: number
  influxStartTimeoutMs?: number
  maxPayloadBytes?: number
  maxFutureSkewMs?: number
}

export interface Worker {
  /** Its /metrics and /healthz. */
  url: string
  metrics: Registry
  owned(): number[]
  /** Gives its partitions back after storing what it holds, and closes. */
  stop(): Promise<void>
}

/** Starts a worker; rejects with a coded error if InfluxDB or nats-server cannot be reached. */
export async function startWorker(cfg: WorkerConfig, logger: Logger): Promise<Worker> {
  const metrics = new Registry()
  collectDefaultMetrics({ register: metrics })
  const writeErrors = new Counter({ name: 'ubiq_influx_write_errors_total', help: 'InfluxDB write batches that failed (and are retried)', registers: [metrics] })
  await Promise.all(influxUrls(cfg.influx).map((url) => untilInfluxAnswers(url, cfg.influxStartTimeoutMs ?? 60_000, logger)))
  let confirm: (lines: readonly string[]) => void = () => {} // nothing is written before ingest starts
  const influx = await connectInflux(cfg.influx, {
    onWritten: (lines) => confirm(lines),
    policyOf: (deviceId) => cfg.devices.get(deviceId)?.policyId,
    onWriteError: (error) => {
      writeErrors.inc()
      logger.warn({ error }, 'InfluxDB write failed; the client retries')
    },
  })
  const ingest = await startWorkerIngest({
    servers: cfg.servers,
    partitions: cfg.partitions,
    workerId: cfg.workerId,
    replicas: cfg.replicas,
    influx,
    logger,
    metrics,
    // As the pipeline's: a redelivery dedupe has forgotten finds scoring's states gone too.
    dedupeIdleMs: scoringLimits.deviceIdleMs + scoringLimits.policyIdleMs + 3600_000,
    decode: { registry: cfg.devices, maxPayloadBytes: cfg.maxPayloadBytes ?? 64 * 1024, maxFutureSkewMs: cfg.maxFutureSkewMs ?? 5 * 60_000, adapters: [] },
  })
  confirm = ingest.confirm
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      void metrics.metrics().then((text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text))
    } else if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, worker: cfg.workerId, partitions: ingest.owned() }))
    } else res.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(cfg.port, cfg.host, resolve))
  const url = `http://${cfg.host}:${(server.address() as AddressInfo).port}`
  logger.info({ url, worker: cfg.workerId, partitions: cfg.partitions }, 'worker started')
  return {
    url,
    metrics,
    owned: ingest.owned,
    async stop() {
      await ingest.stop()
      await influx.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      logger.info('worker stopped')
    },
  }
}
