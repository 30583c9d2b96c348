import t from 'tap'
import mqtt from 'mqtt'
import { mkdtempSync, readdirSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createAdapters, decodeMessage, deviceRegistry, isRejection, qualified, type Reading, type Rejection } from '../index.ts'
import { discoveryLimits } from './home-assistant.ts'
import { receiveStamps } from './adapter.ts'
import { startServices, startTestPipeline, untilStored } from '../../test/harness.ts'

const now = Date.UTC(2026, 10, 23, 12)
const registry = deviceRegistry([
  { deviceId: 'alice', policyId: 'pol-a', kinds: ['gps'] },
  { deviceId: 'home-1', policyId: 'pol-h', kinds: ['leak', 'smoke', 'climate', 'contact', 'valve'] },
  { deviceId: 'home-2', policyId: 'pol-j', kinds: ['leak'] },
])
const config = (adapters = createAdapters()) => ({ registry, maxPayloadBytes: 64 * 1024, maxFutureSkewMs: 60_000, adapters })
const cfg = config()
const send = (c: typeof cfg, topic: string, body: unknown, at = now) =>
  decodeMessage(c, topic, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), at)
const decode = (topic: string, body: unknown) => send(cfg, topic, body)
/** What a message became: the reading's stream and fields, the rejection's reason and detail, or null. */
const outcome = (r: Reading | Rejection | null) => (r === null ? null : isRejection(r) ? [r.reason, r.detail] : [r.deviceId, r.kind, r.fields])
const tst = now / 1000 - 5
const location = { _type: 'location', tst, lat: 52.3731, lon: 4.8922, acc: 12, vel: 31, cog: 270, alt: 4, batt: 80, tid: 'ap' }

t.test('an OwnTracks location becomes a gps reading of the device that is its MQTT user', async (t) => {
  t.same(decode('owntracks/alice/phone', location), {
    deviceId: 'alice', policyId: 'pol-a', kind: 'gps', subject: 'driving', seq: tst, ts: tst * 1000, receivedAt: now,
    fields: { lat_deg: 52.3731, lon_deg: 4.8922, accuracy_m: 12, speed_kmh: 31, heading_deg: 270, alt_m: 4 },
  })
})

t.test('what an OwnTracks message cannot be is rejected with the reason, through the same checks as native ones', async (t) => {
  const reason = (topic: string, body: unknown) => {
    const r = decode(topic, body) as Rejection
    return isRejection(r) ? [r.deviceId, r.reason, r.detail] : r
  }
  t.same(reason('owntracks/alice/phone', { _type: 'transition', tst }), ['alice', 'invalid_payload', 'owntracks: _type "transition" is not a location'])
  t.same(reason('owntracks/alice/phone', { _type: 'location', lat: 1, lon: 1, acc: 1 }), ['alice', 'invalid_payload', 'owntracks: location without tst'])
  t.match(reason('owntracks/alice/phone', { ...location, lat: 95 }), ['alice', 'invalid_payload', /lat_deg/])
  t.match(reason('owntracks/bob/phone', location), ['bob', 'unknown_device'])
  t.match(reason('owntracks/alice', location), ['?', 'bad_topic'])
  t.match(reason('owntracks/alice/phone/extra', location), ['?', 'bad_topic'])
  t.same((send(cfg, 'owntracks/alice/phone', '{"_type":') as Rejection).reason, 'malformed_json')
})

