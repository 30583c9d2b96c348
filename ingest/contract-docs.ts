/**
 * The device contract's documents, generated from the same schemas the validator compiles:
 * docs/contract/{kind}.schema.json, docs/contract/asyncapi.json and docs/device-contract.md.
 * `npm run docs` writes them; a test fails when the committed files differ from what this makes.
 */
import type { TSchema } from '@sinclair/typebox'
import { BATCH_MAX_SPAN_S, envelope, ID_PATTERN, TIME_REUSE_WINDOW, subjectList, subjectNames, type SensorKind } from './contract.ts'
import type { RejectReason } from './decode.ts'
import { createAdapters } from './adapters/index.ts'
import { sensors } from './sensors/index.ts'
import { CONSENT_STREAM, consentCategory, consentMessage, consentNotice, PURPOSES } from './consent.ts'
import { ACK_STREAM, ackMessage, commandMessage, COMMANDS } from './commands.ts'
import { MAX_LEAD_MS, MAX_PAUSE_MS, PAST_TOLERANCE_MS, PAUSE_SCOPES, PRIVACY_STREAM, privacyMessage, privacyNotice } from './privacy.ts'

const BASE = 'https://ubiq.dev/contract/v1'
/** The device contract's version within v1: minor versions add streams or optional fields (1.1.0: imu_device, #19), or close a hole (1.2.0: batch bounds, #20), or add topics (1.3.0: consent, 1.4.0: privacy mode, #21; 1.5.0: commands, #24). */
export const CONTRACT_VERSION = '1.5.0'

/** A command ubiq sends, and the hub's acknowledgement, for the docs. */
export const commandExample = { id: '5d0c3a9e1b7f42c8a6e0d9b3f1c7a2e4b8d6f0a3c5e7b9d1f3a5c7e9b1d3f5a7', command: 'close_valve', issuedAt: 1767225600412, expiresAt: 1767226500412, reason: 'leak at hub-0001 from 2026-01-01T00:00:00.000Z' }
export const ackExample = { seq: 141, ts: 1767225601020, id: commandExample.id, status: 'done' }

/** A device's consent message, for the docs. */
export const consentExample = { seq: 120, ts: 1767225600000, streams: ['gps'], purposes: ['pricing', 'coaching'], granted: false }

/** What ubiq answers on `ubiq/v1/consent/{deviceId}` to the example, for the docs. */
const noticeExample = consentNotice(
  { policyId: 'pol-0001', streams: ['gps'], purposes: ['pricing', 'coaching'], granted: false, by: { role: 'device', deviceId: 'phone-0001' }, at: '2026-01-01T00:00:00.412Z', seq: 120, deviceTs: 1767225600000, hash: '3f1c…' },
  { policyId: 'pol-0001', changes: [], streams: [{ stream: 'gps', subject: 'driving', category: 'location', purposes: ['claims'] }, { stream: 'imu_device', subject: 'driving', category: 'other', purposes: ['pricing'] }] },
  { deviceId: 'phone-0001', kinds: ['gps', 'imu_device'] },
)

/** A device's pause of location, and its end, for the docs. */
export const privacyExamples = [
  { seq: 130, ts: 1767225600000, scope: 'location', minutes: 90 },
  { seq: 131, ts: 1767228000000, end: '9b2e0c4d1f6a8b3c5d7e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9012345678a' },
]

/** What ubiq answers on `ubiq/v1/privacy/{deviceId}` to the first example, for the docs. */
const privacyNoticeExample = privacyNotice(
  { policyId: 'pol-0001', action: 'pause', scope: 'location', from: '2026-01-01T00:00:00.412Z', to: '2026-01-01T01:30:00.412Z', by: { role: 'device', deviceId: 'phone-0001' }, at: '2026-01-01T00:00:00.412Z', seq: 130, deviceTs: 1767225600000, hash: privacyExamples[1]!.end! },
  [{ id: privacyExamples[1]!.end!, policyId: 'pol-0001', scope: 'location', from: '2026-01-01T00:00:00.412Z', to: '2026-01-01T01:30:00.412Z', by: { role: 'device', deviceId: 'phone-0001' }, at: '2026-01-01T00:00:00.412Z' }],
  'phone-0001', Date.parse('2026-01-01T00:00:01Z'),
)

