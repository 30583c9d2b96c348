/**
 * The shipped broker security on a real Mosquitto: per-device credentials, and an ACL under which
 * device A cannot publish on device B's topic, nor read other devices' streams; nothing A sends
 * there reaches storage.
 */
import t from 'tap'
import mqtt from 'mqtt'
import { join } from 'node:path'
import { makeFleet } from '../edge-sim/index.ts'
import { newCredentials, SERVICE_USER, topics, writeBrokerAuth } from '../ingest/index.ts'
import { startMosquitto } from '../bin/local-services.ts'
import { startServices, startTestPipeline, untilStored } from './harness.ts'

t.test('device A is refused on device B\'s topic, and nothing it sent there is stored', async (t) => {
  const services = await startServices(t) // its InfluxDB; the broker here is the secured one
  const fleet = makeFleet(2, 5)
  const [a, b] = fleet as [typeof fleet[0], typeof fleet[0]]
  const credentials = newCredentials(fleet)
  const conf = writeBrokerAuth(join(services.dataDir, 'broker-auth'), credentials)
  const broker = await startMosquitto(join(services.dataDir, 'mosquitto'), { conf, username: SERVICE_USER, password: credentials.service })
  t.teardown(() => broker.stop())
  const url = new URL(broker.url)
  const serviceUrl = `mqtt://${SERVICE_USER}:${encodeURIComponent(credentials.service)}@${url.host}`
  const pipeline = await startTestPipeline(t, services, fleet, 'ubiq_acl', { mqttUrl: serviceUrl })

  const connect = (username?: string, password?: string) =>
    mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, clientId: `acl-${username ?? 'anon'}-${Math.random()}`, username, password })
  await t.rejects(connect(), /Not authorized|Bad User Name or Password/, 'an anonymous client is refused')
  await t.rejects(connect(a.deviceId, 'wrong'), /Not authorized|Bad User Name or Password/, 'a wrong password is refused')

  const deviceA = await connect(a.deviceId, credentials.devices.get(a.deviceId))
  t.teardown(() => deviceA.endAsync())
  const now = Date.now()
  await deviceA.publishAsync(topics.device(a.deviceId, 'obd'), JSON.stringify({ seq: 1, ts: now, speed_kmh: 30 }), { qos: 1 })
  await t.rejects(
    deviceA.publishAsync(topics.device(b.deviceId, 'obd'), JSON.stringify({ seq: 999, ts: now, speed_kmh: 180 }), { qos: 1 }),
    /Not authorized/, 'A publishing on B\'s topic gets PUBACK "not authorized"',
  )
  // The formats devices already speak follow the same rule: their first level is the device.
  for (const topic of [`owntracks/${b.deviceId}/phone`, `zigbee2mqtt/${b.deviceId}/kitchen_leak`, `homeassistant/binary_sensor/${b.deviceId}/leak/config`]) {
    await t.rejects(deviceA.publishAsync(topic, '{}', { qos: 1 }), /Not authorized/, `A is refused on ${topic.replace(b.deviceId, 'B')}`)
  }
  // A listens to every device stream and to its own rejections.
  const seenByA: string[] = []
  deviceA.on('message', (topic) => seenByA.push(topic))
  await deviceA.subscribeAsync(['ubiq/v1/dev/#', topics.rejected(a.deviceId)], { qos: 1 })

  const deviceB = await connect(b.deviceId, credentials.devices.get(b.deviceId))
  t.teardown(() => deviceB.endAsync())
  await deviceB.publishAsync(topics.device(b.deviceId, 'obd'), JSON.stringify({ seq: 1, ts: now, speed_kmh: 40 }), { qos: 1 })
  // B's message was routed when the broker acknowledged it; A's rejection is published after that.
  await deviceA.publishAsync(topics.device(a.deviceId, 'obd'), JSON.stringify({ seq: 2, ts: now, speed_kmh: -1 }), { qos: 1 })
  while (seenByA.length === 0) await new Promise((r) => setTimeout(r, 20))
  t.same(seenByA, [topics.rejected(a.deviceId)], 'A reads its own rejections, and none of the device streams (its own nor B\'s)')
  // (Ingest rejects these: A has no such streams.)
  for (const topic of [`owntracks/${a.deviceId}/phone`, `zigbee2mqtt/${a.deviceId}/kitchen_leak`, `homeassistant/binary_sensor/${a.deviceId}/leak/config`]) {
    await t.resolves(deviceA.publishAsync(topic, '', { qos: 1 }), `A may write ${topic.replace(a.deviceId, 'A')}`)
  }

  await untilStored(pipeline, 2)
  await pipeline.stop()
  const [rows] = await services.influxql('ubiq_acl', 'SELECT device_id, seq, speed_kmh FROM obd ORDER BY time')
  t.same(rows?.values.map((v) => v.slice(1)).sort(), [[a.deviceId, 1, 30], [b.deviceId, 1, 40]], 'only what each device sent on its own topic is stored')
})
