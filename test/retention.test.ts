/**
 * Positions minimised and kept per their retention (#21), through the whole pipeline on a real
 * Mosquitto and InfluxDB: trips leave their coarse cells and crashes their track; a start with a
 * shorter POSITION_RETENTION_DAYS alters the policy and InfluxDB drops the positions it no longer
 * covers while the coarse cells, crash tracks and readings stay; a late upload is scored and its
 * positions never stored; and no position or cell reaches an analyst's route.
 */
import t from 'tap'
import mqtt from 'mqtt'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { firstValueFrom, take, toArray } from 'rxjs'
import { deviceRegistry, durationHours, geohash, qualified, retentionPolicyNames, storedMeasurements, topics } from '../ingest/index.ts'
import { startServices, startTestPipeline, type Services } from './harness.ts'
import type { Pipeline } from '../bin/pipeline.ts'

const DB = 'ubiq_retention'
const HOUR = 3600_000
const DAY = 24 * HOUR
const now = Math.floor(Date.now() / 1000) * 1000
const [LAT, LON] = [52.3731, 4.8922]
const devices = deviceRegistry([{ deviceId: 'car-1', policyId: 'pol-1', kinds: ['status', 'obd', 'gps', 'crash'] }])

let seq = 0
/**
 * Two minutes of driving east at 50 km/h from `from`: ignition on, 1 Hz OBD speed and GNSS fixes,
 * then ignition off, or a crash reported by the device.
 */
function trip(from: number, end: 'ignition' | 'crash'): { kind: string; body: Record<string, unknown> }[] {
  const m_per_deg_lon = 111_320 * Math.cos((LAT * Math.PI) / 180)
  const out: { kind: string; body: Record<string, unknown> }[] = [{ kind: 'status', body: { seq: seq++, ts: from, ignition_on: true } }]
  for (let i = 1; i <= 120; i++) {
    out.push({ kind: 'obd', body: { seq: seq++, ts: from + i * 1000, speed_kmh: 50 } })
    out.push({ kind: 'gps', body: { seq: seq++, ts: from + i * 1000 + 500, lat_deg: LAT, lon_deg: LON + (i * 50) / 3.6 / m_per_deg_lon, accuracy_m: 4, speed_kmh: 50, heading_deg: 90 } })
  }
  out.push(end === 'crash'
    ? { kind: 'crash', body: { seq: seq++, ts: from + 121_000, peak_accel_ms2: 58.4, delta_v_kmh: 31 } }
    : { kind: 'status', body: { seq: seq++, ts: from + 122_000, ignition_on: false } })
  return out
}

/** Publishes the trips and waits until their trips are stored, then stops the pipeline (InfluxDB flushed). */
async function drive(pipeline: Pipeline, services: Services, trips: ReturnType<typeof trip>[]): Promise<void> {
  const closed = firstValueFrom(pipeline.trips$.pipe(take(trips.length), toArray()))
  const car = await mqtt.connectAsync(services.mqttUrl, { clientId: 'car-1' })
  for (const m of trips.flat()) await car.publishAsync(topics.device('car-1', m.kind), JSON.stringify(m.body), { qos: 1 })
  await car.endAsync()
  await closed
}

const count = async (services: Services, q: string) => Number((await services.influxql(DB, q))[0]?.values[0]?.[1] ?? 0)
const positions = (services: Services, where: string) => count(services, `SELECT count(lat_deg) FROM ${qualified('gps')} WHERE ${where}`)

