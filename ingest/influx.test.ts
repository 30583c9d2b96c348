import t from 'tap'
import { of } from 'rxjs'
import { connectInflux, withoutExpired, qualified, readingsFromSeries, storeReadings, toLine, type Reading, type Refusal } from './index.ts'
import { lineShape, QUERIES_IN_FLIGHT } from './influx.ts'
import { startServices } from '../test/harness.ts'
import { freePort } from '../bin/local-services.ts'

/** A whole second an hour ago: within every retention policy (points older than their policy's duration are refused). */
const recent = () => Math.floor(Date.now() / 1000) * 1000 - 3600_000

t.test('toLine writes line protocol with escaping, floats by default and declared integers', async (t) => {
  t.equal(
    toLine('obd', { device_id: 'a b,c=d' }, { speed_kmh: 50, seq: 7, note: 'say "hi"', ok: true }, 1700000000000.4, ['seq']),
    'obd,device_id=a\\ b\\,c\\=d speed_kmh=50,seq=7i,note="say \\"hi\\"",ok=true 1700000000000',
  )
})

t.test('lineShape tells a line by its measurement, device, time, size and field names, never its values (#21)', async (t) => {
  const line = toLine('gps', { device_id: 'car 1' }, { lat_deg: 52.3731, note: 'a "b", c=d e', ok: true }, 1767225600000)
  t.same(lineShape(line, `unable to parse '${line}': invalid`), {
    reason: "unable to parse '…': invalid", measurement: 'gps', device: 'car 1', time: '2026-01-01T00:00:00.000Z', bytes: Buffer.byteLength(line), fields: ['lat_deg', 'note', 'ok'],
  })
  const cases: [string, string, Partial<ReturnType<typeof lineShape>>][] = [
    ['no timestamp', 'hr,device_id=w hr_bpm=61', { measurement: 'hr', device: 'w', fields: ['hr_bpm'] }],
    ['a value where the timestamp goes', 'gps,device_id=x lat_deg=52.1 lon_deg=4.3 1', { fields: ['lat_deg'] }],
    ['a value where a field goes', 'hr,device_id=w 61,seq=1i 5', { fields: ['seq'], time: '1970-01-01T00:00:00.005Z' }],
    ['a time no date has', 'obd,device_id=d seq=1i 1e303', { fields: ['seq'] }],
  ]
  for (const [name, l, want] of cases) {
    const shape = lineShape(l)
    t.match(shape, want, name)
    t.notMatch(JSON.stringify(shape), /52\.1|4\.3|61|1e303/, `${name}: no value`)
  }
})

t.test('the v1 write API against a real InfluxDB 1.x: written lines read back by InfluxQL', async (t) => {
  const services = await startServices(t)
  const cfg = { api: 'v1', url: services.influxUrl, database: 'ubiq_influx_test' } as const
  const influx = await connectInflux(cfg)
  const ts = recent()
  influx.write([
    toLine('obd', { device_id: 'tricky id, with=spaces' }, { speed_kmh: 12.5, seq: 1 }, ts, ['seq']),
    toLine('obd', { device_id: 'tricky id, with=spaces' }, { speed_kmh: 13, seq: 2 }, ts + 1000, ['seq']),
  ])
  await influx.flush()
  const [series] = await influx.query(`SELECT speed_kmh, seq FROM ${qualified('obd')} WHERE device_id = 'tricky id, with=spaces'`)
  t.same(series?.values, [[ts, 12.5, 1], [ts + 1000, 13, 2]], 'both rows, by value, at their timestamps')
  const [types] = await influx.query(`SHOW FIELD KEYS FROM ${qualified('obd')}`)
  t.same(types?.values, [['seq', 'integer'], ['speed_kmh', 'float']], 'seq is stored as an integer, values as floats')

  await t.rejects(influx.query('SELEKT nonsense'), /InfluxDB query failed \(400\): error parsing query/, 'a bad query says why')
  // Connecting again is harmless: CREATE DATABASE is idempotent and the data stays.
  const again = await connectInflux(cfg)
  t.equal((await again.query(`SELECT count(speed_kmh) FROM ${qualified('obd')}`))[0]?.values[0]?.[1], 2)
  await Promise.all([influx.close(), again.close()])
})

t.test('at most QUERIES_IN_FLIGHT queries are in InfluxDB at once; the others wait their turn, and all are answered (#25 item 4)', async (t) => {
  const services = await startServices(t)
  const influx = await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_query_limit_test' })
  const ts = recent()
  influx.write(Array.from({ length: 5000 }, (_, i) => toLine('obd', { device_id: `car-${i % 50}` }, { speed_kmh: i % 130, seq: i }, ts + i, ['seq'])))
  await influx.flush()
  // InfluxDB's own count of the queries it is executing, as a fleet's first readings would make them.
  const active = async () => ((await (await fetch(`${services.influxUrl}/debug/vars`)).json()) as { queryExecutor: { values: { queriesActive: number } } }).queryExecutor.values.queriesActive
  let most = 0
  let done = false
  const answers = Promise.all(Array.from({ length: 300 }, (_, i) => influx.query(`SELECT * FROM ${qualified('obd')} WHERE device_id = 'car-${i % 50}'`))).finally(() => (done = true))
  while (!done) most = Math.max(most, await active())
  t.ok((await answers).every(([s]) => s?.values.length === 100), 'every query answered in full')
  t.ok(most <= QUERIES_IN_FLIGHT, `InfluxDB held at most ${QUERIES_IN_FLIGHT} at once (seen: ${most})`)
  await influx.close()
})

