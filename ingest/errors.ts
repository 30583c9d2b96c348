/**
 * Every error ubiq makes on purpose, in one catalogue (as fastify's lib/errors.js): a stable code
 * an operator or a client can search for, a message template (`%s`: the arguments, in order), and
 * where the error reaches REST, its HTTP status and the `error` word of the body. DESIGN.md's three
 * kinds: a startup or configuration error is thrown and ubiq exits non-zero; bad data becomes a
 * rejection with its reason, never an error in a stream; infrastructure is the libraries' own.
 * docs/errors.md is written from it (`npm run docs`).
 */

/** Where an error reaches REST: its status and the `error` word of the body `{ error, message, code }`. */
export interface RestAnswer {
  status: 400 | 401 | 403 | 404
  error: string
}

interface Entry {
  /** The message, `%s` replaced by the arguments in order. */
  message: string
  /** When it happens and what to do: the docs' column. */
  about: string
  rest?: RestAnswer
}

const bad = (error = 'bad_request'): RestAnswer => ({ status: 400, error })

const catalogue = {
  // Startup and configuration: ubiq says what is wrong and exits non-zero.
  UBIQ_USAGE: { message: '%s', about: 'A command line ubiq cannot run. Printed with the help hint; exit code 2' },
  UBIQ_CONFIG_INVALID: { message: '%s', about: 'A configuration variable is missing or wrong, or a file it names cannot be read: the message names it' },
  UBIQ_REGISTRY_NOT_JSON: { message: 'device registry is not JSON: %s', about: 'The DEVICE_REGISTRY file is not JSON' },
  UBIQ_REGISTRY_INVALID: { message: 'device registry: %s %s', about: 'The DEVICE_REGISTRY file does not have the registry\'s shape: the JSON path and what is wrong' },
  UBIQ_REGISTRY_DUPLICATE: { message: 'device %s is listed twice in the device registry', about: 'A device id is in the registry twice' },
  UBIQ_REGISTRY_RESERVED_ID: { message: 'device %s: "%s" is reserved for ubiq\'s own MQTT connections (%s); give the device another id', about: 'A device is named as one of ubiq\'s own MQTT users: it would share their credentials and ACL' },
  UBIQ_REGISTRY_UNKNOWN_STREAM: { message: 'device %s: no stream %s in contract v1 (streams: %s)', about: 'A device lists a stream the device contract does not have' },
  UBIQ_REGISTRY_BAD_TIME: { message: 'device %s: registeredAt "%s" is not an ISO 8601 time', about: 'A device\'s registration time cannot be read' },
  UBIQ_ROAD_MAP_INVALID: { message: '%s', about: 'The ROAD_MAP file cannot be used: the message names the feature and the reason' },
  UBIQ_MODEL_INVALID: { message: '%s', about: 'A model file does not match its definition (card, tensors, features)' },
  UBIQ_PLAN_INVALID: { message: '%s', about: 'A RATING_PLAN file cannot be used: every reason' },
  UBIQ_RECORDING_INVALID: { message: '%s', about: 'A recording or its column mapping cannot be read (ubiq import, ubiq evaluate): the file, key or line, and what is wrong' },
  UBIQ_REVOCATIONS_INVALID: { message: 'token revocations %s: %s', about: 'The token revocations file in UBIQ_DATA_DIR cannot be read' },
  UBIQ_MOSQUITTO_NOT_FOUND: { message: 'mosquitto is not installed (Debian: apt-get install mosquitto)', about: 'No MQTT_URL, and no mosquitto to start' },
  UBIQ_NATS_NOT_FOUND: { message: 'nats-server is not installed (Debian: apt-get install nats-server)', about: 'A local NATS cluster (tests, benchmarks) and no nats-server to start' },
  UBIQ_INFLUXD_NOT_FOUND: { message: 'influxd is not installed (Debian: apt-get install influxdb)', about: 'No INFLUX_URL, and no influxd to start' },
  UBIQ_SERVICE_START_FAILED: { message: '%s did not start: %s', about: 'A local mosquitto or influxd ubiq started did not come up: what it said' },
  UBIQ_INFLUX_UNREACHABLE: { message: '%s', about: 'InfluxDB does not answer (at start: within INFLUX_START_TIMEOUT_S)' },
  UBIQ_INFLUX_TIMEOUT: { message: 'InfluxDB at %s did not answer a query within %s s', about: 'A query got no answer in time' },
  UBIQ_AUDIT_INVALID: { message: '%s', about: 'A record of the audit log cannot be read: run ubiq audit verify' },
  UBIQ_AUDIT_CHAIN: { message: 'audit log %s: record %s does not follow the last record (%s)', about: 'A record to append does not follow the chain\'s last one: two writers, or a changed file' },
  UBIQ_AUDIT_WRITE: { message: 'audit log %s: short write', about: 'The audit log could not take a whole record (disk full): pricing stops rather than price unrecorded' },
  UBIQ_AUDIT_MISSING: { message: 'no audit log at %s (ubiq start writes it in UBIQ_DATA_DIR; --file names another)', about: 'ubiq audit verify finds no audit log' },
  UBIQ_UNREACHABLE: { message: 'no ubiq answers at %s (%s): erasure runs in the running ubiq, which takes the policy out of its pipeline as it erases; start it (ubiq start), or name it with --url', about: 'ubiq erase finds no running ubiq' },
  UBIQ_ERASURE_FAILED: { message: 'policy %s: %s %s', about: 'The running ubiq refused or failed an erasure (ubiq erase): its status and message' },

  // Requests and device messages ubiq refuses: a REST answer, or a rejection with reason invalid_payload.
  UBIQ_AUTH_MISSING_TOKEN: { message: 'a token is needed (ubiq token issues one)', about: 'A request or feed without a token (feed close code 4401)', rest: { status: 401, error: 'missing_token' } },
  UBIQ_AUTH_INVALID_TOKEN: { message: '%s', about: 'A token that is forged, malformed or names no role, issuer, issue time or expiry (feed: 4401)', rest: { status: 401, error: 'invalid_token' } },
  UBIQ_AUTH_EXPIRED_TOKEN: { message: 'the token has expired', about: 'An expired token (feed: 4401)', rest: { status: 401, error: 'expired_token' } },
  UBIQ_AUTH_REVOKED_TOKEN: { message: 'the token has been revoked', about: 'A revoked token (feed: 4401)', rest: { status: 401, error: 'revoked_token' } },
  UBIQ_AUTH_FORBIDDEN: { message: '%s', about: 'A valid token that may not do this: another policy\'s, or not an analyst\'s (feed: 4403)', rest: { status: 403, error: 'forbidden' } },
  UBIQ_UNKNOWN_POLICY: { message: 'no policy %s in the device registry', about: 'A policy the registry does not know (erased, or never enrolled)', rest: { status: 404, error: 'unknown_policy' } },
  UBIQ_CONSENT_INVALID: { message: '%s', about: 'A consent change ubiq refuses (REST, or the consent stream: a rejection)', rest: bad() },
  UBIQ_PRIVACY_INVALID: { message: '%s', about: 'A privacy mode pause or end ubiq refuses (REST, or the privacy stream: a rejection)', rest: bad() },
  UBIQ_ACK_INVALID: { message: '%s', about: 'A device\'s acknowledgement of a command ubiq did not send it (a rejection)' },
  UBIQ_WHAT_IF_INVALID: { message: '%s', about: 'A what-if the premium simulator cannot answer', rest: bad() },
  UBIQ_PUSH_SUBSCRIPTION_INVALID: { message: '%s', about: 'A push subscription whose endpoint is not a push service this server sends to, or not https', rest: bad() },
} satisfies Record<string, Entry>