t.test('positions are kept as long as POSITION_RETENTION_DAYS, their coarse cells and crash tracks longer, and never served', async (t) => {
  const services = await startServices(t)
  const [old, crashed, fresh, late] = [now - 3 * DAY, now - 3 * DAY + HOUR, now - HOUR, now - 2 * DAY]

  // Run 1, with the declared retention (positions 14 days): three trips, one ending in a crash.
  const first = await startTestPipeline(t, services, [], DB, { devices, influx: { api: 'v1', url: services.influxUrl, database: DB } })
  await drive(first, services, [trip(old, 'ignition'), trip(crashed, 'crash'), trip(fresh, 'ignition')])
  await first.stop()
  t.equal(await positions(services, 'time > 0'), 360, 'every fix of the three trips is stored, at full precision')
  const [areas] = await services.influxql(DB, `SELECT cells FROM ${qualified('trip_area')}`)
  t.same(areas?.values.map((v) => v[0]), [old, crashed, fresh], 'each trip keeps its area, at the trip\'s start')
  for (const [, cells] of areas?.values ?? []) {
    const parsed = String(cells).split(' ').map((c) => c.split(':'))
    t.ok(parsed.every(([cell, s]) => /^[0-9b-hjkmnp-z]{6}$/.test(cell!) && Number(s) >= 0), `cells of 6 geohash characters with their seconds: ${cells}`)
    t.equal(parsed[0]![0], geohash(LAT, LON + 0.0002, 6), 'starting in the cell the trip started in')
    t.equal(parsed.reduce((n, [, s]) => n + Number(s), 0), 119, 'the seconds of the trip\'s fixes, the first counting none')
  }
  const [track] = await services.influxql(DB, `SELECT lat_deg, lon_deg, crash_ms FROM ${qualified('crash_track')}`)
  t.equal(track?.values.length, 30, 'the crash keeps the fixes of the 30 s before it')
  t.ok(track?.values.every(([time, lat, , crash]) => lat === LAT && crash === crashed + 121_000 && Number(time) >= crashed + 91_000), 'at full precision, each with its crash\'s time')

  // Run 2 with POSITION_RETENTION_DAYS=1: raw_positions is altered at start, and InfluxDB drops the
  // shard groups of positions older than a day (its retention check runs every 5 s here).
  const second = await startTestPipeline(t, services, [], DB, { devices, influx: { api: 'v1', url: services.influxUrl, database: DB, retentionDays: { raw_positions: 1 } } })
  const [rps] = await services.influxql(DB, `SHOW RETENTION POLICIES ON ${DB}`)
  t.equal(durationHours(String(rps!.values.find((v) => v[0] === 'raw_positions')![1])), 24, 'raw_positions altered to a day')
  const deadline = Date.now() + 60_000
  while (await positions(services, `time < ${now - DAY}ms`) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 500))
  t.equal(await positions(services, `time < ${now - DAY}ms`), 0, 'the positions older than a day are gone')
  t.equal(await positions(services, `time >= ${fresh}ms`), 120, 'the last hour\'s are kept')
  t.equal(await count(services, `SELECT count(cells) FROM ${qualified('trip_area')}`), 3, 'every trip\'s coarse cells remain')
  t.equal(await count(services, `SELECT count(lat_deg) FROM ${qualified('crash_track')}`), 30, 'and the crash\'s track')
  t.equal(await count(services, `SELECT count(speed_kmh) FROM ${qualified('obd')} WHERE time < ${now - DAY}ms`), 240, 'and the other readings of those days, kept 90 days')

  // A late upload two days old: scored, its area and readings stored, its positions not (nor quarantined).
  await drive(second, services, [trip(late, 'ignition')])
  t.match(await second.metrics.getSingleMetricAsString('ubiq_ingest_readings_expired_total'), /ubiq_ingest_readings_expired_total\{kind="gps"\} 120$/m, 'its 120 fixes are counted as expired')
  const analyst = second.auth.issue({ role: 'analyst' }, 60_000)
  const get = async (path: string) => (await fetch(`${second.url}${path}`, { headers: { authorization: `Bearer ${analyst}` } })).text()
  const served = await Promise.all([
    get('/api/v1/policies/pol-1/trips?limit=10'),
    get('/api/v1/policies/pol-1/events?limit=10'),
    get(`/api/v1/policies/pol-1/readings?from=${new Date(late).toISOString()}&to=${new Date(now).toISOString()}&format=csv`),
    get(`/api/v1/policies/pol-1/readings?from=${new Date(fresh).toISOString()}&to=${new Date(now).toISOString()}`),
  ])
  t.match(served[0], /"distance_km"/, 'the analyst sees the trips')
  t.match(served[2], /speed_kmh/, 'and the readings')
  for (const body of served) t.notMatch(body, /lat_deg|lon_deg|alt_m|cells|u17[0-9a-z]{3}|52\.37|4\.89/, 'without a position or a cell')
  await second.stop()
  t.equal(await positions(services, `time >= ${late}ms AND time < ${late + DAY}ms`), 0, 'no position of the late trip is stored')
  t.equal(await count(services, `SELECT count(cells) FROM ${qualified('trip_area')} WHERE time >= ${late}ms AND time < ${late + DAY}ms`), 1, 'its coarse cells are')
  t.equal(await count(services, `SELECT count(speed_kmh) FROM ${qualified('obd')} WHERE time >= ${late}ms AND time < ${late + DAY}ms`), 120, 'and its OBD readings')
  t.notOk(existsSync(join(services.dataDir, 'dead-letter')), 'nothing refused, so nothing quarantined')

  // Every field stored is in the data inventory; positions only in gps and crash_track.
  const declared = new Map(storedMeasurements.map((m) => [m.name, m.fields.map((f) => f.name)]))
  const patterns: Record<string, RegExp> = { trip: /^events_\w+$/, event: /^\w+$/, score: /^\w+$/ } // named by a detector or a model
  for (const rp of retentionPolicyNames) {
    for (const s of await services.influxql(DB, `SHOW FIELD KEYS FROM "${rp}"./.*/`)) {
      const fields = s.values.map((v) => String(v[0]))
      t.ok(declared.has(s.name), `${rp}.${s.name} is declared`)
      const undeclared = fields.filter((f) => !declared.get(s.name)?.includes(f) && !patterns[s.name]?.test(f))
      t.same(undeclared, [], `${rp}.${s.name}: every field is in the data inventory`)
      if (fields.includes('lat_deg')) t.ok(['gps', 'crash_track'].includes(s.name), `${s.name} holds positions: gps or a crash track`)
    }
  }
})