t.test('Zigbee2MQTT states become the home streams their keys name, as messages of the hub', async (t) => {
  const fields = (name: string, state: unknown, hub = 'home-1') => {
    const r = decode(`zigbee2mqtt/${hub}/${name}`, state)
    return isRejection(r!) ? [r.reason, r.detail] : [r!.deviceId, r!.kind, r!.fields]
  }
  t.same(fields('kitchen_leak', { water_leak: true, battery: 87, linkquality: 120 }), ['home-1', 'leak', { leak_detected: true, battery_pct: 87 }])
  t.same(fields('hall_smoke', { smoke: false, co: 2, battery: 90 }), ['home-1', 'smoke', { smoke_detected: false, co_ppm: 2, battery_pct: 90 }])
  t.same(fields('attic', { temperature: -3.5, humidity: 81, battery: 64 }), ['home-1', 'climate', { temp_c: -3.5, humidity_pct: 81, battery_pct: 64 }])
  t.same(fields('back_door', { contact: true, battery: 100 }), ['home-1', 'contact', { open: false, battery_pct: 100 }], 'Zigbee contact: true is a closed door')
  t.same(fields('attic', { illuminance: 300 }), ['invalid_payload', 'zigbee2mqtt: no supported sensor in the state (keys: illuminance)'])
  t.same(fields('attic', { temperature: 150 }), ['invalid_payload', '/temp_c: Expected number to be less or equal to 100'])
  t.same(fields('back_door', { contact: true }, 'home-2'), ['no_consent', 'policy has no consent for stream "contact"'])
  t.match(decode('zigbee2mqtt/home-1/bridge', { state: 'online' }), { deviceId: 'home-1', reason: 'bad_topic' }, 'the bridge\'s own topics are not devices (the hub, whose topic it is, is told: #20)')
  t.match(decode('zigbee2mqtt/home-1/attic/set', { temperature: 20 }), { deviceId: 'home-1', reason: 'bad_topic' }, 'commands are not state')
})

t.test('two sensors of a hub heard in the same millisecond are both kept: the second gets the next seq and time', async (t) => {
  const c = config()
  const a = send(c, 'zigbee2mqtt/home-1/kitchen_leak', { water_leak: false }) as Reading
  const b = send(c, 'zigbee2mqtt/home-1/bath_leak', { water_leak: true }) as Reading
  t.same([a.seq, a.ts, b.seq, b.ts], [now, now, now + 1, now + 1])
  // …whichever format each speaks (#20: Zigbee2MQTT's and Home Assistant's stamps were each their own, so the second had the first's seq and was dropped as a redelivery).
  send(c, 'homeassistant/valve/home-1/main/config', { state_topic: 'homeassistant/valve/home-1/main/state' })
  const v = send(c, 'homeassistant/valve/home-1/main/state', 'closed') as Reading
  const z = send(c, 'zigbee2mqtt/home-1/attic', { temperature: 20 }) as Reading
  t.same([v.kind, v.seq, z.kind, z.seq], ['valve', now + 2, 'climate', now + 3])
})

t.test('receive stamps: a device silent for an hour is forgotten (#20 item 5) and stamped as it would have been, with its receive time', async (t) => {
  const H = 3600_000
  const stamp = receiveStamps(H)
  t.same([stamp('a', 1000), stamp('a', 1000), stamp('a', 1000)], [1000, 1001, 1002])
  t.equal(stamp('b', 1000 + H), 1000 + H, 'a sweep: a is forgotten')
  t.equal(stamp('a', 1000 + H), 1000 + H, 'its receive time, which is past its last stamp')
})

