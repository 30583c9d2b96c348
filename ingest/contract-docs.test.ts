import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { ackExample, commandExample, consentExample, contractDocs, privacyExamples } from './contract-docs.ts'
import { commandMessage, createAdapters, decodeAck, decodeConsent, decodePrivacy, deviceRegistry, sensors } from './index.ts'

t.test('the committed contract documents are what the validator\'s schemas generate (npm run docs)', async (t) => {
  const docs = contractDocs()
  t.equal(docs.size, sensors.length + 6, "a JSON Schema per stream, for devices' consent and privacy messages, for commands and their acknowledgements, the AsyncAPI document and the markdown")
  for (const [path, text] of docs) {
    const committed = readFileSync(fileURLToPath(new URL(`../${path}`, import.meta.url)), 'utf8')
    t.equal(committed, text, path)
  }
})

t.test('the AsyncAPI document has a channel and a schema for every stream', async (t) => {
  const api = JSON.parse(contractDocs().get('docs/contract/asyncapi.json')!) as { channels: Record<string, { publish?: { message: { payload: { $ref: string } } } }> }
  for (const s of sensors) {
    t.equal(api.channels[`ubiq/v1/dev/{deviceId}/${s.kind}`]?.publish?.message.payload.$ref, `./${s.kind}.schema.json`, s.kind)
  }
})

t.test("the documented consent message is one ubiq takes, and the AsyncAPI document has its channels (#21)", async (t) => {
  const cfg = { registry: deviceRegistry([{ deviceId: 'phone-0001', policyId: 'pol-0001', kinds: ['gps'] }]), maxPayloadBytes: 65536, maxFutureSkewMs: 300_000, adapters: createAdapters() }
  t.notOk('reason' in decodeConsent(cfg, 'phone-0001', Buffer.from(JSON.stringify(consentExample)), consentExample.ts), 'the example decodes')
  const api = JSON.parse(contractDocs().get('docs/contract/asyncapi.json')!) as { info: { version: string }; channels: Record<string, { publish?: { message: { payload: { $ref: string } } }; subscribe?: { bindings: { mqtt: { retain: boolean } } } }> }
  t.equal(api.info.version, '1.5.0')
  t.equal(api.channels['ubiq/v1/dev/{deviceId}/consent']?.publish?.message.payload.$ref, './consent.schema.json')
  t.equal(api.channels['ubiq/v1/consent/{deviceId}']?.subscribe?.bindings.mqtt.retain, true, 'the policy\'s consent told back, retained')
})

t.test('the documented privacy messages are ones ubiq takes, and the AsyncAPI document has their channels (#21)', async (t) => {
  const cfg = { registry: deviceRegistry([{ deviceId: 'phone-0001', policyId: 'pol-0001', kinds: ['gps'] }]), maxPayloadBytes: 65536, maxFutureSkewMs: 300_000, adapters: createAdapters() }
  for (const example of privacyExamples) t.notOk('reason' in decodePrivacy(cfg, 'phone-0001', Buffer.from(JSON.stringify(example)), example.ts), `the example decodes: ${JSON.stringify(example)}`)
  const api = JSON.parse(contractDocs().get('docs/contract/asyncapi.json')!) as { channels: Record<string, { publish?: { message: { payload: { $ref: string } } }; subscribe?: { bindings: { mqtt: { retain: boolean } } } }> }
  t.equal(api.channels['ubiq/v1/dev/{deviceId}/privacy']?.publish?.message.payload.$ref, './privacy.schema.json')
  t.equal(api.channels['ubiq/v1/privacy/{deviceId}']?.subscribe?.bindings.mqtt.retain, true, 'the policy\'s pauses told back, retained')
})

t.test('the documented command and acknowledgement are ones ubiq sends and takes, and the AsyncAPI document has their channels (#24)', async (t) => {
  const cfg = { registry: deviceRegistry([{ deviceId: 'hub-0001', policyId: 'pol-0001', kinds: ['leak', 'valve'] }]), maxPayloadBytes: 65536, maxFutureSkewMs: 300_000, adapters: createAdapters() }
  t.ok(TypeCompiler.Compile(commandMessage).Check(commandExample), 'the command example is a command')
  t.match(decodeAck(cfg, 'hub-0001', Buffer.from(JSON.stringify(ackExample)), ackExample.ts), { deviceId: 'hub-0001', request: { id: commandExample.id, status: 'done' } }, 'the acknowledgement example decodes')
  t.match(decodeAck(cfg, 'hub-0001', Buffer.from(JSON.stringify({ ...ackExample, id: 'cmd-1' })), ackExample.ts), { reason: 'invalid_payload', detail: /^\/id/ }, 'an acknowledgement is validated as any device message')
  const api = JSON.parse(contractDocs().get('docs/contract/asyncapi.json')!) as { channels: Record<string, { publish?: { message: { payload: { $ref: string } } }; subscribe?: { message: { payload: { $ref: string } }; bindings: { mqtt: { retain: boolean } } } }> }
  t.equal(api.channels['ubiq/v1/cmd/{deviceId}/{command}']?.subscribe?.message.payload.$ref, './command.schema.json')
  t.equal(api.channels['ubiq/v1/cmd/{deviceId}/{command}']?.subscribe?.bindings.mqtt.retain, false, 'a command is not retained')
  t.equal(api.channels['ubiq/v1/dev/{deviceId}/ack']?.publish?.message.payload.$ref, './ack.schema.json')
})