/** What each reject reason asks of the firmware (docs only; the codes are decode.ts's). */
export const rejectReasons: Record<RejectReason, string> = {
  bad_topic: 'publish under `ubiq/v1/dev/{deviceId}/{stream}`',
  unknown_device: 'the device is not in the registry',
  unknown_stream: 'no such stream in contract v1',
  no_consent: 'the policy has not consented to this stream, or has withdrawn it for every purpose (see Consent)',
  payload_too_large: 'over 64 KiB: send smaller batches',
  malformed_json: 'not valid UTF-8 JSON',
  invalid_payload: `a field is missing, extra, of the wrong type or out of range, or a batch covers more than ${BATCH_MAX_SPAN_S} s (\`detail\` says which)`,
  timestamp_in_future: '`ts`, or a batch\'s last sample, is more than 5 minutes ahead of the server: fix the device clock',
  before_registration: '`ts` is before the device was registered: fix the device clock',
  implausible_jump: 'a GPS fix implies over 1000 km/h since the last good fix (accuracy allowed for); the next fix consistent with it is accepted',
  privacy_mode: 'the reading\'s device time falls in a pause of privacy mode that covers its stream (see Privacy mode): not stored; stop sending it until the pause ends',
  duplicate_time: `the device sent this stream's \`ts\` (for a batch, any of its samples' times at the same \`rate_hz\`) under another \`seq\` among its last ${TIME_REUSE_WINDOW} messages: InfluxDB keeps one point per stream and time, so it would replace the stored reading; a resend keeps its \`seq\``,
}

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`

/** A published JSON Schema file: draft-07, its id under BASE, and its examples. */
const schemaFile = (name: string, description: string, schema: Record<string, unknown>, examples: unknown[]) => ({
  $schema: 'http://json-schema.org/draft-07/schema#',
  $id: `${BASE}/${name}.schema.json`,
  title: `ubiq v1 ${name}`,
  description,
  ...schema,
  examples,
})

function jsonSchema(s: SensorKind): Record<string, unknown> {
  const schema = JSON.parse(JSON.stringify(s.schema)) as Record<string, unknown>
  const alternative = s.alternative && JSON.parse(JSON.stringify(s.alternative.schema))
  return schemaFile(s.kind, s.description, alternative ? { oneOf: [schema, { description: s.alternative!.description, ...alternative }] } : schema,
    [s.example, ...(s.alternative ? [s.alternative.example] : [])])
}

/**
 * An AsyncAPI 2 channel at QoS 1: "publish" is what others send to ubiq, "subscribe" what ubiq
 * sends; the message is named, JSON, with a payload schema when it has one.
 */
const channel = (description: string, parameters: Record<string, unknown>, op: 'publish' | 'subscribe', operationId: string, retain: boolean, name: string, payload?: unknown) => ({
  description,
  servers: ['broker'],
  parameters,
  [op]: { operationId, bindings: { mqtt: { qos: 1, retain } }, message: { name, contentType: 'application/json', ...(payload ? { payload } : {}) } },
})

/**
 * What ubiq emits beyond the device contract, as the downstream folders declare it (ingest may not
 * import them): the payloads of the scores, events and premiums topics, and the websocket feed's
 * query and messages. Each is the schema its type is derived from.
 */
export interface PublishedSchemas {
  score: TSchema
  event: TSchema
  /** The event catalogue (scoring's eventTypes): each type's subject, words, unit, urgency and own evidence. */
  eventTypes: Readonly<Record<string, { subject: string; words: string; unit: string | Readonly<Record<string, string>>; urgent: boolean; evidence?: Readonly<Record<string, string>> }>>
  premium: TSchema
  feed: { query: TSchema; message: TSchema; notice: TSchema }
}

/** A schema as plain JSON Schema (TypeBox's symbols dropped). */
const plain = (schema: TSchema) => JSON.parse(JSON.stringify(schema)) as Record<string, unknown>

/** The members of a union as AsyncAPI messages, each named by its `type` literal. */
const messagesOf = (union: TSchema) => (union.anyOf as TSchema[]).map((m) => ({ name: m.properties.type.const as string, contentType: 'application/json', payload: plain(m) }))

function asyncApi(published: PublishedSchemas): Record<string, unknown> {
  const deviceId = { description: 'The device, as registered', schema: { type: 'string', pattern: ID_PATTERN } }
  const policyId = { description: 'The policy', schema: { type: 'string', pattern: ID_PATTERN } }
  const channels: Record<string, unknown> = {}
  for (const s of sensors) {
    channels[`ubiq/v1/dev/{deviceId}/${s.kind}`] = channel(s.description, { deviceId }, 'publish', `send_${s.kind}`, false, s.kind, { $ref: `./${s.kind}.schema.json` })
  }
  channels[`ubiq/v1/dev/{deviceId}/${CONSENT_STREAM}`] = channel(
    "The policyholder's consent, changed from the device: grants or withdraws purposes for the policy's streams the device is registered for",
    { deviceId }, 'publish', 'change_consent', false, CONSENT_STREAM, { $ref: `./${CONSENT_STREAM}.schema.json` },
  )
  channels['ubiq/v1/consent/{deviceId}'] = channel(
    "The policy's consent after each change, whoever made it (retained): the device's own change is acknowledged here with its seq",
    { deviceId }, 'subscribe', 'receive_consent', true, 'consent_notice', {
      type: 'object',
      required: ['at', 'hash', 'by', 'change', 'consents'],
      properties: {
        at: { type: 'string', description: 'When ubiq took the change (ISO 8601, server time)' },
        hash: { type: 'string', description: "The change's record in the audit chain" },
        by: { type: 'string', enum: ['policyholder', 'analyst', 'device'] },
        seq: { type: 'integer', description: 'The seq of the consent message this acknowledges: only when the device itself sent the change' },
        change: { type: 'object', description: 'The change, as asked' },
        consents: { type: 'object', additionalProperties: { type: 'array', items: { type: 'string', enum: [...PURPOSES] } }, description: "Each of the device's streams and the purposes granted for it now; none: not stored" },
      },
    },
  )
  channels[`ubiq/v1/dev/{deviceId}/${PRIVACY_STREAM}`] = channel(
    "Privacy mode from the device: pauses location or all telemetry of the device's policy for a while, or ends a pause early",
    { deviceId }, 'publish', 'pause', false, PRIVACY_STREAM, { $ref: `./${PRIVACY_STREAM}.schema.json` },
  )
  channels['ubiq/v1/privacy/{deviceId}'] = channel(
    "The policy's pauses not yet over after each change, whoever made it (retained): the device's own pause or end is acknowledged here with its seq",
    { deviceId }, 'subscribe', 'receive_privacy', true, 'privacy_notice', {
      type: 'object',
      required: ['at', 'hash', 'by', 'change', 'pauses'],
      properties: {
        at: { type: 'string', description: 'When ubiq took the change (ISO 8601, server time)' },
        hash: { type: 'string', description: "The change's record in the audit chain" },
        by: { type: 'string', enum: ['policyholder', 'device'] },
        seq: { type: 'integer', description: 'The seq of the privacy message this acknowledges: only when the device itself sent the change' },
        change: { type: 'object', description: 'The change: action (pause or end), the pause\'s id, scope and window' },
        pauses: { type: 'array', items: { type: 'object', properties: { id: { type: 'string' }, scope: { type: 'string', enum: [...PAUSE_SCOPES] }, from: { type: 'string' }, to: { type: 'string' } } }, description: 'The pauses scheduled or in force: readings of their streams with a device time in [from, to) are rejected with privacy_mode' },
      },
    },
  )
  channels['ubiq/v1/cmd/{deviceId}/{command}'] = channel(
    'A command to the device (not retained): act on it before its expiresAt, then acknowledge on ubiq/v1/dev/{deviceId}/ack. Only ubiq writes here; a device reads only its own',
    { deviceId, command: { description: Object.entries(COMMANDS).map(([name, c]) => `${name}: ${c.description}`).join('; '), schema: { type: 'string', enum: Object.keys(COMMANDS) } } },
    'subscribe', 'receive_command', false, 'command', { $ref: './command.schema.json' },
  )
  channels[`ubiq/v1/dev/{deviceId}/${ACK_STREAM}`] = channel(
    "The device's acknowledgement of a command: its id and what became of it", { deviceId }, 'publish', 'acknowledge_command', false, ACK_STREAM, { $ref: `./${ACK_STREAM}.schema.json` },
  )
  channels['ubiq/v1/rejected/{deviceId}'] = channel('Every message ubiq did not store, with the reason', { deviceId }, 'subscribe', 'receive_rejection', false, 'rejection', {
    type: 'object',
    required: ['deviceId', 'kind', 'reason', 'detail', 'receivedAt'],
    properties: {
      deviceId: { type: 'string' },
      kind: { type: 'string' },
      reason: { type: 'string', enum: Object.keys(rejectReasons) },
      detail: { type: 'string', description: 'What was wrong; never the payload values' },
      seq: { type: 'integer' },
      receivedAt: { type: 'integer', description: 'ms since the Unix epoch' },
    },
  })
  channels['ubiq/v1/scores/{policyId}'] = channel('Scores (0–100, higher is safer) with their reasons', { policyId }, 'subscribe', 'receive_score', false, 'score', plain(published.score))
  channels['ubiq/v1/events/{policyId}'] = channel(
    'Events with their evidence: urgent ones (crash, leak, smoke, health alerts) the moment they are seen, the others when the episode behind them has ended',
    { policyId }, 'subscribe', 'receive_event', false, 'event', plain(published.event),
  )
  channels['ubiq/v1/premiums/{policyId}/{subject}'] = channel(
    `Premium adjustments per policy and subject (${subjectNames.join(', ')}) with reasons in plain words, model and ruleset versions and hashes; the latest is retained. An erased policy\'s retained premium is cleared (an empty retained message, as MQTT clears one)`,
    { policyId, subject: { description: subjectList, schema: { type: 'string', enum: subjectNames } } }, 'subscribe', 'receive_premium', true, 'premium', plain(published.premium),
  )
  channels['/feed'] = {
    description: "The policyholder's live feed: the policy's scores, events and premium changes as they are made, each with its seq; ?since=SEQ replays what came after. A bearer token in ?token= (a policyholder's opens its own policy, an analyst's the one named in ?policy=). Read-only. Close codes: 4401 no, bad or expired token; 4403 another policy; 4400 a bad query; 1013 the client did not keep up, or the standing could not be read (reconnect with ?since=); 1001 shutdown",
    servers: ['dashboards'],
    bindings: { ws: { method: 'GET', query: plain(published.feed.query) } },
    subscribe: { operationId: 'receive_feed', message: { oneOf: [...messagesOf(published.feed.message), ...messagesOf(published.feed.notice)] } },
  }
  return {
    asyncapi: '2.6.0',
    id: 'urn:ubiq:contract:v1',
    info: { title: 'ubiq device contract', version: CONTRACT_VERSION, description: 'What devices publish to ubiq over MQTT, and what ubiq publishes back, there and on the policyholder\'s websocket feed. See device-contract.md.' },
    servers: {
      broker: { url: '{host}:1883', protocol: 'mqtt', protocolVersion: '3.1.1', description: "The deployment's MQTT broker (Mosquitto with ubiq's ACL)", variables: { host: { default: 'localhost' } } },
      dashboards: { url: '{host}:8080/feed', protocol: 'ws', description: "ubiq's dashboards server (PORT)", variables: { host: { default: 'localhost' } } },
    },
    defaultContentType: 'application/json',
    channels,
  }
}

