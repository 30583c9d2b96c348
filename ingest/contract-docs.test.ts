import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Ajv } from 'ajv'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { publishedSchemas } from '../dashboards/index.ts'
import { ackExample, commandExample, consentExample, contractDocs, privacyExamples } from './contract-docs.ts'
import { commandMessage, createAdapters, decodeAck, decodeConsent, decodeMessage, decodePrivacy, deviceRegistry, sensors, topics } from './index.ts'

const committed = (path: string) => readFileSync(fileURLToPath(new URL(`../${path}`, import.meta.url)), 'utf8')

t.test('the committed contract documents are current (npm run docs)', async (t) => {
  for (const [path, text] of contractDocs(publishedSchemas)) t.equal(committed(path), text, path)
})

/** docs/device-contract.md's section of each stream: the fields its tables name, and its JSON examples. */
function streamSections(): Map<string, { fields: string[]; examples: string[] }> {
  const sections = new Map<string, { fields: string[]; examples: string[] }>()
  const doc = committed('docs/device-contract.md')
  const streams = doc.slice(doc.indexOf('\n## Streams'), doc.indexOf('\n## ', doc.indexOf('\n## Streams') + 1))
  for (const part of streams.split(/^### /m).slice(1)) {
    sections.set(part.slice(0, part.indexOf('\n')).trim(), {
      fields: [...part.matchAll(/^\| `(\w+)` \|/gm)].map((m) => m[1]!),
      examples: [...part.matchAll(/^```json\n(.*?)\n```/gms)].map((m) => m[1]!),
    })
  }
  return sections
}

t.test('the device contract as a developer reads it: every stream of the live catalogue has its section, its fields, and examples ubiq stores (#22 item 7)', async (t) => {
  const sections = streamSections()
  t.same([...sections.keys()].sort(), sensors.map((s) => s.kind).sort(), 'a section for each stream ubiq takes, and no other')
  const cfg = { registry: deviceRegistry([{ deviceId: 'dev-0001', policyId: 'pol-0001', kinds: sensors.map((s) => s.kind) }]), maxPayloadBytes: 65536, maxFutureSkewMs: 300_000, adapters: createAdapters() }
  for (const s of sensors) {
    const section = sections.get(s.kind)
    if (!section) continue
    const fields = [...Object.keys(s.schema.properties).filter((f) => f !== 'seq' && f !== 'ts'), ...(s.batch?.columns.map((c) => c.name) ?? [])]
    t.same(fields.filter((f) => !section.fields.includes(f)), [], `${s.kind}: every field it takes is documented`)
    t.same(section.fields.filter((f) => !fields.includes(f)), [], `${s.kind}: and no field it does not take`)
    t.ok(section.examples.length > 0, `${s.kind}: an example`)
    for (const text of section.examples) {
      const example = JSON.parse(text) as { ts: number }
      const decoded = decodeMessage(cfg, topics.device('dev-0001', s.kind), Buffer.from(text), example.ts)
      t.notOk(decoded && 'reason' in decoded, `${s.kind}: ubiq stores the documented ${text.slice(0, 60)}…`)
    }
  }
})

type Channel = { publish?: { message: { payload: { $ref: string } } }; subscribe?: { bindings: { mqtt: { retain: boolean } } } }
const api = JSON.parse(committed('docs/contract/asyncapi.json')) as { info: { version: string }; channels: Record<string, Channel> }

/** The published schema a device reads for a stream: the AsyncAPI channel's payload, its $ref followed to the committed file. */
function publishedValidator(stream: string) {
  const ref = api.channels[`ubiq/v1/dev/{deviceId}/${stream}`]?.publish?.message.payload.$ref
  if (!ref) return undefined
  const schema = JSON.parse(committed(`docs/contract/${ref.replace('./', '')}`)) as Record<string, unknown>
  return new Ajv({ strict: false }).compile(schema)
}

t.test('every stream\'s published schema agrees with ubiq: what it accepts ubiq stores, what it refuses ubiq rejects', async (t) => {
  const kinds = sensors.map((s) => s.kind)
  const cfg = { registry: deviceRegistry([{ deviceId: 'dev-0001', policyId: 'pol-0001', kinds }]), maxPayloadBytes: 65536, maxFutureSkewMs: 300_000, adapters: createAdapters() }
  for (const s of sensors) {
    const valid = publishedValidator(s.kind)
    if (!valid) {
      t.fail(`${s.kind}: no channel with a payload in asyncapi.json`)
      continue
    }
    const decode = (body: unknown) => decodeMessage(cfg, topics.device('dev-0001', s.kind), Buffer.from(JSON.stringify(body)), s.example.ts as number)
    for (const example of [s.example, ...(s.alternative ? [s.alternative.example] : [])]) {
      t.ok(valid(example), `${s.kind}: the published schema takes the example`)
      t.notOk(decode(example) && 'reason' in decode(example)!, `${s.kind}: ubiq stores it`)
      const extra = { ...example, unexpected_field: 1 }
      t.notOk(valid(extra), `${s.kind}: the published schema refuses an extra field`)
      t.match(decode(extra), { reason: 'invalid_payload' }, `${s.kind}: ubiq rejects it`)
      const { seq: _, ...noSeq } = example
      t.notOk(valid(noSeq), `${s.kind}: the published schema refuses a message without seq`)
      t.match(decode(noSeq), { reason: 'invalid_payload' }, `${s.kind}: ubiq rejects it`)
    }
  }
})

t.test("the documented consent message is one ubiq takes, and the AsyncAPI document has its channels (#21)", async (t) => {
  const cfg = { registry: deviceRegistry([{ deviceId: 'phone-0001', policyId: 'pol-0001', kinds: ['gps'] }]), maxPayloadBytes: 65536, maxFutureSkewMs: 300_000, adapters: createAdapters() }
  t.notOk('reason' in decodeConsent(cfg, 'phone-0001', Buffer.from(JSON.stringify(consentExample)), consentExample.ts), 'the example decodes')
  t.ok(publishedValidator('consent')?.(consentExample), 'the published schema takes it')
  t.equal(api.info.version, '1.5.0')
  t.equal(api.channels['ubiq/v1/consent/{deviceId}']?.subscribe?.bindings.mqtt.retain, true, 'the policy\'s consent told back, retained')
})

t.test('the documented privacy messages are ones ubiq takes, and the AsyncAPI document has their channels (#21)', async (t) => {
  const cfg = { registry: deviceRegistry([{ deviceId: 'phone-0001', policyId: 'pol-0001', kinds: ['gps'] }]), maxPayloadBytes: 65536, maxFutureSkewMs: 300_000, adapters: createAdapters() }
  for (const example of privacyExamples) {
    t.notOk('reason' in decodePrivacy(cfg, 'phone-0001', Buffer.from(JSON.stringify(example)), example.ts), `the example decodes: ${JSON.stringify(example)}`)
    t.ok(publishedValidator('privacy')?.(example), 'the published schema takes it')
  }
  t.equal(api.channels['ubiq/v1/privacy/{deviceId}']?.subscribe?.bindings.mqtt.retain, true, 'the policy\'s pauses told back, retained')
})

t.test('the documented command and acknowledgement are ones ubiq sends and takes, and the AsyncAPI document has their channels (#24)', async (t) => {
  const cfg = { registry: deviceRegistry([{ deviceId: 'hub-0001', policyId: 'pol-0001', kinds: ['leak', 'valve'] }]), maxPayloadBytes: 65536, maxFutureSkewMs: 300_000, adapters: createAdapters() }
  t.ok(TypeCompiler.Compile(commandMessage).Check(commandExample), 'the command example is a command')
  t.match(decodeAck(cfg, 'hub-0001', Buffer.from(JSON.stringify(ackExample)), ackExample.ts), { deviceId: 'hub-0001', request: { id: commandExample.id, status: 'done' } }, 'the acknowledgement example decodes')
  t.match(decodeAck(cfg, 'hub-0001', Buffer.from(JSON.stringify({ ...ackExample, id: 'cmd-1' })), ackExample.ts), { reason: 'invalid_payload', detail: /^\/id/ }, 'an acknowledgement is validated as any device message')
  const api = JSON.parse(contractDocs(publishedSchemas).get('docs/contract/asyncapi.json')!) as { channels: Record<string, { publish?: { message: { payload: { $ref: string } } }; subscribe?: { message: { payload: { $ref: string } }; bindings: { mqtt: { retain: boolean } } } }> }
  t.equal(api.channels['ubiq/v1/cmd/{deviceId}/{command}']?.subscribe?.message.payload.$ref, './command.schema.json')
  t.equal(api.channels['ubiq/v1/cmd/{deviceId}/{command}']?.subscribe?.bindings.mqtt.retain, false, 'a command is not retained')
  t.equal(api.channels['ubiq/v1/dev/{deviceId}/ack']?.publish?.message.payload.$ref, './ack.schema.json')
})
