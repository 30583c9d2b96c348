/**
 * The service's configuration: one schema, read from the environment here and nowhere else.
 * `ubiq --help` prints it from the same schema.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { retentionPolicies } from '../ingest/index.ts'

const url = (description: string) => Type.Optional(Type.String({ pattern: '^[a-z][a-z0-9+.-]*://', description }))

export const ConfigSchema = Type.Object({
  MQTT_URL: url('Existing MQTT broker, e.g. mqtt://broker:1883. Unset: start Mosquitto if installed, else the embedded aedes broker'),
  INFLUX_URL: url('Existing InfluxDB, e.g. http://influx:8086. Unset: start a local influxd'),
  INFLUX_API: Type.Union([Type.Literal('v1'), Type.Literal('v2')], { default: 'v1', description: 'Write API: v1 (/write: InfluxDB 1.x, 1.8+ and the 2.x compatibility API). v2 is refused: a bucket has one retention for everything in it (issue #21)' }),
  INFLUX_DATABASE: Type.String({ default: 'ubiq', pattern: '^[A-Za-z0-9_.-]+$', description: 'Database for writes and InfluxQL queries; ubiq creates it and its retention policies' }),
  INFLUX_USERNAME: Type.Optional(Type.String({ description: 'User, when the server has auth enabled (an admin: ubiq creates the database and alters its retention policies)' })),
  INFLUX_PASSWORD: Type.Optional(Type.String({ description: 'Password' })),
  POSITION_RETENTION_DAYS: Type.Integer({
    default: retentionPolicies.raw_positions.days, minimum: 1, maximum: 90,
    description: 'Days full-precision positions are kept (the raw_positions retention policy, altered at start): at least 1 (an open trip is rebuilt from its last 12 h after a restart), at most 90 (no longer than the readings they came with); trips keep coarse cells, crashes their track',
  }),
  INFLUX_START_TIMEOUT_S: Type.Integer({ default: 60, minimum: 0, maximum: 86_400, description: 'ubiq start waits this long for InfluxDB to answer (saying so every 5 s), then exits with INFLUX_UNREACHABLE' }),
  DEVICE_REGISTRY: Type.Optional(Type.String({ description: 'ubiq start: JSON file {"devices":[{"deviceId","policyId","kinds","registeredAt"}]} (kinds: the streams the device sends, consented to at enrolment for pricing; registeredAt optional); ubiq sim --write-registry FILE writes one for its fleet' })),
  HOST: Type.String({ default: '127.0.0.1', description: 'Dashboards listen address' }),
  PORT: Type.Integer({ default: 8080, minimum: 0, maximum: 65535, description: 'Dashboards port (0: any free port)' }),
  ROAD_MAP: Type.Optional(Type.String({ description: 'GeoJSON road map with maxspeed per road, for speeding events (ubiq sim map writes the simulated city\'s); without it nobody is speeding' })),
  MODELS_DIR: Type.String({ default: 'models', description: "Trained models (ubiq train's --out), offered beside the shipped ones; ubiq models promote/shadow chooses which score" }),
  RATING_PLAN: Type.Optional(Type.String({ description: 'Rating plan: a JSON file, or a folder of its versions (each score is priced by the one in effect at its time). Unset: the example plan in pricing/plans/' })),
  REORDER_WINDOW_MS: Type.Integer({ default: 2000, minimum: 1, maximum: 600_000, description: 'Out-of-order readings within this long are reordered by device time before scoring' }),
  TOKEN_SECRET: Type.Optional(Type.String({ minLength: 32, description: "Signs the dashboards' tokens (ubiq token); at least 32 characters. Unset: a random one kept in UBIQ_DATA_DIR/token-secret" })),
  CLAIMS_WEBHOOK_URL: url("The insurer's claims system: each claim (first notice of loss: a crash, a leak that kept running, fire, CO) is POSTed there as a signed webhook, retried with back-off (README \"Claims hook\"). Unset: claims are opened and listed for the analyst, not sent"),
  CLAIMS_WEBHOOK_SECRET: Type.Optional(Type.String({ minLength: 32, description: 'Signs the claims webhooks (HMAC-SHA256 in X-Ubiq-Signature); at least 32 characters, shared with the claims system. Required with CLAIMS_WEBHOOK_URL' })),
  RATE_LIMIT_PER_MINUTE: Type.Integer({ default: 600, minimum: 1, description: 'Dashboards requests (and feed connections) a client address may make a minute' }),
  UBIQ_DATA_DIR: Type.String({ default: '.ubiq', description: "ubiq's own state (the ingest journal), and the data of the servers it starts itself" }),
  MAX_PAYLOAD_BYTES: Type.Integer({ default: 64 * 1024, minimum: 1024, maximum: 16 * 1024 * 1024, description: 'A device message larger than this is rejected (payload_too_large); the device contract promises 64 KiB' }),
  MAX_FUTURE_SKEW_S: Type.Integer({ default: 300, minimum: 0, maximum: 86_400, description: 'A reading timed further ahead of the server clock than this is rejected (timestamp_in_future)' }),
  BACKPRESSURE_STOP_LINES: Type.Integer({ default: 100_000, minimum: 1, description: 'Lines InfluxDB has yet to confirm at which ingest stops acknowledging device messages (the broker holds them)' }),
  BACKPRESSURE_RESUME_LINES: Type.Integer({ default: 50_000, minimum: 0, description: 'Unconfirmed lines at which ingest acknowledges again (below BACKPRESSURE_STOP_LINES)' }),
  SCORE_BATCH_MAX: Type.Integer({ default: 64, minimum: 1, maximum: 10_000, description: 'Most feature sets scored in one model call' }),
  SCORE_BATCH_WAIT_MS: Type.Integer({ default: 20, minimum: 0, maximum: 60_000, description: 'Longest a feature set waits for its batch' }),
  POLICY_IDLE_H: Type.Number({ default: 0.5, exclusiveMinimum: 0, maximum: 24 * 30, description: "A policy with no reading for this long leaves scoring's memory (rebuilt from InfluxDB when it comes back)" }),
  LOG_LEVEL: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info', description: 'Log level' }),
})
export type Config = Static<typeof ConfigSchema>

/** A configuration error: the message names the variable and what is wrong with it. */
export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID'
  constructor(message: string) {
    super(message)
    this.name = 'ConfigError'
  }
}

