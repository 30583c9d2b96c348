/**
 * The shipped broker security on a real Mosquitto: per-device credentials, and an ACL under which
 * device A cannot publish on device B's topic, nor read other devices' streams; nothing A sends
 * there reaches storage.
 */
import t from 'tap'
import mqtt from 'mqtt'
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeFleet } from '../edge-sim/index.ts'
import { parseDeviceRegistry, qualified, SERVICE_USER, topics, type Rejection } from '../ingest/index.ts'
import { findCommand, freePort, startMosquitto } from '../bin/local-services.ts'
import { securedBroker, startServices, startTestPipeline, untilStored } from './harness.ts'

const ubiq = fileURLToPath(new URL('../bin/ubiq.js', import.meta.url))

t.test('device A is refused on device B\'s topic, and nothing it sent there is stored', async (t) => {
  const services = await startServices(t) // its InfluxDB; the broker here is the secured one
  const fleet = makeFleet(2, 5)
  const [a, b] = fleet as [typeof fleet[0], typeof fleet[0]]
  const { credentials, broker, serviceUrl } = await securedBroker(t, services, fleet)
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
  const [rows] = await services.influxql('ubiq_acl', `SELECT device_id, seq, speed_kmh FROM ${qualified('obd')} ORDER BY time`)
  t.same(rows?.values.map((v) => v.slice(1)).sort(), [[a.deviceId, 1, 30], [b.deviceId, 1, 40]], 'only what each device sent on its own topic is stored')
})

t.test('a message on a topic of the device\'s own that is no stream is rejected back to it, not acknowledged and lost (#20)', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(1, 8)
  const [a] = fleet as [typeof fleet[0]]
  const { credentials, broker, serviceUrl } = await securedBroker(t, services, fleet)
  await startTestPipeline(t, services, fleet, 'ubiq_bad_topic', { mqttUrl: serviceUrl })
  const device = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, username: a.deviceId, password: credentials.devices.get(a.deviceId) })
  t.teardown(() => device.endAsync())
  const rejections: Rejection[] = []
  device.on('message', (_topic, payload) => rejections.push(JSON.parse(String(payload)) as Rejection))
  await device.subscribeAsync(topics.rejected(a.deviceId), { qos: 1 })
  // The ACL lets the device write anything under ubiq/v1/dev/{its id}/, so the broker acknowledges these.
  for (const topic of [`${topics.device(a.deviceId, 'obd')}/extra`, `ubiq/v1/dev/${a.deviceId}`]) {
    await device.publishAsync(topic, JSON.stringify({ seq: 1, ts: Date.now(), speed_kmh: 30 }), { qos: 1 })
  }
  while (rejections.length < 2) await new Promise((r) => setTimeout(r, 20))
  t.match(rejections, [
    { deviceId: a.deviceId, reason: 'bad_topic', detail: /not a device topic: ubiq\/v1\/dev\/[^/]+\/obd\/extra/ },
    { deviceId: a.deviceId, reason: 'bad_topic' },
  ], 'each is rejected with its reason, on the one rejected topic the device may read')
})

t.test('a device that connects with ubiq\'s client id cannot take over ubiq\'s session: what the broker acknowledged is stored', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(1, 6)
  const [a] = fleet as [typeof fleet[0]]
  const { credentials, broker, serviceUrl } = await securedBroker(t, services, fleet)
  const first = await startTestPipeline(t, services, fleet, 'ubiq_takeover', { mqttUrl: serviceUrl })
  await first.stop() // ubiq is down; its persistent session holds what arrives

  const device = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, clientId: `takeover-${a.deviceId}`, username: a.deviceId, password: credentials.devices.get(a.deviceId) })
  t.teardown(() => device.endAsync())
  const now = Date.now()
  for (let seq = 1; seq <= 50; seq++) {
    await device.publishAsync(topics.device(a.deviceId, 'obd'), JSON.stringify({ seq, ts: now - (51 - seq) * 1000, speed_kmh: 50 }), { qos: 1 })
  }
  // The attack of #20: the same device, as ubiq's ingest (today's and the service's id), its
  // publisher, and with a persistent and then a clean start (a clean start ends a session).
  for (const clientId of ['ubiq-ingest', SERVICE_USER, `${SERVICE_USER}-out`]) {
    for (const clean of [false, true]) {
      const attacker = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0, clientId, clean, username: a.deviceId, password: credentials.devices.get(a.deviceId) })
      await attacker.endAsync()
    }
  }
  const second = await startTestPipeline(t, services, fleet, 'ubiq_takeover', { mqttUrl: serviceUrl })
  await untilStored(second, 50)
  await second.stop()
  const [rows] = await services.influxql('ubiq_takeover', `SELECT count(speed_kmh) FROM ${qualified('obd')}`)
  t.equal(rows?.values[0]?.[1], 50, 'all 50 messages the broker acknowledged while ubiq was down are stored')
})

