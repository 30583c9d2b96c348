/**
 * Scale-out (#25): device credentials and the per-device ACL on nats-server (natsUsers), as
 * Mosquitto has them on a single machine. A real nats-server with ubiq's users file and a real
 * worker (`startWorker`, the service user) storing into a real InfluxDB: a device's own readings
 * are stored; publishing as another device, by its topic or straight into the stream's partition
 * subjects, stores nothing; a device without credentials, with a wrong password, or over the NATS
 * protocol is refused; a device reads its own rejections and not another's.
 */
import t from 'tap'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import mqtt, { type MqttClient } from 'mqtt'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
import { startNatsCluster } from '../bin/local-services.ts'
import { startWorker } from '../bin/worker.ts'
import { fleetRegistry, makeFleet } from '../edge-sim/index.ts'
import { DEVICE_STREAM, deviceRegistry, natsConnectOptions, natsPartition, newCredentials, qualified, SERVICE_USER } from '../ingest/index.ts'
import { keepForever, startServices, testLogger } from './harness.ts'

const PARTITIONS = 16

t.test('nats-server with ubiq users: each device publishes only its own readings and reads only its own rejections', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(3, 5)
  const [own, other, outsider] = fleet.map((v) => v.deviceId) as [string, string, string]
  const credentials = newCredentials(fleet)
  const [node] = await startNatsCluster(join(services.dataDir, '..', 'nats'), 1, PARTITIONS, credentials)
  t.teardown(() => node!.stop())
  const db = 'ubiq_nats_auth'
  const worker = await startWorker({
    servers: [node!.url], partitions: PARTITIONS, workerId: 'w1', replicas: 1,
    influx: { api: 'v1', url: services.influxUrl, database: db, retentionDays: keepForever },
    devices: deviceRegistry(fleetRegistry(fleet)), host: '127.0.0.1', port: 0,
  }, testLogger())
  t.teardown(() => worker.stop())
  t.match(node!.url, new RegExp(`^nats://${SERVICE_USER}:`), 'the workers connect as the service user')

  const device = (deviceId: string, password = credentials.devices.get(deviceId)) =>
    mqtt.connectAsync(node!.mqttUrl, { protocolVersion: 4, reconnectPeriod: 0, clientId: `t-${deviceId}`, username: deviceId, password })
  const refusal = (p: Promise<MqttClient>) => p.then(async (c) => (await c.endAsync(), 'connected'), (err: Error) => err.message)
  t.match(await refusal(mqtt.connectAsync(node!.mqttUrl, { protocolVersion: 4, reconnectPeriod: 0 })), /Not authorized/, 'a device without credentials is refused')
  t.match(await refusal(device(own, 'not-its-password')), /Not authorized/, 'a wrong password is refused')
  t.match(await refusal(device('unregistered', credentials.devices.get(own))), /Not authorized/, 'an unregistered device id is refused')
  const overNats = await connect({ servers: natsConnectOptions(node!.url).servers, user: own, pass: credentials.devices.get(own), reconnect: false }).then(
    async (nc) => (await nc.close(), 'connected'), (err: Error) => err.message)
  t.match(overNats, /Authorization Violation/, 'a device may not connect with the NATS protocol (where nats-server\'s own delivery subjects could be read)')

  const client = await device(own)
  t.teardown(() => client.endAsync())
  const rejections: string[] = []
  client.on('message', (topic) => rejections.push(topic))
  t.same((await client.subscribeAsync(`ubiq/v1/rejected/${own}`, { qos: 1 })).map((g) => g.qos), [1], 'a device reads its own rejections (QoS 1 too)')
  t.same((await client.subscribeAsync(`ubiq/v1/cmd/${own}/#`, { qos: 1 })).map((g) => g.qos), [1], '…and its own commands')
  const refusedSub = (filter: string) => client.subscribeAsync(filter, { qos: 0 }).then((g) => g.map((x) => x.qos), (err: { packet?: { granted?: number[] } }) => err.packet?.granted)
  t.same(await refusedSub(`ubiq/v1/rejected/${other}`), [128], 'not another device\'s rejections')
  t.same(await refusedSub('ubiq/v1/dev/#'), [128], 'nor the devices\' readings')

  // MQTT 3.1.1 has no way to refuse a publish: nats-server acknowledges it and drops it. What counts is what is stored.
  const status = (seq: number) => JSON.stringify({ seq, ts: Date.now() - 60_000, ignition_on: false })
  const q = natsPartition(other, PARTITIONS)
  const wrongPartition = (natsPartition(own, PARTITIONS) + 1) % PARTITIONS
  for (const topic of [`ubiq/v1/dev/${other}/status`, `ubiq/part/${q}/${other}/status`, `ubiq/part/${wrongPartition}/${own}/status`]) await client.publishAsync(topic, status(2), { qos: 1 })
  await client.publishAsync(`ubiq/v1/dev/${own}/status`, status(1), { qos: 1 })
  await client.publishAsync(`ubiq/v1/dev/${own}/status`, 'not json', { qos: 1 })

  const stored = async () => Object.fromEntries((await services.influxql(db, `SELECT count(ignition_on) FROM ${qualified('status')} GROUP BY device_id`))
    .map((s) => [s.tags!.device_id!, Number(s.values[0]![1])]))
  while (!(await stored())[own]) await sleep(100)
  while (rejections.length === 0) await sleep(100)
  t.same(rejections, [`ubiq/v1/rejected/${own}`], 'its malformed message is rejected to it (core NATS from the worker, QoS 0 to MQTT)')

  // Only the device's own two messages ever reached the stream (the worker purges what it stored;
  // the last sequence counts them all). Its own went through: its permission names the partition
  // natsPartition gives it, so natsPartition agrees with nats-server's mapping.
  const nc = await connect(natsConnectOptions(node!.url))
  t.teardown(() => nc.close())
  const jsm = await jetstreamManager(nc)
  t.equal((await jsm.streams.info(DEVICE_STREAM)).state.last_seq, 2, 'two messages ever reached the stream: the device\'s own two')
  t.same(await stored(), { [own]: 1 }, 'InfluxDB holds the device\'s own reading, and none as another device')

  // The second device, under its own name, is stored as itself: the worker's user and the ACL do not stop the fleet.
  const second = await device(other)
  await second.publishAsync(`ubiq/v1/dev/${other}/status`, status(3), { qos: 1 })
  await second.endAsync()
  while (!(await stored())[other]) await sleep(100)
  t.same(await stored(), { [own]: 1, [other]: 1 }, 'each device\'s own reading stored under its own id')
  t.notOk((await stored())[outsider], 'a device that sent nothing has nothing')
})