/** A catalogue code. */
export type ErrorCode = keyof typeof catalogue

/** An error of the catalogue: `code` says which, `rest` how REST answers it. */
export class UbiqError extends Error {
  override readonly name = 'UbiqError'
  readonly rest: RestAnswer | undefined
  constructor(readonly code: ErrorCode, args: readonly (string | number)[]) {
    const { message, rest }: Entry = catalogue[code]
    let i = 0
    super(message.replace(/%s/g, () => String(args[i++])))
    this.rest = rest
  }
}

/** One class per code, as fastify's: `throw new codes.UBIQ_X(...args)`, `err instanceof codes.UBIQ_X`. */
export type ErrorClass = new (...args: (string | number)[]) => UbiqError

/** The catalogue's classes, by code. */
export const codes = Object.fromEntries(Object.keys(catalogue).map((code) => [code, class extends UbiqError {
  constructor(...args: (string | number)[]) {
    super(code as ErrorCode, args)
  }
}])) as unknown as Record<ErrorCode, ErrorClass>

/** Where `npm run docs` writes the catalogue. */
export const ERRORS_DOC = 'docs/errors.md'

/** The catalogue as a page: docs/errors.md. */
export function errorsDoc(): string {
  const cell = (text: string) => text.replace(/\|/g, '\\|')
  const rows = Object.entries(catalogue).map(([code, e]: [string, Entry]) =>
    `| \`${code}\` | ${e.rest ? `${e.rest.status} \`${e.rest.error}\`` : ''} | ${cell(e.message)} | ${cell(e.about)} |`)
  return `<!-- generated from ingest/errors.ts by \`npm run docs\` -->
# Errors

Every error ubiq makes on purpose has a stable code. The CLI prints it (\`ubiq: [UBIQ_…] message\`,
exit code 1, or 2 for \`UBIQ_USAGE\`); REST answers \`{ "error", "message", "code" }\` with the status
below, and the feed closes with 4000 + that status; a device message refused for one becomes a
rejection (reason \`invalid_payload\`, the message as its detail) on \`ubiq/v1/rejected/{deviceId}\`.
Any other error is a fault: the log and the CLI give its stack.

| code | REST | message (\`%s\`: the details) | when |
|---|---|---|---|
${rows.join('\n')}
`
}