/** Reads the configuration from `env`; throws a ConfigError naming every bad variable. */
export function readConfig(env: NodeJS.ProcessEnv): Config {
  const keys = Object.keys(ConfigSchema.properties)
  const given = Object.fromEntries(keys.filter((k) => env[k] !== undefined && env[k] !== '').map((k) => [k, env[k]]))
  const value = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, { ...given }))
  const problems = [...Value.Errors(ConfigSchema, value)].map((e) => `${e.path.slice(1)}=${JSON.stringify(given[e.path.slice(1)])}: ${e.message}`)
  const cfg = value as Config
  // Retention is per measurement (issue #21): InfluxDB retention policies, which the v2 API's
  // buckets cannot hold (a bucket has one retention), and which replace the one policy named here.
  if (cfg.INFLUX_API === 'v2') problems.push('INFLUX_API=v2 is not supported: a v2 bucket has one retention for everything in it, and ubiq keeps each measurement as long as its own retention policy says (docs/data-inventory.md). Use InfluxDB 1.x (1.6 to 1.8) with INFLUX_API=v1')
  if (cfg.BACKPRESSURE_RESUME_LINES >= cfg.BACKPRESSURE_STOP_LINES) problems.push(`BACKPRESSURE_RESUME_LINES=${cfg.BACKPRESSURE_RESUME_LINES} must be below BACKPRESSURE_STOP_LINES=${cfg.BACKPRESSURE_STOP_LINES}`)
  if (cfg.CLAIMS_WEBHOOK_URL && !cfg.CLAIMS_WEBHOOK_SECRET) problems.push('CLAIMS_WEBHOOK_URL is set without CLAIMS_WEBHOOK_SECRET: the claims system could not tell ubiq\'s webhooks from anyone\'s')
  if (env.INFLUX_RETENTION_POLICY) problems.push('INFLUX_RETENTION_POLICY is no longer read: each measurement is written to the retention policy it is declared in (docs/data-inventory.md); unset it')
  if (problems.length) throw new ConfigError(`invalid configuration:\n  ${[...new Set(problems)].join('\n  ')}`)
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
