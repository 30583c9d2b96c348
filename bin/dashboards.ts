/**
 * `ubiq start --dashboards` (#25, docs/scale-out.md): the dashboards server (REST, the
 * policyholders' websocket feed, the pages) as a process of its own, beside a main `ubiq start`
 * (or workers). It follows scores, events and premiums on the broker, where scoring and pricing
 * publish them, and reads history from InfluxDB; it holds nothing of the main process's memory.
 *
 * What it needs of the main process's state it reads where that state is durable: the token
 * secret and revocations in the data directory (re-read when the main process revokes), the
 * device registry file. The routes over state only the main process holds (consent, privacy mode,
 * erasure, the what-if, the household, claims, device clocks, ingest health and its alert rules,
 * the drill-down, the export, a trip's route, the backtest, web push) are served by the main
 * process only.
 */
import { hostname } from 'node:os'
import type { Logger } from 'pino'
import { Registry, collectDefaultMetrics } from 'prom-client'
import { followBroker, startDashboards, tokenAuthority, tokenSecret } from '../dashboards/index.ts'
import { connectInflux, type DeviceRegistry, type InfluxConfig } from '../ingest/index.ts'
import { revocationsFile, tokenSecretFile, untilInfluxesAnswer } from './pipeline.ts'

export interface DashboardsProcessConfig {
  /** The broker scoring and pricing publish to (Mosquitto, or nats-server's MQTT listener). */
  mqttUrl: string
  influx: InfluxConfig
  /** The main process's data directory, for the token secret and revocations (or tokenSecret). */
  dataDir: string
  tokenSecret?: string
  /** The device registry: a policy it does not know is not found (as in the main process). */
  devices?: DeviceRegistry
  host: string
  port: number
  rateLimitPerMinute?: number
  influxStartTimeoutMs?: number
}

export interface DashboardsProcess {
  url: string
  metrics: Registry
  stop(): Promise<void>
}

/** The MQTT client id: distinct for each dashboards process of a host (by its port; PORT=0: by pid). */
export const dashboardsClientId = (port: number) => `ubiq-dashboards-${hostname().replace(/[^A-Za-z0-9_-]/g, '_')}-${port || `pid${process.pid}`}`

/** Starts the dashboards process; rejects with a coded error if InfluxDB cannot be reached. */
export async function startDashboardsProcess(cfg: DashboardsProcessConfig, logger: Logger): Promise<DashboardsProcess> {
  const metrics = new Registry()
  collectDefaultMetrics({ register: metrics })
  await untilInfluxesAnswer(cfg.influx, cfg.influxStartTimeoutMs, logger)
  const influx = await connectInflux(cfg.influx)
  const followed = await followBroker({ url: cfg.mqttUrl, clientId: dashboardsClientId(cfg.port), logger })
  const policies = cfg.devices && new Set([...cfg.devices.values()].map((d) => d.policyId))
  const dashboards = await startDashboards({
    scores$: followed.scores$, events$: followed.events$, premiums$: followed.premiums$,
    influx, metrics, logger, host: cfg.host, port: cfg.port, rateLimitPerMinute: cfg.rateLimitPerMinute,
    auth: tokenAuthority(tokenSecret(cfg.tokenSecret, tokenSecretFile(cfg.dataDir)), { revocationsFile: revocationsFile(cfg.dataDir) }),
    health: () => ({ ok: followed.connected(), checks: { following: followed.connected(), dropped: followed.dropped() } }),
    ...(policies ? { enrolled: (policyId: string) => policies.has(policyId) } : {}),
  })
  logger.info({ url: dashboards.url }, 'dashboards started')
  return {
    url: dashboards.url,
    metrics,
    async stop() {
      // The feeds are told first (1001, reconnect with ?since=), then the broker session ends.
      await dashboards.close()
      await followed.close()
      await influx.close()
      logger.info('dashboards stopped')
    },
  }
}