t.test('Home Assistant discovery: a config binds its state topic, and each state becomes a message of the device', async (t) => {
  const c = config()
  const leakConfig = 'homeassistant/binary_sensor/home-1/kitchen_leak/config'
  t.equal(send(c, leakConfig, { name: 'Kitchen leak', device_class: 'moisture', state_topic: 'homeassistant/binary_sensor/home-1/kitchen_leak/state' }), null, 'a config is taken, nothing stored')
  t.same(outcome(send(c, 'homeassistant/binary_sensor/home-1/kitchen_leak/state', 'ON')), ['home-1', 'leak', { leak_detected: true }])
  t.same(outcome(send(c, 'homeassistant/binary_sensor/home-1/kitchen_leak/state', 'OFF', now + 5)), ['home-1', 'leak', { leak_detected: false }])
  t.same(outcome(send(c, 'homeassistant/binary_sensor/home-1/kitchen_leak/state', 'wet')), ['invalid_payload', 'homeassistant: state is neither "ON" nor "OFF"'])

  // HA's abbreviations, the ~ base topic, and a JSON state read by a template.
  t.equal(send(c, 'homeassistant/sensor/home-1/attic/config', {
    '~': 'homeassistant/sensor/home-1/attic', dev_cla: 'temperature', stat_t: '~/state', unit_of_meas: '°F', val_tpl: '{{ value_json.temperature }}',
  }), null)
  t.same(outcome(send(c, 'homeassistant/sensor/home-1/attic/state', { temperature: 50, humidity: 40 })), ['home-1', 'climate', { temp_c: 10 }], '°F becomes °C')
  t.same(outcome(send(c, 'homeassistant/sensor/home-1/attic/state', { humidity: 40 })), ['invalid_payload', 'homeassistant: state has no temperature'])
  t.same(outcome(send(c, 'homeassistant/sensor/home-1/attic/state', { temperature: 250 })), ['invalid_payload', '/temp_c: Expected number to be less or equal to 100'], 'then the stream\'s own range check')

  // Zigbee2MQTT's own discovery style: JSON booleans as payload_on/off, a bracketed template.
  t.equal(send(c, 'homeassistant/binary_sensor/home-1/door/config', {
    device_class: 'door', state_topic: 'homeassistant/binary_sensor/home-1/door/state', value_template: "{{ value_json['contact'] }}", payload_on: false, payload_off: true,
  }), null)
  t.same(outcome(send(c, 'homeassistant/binary_sensor/home-1/door/state', { contact: false })), ['home-1', 'contact', { open: true }])
  t.equal(send(c, 'homeassistant/valve/home-1/main/config', { state_topic: 'homeassistant/valve/home-1/main/state' }), null, 'a valve needs no device class')
  t.same(outcome(send(c, 'homeassistant/valve/home-1/main/state', 'closed')), ['home-1', 'valve', { valve_open: false }])

  t.equal(send(c, leakConfig, ''), null, 'an empty config removes the entity')
  t.same(outcome(send(c, 'homeassistant/binary_sensor/home-1/kitchen_leak/state', 'ON')), ['invalid_payload', 'homeassistant: no discovery config names this state topic'])
})

t.test('Home Assistant configs ubiq cannot take are rejected with the reason', async (t) => {
  const c = config()
  const rejected = (topic: string, body: unknown) => outcome(send(c, topic, body))
  const state = 'homeassistant/binary_sensor/home-1/x/state'
  t.same(rejected('homeassistant/binary_sensor/home-1/motion/config', { device_class: 'motion', state_topic: state }),
    ['invalid_payload', 'homeassistant: discovery config: binary_sensor of device class "motion" is not a ubiq stream (mapped: binary_sensor/moisture, binary_sensor/smoke, binary_sensor/door, binary_sensor/window, binary_sensor/opening, binary_sensor/garage_door, sensor/temperature, valve/water, valve/)'])
  t.same(rejected('homeassistant/binary_sensor/home-1/leak/config', { device_class: 'moisture', state_topic: 'homeassistant/binary_sensor/home-2/leak/state' }),
    ['invalid_payload', 'homeassistant: discovery config: state_topic must lie under homeassistant/{component}/home-1/ (the device\'s own topics)'], 'a device cannot bind another device\'s topic')
  t.same(rejected('homeassistant/binary_sensor/home-1/leak/config', { device_class: 'moisture', state_topic: 'ubiq/v1/dev/home-2/leak' })?.[0], 'invalid_payload')
  t.same(rejected('homeassistant/binary_sensor/home-1/leak/config', { device_class: 'moisture' }), ['invalid_payload', 'homeassistant: discovery config: no state_topic'])
  t.same(rejected('homeassistant/binary_sensor/home-1/leak/config', { device_class: 'moisture', state_topic: state, value_template: '{{ value | float * 2 }}' }),
    ['invalid_payload', 'homeassistant: discovery config: value_template: only {{ value_json.key }} is supported'])
  t.same(rejected('homeassistant/sensor/home-1/t/config', { device_class: 'temperature', state_topic: 'homeassistant/sensor/home-1/t/state', unit_of_measurement: 'K' }),
    ['invalid_payload', 'homeassistant: discovery config: unit_of_measurement "K" is not °C or °F'])
  t.same(rejected('homeassistant/binary_sensor/home-1/leak/config', '{"device_class":'), ['invalid_payload', 'homeassistant: discovery config is not JSON'])
  t.equal(send(c, 'homeassistant/binary_sensor/home-1/leak/config', { device_class: 'moisture', state_topic: state }), null)
  t.same(rejected('homeassistant/binary_sensor/home-1/leak2/config', { device_class: 'moisture', state_topic: state }),
    ['invalid_payload', 'homeassistant: discovery config: its state topic is already bound by homeassistant/binary_sensor/home-1/leak/config'])
  t.match(outcome(send(c, 'homeassistant/binary_sensor/stranger/leak/config', { device_class: 'moisture', state_topic: state })), ['unknown_device'])
  t.match(outcome(send(c, 'homeassistant/status', 'online')), ['bad_topic'], 'Home Assistant\'s own birth message is no device\'s')
})

