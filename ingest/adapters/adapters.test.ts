import t from 'tap'
import mqtt from 'mqtt'
import { decodeMessage, deviceRegistry, isRejection, type Rejection } from '../index.ts'
import { startServices, startTestPipeline } from '../../test/harness.ts'

const now = Date.UTC(2026, 10, 23, 12)
const registry = deviceRegistry([{ deviceId: 'alice-phone', policyId: 'pol-a', kinds: ['gps'] }])
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

t.test('OwnTracks over a real broker is stored like a native gps message', async (t) => {
  const services = await startServices(t)
  const pipeline = await startTestPipeline(t, services, [], 'ubiq_owntracks', { devices: registry })
  const phone = await mqtt.connectAsync(services.mqttUrl, { clientId: 'owntracks-alice' })
  const fix = { ...location, tst: Math.floor(Date.now() / 1000) - 10 }
  await phone.publishAsync('owntracks/alice/phone', JSON.stringify(fix), { qos: 1 })
  await phone.endAsync()
  const stored = async () => Number(/ (\d+)$/.exec(await pipeline.metrics.getSingleMetricAsString('ubiq_ingest_messages_stored_total'))![1])
  while ((await stored()) < 1) await new Promise((r) => setTimeout(r, 50))
  await pipeline.stop()
  const [rows] = await services.influxql('ubiq_owntracks', 'SELECT device_id, seq, lat_deg, lon_deg, accuracy_m, speed_kmh FROM gps')
  t.same(rows?.values, [[fix.tst * 1000, 'alice-phone', fix.tst, 52.3731, 4.8922, 12, 31]])
})
