import t from 'tap'
import mqtt from 'mqtt'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startAedes, startInfluxd, startLocalBroker, startMosquitto, type LocalServer } from './local-services.ts'
import { newCredentials, SERVICE_USER } from '../ingest/index.ts'

const roundTrip = async (url: string) => {
  const pub = await mqtt.connectAsync(url, { clientId: 'pub' })
  await pub.publishAsync('ubiq/v1/premiums/p1', '{"factor":1.1}', { qos: 1, retain: true })
  await pub.endAsync()
  const sub = await mqtt.connectAsync(url, { clientId: 'sub' })
  const got = new Promise<string>((resolve) => sub.once('message', (_topic, payload) => resolve(String(payload))))
  await sub.subscribeAsync('ubiq/v1/premiums/+', { qos: 1 })
  const payload = await got
  await sub.endAsync()
  return payload
}
const running = (dir: string) => spawnSync('pgrep', ['-f', dir]).status === 0

t.test('the embedded aedes broker, the fallback, keeps retained QoS 1 messages', async (t) => {
  const broker = await startAedes()
  t.teardown(() => broker.stop())
  t.equal(await roundTrip(broker.url), '{"factor":1.1}')
})

t.test('Mosquitto and InfluxDB start on free ports with their data in the given folder, and stop', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-local-'))
  const servers: LocalServer[] = [await startMosquitto(join(dir, 'mq')), await startInfluxd(join(dir, 'influx'))]
  t.equal(await roundTrip(servers[0]!.url), '{"factor":1.1}', 'mosquitto delivers the retained message')
  t.equal((await fetch(`${servers[1]!.url}/ping`)).status, 204, 'influxd answers /ping')
  await fetch(`${servers[1]!.url}/query`, { method: 'POST', body: new URLSearchParams({ q: 'CREATE DATABASE d' }) })
  t.equal((await fetch(`${servers[1]!.url}/write?db=d`, { method: 'POST', body: 'obd,device_id=car-1 speed_kmh=50' })).status, 204, 'influxd takes a write')
  const shards = join(dir, 'influx', 'data', 'd', 'autogen')
  t.ok(readdirSync(shards).length > 0 && readdirSync(shards).every((shard) => existsSync(join(shards, shard, 'index'))), 'its shards index their series on disk (TSI), not in the heap (#25)')
  t.ok(running(dir), 'both run')
  for (const s of servers) await s.stop()
  t.notOk(running(dir), 'stop() leaves no process behind')
})

t.test('ubiq\'s own broker (start, demo) takes only the credentials made for the run', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-local-'))
  const broker = await startLocalBroker(join(dir, 'mq'), ['car-1'])
  t.teardown(() => broker.stop())
  t.match(broker.url, /^mqtt:\/\/127\.0\.0\.1:\d+$/, 'on loopback only')
  const connect = (username?: string, password?: string) => mqtt.connectAsync(broker.url, { reconnectPeriod: 0, username, password })
  await t.rejects(connect(), /Not authorized/, 'an anonymous client is refused')
  await t.rejects(connect('car-1', 'guess'), /Not authorized|Bad User Name or Password/, 'a wrong password is refused')
  const device = await connect('car-1', broker.credentials.devices.get('car-1'))
  await t.resolves(device.publishAsync('ubiq/v1/dev/car-1/obd', '{}', { qos: 1 }), 'a device connects with its password and publishes')
  await device.endAsync()
  const service = await mqtt.connectAsync(broker.serviceUrl, { reconnectPeriod: 0 })
  await service.endAsync()
  t.pass('the service connects with the URL it is given')
  t.equal(statSync(broker.credentialsFile).mode & 0o777, 0o600, 'the credentials file is its owner\'s only')
  t.match(readFileSync(broker.credentialsFile, 'utf8'), /^username,password\nubiq,.+\ncar-1,.+\n$/)
})

t.test('the aedes fallback, given credentials, refuses anonymous clients and devices that use a service client id', async (t) => {
  const credentials = newCredentials([{ deviceId: 'car-1' }])
  const broker = await startAedes(credentials)
  t.teardown(() => broker.stop())
  const connect = (opts: mqtt.IClientOptions) => mqtt.connectAsync(broker.url, { reconnectPeriod: 0, ...opts })
  await t.rejects(connect({}), /Not authorized|Bad User Name or Password/, 'an anonymous client is refused')
  await t.rejects(connect({ username: 'car-1', password: credentials.devices.get('car-1'), clientId: SERVICE_USER }), /Not authorized|Bad User Name or Password/, 'a device as ubiq\'s client id is refused')
  const device = await connect({ username: 'car-1', password: credentials.devices.get('car-1'), clientId: 'sim-car-1' })
  await device.endAsync()
  const service = await connect({ username: SERVICE_USER, password: credentials.service, clientId: SERVICE_USER })
  await service.endAsync()
  t.pass('the device and the service connect with their passwords')
})

t.test('the aedes fallback holds the ACL Mosquitto is given: a device writes only its own topics and reads only its own rejections', async (t) => {
  const credentials = newCredentials([{ deviceId: 'car-1' }, { deviceId: 'car-2' }])
  const broker = await startAedes(credentials)
  t.teardown(() => broker.stop())
  const connect = (username: string, password: string) => mqtt.connectAsync(broker.url, { reconnectPeriod: 0, clientId: username === SERVICE_USER ? username : `sim-${username}`, username, password })
  const service = await connect(SERVICE_USER, credentials.service)
  const seenByService: string[] = []
  service.on('message', (topic) => seenByService.push(topic))
  await service.subscribeAsync('ubiq/v1/dev/#', { qos: 1 })
  const car1 = await connect('car-1', credentials.devices.get('car-1')!)
  const seenByCar1: string[] = []
  car1.on('message', (topic) => seenByCar1.push(topic))
  await car1.subscribeAsync(['ubiq/v1/dev/#', 'ubiq/v1/rejected/+'], { qos: 1 })
  const car2 = await connect('car-2', credentials.devices.get('car-2')!)

  await car2.publishAsync('ubiq/v1/dev/car-2/obd', '{}', { qos: 1 })
  await service.publishAsync('ubiq/v1/rejected/car-2', '{}', { qos: 1 })
  await service.publishAsync('ubiq/v1/rejected/car-1', '{}', { qos: 1 })
  while (!seenByCar1.includes('ubiq/v1/rejected/car-1')) await new Promise((r) => setTimeout(r, 10))
  t.same(seenByCar1, ['ubiq/v1/rejected/car-1'], "car-1 reads its own rejections, and neither car-2's stream nor its rejections")

  const ended = new Promise<void>((r) => car1.once('close', () => r()))
  car1.publish('ubiq/v1/dev/car-2/obd', '{"forged":true}', { qos: 1 })
  await ended
  t.pass("car-1 publishing on car-2's topic loses its connection")
  await car2.publishAsync('ubiq/v1/dev/car-2/obd', '{}', { qos: 1 })
  while (seenByService.length < 2) await new Promise((r) => setTimeout(r, 10))
  t.same(seenByService, ['ubiq/v1/dev/car-2/obd', 'ubiq/v1/dev/car-2/obd'], "the service got car-2's two messages and not car-1's forgery")
  car1.end(true)
  await Promise.all([car2.endAsync(), service.endAsync()])
})