function fieldRows(schema: TSchema, skip: readonly string[] = []): string[] {
  return Object.entries(schema.properties as Record<string, TSchema>).filter(([name]) => !skip.includes(name)).map(([name, p]) => {
    const required = (schema.required as string[] | undefined)?.includes(name) ? 'yes' : ''
    const range = p.type === 'boolean' ? 'true/false'
      : p.type === 'string' ? (p.enum ? (p.enum as string[]).map((e) => `\`${e}\``).join(', ') : p.pattern === '^\\d{4}-\\d{2}-\\d{2}T' ? 'ISO 8601 date-time' : p.pattern ? `\`${p.pattern}\`` : `text, at most ${p.maxLength} characters`)
      : p.type === 'array' ? (p.items?.enum ? `${p.minItems}–${p.maxItems} of ${(p.items.enum as string[]).map((e) => `\`${e}\``).join(', ')}` : `${p.minItems}–${p.maxItems} rows`)
        : `${p.minimum ?? `> ${p.exclusiveMinimum}`} – ${p.maximum}${p.type === 'integer' ? ', integer' : ''}`
    return `| \`${name}\` | ${range} | ${required} | ${p.description ?? ''} |`
  })
}

/** A schema's properties as `a`, `b`, … (optional ones included). */
const fieldNames = (schema: TSchema) => Object.keys(schema.properties as object).map((k) => `\`${k}\``).join(', ')

