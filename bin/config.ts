/**
 * The service's configuration: one schema, read from the environment here and nowhere else.
 * `ubiq --help` prints it from the same schema.
 */
import { Type, type Static, type TObject, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { defaultAlertThresholds as alert } from '../dashboards/index.ts'
import { codes, retentionPolicies } from '../ingest/index.ts'
import { detectorConfigs, detectorVariables, type DetectorConfigs } from '../scoring/index.ts'

const url = (description: string) => Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9+.-]*://', description }))

const service = {
  MQTT_URL: url('Existing MQTT broker, e.g. mqtt://broker:1883. Unset: start Mosquitto if installed, else the embedded aedes broker'),
  INFLUX_URL: Type.Optional(Type.String({ pattern: '^https?://[^,]+(,https?://[^,]+)*$', description: 'Existing InfluxDB, e.g. http://influx:8086; or several, comma-separated, each storing a partition of the policies chosen by a hash of the policy id (keep their order: docs/scale-out.md section 1). Unset: start a local influxd' })),
  INFLUX_API: Type.Union([Type.Literal('v1'), Type.Literal('v2')], { default: 'v1', description: 'Write API: v1 (/write and /query of InfluxDB 1.x; tested on 1.6.7, the Debian package; 2.x/3.x v1-compatibility endpoints are untested). v2 is refused: a bucket has one retention for everything in it (issue #21)' }),
  INFLUX_DATABASE: Type.String({ default: 'ubiq', pattern: '^[A-Za-z0-9_.-]+$', description: 'Database for writes and InfluxQL queries; ubiq creates it and its retention policies' }),
  INFLUX_USERNAME: Type.Optional(Type.String({ description: 'User, when the server has auth enabled (an admin: ubiq creates the database and alters its retention policies)' })),
  INFLUX_PASSWORD: Type.Optional(Type.String({ description: 'Password' })),
  POSITION_RETENTION_DAYS: Type.Integer({
    default: retentionPolicies.raw_positions.days, minimum: 1, maximum: 90,
    description: 'Days full-precision positions are kept (the raw_positions retention policy, altered at start): at least 1 (an open trip is rebuilt from its last 12 h after a restart), at most 90 (no longer than the readings they came with); trips keep coarse cells, crashes their track',
  }),
  INFLUX_START_TIMEOUT_S: Type.Integer({ default: 60, minimum: 0, maximum: 86_400, description: 'ubiq start waits this long for InfluxDB to answer (saying so every 5 s), then exits with UBIQ_INFLUX_UNREACHABLE' }),
  DEVICE_REGISTRY: Type.Optional(Type.String({ description: 'ubiq start: JSON file {"devices":[{"deviceId","policyId","kinds","registeredAt"}]} (kinds: the streams the device sends, consented to at enrolment for pricing; registeredAt optional); ubiq sim --write-registry FILE writes one for its fleet' })),
  HOST: Type.String({ default: '127.0.0.1', description: 'Dashboards listen address' }),
  PORT: Type.Integer({ default: 8080, minimum: 0, maximum: 65535, description: 'Dashboards port (0: any free port)' }),
  ROAD_MAP: Type.Optional(Type.String({ description: 'GeoJSON road map with maxspeed per road, for speeding events (ubiq sim map writes the simulated city\'s); without it nobody is speeding' })),
  MODELS_DIR: Type.String({ default: 'models', description: "Trained models (ubiq train's --out), offered beside the shipped ones; ubiq models promote/shadow chooses which score" }),
  RATING_PLAN: Type.Optional(Type.String({ description: 'Rating plan: a JSON file, or a folder of its versions (each score is priced by the one in effect at its time). Unset: the example plan in pricing/plans/' })),
  REORDER_WINDOW_MS: Type.Integer({ default: 2000, minimum: 1, maximum: 600_000, description: 'Out-of-order readings within this long are reordered by device time before scoring' }),
  TOKEN_SECRET: Type.Optional(Type.String({ minLength: 32, description: "Signs the dashboards' tokens (ubiq token); at least 32 characters. Unset: a random one kept in UBIQ_DATA_DIR/token-secret" })),
  PUSH_SUBJECT: Type.String({ default: 'mailto:operator@localhost', pattern: '^(mailto:|https://)', description: "Who runs the service, as web push services are told with each alert (VAPID subject): a mailto: or https: URL they can reach you at" }),
  CLAIMS_WEBHOOK_URL: url("The insurer's claims system: each claim (first notice of loss: a crash, a leak that kept running, fire, CO) is POSTed there as a signed webhook, retried with back-off (README \"Claims hook\"). Unset: claims are opened and listed for the analyst, not sent"),
  CLAIMS_WEBHOOK_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'Signs the claims webhooks (HMAC-SHA256 in X-Ubiq-Signature); at least 32 characters, shared with the claims system. Required with CLAIMS_WEBHOOK_URL' })),
  ALERTS_WEBHOOK_URL: url("The insurer's alert receiver: each urgent event (crash, leak, smoke, CO, freeze warning, health alert) and each premium change is POSTed there as a signed webhook, retried with back-off, like claims (README \"Alerts to the insurer\"). Unset: none is sent"),
  ALERTS_WEBHOOK_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'Signs the alert webhooks (HMAC-SHA256 in X-Ubiq-Signature); at least 32 characters. Required with ALERTS_WEBHOOK_URL' })),
  RATE_LIMIT_PER_MINUTE: Type.Integer({ default: 600, minimum: 1, description: 'Dashboards requests (and feed connections) a client address may make a minute' }),
  UBIQ_DATA_DIR: Type.String({ default: '.ubiq', description: "ubiq's own state (the ingest journal), and the data of the servers it starts itself" }),
  MAX_PAYLOAD_BYTES: Type.Integer({ default: 64 * 1024, minimum: 1024, maximum: 16 * 1024 * 1024, description: 'A device message larger than this is rejected (payload_too_large); the device contract promises 64 KiB' }),
  MAX_FUTURE_SKEW_S: Type.Integer({ default: 300, minimum: 0, maximum: 86_400, description: 'A reading timed further ahead of the server clock than this is rejected (timestamp_in_future)' }),
  BACKPRESSURE_STOP_LINES: Type.Integer({ default: 100_000, minimum: 1, description: 'Lines InfluxDB has yet to confirm at which ingest stops acknowledging device messages (the broker holds them)' }),
  BACKPRESSURE_RESUME_LINES: Type.Integer({ default: 50_000, minimum: 0, description: 'Unconfirmed lines at which ingest acknowledges again (below BACKPRESSURE_STOP_LINES)' }),
  SCORE_BATCH_MAX: Type.Integer({ default: 64, minimum: 1, maximum: 10_000, description: 'Most feature sets scored in one model call' }),
  SCORE_BATCH_WAIT_MS: Type.Integer({ default: 20, minimum: 0, maximum: 60_000, description: 'Longest a feature set waits for its batch' }),
  POLICY_IDLE_H: Type.Number({ default: 0.5, exclusiveMinimum: 0, maximum: 24 * 30, description: "A policy with no reading for this long leaves scoring's memory (rebuilt from InfluxDB when it comes back)" }),
  ALERT_WINDOW_MIN: Type.Integer({ default: alert.windowMin, minimum: 1, maximum: 15, description: 'The lag and rejection alert rules look at the last this many minutes (GET /api/v1/alerts, the portfolio page, ubiq_alert_firing)' }),
  ALERT_LAG_S: Type.Number({ default: alert.lagS, exclusiveMinimum: 0, description: 'Alert when the median device lag (receive time minus device time) over the window is above this many seconds' }),
  ALERT_REJECTED_PCT: Type.Number({ default: alert.rejectedPct, exclusiveMinimum: 0, maximum: 100, description: 'Alert when more than this percentage of the device messages of the window is rejected' }),
  ALERT_DRIFT_PSI: Type.Number({ default: alert.driftPsi, exclusiveMinimum: 0, description: "Alert when a subject's score distribution drifts by a population stability index above this (0.1: moderate, 0.25: significant shift)" }),
  ALERT_DRIFT_WINDOW_H: Type.Number({ default: alert.driftWindowH, exclusiveMinimum: 0, maximum: 24 * 52, description: 'Score drift compares the latest scores of the last this many hours with those of the 7 times as long before' }),
  ALERT_DRIFT_MIN_POLICIES: Type.Integer({ default: alert.driftMinPolicies, minimum: 1, description: 'Score drift needs at least this many policies with a score in each window (fewer: no figure)' }),
  NATS_URL: Type.Optional(Type.String({ pattern: '^nats://[^,]+(,nats://[^,]+)*$', description: 'ubiq start --worker: nats-server URLs, comma-separated (any nodes of the cluster), the first with the service user\'s credentials (ubiq broker-config --nats), e.g. nats://ubiq:PASSWORD@n1:4222,nats://n2:4222 (docs/scale-out.md)' })),
  WORKER_PARTITIONS: Type.Integer({ default: 16, minimum: 1, maximum: 1024, description: "ubiq start --worker: the partitions nats-server maps device subjects to (its mappings block's partition(P, …), the same P on every server and worker); many more than workers, so that moving work moves whole partitions" }),
  WORKER_ID: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]+$', description: "ubiq start --worker: this worker's name in the partition leases, unique among running workers (default: host name and process id)" })),
  WORKER_REPLICAS: Type.Integer({ default: 1, minimum: 1, maximum: 5, description: 'ubiq start --worker: replicas of the device and lease streams it makes when missing (3 in a three-node cluster)' }),
  MAP_TILES_URL: Type.Optional(Type.String({ pattern: '^https?://(?=.*\\{z\\})(?=.*\\{x\\})(?=.*\\{y\\})', description: "Map tiles under a trip's route on the policyholder's page: an XYZ template such as https://tile.example.org/{z}/{x}/{y}.png (mind the provider's usage policy). Unset: the route is drawn alone, and the page asks no tile server" })),
  MAP_TILES_ATTRIBUTION: Type.Optional(Type.String({ maxLength: 200, description: 'What the tile provider asks to be shown with its tiles, e.g. © OpenStreetMap contributors' })),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info', description: 'Log level' }),
}

