import t from 'tap'
import mqtt from 'mqtt'
import { decodeMessage, deviceRegistry, isRejection, type Rejection } from '../index.ts'
import { startServices, startTestPipeline, untilStored } from '../../test/harness.ts'

const now = Date.UTC(2026, 10, 23, 12)
const registry = deviceRegistry([
  { deviceId: 'alice-phone', policyId: 'pol-a', kinds: ['gps'] },
  { deviceId: 'kitchen_leak', policyId: 'pol-h', kinds: ['leak'] },
  { deviceId: 'hall_smoke', policyId: 'pol-h', kinds: ['smoke'] },
  { deviceId: 'attic', policyId: 'pol-h', kinds: ['climate'] },
  { deviceId: 'back_door', policyId: 'pol-h', kinds: ['contact'] },
])
const cfg = { registry, maxPayloadBytes: 64 * 1024, maxFutureSkewMs: 60_000 }
const decode = (topic: string, body: unknown) => decodeMessage(cfg, topic, Buffer.from(JSON.stringify(body)), now)
const tst = now / 1000 - 5
const location = { _type: 'location', tst, lat: 52.3731, lon: 4.8922, acc: 12, vel: 31, cog: 270, alt: 4, batt: 80, tid: 'ap' }

t.test('an OwnTracks location becomes a gps reading of device {user}-{device}', async (t) => {
  t.same(decode('owntracks/alice/phone', location), {
    deviceId: 'alice-phone', policyId: 'pol-a', kind: 'gps', subject: 'driving', seq: tst, ts: tst * 1000, receivedAt: now,
    fields: { lat_deg: 52.3731, lon_deg: 4.8922, accuracy_m: 12, speed_kmh: 31, heading_deg: 270, alt_m: 4 },
  })
})

t.test('what an OwnTracks message cannot be is rejected with the reason, through the same checks as native ones', async (t) => {
  const reason = (topic: string, body: unknown) => {
    const r = decode(topic, body) as Rejection
    return isRejection(r) ? [r.deviceId, r.reason, r.detail] : r
  }
  t.same(reason('owntracks/alice/phone', { _type: 'transition', tst }), ['alice-phone', 'invalid_payload', 'owntracks: _type "transition" is not a location'])
  t.same(reason('owntracks/alice/phone', { _type: 'location', lat: 1, lon: 1, acc: 1 }), ['alice-phone', 'invalid_payload', 'owntracks: location without tst'])
  t.match(reason('owntracks/alice/phone', { ...location, lat: 95 }), ['alice-phone', 'invalid_payload', /lat_deg/])
  t.match(reason('owntracks/bob/phone', location), ['bob-phone', 'unknown_device'])
  t.match(reason('owntracks/alice', location), ['?', 'bad_topic'])
  t.match(reason('owntracks/alice/phone/extra', location), ['?', 'bad_topic'])
  t.same((decodeMessage(cfg, 'owntracks/alice/phone', Buffer.from('{"_type":'), now) as Rejection).reason, 'malformed_json')
})

t.test('Zigbee2MQTT states become the home streams their keys name', async (t) => {
  const fields = (name: string, state: unknown) => {
    const r = decode(`zigbee2mqtt/${name}`, state)
    return isRejection(r) ? [r.reason, r.detail] : [r.kind, r.fields, r.seq, r.ts]
  }
  t.same(fields('kitchen_leak', { water_leak: true, battery: 87, linkquality: 120 }), ['leak', { leak_detected: true, battery_pct: 87 }, now, now])
  t.same(fields('hall_smoke', { smoke: false, co: 2, battery: 90 }), ['smoke', { smoke_detected: false, co_ppm: 2, battery_pct: 90 }, now, now])
  t.same(fields('attic', { temperature: -3.5, humidity: 81, battery: 64 }), ['climate', { temp_c: -3.5, humidity_pct: 81, battery_pct: 64 }, now, now])
  t.same(fields('back_door', { contact: true, battery: 100 }), ['contact', { open: false, battery_pct: 100 }, now, now], 'Zigbee contact: true is a closed door')
  t.same(fields('attic', { illuminance: 300 }), ['invalid_payload', 'zigbee2mqtt: no supported sensor in the state (keys: illuminance)'])
  t.same(fields('attic', { temperature: 150 }), ['invalid_payload', '/temp_c: Expected number to be less or equal to 100'])
  t.same(fields('back_door', { water_leak: true }), ['no_consent', 'policy has no consent for stream "leak"'])
  t.match(decode('zigbee2mqtt/bridge/state', { state: 'online' }), { reason: 'bad_topic' }, 'the bridge\'s own topics are not devices')
  t.match(decode('zigbee2mqtt/attic/set', { temperature: 20 }), { reason: 'bad_topic' }, 'commands are not state')
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
  const [rows] = await services.influxql('ubiq_owntracks', 'SELECT device_id, seq, lat_deg, lon_deg, accuracy_m, speed_kmh FROM gps')
  t.same(rows?.values, [[fix.tst * 1000, 'alice-phone', fix.tst, 52.3731, 4.8922, 12, 31]])
})