/** A device message's fields beside the envelope's, and its examples, as the markdown shows them. */
const messageDoc = (schema: TSchema, ...examples: unknown[]) => [
  '| field | range | required | meaning |', '|---|---|---|---|',
  ...fieldRows(schema, Object.keys(envelope)),
  ...examples.flatMap((e) => ['', '```json', JSON.stringify(e), '```']), '',
]

function markdown(published: PublishedSchemas): string {
  const out: string[] = [
    '# Device contract, v1',
    '',
    '<!-- Generated by `npm run docs` from ingest/sensors/: edit the schemas there, not this file. -->',
    '',
    'Devices publish JSON over MQTT (3.1.1 or 5) at **QoS 1**, one topic per device and stream:',
    '',
    '```',
    'ubiq/v1/dev/{deviceId}/{stream}',
    '```',
    '',
    `\`deviceId\` matches \`${ID_PATTERN}\` and must be in ubiq's device registry, with the stream among`,
    'the streams its policy consented to. The version is the `v1` segment: a breaking change gets',
    '`ubiq/v2/…` beside it, never an edit of v1. Within v1, streams and optional fields are added as',
    `minor versions: this is contract ${CONTRACT_VERSION} (1.1.0 added \`imu_device\`, a phone's IMU in its own axes,`,
    'gravity included, for phones in any mount; 1.2.0 bounds a batch: `rate_hz` at least 1, at most 10 s of samples,',
    'its last sample no further ahead than `ts` may be, since a 1e-300 Hz batch stalled ingest; 1.3.0 adds',
    '[consent](#consent) changed from the device, and the policy\'s consent told back to it; 1.4.0 adds',
    '[privacy mode](#privacy-mode) paused from the device, and the reject reason `privacy_mode`; 1.5.0 adds',
    '[commands](#commands) from ubiq to devices, and their acknowledgements).',
    'Machine-readable: [asyncapi.json](contract/asyncapi.json)',
    'and one JSON Schema per stream in [contract/](contract/).',
    '',
    '## Every message',
    '',
    '| field | range | required | meaning |',
    '|---|---|---|---|',
    ...fieldRows({ type: 'object', properties: envelope, required: ['seq', 'ts'] } as unknown as TSchema),
    '',
    'No fields other than the stream\'s own are allowed. Payloads are at most 64 KiB. `seq` is one',
    'counter per device across all its streams; a message whose `(deviceId, seq)` ubiq has already',
    'stored (a QoS 1 redelivery, a resend after reconnecting) is dropped as a duplicate, not rejected.',
    'Offline buffers may be sent late and in bursts, in any order.',
    '',
    '## Streams',
    '',
    '| stream | subject | what |',
    '|---|---|---|',
    ...sensors.map((s) => `| [\`${s.kind}\`](#${s.kind}) | ${s.subject} | ${s.description} |`),
  ]
  for (const s of sensors) {
    out.push('', `### ${s.kind}`, '', `${s.description}. Subject: ${s.subject}. Schema: [contract/${s.kind}.schema.json](contract/${s.kind}.schema.json).`, '')
    out.push('Besides `seq` and `ts`:', '', '| field | range | required | meaning |', '|---|---|---|---|', ...fieldRows(s.schema, Object.keys(envelope)))
    if (s.batch) {
      out.push('', 'Each row of `samples`:', '', '| column | range | meaning |', '|---|---|---|',
        ...s.batch.columns.map((c) => `| \`${c.name}\` | ${c.minimum} – ${c.maximum} | ${c.description} |`))
    }
    out.push('', '```json', JSON.stringify(s.example), '```')
    if (s.alternative) {
      out.push('', `Also accepted: ${s.alternative.description}. ${(s.alternative.schema.properties as Record<string, TSchema>).pids?.description ?? ''}`, '', '```json', JSON.stringify(s.alternative.example), '```')
    }
  }
  out.push(
    '', '## Formats devices already speak', '',
    'These arrive on their own topics, are turned into v1 messages, and then pass the same registry,',
    'consent and schema checks. In each, the first topic level after the format\'s prefix is the device',
    'id, which is also the device\'s MQTT user: the ACL `ubiq broker-config` writes lets a device write',
    'only its own topics of each format.', '',
    '| format | topics | mapping |', '|---|---|---|',
    ...createAdapters().map((a) => `| ${a.name} | \`${a.filter}\` | ${a.description} |`),
    '', '## Consent', '',
    'A stream is stored while its policy consents to it for at least one purpose: `pricing` (its readings',
    'feed scores and premiums), `coaching` or `claims`. Location streams (those with positions) and',
    'health streams are consented to separately from the rest. The streams in the device registry are',
    'the consent given at enrolment, for pricing; the policyholder, an analyst (REST) or a device changes',
    'it while ubiq runs, and from the next message ingest takes, a stream with no purpose left is rejected',
    'with `no_consent`. Every change is recorded in ubiq\'s audit chain first.', '',
    '| stream | category |', '|---|---|',
    ...sensors.map((s) => `| \`${s.kind}\` | ${consentCategory(s)} |`),
    '',
    `A device changes its policy's consent for the streams it is registered for on \`ubiq/v1/dev/{deviceId}/${CONSENT_STREAM}\``,
    '(QoS 1; schema: [contract/consent.schema.json](contract/consent.schema.json)). A grant names streams of one category',
    'only; a withdrawal any. `seq` is the device\'s counter, as in every message: a consent message no newer',
    'than the last one ubiq took from the device (a redelivery, or an older decision arriving after a newer one)',
    'is dropped, so a device\'s latest decision stands.', '',
    ...messageDoc(consentMessage, consentExample),
    'After every change, whoever made it, ubiq publishes the policy\'s consent to each of its devices on',
    '`ubiq/v1/consent/{deviceId}` (QoS 1, retained): the change, its audit hash, who made it, the `seq` of the',
    'device\'s own consent message (its acknowledgement: the change is in effect and recorded), and the purposes',
    'each of the device\'s streams now has. A device can stop sending a stream left with none. A change ubiq',
    'refuses (a stream the device is not registered for, a grant across categories) is rejected on',
    '`ubiq/v1/rejected/{deviceId}` with kind `consent`; one it could not record gets no answer: send it again.', '',
    '```json', JSON.stringify(noticeExample), '```',
    '', '## Privacy mode', '',
    'The policyholder pauses location (`scope` `location`: every stream of the location category above)',
    'or all telemetry (`all`: every stream of the policy) for a while, from their page, REST, or any of',
    `the policy's devices on \`ubiq/v1/dev/{deviceId}/${PRIVACY_STREAM}\` (QoS 1; schema: [contract/privacy.schema.json](contract/privacy.schema.json)).`,
    `A pause lasts at most ${MAX_PAUSE_MS / 3600_000} h, starts at most ${MAX_LEAD_MS / 86_400_000} days ahead and not in the past (${PAST_TOLERANCE_MS / 60_000} min of clock tolerance), and`,
    'overlaps no other pause of the policy; times are the server\'s. A reading whose device time falls in a pause',
    'of its stream is rejected with `privacy_mode`, not stored and not scored: a device should stop collecting',
    'those streams until the pause ends (uploading them later changes nothing). A message either starts a pause',
    '(`scope`, and `to` or `minutes`, optionally `from`) or ends one now (`end` with its id, alone).', '',
    ...messageDoc(privacyMessage, ...privacyExamples),
    'After every pause and early end, whoever made it, ubiq publishes the policy\'s pauses not yet over to each of',
    'its devices on `ubiq/v1/privacy/{deviceId}` (QoS 1, retained), with the change, its audit hash, and the `seq` of',
    'the device\'s own message (its acknowledgement). A pause or end ubiq refuses is rejected on',
    '`ubiq/v1/rejected/{deviceId}` with kind `privacy` and the reason in `detail`.', '',
    '```json', JSON.stringify(privacyNoticeExample), '```',
    '', '## Commands', '',
    'ubiq sends a device a command on `ubiq/v1/cmd/{deviceId}/{command}` (QoS 1, not retained: a command',
    'that waited in a broker is stale), only to a device registered for the command\'s stream. Only ubiq',
    'writes there, and each device may read only its own (the ACL `ubiq broker-config` writes). Schema:',
    '[contract/command.schema.json](contract/command.schema.json).', '',
    '| command | sent to the policy\'s devices registered for | what | expires after |', '|---|---|---|---|',
    ...Object.entries(COMMANDS).map(([name, c]) => `| \`${name}\` | \`${c.stream}\` | ${c.description} | ${c.ttlMs / 60_000} min |`),
    '',
    'ubiq sends `close_valve` when scoring sees an urgent leak of the policy; a `valve` reading with',
    '`valve_open: false` confirms it.', '',
    ...messageDoc(commandMessage, commandExample),
    `The device acts on it unless it has expired (then it does nothing), and acknowledges on its own \`ubiq/v1/dev/{deviceId}/${ACK_STREAM}\``,
    `(QoS 1; schema: [contract/${ACK_STREAM}.schema.json](contract/${ACK_STREAM}.schema.json)), with the envelope as every message.`,
    'The first acknowledgement of a command stands; one of a command ubiq did not send the device is rejected',
    `on \`ubiq/v1/rejected/{deviceId}\` with kind \`${ACK_STREAM}\`. Then the device reports the new state (the valve closed) as`,
    'usual: that report confirms the command, and scoring measures the shut-off (`valve_shutoff`, from the leak',
    'to the valve closed). Every command, acknowledgement and confirmation is recorded in ubiq\'s audit chain;',
    'a command\'s id is its record\'s hash.', '',
    ...messageDoc(ackMessage, ackExample),
    'Hubs that speak Zigbee2MQTT or Home Assistant get the command in their own format (see above): a',
    'Zigbee2MQTT valve (a device whose friendly name contains `valve`) `{"state":"OFF"}` on',
    '`zigbee2mqtt/{deviceId}/{friendly_name}/set`; a Home Assistant valve its `payload_close` on the',
    '`command_topic` of its discovery config. Their state report (`OFF`, `closed`) confirms it.',
    '', '## Rejections', '',
    'A message that is not stored is published on `ubiq/v1/rejected/{deviceId}` (QoS 1) and counted in',
    '`ubiq_ingest_messages_rejected_total{reason}`. The rejection names the reason and the field, never',
    'the payload\'s values:', '',
    '```json',
    '{"deviceId":"veh-0001","kind":"obd","reason":"invalid_payload","detail":"/speed_kmh: Expected number to be less or equal to 255","seq":17,"receivedAt":1767225600123}',
    '```', '',
    '| reason | what to fix |', '|---|---|',
    ...Object.entries(rejectReasons).map(([code, fix]) => `| \`${code}\` | ${fix} |`),
    '', '## What ubiq publishes', '',
    '| topic | QoS | retained | payload |', '|---|---|---|---|',
    `| \`ubiq/v1/scores/{policyId}\` | 1 | no | a score (\`value\` 0–100, higher is safer): ${fieldNames(published.score)} |`,
    `| \`ubiq/v1/events/{policyId}\` | 1 | no | an event (urgent ones at once): ${fieldNames(published.event)} |`,
    `| \`ubiq/v1/premiums/{policyId}/{subject}\` | 1 | yes | a premium adjustment (reasons in plain words, each with its \`effect\` on the premium): ${fieldNames(published.premium)}; empty once the policy is erased (the retained message cleared) |`,
    '| `ubiq/v1/rejected/{deviceId}` | 1 | no | a rejection, above |',
    '| `ubiq/v1/consent/{deviceId}` | 1 | yes | the policy\'s consent after a change, above |',
    '| `ubiq/v1/privacy/{deviceId}` | 1 | yes | the policy\'s pauses after a change, above |',
    '| `ubiq/v1/cmd/{deviceId}/{command}` | 1 | no | a command, above |',
    '',
    'Their payloads\' schemas are in [asyncapi.json](contract/asyncapi.json), with the policyholder\'s websocket feed (`/feed`), which',
    'carries the policy\'s scores, events and premiums as above, each wrapped with its `type` and `seq`.',
    '', '### Event types', '',
    'Every event\'s evidence has `source`, `peak`, `threshold`, `unit` and `duration_s` (often `samples` and `rate_hz`);',
    'the unit of `peak` and `threshold` is the type\'s, and some types add numbers of their own:', '',
    '| type | subject | in words | unit | urgent | its own evidence |', '|---|---|---|---|---|---|',
    ...Object.entries(published.eventTypes).map(([type, e]) => {
      const unit = typeof e.unit === 'string' ? e.unit : Object.entries(e.unit).map(([source, u]) => `${u} (from ${source})`).join('; ')
      const own = Object.entries(e.evidence ?? {}).map(([name, what]) => `\`${name}\`: ${what}`).join('; ')
      return `| \`${type}\` | ${e.subject} | ${e.words} | ${unit} | ${e.urgent ? 'yes' : 'no'} | ${own} |`
    }),
    '',
  )
  return out.join('\n')
}