/**
 * The service's variables, then each vehicle detector's thresholds (scoring's detector catalogue:
 * `CRASH_IMPULSE_MS2`…, defaults as the detectors declare them, #22 item 5).
 */
export const ConfigSchema = Type.Object({ ...service, ...detectorVariables() }) as unknown as TObject<typeof service>
export type Config = Static<typeof ConfigSchema>

/** The vehicle detectors' configurations, from the detector variables of a read configuration. */
export const detectorsOf = (cfg: Config): DetectorConfigs => detectorConfigs(cfg as unknown as Record<string, unknown>)

/** Reads the configuration from `env`; throws UBIQ_CONFIG_INVALID naming every bad variable. */
export function readConfig(env: NodeJS.ProcessEnv): Config {
  const keys = Object.keys(ConfigSchema.properties)
  const given = Object.fromEntries(keys.filter((k) => env[k] !== undefined && env[k] !== '').map((k) => [k, env[k]]))
  const value = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, { ...given }))
  const problems = [...Value.Errors(ConfigSchema, value)].map((e) => `${e.path.slice(1)}=${JSON.stringify(given[e.path.slice(1)])}: ${e.message}`)
  const cfg = value as Config
  // Retention is per measurement (issue #21): InfluxDB retention policies, which the v2 API's
  // buckets cannot hold (a bucket has one retention), and which replace the one policy named here.
  if (cfg.INFLUX_API === 'v2') problems.push('INFLUX_API=v2 is not supported: a v2 bucket has one retention for everything in it, and ubiq keeps each measurement as long as its own retention policy says (docs/data-inventory.md). Use InfluxDB 1.x (1.6 to 1.8) with INFLUX_API=v1')
  // The same InfluxDB twice would hold two partitions in one database: questions across policies would count its points twice.
  const influxHosts = (cfg.INFLUX_URL?.split(',') ?? []).map((u) => (URL.canParse(u) ? new URL(u).host : u))
  const twice = influxHosts.filter((h, i) => influxHosts.indexOf(h) !== i)
  if (twice.length > 0) problems.push(`INFLUX_URL names ${[...new Set(twice)].join(', ')} more than once: each InfluxDB holds one partition of the policies, and questions across policies ask every one, so the same one twice would count its points twice`)
  if (cfg.BACKPRESSURE_RESUME_LINES >= cfg.BACKPRESSURE_STOP_LINES) problems.push(`BACKPRESSURE_RESUME_LINES=${cfg.BACKPRESSURE_RESUME_LINES} must be below BACKPRESSURE_STOP_LINES=${cfg.BACKPRESSURE_STOP_LINES}`)
  if (cfg.CLAIMS_WEBHOOK_URL && !cfg.CLAIMS_WEBHOOK_SECRET) problems.push('CLAIMS_WEBHOOK_URL is set without CLAIMS_WEBHOOK_SECRET: the claims system could not tell ubiq\'s webhooks from anyone\'s')
  if (cfg.ALERTS_WEBHOOK_URL && !cfg.ALERTS_WEBHOOK_SECRET) problems.push('ALERTS_WEBHOOK_URL is set without ALERTS_WEBHOOK_SECRET: the receiver could not tell ubiq\'s webhooks from anyone\'s')
  if (env.INFLUX_RETENTION_POLICY) problems.push('INFLUX_RETENTION_POLICY is no longer read: each measurement is written to the retention policy it is declared in (docs/data-inventory.md); unset it')
  if (problems.length) throw new codes.UBIQ_CONFIG_INVALID(`invalid configuration:\n  ${[...new Set(problems)].join('\n  ')}`)
  return cfg
}