t.test('a registry device named as a service user is refused, with the reason', async (t) => {
  for (const id of [SERVICE_USER, `${SERVICE_USER}-out`]) {
    t.throws(() => parseDeviceRegistry(JSON.stringify({ devices: [{ deviceId: id, policyId: 'p1', kinds: ['obd'] }] })),
      new RegExp(`device ${id}: "${id}" is reserved for ubiq's own MQTT connections`))
  }
})

t.test('broker-config: Mosquitto started as root runs it, devices connect over TLS, and oversized messages are refused', async (t) => {
  // As root (the test machine), Mosquitto switches to its own user before it reads the password
  // file; the folder above --out must let that user through, as a home directory usually does.
  const parent = mkdtempSync(join(tmpdir(), 'ubiq-broker-config-'))
  chmodSync(parent, 0o711)
  t.teardown(() => rmSync(parent, { recursive: true, force: true }))
  const registry = join(parent, 'devices.json')
  writeFileSync(registry, JSON.stringify({ devices: [{ deviceId: 'car-1', policyId: 'p1', kinds: ['obd'] }] }))
  const [port, tlsPort] = [await freePort(), await freePort()]
  const out = join(parent, 'broker')
  const cli = spawnSync(process.execPath, [ubiq, 'broker-config', '--out', out, '--port', String(port), '--tls-port', String(tlsPort)], { encoding: 'utf8', env: { PATH: process.env.PATH, DEVICE_REGISTRY: registry } })
  t.equal(cli.status, 0, cli.stderr)
  const password = readFileSync(join(out, 'credentials.csv'), 'utf8').split('\n').find((l) => l.startsWith('car-1,'))!.split(',')[1]!

  const broker = spawn(findCommand('mosquitto')!, ['-c', join(out, 'mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  broker.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise((resolve) => broker.once('exit', resolve))
  t.teardown(async () => {
    broker.kill()
    await exited
  })
  const tls = { ca: readFileSync(join(out, 'tls', 'ca.crt')), username: 'car-1', password, reconnectPeriod: 0 }
  // Until Mosquitto listens (or exits: then its stderr says why).
  let device: mqtt.MqttClient | undefined
  while (!device) {
    if (broker.exitCode !== null) throw new Error(`mosquitto exited: ${stderr}`)
    device = await mqtt.connectAsync(`mqtts://localhost:${tlsPort}`, { ...tls, protocolVersion: 5 }).catch(() => undefined)
    if (!device) await new Promise((r) => setTimeout(r, 100))
  }
  t.teardown(() => device.endAsync(true))
  await t.resolves(device.publishAsync(topics.device('car-1', 'obd'), '{}', { qos: 1 }), 'a device connects over TLS, verifying the server with the generated CA, and publishes')
  await t.rejects(mqtt.connectAsync(`mqtts://localhost:${tlsPort}`, { ...tls, ca: undefined }), /self[- ]signed|unable to verify|certificate/i, 'a client that does not trust the CA refuses the server')
  await t.resolves(device.publishAsync(topics.device('car-1', 'obd'), 'x'.repeat(200 * 1024), { qos: 1 }), 'a 200 KiB message passes (ingest rejects it, with a reason)')

  // 100 MB, from a client that has not been told the broker's limit (MQTT 3.1.1): disconnected
  // once the packet's header is read (max_packet_size), the message never routed.
  const v3 = await mqtt.connectAsync(`mqtts://localhost:${tlsPort}`, tls)
  const closed = new Promise<string>((resolve) => v3.once('close', () => resolve('connection closed')))
  const acknowledged = new Promise<string>((resolve) => v3.publish(topics.device('car-1', 'obd'), Buffer.alloc(100 * 1024 * 1024, 'x'), { qos: 1 }, () => resolve('acknowledged')))
  t.equal(await Promise.race([closed, acknowledged]), 'connection closed', 'a 100 MB message ends its connection (max_packet_size), unacknowledged')
  v3.end(true)
})

t.test('broker-config refuses a registry with a device named as a service user', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-broker-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const registry = join(dir, 'devices.json')
  writeFileSync(registry, JSON.stringify({ devices: [{ deviceId: SERVICE_USER, policyId: 'p1', kinds: ['obd'] }] }))
  const cli = spawnSync(process.execPath, [ubiq, 'broker-config', '--out', join(dir, 'broker')], { encoding: 'utf8', env: { PATH: process.env.PATH, DEVICE_REGISTRY: registry } })
  t.equal(cli.status, 1)
  t.match(cli.stderr, /\[UBIQ_REGISTRY_RESERVED_ID\] device ubiq: "ubiq" is reserved for ubiq's own MQTT connections/)
  t.notOk(existsSync(join(dir, 'broker', 'passwd')), 'and writes no password file')
})
