/**
 * Wires the services in the direction the data flows: ingest → scoring → pricing → dashboards.
 * The only place that knows them all; each receives its configuration and dependencies here.
 */
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import type { Logger } from 'pino'
import { Registry, collectDefaultMetrics } from 'prom-client'
import { startDashboards } from '../dashboards/index.ts'
import { connectInflux, startIngest, type DeviceRegistry, type InfluxConfig } from '../ingest/index.ts'
import { startPricing, skeletonPlan, type PremiumAdjustment, type RatingPlan } from '../pricing/index.ts'
import { defaultThresholds, drivingFrequency, loadModel, startScoring, type Score } from '../scoring/index.ts'
import type { Observable } from 'rxjs'

export interface PipelineConfig {
  mqttUrl: string
  influx: InfluxConfig
  devices: DeviceRegistry
  host: string
  port: number
  scoreIntervalMs: number
  plan?: RatingPlan
}

export interface Pipeline {
  /** The dashboards' address. */
  url: string
  scores$: Observable<Score>
  premiums$: Observable<PremiumAdjustment>
  metrics: Registry
  /** Stops taking messages, finishes what is in flight, flushes InfluxDB, closes everything. */
  stop(): Promise<void>
}

/** Starts every service; rejects with a coded error if one cannot start. */
export async function startPipeline(cfg: PipelineConfig, logger: Logger): Promise<Pipeline> {
  const metrics = new Registry()
  collectDefaultMetrics({ register: metrics })
  const influx = await connectInflux(cfg.influx, (err) => logger.warn({ err }, 'InfluxDB write failed; the client retries'))
  const model = await loadModel(drivingFrequency, fileURLToPath(new URL(`../scoring/models/${drivingFrequency.file}`, import.meta.url)))
  // Ingest's own session is persistent (clean: false), so QoS 1 messages that arrive while ubiq is
  // down wait at the broker; results go out on a second connection that can stay up until the
  // last score is published.
  const subscriber = await mqtt.connectAsync(cfg.mqttUrl, { clientId: 'ubiq-ingest', clean: false, reconnectPeriod: 1000 })
  const publisher = await mqtt.connectAsync(cfg.mqttUrl, { clientId: `ubiq-out-${process.pid}`, reconnectPeriod: 1000 })

  const ingest = await startIngest({
    mqtt: subscriber,
    influx,
    logger,
    metrics,
    decode: { registry: cfg.devices, maxPayloadBytes: 64 * 1024, maxFutureSkewMs: 5 * 60_000 },
  })
  const { scores$ } = startScoring({
    readings$: ingest.readings$,
    mqtt: publisher,
    influx,
    model,
    logger,
    metrics,
    thresholds: defaultThresholds,
    batch: { maxBatch: 64, maxWaitMs: 20 },
    scoreIntervalMs: cfg.scoreIntervalMs,
    idleExpiryMs: 6 * 3600_000,
  })
  const { premiums$ } = startPricing({ scores$, mqtt: publisher, influx, plan: cfg.plan ?? skeletonPlan, logger, metrics })
  const drained = new Promise<void>((resolve) => premiums$.subscribe({ complete: resolve, error: () => resolve() }))
  const dashboards = await startDashboards({ scores$, premiums$, metrics, logger, host: cfg.host, port: cfg.port })
  logger.info({ url: dashboards.url }, 'pipeline started')

  return {
    url: dashboards.url,
    scores$,
    premiums$,
    metrics,
    async stop() {
      await ingest.stop()
      await drained
      await influx.close()
      await publisher.endAsync()
      await dashboards.close()
      logger.info('pipeline stopped')
    },
  }
}