/** The environment variables, their defaults and descriptions, for --help. */
export function describeConfig(): string {
  return Object.entries(ConfigSchema.properties as Record<string, TSchema>)
    .map(([k, s]) => `  ${k.padEnd(24)}${s.description}${s.default !== undefined ? ` (default: ${s.default})` : ''}`)
    .join('\n')
}

/** The README's configuration table: every variable, its default and what it does, from the schema. */
export function configTable(): string {
  const cell = (x: unknown) => String(x).replace(/\|/g, '\\|')
  return ['| variable | default | meaning |', '|---|---|---|',
    ...Object.entries(ConfigSchema.properties as Record<string, TSchema>).map(([k, s]) => `| \`${k}\` | ${s.default !== undefined ? `\`${cell(s.default)}\`` : ''} | ${cell(s.description)} |`)].join('\n')
}

const TABLE_START = '<!-- configuration: generated from bin/config.ts by `npm run docs` -->'
const TABLE_END = '<!-- /configuration -->'

/** `readme` with its configuration table (between the markers) made from the schema. */
export function withConfigTable(readme: string): string {
  const start = readme.indexOf(TABLE_START), end = readme.indexOf(TABLE_END)
  if (start < 0 || end < start) throw new Error(`README.md has no ${TABLE_START} … ${TABLE_END}`)
  return `${readme.slice(0, start + TABLE_START.length)}\n${configTable()}\n${readme.slice(end)}`
}