t.test('flush() waits for the batches the client sent on its own, not only for what it still buffers', async (t) => {
  const services = await startServices(t)
  const influx = await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_flush_test' })
  const ts = recent()
  // Two full batches of 5,000 go out as soon as they fill; nothing is left in the buffer to flush.
  influx.write(Array.from({ length: 10_000 }, (_, i) => toLine('obd', { device_id: 'd1' }, { speed_kmh: i }, ts + i)))
  await influx.flush()
  const [count] = await influx.query(`SELECT count(speed_kmh) FROM ${qualified('obd')}`)
  t.equal(count?.values[0]?.[1], 10_000, 'every line is readable once flush() resolves')
  await influx.close()
})

t.test('an unreachable InfluxDB is a startup error naming the problem', async (t) => {
  const url = `http://127.0.0.1:${await freePort()}` // nothing listens there
  await t.rejects(connectInflux({ api: 'v1', url, database: 'x' }), { message: `cannot reach InfluxDB at ${url}: ECONNREFUSED` })
})

t.test("a crash window (the device's ring buffer resent at full rate) is stored beside the regular batches of the same seconds, not over them", async (t) => {
  const services = await startServices(t)
  const influx = await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_window_test' })
  const ts = recent()
  const batch = (seq: number, hz: number): Reading => ({
    deviceId: 'car-1', policyId: 'pol-1', kind: 'imu', subject: 'driving', seq, ts, receivedAt: ts, fields: { rate_hz: hz },
    samples: Array.from({ length: hz }, (_, i) => [i, seq, 0, 0, 0, 0]),
  })
  // The second as the device sent it at 25 Hz, then again at 100 Hz in the crash window.
  of(batch(1, 25), batch(2, 100)).pipe(storeReadings((lines) => influx.write(lines))).subscribe()
  await influx.flush()
  const back = readingsFromSeries(await influx.query(`SELECT * FROM ${qualified('imu')} WHERE device_id = 'car-1'`), 'pol-1')
  t.same(back.map((r) => [r.seq, r.samples!.length]), [[1, 25], [2, 100]], 'both messages read back whole: 25 and 100 samples')
  t.same(back, [batch(1, 25), batch(2, 100)], 'as the readings they were')
  await influx.close()
})

t.test('a batch InfluxDB refuses in part is split: the good lines are written and confirmed, each refused line reported alone with its reason (#20)', async (t) => {
  const services = await startServices(t)
  const written: string[] = []
  const influx = await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_refusal_test' }, { onWritten: (lines) => written.push(...lines) })
  const refused: Refusal[] = []
  influx.onRefused((r) => refused.push(...r))
  const ts = recent()
  // speed_kmh is a float in this measurement; the poisoned line sends it as an integer (a field
  // type conflict: InfluxDB 1.x writes the rest of such a batch and answers 400 "partial write"),
  // another line has a time InfluxDB cannot store (what rate_hz 1e-300 gave before the contract bound it).
  influx.write([toLine('obd', { device_id: 'd0' }, { speed_kmh: 1 }, ts - 1000)])
  await influx.flush()
  const good = Array.from({ length: 99 }, (_, i) => toLine('obd', { device_id: `d${i % 7}` }, { speed_kmh: i }, ts + i))
  const conflict = `obd,device_id=bad speed_kmh=5i ${ts + 500}`
  const farFuture = `obd,device_id=bad speed_kmh=6 ${'9'.repeat(30)}`
  influx.write([...good.slice(0, 40), conflict, ...good.slice(40, 80), farFuture, ...good.slice(80)])
  await influx.flush()
  const [count] = await influx.query(`SELECT count(speed_kmh) FROM ${qualified('obd')}`)
  t.equal(count?.values[0]?.[1], 100, 'every good line is stored')
  t.same(good.filter((l) => !written.includes(l)), [], 'and confirmed')
  t.notOk(written.includes(conflict) || written.includes(farFuture), 'the refused lines are not confirmed')
  t.same(refused.map((r) => [r.line, r.kind]), [[conflict, 'field_type_conflict'], [farFuture, 'unparsable']], 'each refused line is reported once, with the kind of refusal')
  t.match(refused[0]!.reason, /field type conflict/, "with InfluxDB's reason")
  await influx.close()
})

t.test("derived lines older than their measurement's retention are left out and counted, not refused (a late upload's event, #21)", async (t) => {
  const services = await startServices(t)
  const influx = await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_expired_test' })
  const refused: Refusal[] = []
  influx.onRefused((r) => refused.push(...r))
  const expired: string[] = []
  const derived = withoutExpired(influx, (m) => expired.push(m))
  const ts = recent()
  derived.write([toLine('event', { policy_id: 'p' }, { value: 1 }, 0), toLine('event', { policy_id: 'p' }, { value: 2 }, ts)])
  await influx.flush()
  const [count] = await influx.query(`SELECT count(value) FROM ${qualified('event')}`)
  t.equal(count?.values[0]?.[1], 1, 'the recent line is stored')
  t.same(expired, ['event'], 'the one dated 1970 is reported, by measurement')
  t.same(refused, [], 'and InfluxDB refused nothing')
  await influx.close()
})
