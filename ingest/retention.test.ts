/**
 * Retention per measurement (#21) against a real InfluxDB 1.x: the declared policies are created
 * at start and altered when a declared duration changes; each measurement is written to and read
 * from its own; a point older than its policy is refused and kept nowhere.
 */
import t from 'tap'
import { of } from 'rxjs'
import {
  connectInflux, derivedMeasurements, durationHours, POSITION_FIELDS, qualified, retentionOf, retentionPolicies, retentionPolicyNames,
  sensors, storedMeasurements, storeReadings, toLine, type Reading, type Refusal,
} from './index.ts'
import { geohash } from './geo.ts'
import { resolveRetention } from './retention.ts'
import { startServices, type Services } from '../test/harness.ts'

const HOUR = 3600_000
const DAY = 24 * HOUR

/** The database's retention policies as InfluxDB reports them: name → [hours, shard hours, default]. */
async function policies(services: Services, db: string): Promise<Record<string, [number, number, boolean]>> {
  const [shown] = await services.influxql(db, `SHOW RETENTION POLICIES ON "${db}"`)
  const col = (c: string) => shown!.columns.indexOf(c)
  return Object.fromEntries(shown!.values.map((v) => [v[col('name')], [durationHours(String(v[col('duration')])), durationHours(String(v[col('shardGroupDuration')])), v[col('default')]]]))
}

t.test('the declarations: every measurement in one policy, positions only where they are kept shortest', async (t) => {
  t.same(Object.keys(retentionPolicies), retentionPolicyNames)
  for (const m of storedMeasurements) t.ok(retentionPolicyNames.includes(m.retention), `${m.name}: kept in ${m.retention}`)
  t.equal(new Set(storedMeasurements.map((m) => m.name)).size, storedMeasurements.length, 'one declaration per measurement')
  t.same([...POSITION_FIELDS].sort(), ['alt_m', 'lat_deg', 'lon_deg'], 'gps declares its positions')
  for (const s of sensors) if (s.storage.positions?.length) t.equal(s.storage.retention, 'raw_positions', `${s.kind} has positions: kept in raw_positions`)
  t.equal(retentionOf('gps'), 'raw_positions')
  t.equal(qualified('trip'), '"aggregates"."trip"')
  t.throws(() => qualified('nonsense'), /measurement "nonsense" has no declared retention/, 'an undeclared measurement is a programming error')
  t.throws(() => resolveRetention({ raw_positions: 1.5 }), /retention of raw_positions: 1.5 days is not a whole number/)
  t.equal(geohash(57.64911, 10.40744, 11), 'u4pruydqqvj', 'geohash: the reference point of its definition')
})

t.test('connectInflux creates the declared policies, and alters one whose declared duration changed at the next start', async (t) => {
  const services = await startServices(t)
  const db = 'ubiq_retention_rps'
  const first = await connectInflux({ api: 'v1', url: services.influxUrl, database: db })
  t.match(await policies(services, db), {
    raw_imu: [7 * 24, 24, false],
    raw_positions: [14 * 24, 24, false],
    raw: [90 * 24, 24, false],
    aggregates: [1095 * 24, 7 * 24, true],
    claims: [2190 * 24, 7 * 24, false],
  }, 'each with its duration and InfluxDB\'s shard-group duration for it; aggregates is the default')
  first.write([toLine('gps', { device_id: 'car-1' }, { lat_deg: 52.37, lon_deg: 4.89, accuracy_m: 5, seq: 1 }, Date.now() - HOUR, ['seq'])])
  await first.close()

  const changes: unknown[] = []
  const second = await connectInflux({ api: 'v1', url: services.influxUrl, database: db, retentionDays: { raw_positions: 2 } }, { onRetentionChange: (c) => changes.push(c) })
  t.same((await policies(services, db)).raw_positions, [48, 1, false], 'POSITION_RETENTION_DAYS=2: altered to 48 h, in shard groups of an hour')
  t.same(changes, [{ policy: 'raw_positions', fromHours: 14 * 24, toHours: 48 }], 'the change is reported, once')
  t.equal((await second.query(`SELECT count(lat_deg) FROM ${qualified('gps')}`))[0]?.values[0]?.[1], 1, 'the positions already stored stay while within it')
  await second.close()
  const unchanged: unknown[] = []
  await (await connectInflux({ api: 'v1', url: services.influxUrl, database: db, retentionDays: { raw_positions: 2 } }, { onRetentionChange: (c) => unchanged.push(c) })).close()
  t.same(unchanged, [], 'a start with the same durations alters nothing')
})

