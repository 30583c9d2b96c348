/**
 * Commands to devices (#24 item 1) on a real Mosquitto with ubiq's per-device credentials and ACL,
 * and a real InfluxDB: an urgent leak sends close_valve, the hub (edge-sim's obeyCommand) closes
 * the valve and acknowledges, the valve's report confirms it, and scoring's valve_shutoff measures
 * leak → closed. Hubs speaking Zigbee2MQTT and Home Assistant get the command on their own command
 * topics, and their state report confirms it. Only ubiq may write command topics, and each device
 * reads only its own. Every step is in the audit chain.
 */
import t from 'tap'
import mqtt from 'mqtt'
import { obeyCommand } from '../edge-sim/index.ts'
import { aclAllows, deviceRegistry, topics, type CommandMessage, type Rejection } from '../ingest/index.ts'
import { auditRecords, openPolicyKeys, reveal, verifyAudit, type CommandRecord } from '../pricing/index.ts'
import type { PolicyEvent } from '../scoring/index.ts'
import { auditKeysFile, auditLogFile } from '../bin/pipeline.ts'
import { firstMatch, securedBroker, startServices, startTestPipeline } from './harness.ts'

const DB = 'ubiq_commands'
const until = async (ok: () => boolean) => {
  while (!ok()) await new Promise((r) => setTimeout(r, 20))
}