/** Every generated file, by path relative to the repository root. */
export function contractDocs(published: PublishedSchemas): Map<string, string> {
  const files = new Map<string, string>()
  for (const s of sensors) files.set(`docs/contract/${s.kind}.schema.json`, json(jsonSchema(s)))
  files.set(`docs/contract/${CONSENT_STREAM}.schema.json`, json(schemaFile(CONSENT_STREAM, "A change to the policyholder's consent, sent by one of the policy's devices", JSON.parse(JSON.stringify(consentMessage)), [consentExample])))
  files.set(`docs/contract/${PRIVACY_STREAM}.schema.json`, json(schemaFile(PRIVACY_STREAM, "A pause of privacy mode, or its early end, sent by one of the policy's devices", JSON.parse(JSON.stringify(privacyMessage)), privacyExamples)))
  files.set('docs/contract/command.schema.json', json(schemaFile('command', 'A command ubiq sends a device on ubiq/v1/cmd/{deviceId}/{command}', JSON.parse(JSON.stringify(commandMessage)), [commandExample])))
  files.set(`docs/contract/${ACK_STREAM}.schema.json`, json(schemaFile(ACK_STREAM, "A device's acknowledgement of a command", JSON.parse(JSON.stringify(ackMessage)), [ackExample])))
  files.set('docs/contract/asyncapi.json', json(asyncApi(published)))
  files.set('docs/device-contract.md', markdown(published))
  return files
}
