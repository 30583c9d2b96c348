/**
 * One device's message must not stall ingest (issue #20, item 2): a line InfluxDB refuses is
 * quarantined with its reason (never its values) while the lines written beside it are stored and
 * confirmed, and a message whose derived times InfluxDB could not store is rejected before it gets
 * there. Against real Mosquitto and InfluxDB, through the whole pipeline.
 */
import t from 'tap'
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import mqtt from 'mqtt'
import { deviceRegistry, qualified, retentionOf, topics, type Rejection } from '../ingest/index.ts'
import type { IngestHealth } from '../dashboards/monitoring.ts'
import { startServices, startTestPipeline } from './harness.ts'

const DB = 'ubiq_poison'

t.test('a poisoned line is quarantined with its reason, the rest of its batch stored and confirmed, and a restart does not write it again', async (t) => {
  const services = await startServices(t)
  const devices = deviceRegistry([
    { deviceId: 'car-a', policyId: 'pol-a', kinds: ['obd', 'imu'] },
    { deviceId: 'car-b', policyId: 'pol-b', kinds: ['obd'] },
  ])
  const pipeline = await startTestPipeline(t, services, [], DB, { devices })
  const ts = Date.now() - 60_000
  // Poison: engine_rpm is already a string field in this shard (another writer's schema), so
  // InfluxDB refuses car-a's float engine_rpm, a field type conflict, and answers 400.
  const seeded = await fetch(`${services.influxUrl}/write?${new URLSearchParams({ db: DB, rp: retentionOf('obd'), precision: 'ms' })}`, { method: 'POST', body: `obd,device_id=seed engine_rpm="text" ${ts}` })
  t.equal(seeded.status, 204, 'the conflicting field is in InfluxDB')

  const device = await mqtt.connectAsync(services.mqttUrl, { clientId: 'poison-test' })
  t.teardown(() => device.endAsync())
  const rejections: Rejection[] = []
  device.on('message', (_topic, payload) => rejections.push(JSON.parse(payload.toString())))
  await device.subscribeAsync(topics.rejected('car-a'), { qos: 1 })
  const send = (id: string, kind: string, body: object) => device.publishAsync(topics.device(id, kind), JSON.stringify(body), { qos: 1 })
  // The message: 1e-300 Hz put its second sample at 1e303 ms.
  await send('car-a', 'imu', { seq: 1, ts: Date.now(), rate_hz: 1e-300, samples: [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]] })
  await Promise.all([
    send('car-a', 'obd', { seq: 2, ts, speed_kmh: 50, engine_rpm: 1800 }),
    send('car-b', 'obd', { seq: 1, ts, speed_kmh: 30 }),
    send('car-a', 'obd', { seq: 3, ts: ts + 1000, speed_kmh: 40 }),
    send('car-b', 'obd', { seq: 2, ts: ts + 1000, speed_kmh: 31 }),
  ])

  const analyst = { headers: { authorization: `Bearer ${pipeline.auth.issue({ role: 'analyst' }, 600_000)}` } }
  const health = async () => (await (await fetch(`${pipeline.url}/api/v1/ingest/health`, analyst)).json()) as IngestHealth
  let h = await health()
  while (h.totals.stored < 4 || h.journalPendingLines > 0) {
    await sleep(100)
    h = await health()
  }
  t.same(h.quarantined, [{ reason: 'field_type_conflict', lines: 1 }], 'ingest health shows the quarantined line, with nothing left unconfirmed')
  t.match(rejections, [{ deviceId: 'car-a', kind: 'imu', reason: 'invalid_payload', seq: 1, detail: /rate_hz/ }], 'the 1e-300 Hz batch is rejected with a reason')
  t.same(await services.influxql(DB, `SELECT count(*) FROM ${qualified('imu')}`), [], 'and nothing of it is stored')
  const stored = await services.influxql(DB, `SELECT seq, speed_kmh FROM ${qualified('obd')} WHERE device_id != 'seed' GROUP BY device_id`)
  t.same(stored.map((s) => [s.tags?.device_id, s.values.map((v) => v[1])]), [['car-a', [3]], ['car-b', [1, 2]]], "the other lines are stored, other devices' and the poisoned device's own")

  const deadLetter = join(services.dataDir, 'dead-letter')
  const [file, ...others] = readdirSync(deadLetter)
  t.same(others, [], 'one dead-letter file')
  t.equal(statSync(join(deadLetter, file!)).mode & 0o777, 0o600, 'private to ubiq\'s user')
  const text = readFileSync(join(deadLetter, file!), 'utf8')
  const dead = text.trim().split('\n').map((l) => JSON.parse(l) as { fields: string[] })
  t.equal(dead.length, 1, 'holding the one refused line')
  t.match(dead[0], { kind: 'field_type_conflict', reason: /field type conflict: input field "engine_rpm"/, measurement: 'obd', device: 'car-a', time: new Date(ts).toISOString(), bytes: Number }, "with InfluxDB's reason, and what an operator needs to find the line's device and message")
  t.same(dead[0]!.fields.sort(), ['engine_rpm', 'seq', 'speed_kmh'], 'and field names')
  t.notMatch(text, /1800|"line"/, 'but not its values (#21: they may be positions or health values)')

  await pipeline.stop()
  t.same(readdirSync(join(services.dataDir, 'journal')), [], 'the journal holds nothing at a clean stop')
  const again = await startTestPipeline(t, services, [], DB, { devices })
  // What a start replays is pending from the moment it opens the journal until InfluxDB confirms it.
  t.match(await again.metrics.getSingleMetricAsString('ubiq_ingest_journal_pending_lines'), / 0$/m, 'a restart replays nothing')
})

t.test('a reading reusing a stored time under a new seq is rejected (duplicate_time), and the stored one stays (#20 item 7)', async (t) => {
  const services = await startServices(t)
  const devices = deviceRegistry([{ deviceId: 'car-c', policyId: 'pol-c', kinds: ['obd'] }])
  await startTestPipeline(t, services, [], 'ubiq_time_reuse', { devices })
  const device = await mqtt.connectAsync(services.mqttUrl, { clientId: 'time-reuse-test' })
  t.teardown(() => device.endAsync())
  const rejections: Rejection[] = []
  device.on('message', (_topic, payload) => rejections.push(JSON.parse(payload.toString())))
  await device.subscribeAsync(topics.rejected('car-c'), { qos: 1 })
  const ts = Date.now() - 60_000
  for (const [seq, at, speed_kmh] of [[1, ts, 50], [2, ts, 99], [3, ts + 1000, 51]]) {
    await device.publishAsync(topics.device('car-c', 'obd'), JSON.stringify({ seq, ts: at, speed_kmh }), { qos: 1 })
  }
  const stored = async () => (await services.influxql('ubiq_time_reuse', `SELECT seq, speed_kmh FROM ${qualified('obd')}`))[0]?.values ?? []
  while (!(await stored()).some((v) => v[1] === 3)) await sleep(100)
  t.same(await stored(), [[ts, 1, 50], [ts + 1000, 3, 51]], 'the acknowledged reading is not overwritten')
  while (rejections.length === 0) await sleep(100)
  t.match(rejections, [{ deviceId: 'car-c', kind: 'obd', reason: 'duplicate_time', seq: 2 }], 'the reuse is rejected with its reason')
})