t.test('leak → close_valve → valve closed → valve_shutoff, for a v1 hub, a Zigbee2MQTT hub and a Home Assistant hub; only ubiq writes commands', async (t) => {
  const services = await startServices(t)
  const hubs = ['hub-v1', 'hub-z2m', 'hub-ha', 'hub-other'].map((deviceId, i) => ({ deviceId, policyId: `pol-${i + 1}`, kinds: ['leak', 'valve'] }))
  const [native, z2m, ha, other] = hubs as [typeof hubs[0], typeof hubs[0], typeof hubs[0], typeof hubs[0]]
  const { credentials, broker, serviceUrl } = await securedBroker(t, services, hubs)
  const pipeline = await startTestPipeline(t, services, [], DB, { mqttUrl: serviceUrl, devices: deviceRegistry(hubs) })
  const events: PolicyEvent[] = []
  pipeline.events$.subscribe((e) => events.push(e))

  const connect = async (deviceId: string) => {
    const c = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, username: deviceId, password: credentials.devices.get(deviceId) })
    t.teardown(() => c.endAsync())
    const heard: { topic: string; payload: string }[] = []
    c.on('message', (topic, payload) => heard.push({ topic, payload: String(payload) }))
    return { c, heard }
  }
  const shutoff = (deviceId: string) => firstMatch(pipeline.events$, (e: PolicyEvent) => e.type === 'valve_shutoff' && e.deviceId === deviceId)

  // The other hub listens to every command topic, and tries to write one: the ACL lets it do neither.
  const snoop = await connect(other.deviceId)
  await snoop.c.subscribeAsync(['ubiq/v1/cmd/#', 'zigbee2mqtt/+/+/set', 'homeassistant/valve/#'], { qos: 1 })
  await t.rejects(snoop.c.publishAsync(topics.command(native.deviceId, 'close_valve'), '{}', { qos: 1 }), /Not authorized/, 'a device may not write another\'s command topic')

  // A v1 hub: its valve is open, then the probe gets wet.
  const hub = await connect(native.deviceId)
  await t.rejects(hub.c.publishAsync(topics.command(native.deviceId, 'close_valve'), '{}', { qos: 1 }), /Not authorized/, '…nor its own')
  await hub.c.subscribeAsync([`ubiq/v1/cmd/${native.deviceId}/#`, topics.rejected(native.deviceId)], { qos: 1 })
  let seq = 0
  const send = (kind: string, ts: number, body: Record<string, unknown>) => hub.c.publishAsync(topics.device(native.deviceId, kind), JSON.stringify({ seq: ++seq, ts, ...body }), { qos: 1 })
  const leakAt = Date.now() - 1000
  const closed = shutoff(native.deviceId)
  await send('valve', leakAt - 60_000, { valve_open: true })
  await send('leak', leakAt, { leak_detected: true })
  await until(() => hub.heard.some((m) => m.topic === topics.command(native.deviceId, 'close_valve')))
  const command = JSON.parse(hub.heard.find((m) => m.topic === topics.command(native.deviceId, 'close_valve'))!.payload) as CommandMessage
  t.match(command, { id: /^[0-9a-f]{64}$/, command: 'close_valve', reason: new RegExp(`^leak at ${native.deviceId}`) }, 'the hub gets close_valve with its id and reason')
  t.equal(command.expiresAt - command.issuedAt, 15 * 60_000, 'and its expiry: 15 minutes after it was issued')
  // A made-up id is rejected back to it; then the hub obeys (edge-sim): acknowledges, and the valve reports closed.
  await send('ack', Date.now(), { id: 'f'.repeat(64), status: 'done' })
  await until(() => hub.heard.some((m) => m.topic === topics.rejected(native.deviceId)))
  t.match(JSON.parse(hub.heard.find((m) => m.topic === topics.rejected(native.deviceId))!.payload) as Rejection, { kind: 'ack', reason: 'invalid_payload', detail: /no command f+ was sent to hub-v1/ }, 'an acknowledgement of a command never sent is rejected')
  for (const r of obeyCommand(command, Date.now())) await send(r.kind, r.ts, r.body)
  const event = await closed
  t.match(event, { policyId: native.policyId, from: leakAt, evidence: { source: 'valve', threshold: 60 } }, 'valve_shutoff: from the leak to the valve closed')
  t.ok((event.evidence.response_s as number) > 0 && (event.evidence.response_s as number) < 600, `measured: the valve shut ${event.evidence.response_s} s after the leak`)

  // A Zigbee2MQTT hub: the valve reports its state (ON: open), the leak sensor water_leak.
  const zigbee = await connect(z2m.deviceId)
  await zigbee.c.subscribeAsync(`zigbee2mqtt/${z2m.deviceId}/+/set`, { qos: 1 })
  const zClosed = shutoff(z2m.deviceId)
  await zigbee.c.publishAsync(`zigbee2mqtt/${z2m.deviceId}/main_valve`, JSON.stringify({ state: 'ON' }), { qos: 1 })
  await zigbee.c.publishAsync(`zigbee2mqtt/${z2m.deviceId}/kitchen_leak`, JSON.stringify({ water_leak: true, battery: 90 }), { qos: 1 })
  await until(() => zigbee.heard.length > 0)
  t.same(zigbee.heard, [{ topic: `zigbee2mqtt/${z2m.deviceId}/main_valve/set`, payload: '{"state":"OFF"}' }], 'the Zigbee2MQTT valve gets {"state":"OFF"} on its own set topic')
  await zigbee.c.publishAsync(`zigbee2mqtt/${z2m.deviceId}/main_valve`, JSON.stringify({ state: 'OFF' }), { qos: 1 })
  t.match(await zClosed, { policyId: z2m.policyId, evidence: { source: 'valve' } }, 'its state report closes the loop: valve_shutoff')

  // A Home Assistant hub: discovery configs for the leak sensor and the valve, with its command topic.
  const home = await connect(ha.deviceId)
  const base = `homeassistant/valve/${ha.deviceId}/main`
  await home.c.subscribeAsync(`${base}/set`, { qos: 1 })
  const hClosed = shutoff(ha.deviceId)
  await home.c.publishAsync(`homeassistant/binary_sensor/${ha.deviceId}/leak/config`, JSON.stringify({ device_class: 'moisture', state_topic: `homeassistant/binary_sensor/${ha.deviceId}/leak/state` }), { qos: 1, retain: true })
  await home.c.publishAsync(`${base}/config`, JSON.stringify({ '~': base, device_class: 'water', stat_t: '~/state', cmd_t: '~/set', pl_cls: 'SHUT' }), { qos: 1, retain: true })
  await home.c.publishAsync(`${base}/state`, 'open', { qos: 1 })
  await home.c.publishAsync(`homeassistant/binary_sensor/${ha.deviceId}/leak/state`, 'ON', { qos: 1 })
  await until(() => home.heard.length > 0)
  t.same(home.heard, [{ topic: `${base}/set`, payload: 'SHUT' }], 'the Home Assistant valve gets its payload_close on its command_topic')
  await home.c.publishAsync(`${base}/state`, 'closed', { qos: 1 })
  t.match(await hClosed, { policyId: ha.policyId, evidence: { source: 'valve' } }, 'its state report closes the loop: valve_shutoff')

  await until(() => [...auditRecords(auditLogFile(services.dataDir))].filter((r) => r.record === 'command' && r.action === 'confirmed').length === 3)
  t.same(snoop.heard, [], 'the other hub heard none of the commands')
  const file = auditLogFile(services.dataDir)
  const raw = [...auditRecords(file)].filter((r): r is CommandRecord => r.record === 'command')
  t.notOk(raw.some((r) => hubs.some((h) => r.deviceId === h.deviceId || r.policyId === h.policyId)), 'the chain names no device or policy: pseudonyms and sealed ids (#21 item 5)')
  const keys = openPolicyKeys(auditKeysFile(services.dataDir))
  const records = raw.map((r) => reveal(r, keys)!)
  t.match(verifyAudit(file), { ok: true }, 'the audit chain holds, commands in it')
  t.same(records.map((r) => [r.deviceId, r.action, r.status ?? '']), [
    [native.deviceId, 'sent', ''], [native.deviceId, 'ack', 'done'], [native.deviceId, 'confirmed', ''],
    [z2m.deviceId, 'sent', ''], [z2m.deviceId, 'confirmed', ''],
    [ha.deviceId, 'sent', ''], [ha.deviceId, 'confirmed', ''],
  ], 'each command is recorded when sent, acknowledged and confirmed')
  t.equal(records[0]!.hash, command.id, "a command's id is its record's hash")
  t.notOk(events.some((e) => e.type === 'valve_shutoff' && e.deviceId === other.deviceId), 'nothing for the hub without a leak')
})

t.test('the ACL the aedes fallback applies: only ubiq\'s publisher writes command topics, each device reads only its own', async (t) => {
  const table: [string, 'read' | 'write', string, boolean][] = [
    ['ubiq-out', 'write', 'ubiq/v1/cmd/hub-1/close_valve', true],
    ['ubiq-out', 'write', 'zigbee2mqtt/hub-1/main_valve/set', true],
    ['ubiq-out', 'write', 'homeassistant/valve/hub-1/main/set', true],
    ['ubiq', 'write', 'ubiq/v1/cmd/hub-1/close_valve', false],
    ['hub-1', 'read', 'ubiq/v1/cmd/hub-1/close_valve', true],
    ['hub-1', 'write', 'ubiq/v1/cmd/hub-1/close_valve', false],
    ['hub-2', 'read', 'ubiq/v1/cmd/hub-1/close_valve', false],
    ['hub-2', 'write', 'zigbee2mqtt/hub-1/main_valve/set', false],
    ['hub-1', 'write', 'ubiq/v1/dev/hub-1/ack', true],
    ['hub-2', 'write', 'ubiq/v1/dev/hub-1/ack', false],
  ]
  for (const [user, access, topic, allowed] of table) t.equal(aclAllows(user, access, topic), allowed, `${user} ${access} ${topic}: ${allowed}`)
})
