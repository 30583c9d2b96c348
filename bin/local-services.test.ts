import t from 'tap'
import mqtt from 'mqtt'
import { spawnSync } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startAedes, startInfluxd, startMosquitto, type LocalServer } from './local-services.ts'

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
  t.ok(running(dir), 'both run')
  for (const s of servers) await s.stop()
  t.notOk(running(dir), 'stop() leaves no process behind')
})
