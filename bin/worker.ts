/**
 * `ubiq start --worker` (#25, docs/scale-out.md): one of several ubiq processes that share the
 * devices through NATS JetStream partitions. It runs ingest and trips for the device partitions it
 * owns, driving scores and pricing for the policy partitions it owns (bin/policy-stage.ts), and
 * serves its metrics; health and home scoring and the dashboards are not in it yet.
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import type { Logger } from 'pino'
import { Counter, Registry, collectDefaultMetrics } from 'prom-client'
import { filter, merge } from 'rxjs'
import { connectInflux, startWorkerIngest, withoutExpired, type DeviceRegistry, type InfluxConfig } from '../ingest/index.ts'
import { examplePlans, loadPlans } from '../pricing/index.ts'
import { defaultChoice, defaultTripConfig, findModels, loadChoice, modelDirs, startScoring, vehicleDetectors } from '../scoring/index.ts'
import { reportUnhandledErrors, scoringLimits, untilInfluxesAnswer } from './pipeline.ts'
import { natsPublisher, startPolicyStage } from './policy-stage.ts'

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
  await untilInfluxesAnswer(cfg.influx, cfg.influxStartTimeoutMs, logger)
  let confirm: (lines: readonly string[]) => void = () => {} // nothing is written before ingest starts
  const influx = await connectInflux(cfg.influx, {
    onWritten: (lines) => confirm(lines),
    policyOf: (deviceId) => cfg.devices.get(deviceId)?.policyId,
    onWriteError: (error) => {
      writeErrors.inc()
      logger.warn({ error }, 'InfluxDB write failed; the client retries')
    },
  })
  const expired = new Counter({ name: 'ubiq_outputs_expired_total', help: "Derived lines (trips, events, scores, premiums) older than their measurement's retention: published, not stored", labelNames: ['measurement'], registers: [metrics] })
  const derived = withoutExpired(influx, (measurement) => expired.inc({ measurement }))
  const models = await loadChoice(defaultChoice(), findModels(modelDirs()).models)
  const policies = await startPolicyStage({
    servers: cfg.servers, workerId: cfg.workerId, partitions: cfg.partitions, replicas: cfg.replicas,
    influx: derived, plans: loadPlans(examplePlans), logger, metrics,
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
  // A failed stage's stream is logged and counted, not the end of the process (as the pipeline's).
  const stopReporting = reportUnhandledErrors(logger, metrics)
  // Trips per device here; driving scores and premiums on the policy partitions (policy-stage.ts).
  // The shipped models and plans (a worker has no models.json or MODELS_DIR yet); health and home
  // readings are stored, not scored: their days need the policy stage too (docs/scale-out.md).
  const { scores$ } = startScoring({
    // No reorder buffer: a partition delivers each device's messages in the order it sent them.
    readings$: ingest.readings$.pipe(filter((r) => r.subject === 'driving')),
    mqtt: natsPublisher(policies.nc),
    influx: derived,
    models: () => models,
    policyDevices: () => [],
    logger,
    metrics,
    trips: defaultTripConfig,
    detectors: vehicleDetectors(undefined),
    handedOver$: merge(ingest.handedOver$, policies.handedOver$),
    policyTrips: policies.policyTrips(ingest.hold),
    ...scoringLimits,
  })
  policies.price(scores$)
  policies.start()
  const server = createServer((req, res) => {
    if (req.url === '/metrics') {
      void metrics.metrics().then((text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text))
    } else if (req.url === '/healthz') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ ok: true, worker: cfg.workerId, partitions: ingest.owned(), policyPartitions: policies.owned() }))
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
      await policies.stop()
      stopReporting()
      await influx.close()
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
      logger.info('worker stopped')
    },
  }
}