t.test('Home Assistant bindings outlive the adapter: a new one reads them from its folder, a private file a device', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'ubiq-ha-')), 'discovery')
  const first = config(createAdapters({ discoveryDir: dir }))
  send(first, 'homeassistant/binary_sensor/home-1/leak/config', { device_class: 'moisture', state_topic: 'homeassistant/binary_sensor/home-1/leak/state' })
  send(first, 'homeassistant/binary_sensor/home-2/leak/config', { device_class: 'moisture', state_topic: 'homeassistant/binary_sensor/home-2/leak/state' })
  t.same(readdirSync(dir).sort(), ['home-1.json', 'home-2.json'])
  t.equal(statSync(join(dir, 'home-1.json')).mode & 0o777, 0o600, 'readable by ubiq only')
  const second = config(createAdapters({ discoveryDir: dir }))
  t.same(outcome(send(second, 'homeassistant/binary_sensor/home-1/leak/state', 'ON')), ['home-1', 'leak', { leak_detected: true }])
  t.same(outcome(send(second, 'homeassistant/binary_sensor/home-2/leak/state', 'OFF')), ['home-2', 'leak', { leak_detected: false }])
  send(second, 'homeassistant/binary_sensor/home-2/leak/config', '')
  t.same(readdirSync(dir), ['home-1.json'], 'a device with no entity left has no file')
})

t.test('Home Assistant: one device\'s configs are bounded in number and size (#20)', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'ubiq-ha-')), 'discovery')
  const c = config(createAdapters({ discoveryDir: dir }))
  const entity = (i: number, extra = {}) => send(c, `homeassistant/binary_sensor/home-1/leak${i}/config`, { device_class: 'moisture', state_topic: `homeassistant/binary_sensor/home-1/leak${i}/state`, ...extra })
  for (let i = 0; i < discoveryLimits.configsPerDevice; i++) t.equal(entity(i), null, `entity ${i}`, { diagnostic: false })
  t.same(outcome(entity(999)), ['invalid_payload', `homeassistant: discovery config: device home-1 already has ${discoveryLimits.configsPerDevice} entities, the most one device may have`])
  t.same(outcome(entity(0, { name: 'the kitchen' })), null, 'an entity it has can still change')
  const big = { device_class: 'moisture', state_topic: 'homeassistant/binary_sensor/home-2/big/state', name: 'x'.repeat(5000) }
  t.same(outcome(send(c, 'homeassistant/binary_sensor/home-2/big/config', big)),
    ['invalid_payload', `homeassistant: discovery config: ${JSON.stringify(big).length} bytes, more than ${discoveryLimits.configBytes}`])
  t.ok(statSync(join(dir, 'home-1.json')).size < discoveryLimits.configsPerDevice * discoveryLimits.configBytes, 'so a device\'s file, all a change rewrites, is bounded')
})

t.test('OwnTracks over a real broker is stored like a native gps message', async (t) => {
  const services = await startServices(t)
  const pipeline = await startTestPipeline(t, services, [], 'ubiq_owntracks', { devices: registry })
  const phone = await mqtt.connectAsync(services.mqttUrl, { clientId: 'owntracks-alice' })
  const fix = { ...location, tst: Math.floor(Date.now() / 1000) - 10 }
  await phone.publishAsync('owntracks/alice/phone', JSON.stringify(fix), { qos: 1 })
  await phone.endAsync()
  await untilStored(pipeline, 1)
  await pipeline.stop()
  const [rows] = await services.influxql('ubiq_owntracks', `SELECT device_id, seq, lat_deg, lon_deg, accuracy_m, speed_kmh FROM ${qualified('gps')}`)
  t.same(rows?.values, [[fix.tst * 1000, 'alice', fix.tst, 52.3731, 4.8922, 12, 31]])
})