t.test('each measurement is written to its own policy and read back from it', async (t) => {
  const services = await startServices(t)
  const db = 'ubiq_retention_write'
  const influx = await connectInflux({ api: 'v1', url: services.influxUrl, database: db })
  const ts = Math.floor(Date.now() / 1000) * 1000 - HOUR
  // Every sensor kind's example, now, as ingest stores it; every derived measurement, one line.
  const readings = sensors.map((s, i): Reading => {
    const { seq, ts: _, samples, ...fields } = s.example as Record<string, unknown>
    return { deviceId: 'dev-1', policyId: 'pol-1', kind: s.kind, subject: s.subject, seq: seq as number, ts: ts + i * 1000, receivedAt: ts, fields: fields as Reading['fields'], ...(samples ? { samples: samples as number[][] } : {}) }
  })
  of(...readings).pipe(storeReadings((lines) => influx.write(lines))).subscribe()
  // One call with lines of several policies, as a journal's recovery writes them.
  influx.write(derivedMeasurements.map((m, i) => toLine(m.name, Object.fromEntries(m.tags.map((k) => [k, 'x'])), { probe: i }, ts)))
  await influx.flush()
  for (const m of storedMeasurements) {
    const rows = await influx.query(`SELECT count(*) FROM ${qualified(m.name)}`)
    t.ok(rows.length === 1, `${m.name}: stored in ${m.retention}`)
  }
  t.same(await services.influxql(db, 'SELECT count(*) FROM "autogen"./.*/'), [], 'nothing in autogen')
  const [gps] = await influx.query(`SELECT lat_deg FROM ${qualified('gps')}`)
  t.same(gps?.values, [[ts + 1000, 52.3731]], 'a position reads back from raw_positions, by value')
  t.same(await influx.query('SELECT * FROM gps'), [], 'and not from the default policy')
  t.ok((await influx.query('SELECT count(probe) FROM trip'))[0], 'while an unqualified query (Grafana) finds the aggregates')
  await influx.close()
})

t.test('a point older than its policy: refused by InfluxDB, or, from ingest, passed on without being stored', async (t) => {
  const services = await startServices(t)
  const db = 'ubiq_retention_old'
  const written: string[] = []
  const influx = await connectInflux({ api: 'v1', url: services.influxUrl, database: db }, { onWritten: (lines) => written.push(...lines) })
  const refused: Refusal[] = []
  influx.onRefused((r) => refused.push(...r))
  const old = Date.now() - 20 * DAY
  t.ok(influx.oldestKept('gps') > old && influx.oldestKept('trip_area') < old, 'gps is kept 14 days, a trip\'s area years')
  const fix = toLine('gps', { device_id: 'car-1' }, { lat_deg: 52.3731, lon_deg: 4.8922, accuracy_m: 5, seq: 1 }, old, ['seq'])
  const area = toLine('trip_area', { policy_id: 'pol-1', device_id: 'car-1' }, { cells: `${geohash(52.3731, 4.8922, 6)}:120` }, old)
  influx.write([fix, area])
  await influx.flush()
  t.same(refused.map((r) => [r.line, r.kind]), [[fix, 'beyond_retention']], 'InfluxDB refuses the 20-day-old position: beyond its retention policy')
  t.same(written, [area], 'and takes the trip\'s area of the same time')
  t.same(await influx.query(`SELECT * FROM ${qualified('gps')}`), [], 'no position stored')
  const [cells] = await influx.query(`SELECT cells FROM ${qualified('trip_area')}`)
  t.same(cells?.values, [[old, 'u173zq:120']], 'the coarsened one is')

  // Ingest does not send InfluxDB what it would refuse: the reading goes on to scoring, unstored.
  const late: Reading = { deviceId: 'car-1', policyId: 'pol-1', kind: 'gps', subject: 'driving', seq: 2, ts: old, receivedAt: Date.now(), fields: { lat_deg: 52.3731, lon_deg: 4.8922, accuracy_m: 5 } }
  const fresh: Reading = { ...late, seq: 3, ts: Date.now() - HOUR }
  const stored: string[][] = []
  const expired: Reading[] = []
  const passed: Reading[] = []
  of(late, fresh).pipe(storeReadings((lines) => stored.push(lines), { oldestKept: (kind) => influx.oldestKept(kind), onExpired: (r) => expired.push(r) })).subscribe((r) => passed.push(r))
  t.same(passed, [late, fresh], 'both readings go on to scoring')
  t.same(expired, [late], 'the one older than 14 days is counted as expired')
  t.same(stored.map((ls) => ls.map((l) => l.split(' ').at(-1))), [[String(fresh.ts)]], 'and only the fresh one is stored')
  await influx.close()
})
