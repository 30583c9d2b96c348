/**
 * The device contract's documents, generated from the same schemas the validator compiles:
 * docs/contract/{kind}.schema.json, docs/contract/asyncapi.json and docs/device-contract.md.
 * `npm run docs` writes them; a test fails when the committed files differ from what this makes.
 */
import type { TSchema } from '@sinclair/typebox'
import { BATCH_MAX_SPAN_S, envelope, ID_PATTERN, TIME_REUSE_WINDOW, type SensorKind } from './contract.ts'
import type { RejectReason } from './decode.ts'
import { createAdapters } from './adapters/index.ts'
import { sensors } from './sensors/index.ts'

const BASE = 'https://ubiq.dev/contract/v1'
/** The device contract's version within v1: minor versions add streams or optional fields (1.1.0: imu_device, #19), or close a hole (1.2.0: batch bounds, #20). */
export const CONTRACT_VERSION = '1.2.0'

/** What each reject reason asks of the firmware (docs only; the codes are decode.ts's). */
export const rejectReasons: Record<RejectReason, string> = {
  bad_topic: 'publish under `ubiq/v1/dev/{deviceId}/{stream}`',
  unknown_device: 'the device is not in the registry',
  unknown_stream: 'no such stream in contract v1',
  no_consent: "the policy has not consented to this stream",
  payload_too_large: 'over 64 KiB: send smaller batches',
  malformed_json: 'not valid UTF-8 JSON',
  invalid_payload: `a field is missing, extra, of the wrong type or out of range, or a batch covers more than ${BATCH_MAX_SPAN_S} s (\`detail\` says which)`,
  timestamp_in_future: '`ts`, or a batch\'s last sample, is more than 5 minutes ahead of the server: fix the device clock',
  before_registration: '`ts` is before the device was registered: fix the device clock',
  implausible_jump: 'a GPS fix implies over 1000 km/h since the last good fix (accuracy allowed for); the next fix consistent with it is accepted',
  duplicate_time: `the device sent this stream's \`ts\` (for a batch, any of its samples' times at the same \`rate_hz\`) under another \`seq\` among its last ${TIME_REUSE_WINDOW} messages: InfluxDB keeps one point per stream and time, so it would replace the stored reading; a resend keeps its \`seq\``,
}

const json = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`

function jsonSchema(s: SensorKind): Record<string, unknown> {
  const schema = JSON.parse(JSON.stringify(s.schema)) as Record<string, unknown>
  const alternative = s.alternative && JSON.parse(JSON.stringify(s.alternative.schema))
  return {
    $schema: 'http://json-schema.org/draft-07/schema#',
    $id: `${BASE}/${s.kind}.schema.json`,
    title: `ubiq v1 ${s.kind}`,
    description: s.description,
    ...(alternative ? { oneOf: [schema, { description: s.alternative!.description, ...alternative }] } : schema),
    examples: [s.example, ...(s.alternative ? [s.alternative.example] : [])],
  }
}

function asyncApi(): Record<string, unknown> {
  const deviceId = { description: 'The device, as registered', schema: { type: 'string', pattern: ID_PATTERN } }
  const policyId = { description: 'The policy', schema: { type: 'string', pattern: ID_PATTERN } }
  const channels: Record<string, unknown> = {}
  for (const s of sensors) {
    channels[`ubiq/v1/dev/{deviceId}/${s.kind}`] = {
      description: s.description,
      parameters: { deviceId },
      // AsyncAPI 2: "publish" is what others send to ubiq.
      publish: {
        operationId: `send_${s.kind}`,
        bindings: { mqtt: { qos: 1, retain: false } },
        message: { name: s.kind, contentType: 'application/json', payload: { $ref: `./${s.kind}.schema.json` } },
      },
    }
  }
  channels['ubiq/v1/rejected/{deviceId}'] = {
    description: 'Every message ubiq did not store, with the reason',
    parameters: { deviceId },
    subscribe: {
      operationId: 'receive_rejection',
      bindings: { mqtt: { qos: 1, retain: false } },
      message: {
        name: 'rejection',
        contentType: 'application/json',
        payload: {
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
        },
      },
    },
  }
  channels['ubiq/v1/scores/{policyId}'] = {
    description: 'Scores (0–100, higher is safer) with their reasons', parameters: { policyId },
    subscribe: { operationId: 'receive_score', bindings: { mqtt: { qos: 1, retain: false } }, message: { name: 'score', contentType: 'application/json' } },
  }
  channels['ubiq/v1/premiums/{policyId}/{subject}'] = {
    description: 'Premium adjustments per policy and subject (driving, health, home) with reasons in plain words, model and ruleset versions and hashes; the latest is retained', parameters: { policyId, subject: { description: 'driving, health or home', schema: { type: 'string', enum: ['driving', 'health', 'home'] } } },
    subscribe: { operationId: 'receive_premium', bindings: { mqtt: { qos: 1, retain: true } }, message: { name: 'premium', contentType: 'application/json' } },
  }
  return {
    asyncapi: '2.6.0',
    id: 'urn:ubiq:contract:v1',
    info: { title: 'ubiq device contract', version: CONTRACT_VERSION, description: 'What devices publish to ubiq over MQTT, and what ubiq publishes back. See device-contract.md.' },
    defaultContentType: 'application/json',
    channels,
  }
}

function fieldRows(schema: TSchema, skip: readonly string[] = []): string[] {
  return Object.entries(schema.properties as Record<string, TSchema>).filter(([name]) => !skip.includes(name)).map(([name, p]) => {
    const required = (schema.required as string[] | undefined)?.includes(name) ? 'yes' : ''
    const range = p.type === 'boolean' ? 'true/false'
      : p.type === 'array' ? `${p.minItems}–${p.maxItems} rows`
        : `${p.minimum ?? `> ${p.exclusiveMinimum}`} – ${p.maximum}${p.type === 'integer' ? ', integer' : ''}`
    return `| \`${name}\` | ${range} | ${required} | ${p.description ?? ''} |`
  })
}

function markdown(): string {
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
    'its last sample no further ahead than `ts` may be, since a 1e-300 Hz batch stalled ingest).',
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
    '| `ubiq/v1/scores/{policyId}` | 1 | no | a score: `value` 0–100 (higher is safer), `model`, `reasons`, `window`, `exposure`, `features` |',
    '| `ubiq/v1/premiums/{policyId}/{subject}` | 1 | yes | a premium adjustment: `subject`, `factor`, `premium`, `currency`, `previousFactor`, `period`, `reasons` (plain words, each with its `effect` on the premium), `models`, `ruleset`, `effectiveFrom`, `inputsHash`, `prevHash`, `hash`, `credibility`, `limited` |',
    '| `ubiq/v1/rejected/{deviceId}` | 1 | no | a rejection, above |',
    '',
  )
  return out.join('\n')
}

/** Every generated file, by path relative to the repository root. */
export function contractDocs(): Map<string, string> {
  const files = new Map<string, string>()
  for (const s of sensors) files.set(`docs/contract/${s.kind}.schema.json`, json(jsonSchema(s)))
  files.set('docs/contract/asyncapi.json', json(asyncApi()))
  files.set('docs/device-contract.md', markdown())
  return files
}