t.test('Home Assistant over a real broker: a state sent while ubiq is down is stored after its restart', async (t) => {
  const services = await startServices(t)
  const hub = await mqtt.connectAsync(services.mqttUrl, { clientId: 'ha-home-1' })
  t.teardown(() => hub.endAsync())
  const leak = 'homeassistant/binary_sensor/home-1/kitchen_leak'
  await hub.publishAsync(`${leak}/config`, JSON.stringify({ device_class: 'moisture', state_topic: `${leak}/state` }), { qos: 1, retain: true })
  let pipeline = await startTestPipeline(t, services, [], 'ubiq_ha', { devices: registry })
  // The retained config reaches ingest on subscribe; a state published right after may overtake
  // it, so the hub repeats its first state until one is stored.
  while (Number(/ (\d+)$/.exec(await pipeline.metrics.getSingleMetricAsString('ubiq_ingest_messages_stored_total'))![1]) === 0) {
    await hub.publishAsync(`${leak}/state`, 'OFF', { qos: 1 })
    await new Promise((r) => setTimeout(r, 100))
  }
  await pipeline.stop()
  // ubiq is down: the broker queues this for ingest's persistent session, and delivers it on
  // reconnect before the retained config comes again.
  await hub.publishAsync(`${leak}/state`, 'ON', { qos: 1 })
  pipeline = await startTestPipeline(t, services, [], 'ubiq_ha', { devices: registry })
  await untilStored(pipeline, 1)
  await pipeline.stop()
  const [rows] = await services.influxql('ubiq_ha', `SELECT device_id, leak_detected FROM ${qualified('leak')} ORDER BY time DESC LIMIT 1`)
  t.same(rows?.values[0]?.slice(1), ['home-1', true], 'the state sent while ubiq was down is the last one stored')
})

t.test('valves and their commands (#24): a Zigbee2MQTT valve is named so, a Home Assistant valve names its command topic; ubiq\'s own commands are not stored', async (t) => {
  const adapters = createAdapters()
  const c = config(adapters)
  const command = { id: 'a'.repeat(64), policyId: 'pol-h', deviceId: 'home-1', command: 'close_valve' as const, reason: 'leak', issuedAt: '', expiresAt: '' }
  const messages = () => adapters.flatMap((a) => a.commands?.messages(command) ?? [])
  t.same(messages(), [], 'no command topic before the hub has told of a valve')
  t.same(outcome(send(c, 'zigbee2mqtt/home-1/main_valve', { state: 'ON' })), ['home-1', 'valve', { valve_open: true }], 'a Zigbee2MQTT device named …valve… reporting state is the valve')
  t.same(outcome(send(c, 'zigbee2mqtt/home-1/living_room_plug', { state: 'ON' })), ['invalid_payload', 'zigbee2mqtt: no supported sensor in the state (keys: state)'], 'a plug is not')
  t.same(outcome(send(c, 'zigbee2mqtt/home-1/main_valve', { state: 'HALF' })), ['invalid_payload', 'zigbee2mqtt: a valve\'s state is ON or OFF'])
  const ha = 'homeassistant/valve/home-1/main'
  t.same(outcome(send(c, `${ha}/config`, JSON.stringify({ device_class: 'water', state_topic: `${ha}/state`, command_topic: 'homeassistant/valve/home-2/main/set' }))), ['invalid_payload', 'homeassistant: discovery config: command_topic must lie under homeassistant/valve/home-1/, apart from the state topic'], 'a command topic of another device is refused')
  t.equal(send(c, `${ha}/config`, JSON.stringify({ device_class: 'water', state_topic: `${ha}/state`, command_topic: `${ha}/set` })), null, 'one of its own is taken')
  t.same(messages(), [{ topic: 'zigbee2mqtt/home-1/main_valve/set', payload: '{"state":"OFF"}' }, { topic: `${ha}/set`, payload: 'CLOSE' }], 'close_valve goes to both, in their own forms')
  t.equal(send(c, `${ha}/set`, 'CLOSE'), null, 'ubiq\'s command, heard back through ingest\'s subscription, is nothing to store')
  t.same(adapters.flatMap((a) => a.commands?.messages({ ...command, deviceId: 'home-2' }) ?? []), [], 'another hub has none')
})
