import t from 'tap'
import { createHash } from 'node:crypto'
import { anotherInflux, keepForever, startServices } from '../test/harness.ts'
import { connectInflux, toLine } from './influx.ts'
import { partitionOf } from './partitions.ts'
import { qualified } from './retention.ts'

t.test('a policy\'s partition: the first 4 bytes of its SHA-256, big-endian, modulo n; spread evenly', async (t) => {
  for (const id of ['pol-0001', 'pol-0002', 'é, =policy']) {
    t.equal(partitionOf(id, 3), Number(BigInt(`0x${createHash('sha256').update(id).digest('hex').slice(0, 8)}`) % 3n), id)
  }
  t.equal(partitionOf('pol-0001', 1), 0)
  const counts = [0, 0, 0, 0]
  for (let i = 0; i < 10_000; i++) counts[partitionOf(`pol-${i}`, 4)]!++
  t.ok(counts.every((c) => c > 2300 && c < 2700), `10,000 policies in 4 partitions: ${counts.join(', ')}`)
})

t.test('two InfluxDBs: each line goes to its policy\'s, readings by the registry; questions across policies ask both', async (t) => {
  const services = await startServices(t)
  const second = await anotherInflux(t, services)
  const registry = new Map([['dev-a', 'pol-0001'], ['dev-b', 'pol-0002']])
  t.same([partitionOf('pol-0001', 2), partitionOf('pol-0002', 2)], [1, 0], 'the two policies fall apart')
  const influx = await connectInflux({ api: 'v1', url: [services.influxUrl, second.influxUrl], database: 'parts', retentionDays: keepForever }, { policyOf: (d) => registry.get(d) })
  t.teardown(() => influx.close())
  const ts = Date.now() - 60_000
  influx.write([
    toLine('obd', { device_id: 'dev-a' }, { speed_kmh: 50, seq: 1 }, ts, ['seq']),
    toLine('obd', { device_id: 'dev-b' }, { speed_kmh: 60, seq: 1 }, ts, ['seq']),
    toLine('score', { policy_id: 'pol-0001', subject: 'driving', model: 'm@1' }, { value: 70 }, ts),
    toLine('score', { policy_id: 'pol-0002', subject: 'driving', model: 'm@1' }, { value: 80 }, ts),
    // No registered device: by its device id.
    toLine('obd', { device_id: 'pol-0002' }, { speed_kmh: 10, seq: 1 }, ts, ['seq']),
  ])
  await influx.flush()

  const where = async (influxql: typeof services.influxql, measurement: string, tag: string) =>
    (await influxql('parts', `SELECT count(*) FROM ${qualified(measurement)} GROUP BY ${tag}`)).map((s) => s.tags![tag]).sort()
  t.same(await where(second.influxql, 'obd', 'device_id'), ['dev-a'], 'the second InfluxDB: pol-0001\'s device')
  t.same(await where(second.influxql, 'score', 'policy_id'), ['pol-0001'])
  t.same(await where(services.influxql, 'obd', 'device_id'), ['dev-b', 'pol-0002'], 'the first: pol-0002\'s device, and the unregistered one by its id')
  t.same(await where(services.influxql, 'score', 'policy_id'), ['pol-0002'])

  const across = await influx.query(`SELECT last(value) AS value FROM ${qualified('score')} GROUP BY policy_id`)
  t.same(across.map((s) => [s.tags!.policy_id, s.values[0]![1]]).sort(), [['pol-0001', 70], ['pol-0002', 80]], 'a question across policies has both InfluxDBs\' series')
  const counts = await influx.query(`SELECT count(value) AS n FROM ${qualified('score')}`)
  t.same(counts.map((s) => s.values[0]![1]), [1, 1], 'an aggregate comes once from each InfluxDB, for its asker to add up')
  const mine = await influx.of('pol-0001').query(`SELECT speed_kmh FROM ${qualified('obd')} WHERE device_id = 'dev-a'`)
  t.same(mine[0]?.values.map((v) => v[1]), [50], 'a question about one policy asks its InfluxDB')
  t.same(await influx.of('pol-0002').query(`SELECT * FROM ${qualified('obd')} WHERE device_id = 'dev-a'`), [], 'and not the other')
})
