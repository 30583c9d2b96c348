/**
 * Several InfluxDBs by policy partition (#25 item 4), end to end on real services: the same
 * simulated fleet (same seeds, same device times) runs once into one InfluxDB and once into two.
 * With two, each policy's points, its devices' readings among them, are whole in the InfluxDB its
 * hash names, and every REST answer, per policy and across policies, is the one-InfluxDB run's.
 */
import t from 'tap'
import { join } from 'node:path'
import { makeFleet, runFleet } from '../edge-sim/index.ts'
import { examplePlans, loadPlans } from '../pricing/index.ts'
import { partitionOf, qualified } from '../ingest/index.ts'
import { anotherInflux, firstMatch, keepForever, startServices, startTestPipeline, type Services } from './harness.ts'

const SAMPLES = 600 // 10 minutes of 1 Hz driving per vehicle
const fleet = makeFleet(4, 11)
const policies = fleet.map((v) => v.policyId)
const startTs = Date.now() - 3 * 3600_000
const lastTs = startTs + (SAMPLES - 1) * 1000
// The same period in both runs' questions.
const period = `from=${new Date(startTs - 86_400_000).toISOString()}&to=${new Date(Date.now() + 86_400_000).toISOString()}`
// The example plan moves no premium before 50 km; a quarter of an hour of driving is ~10 km (as test/e2e.test.ts).
const [plan] = loadPlans(examplePlans)
const plans = [{ ...plan!, subjects: { driving: { ...plan!.subjects.driving!, credibility: { exposure: 'distance_km' as const, full: 1000, minimum: 0 } } } }]

/** Runs the fleet into the InfluxDBs at `urls` (database `db`), then starts again on what was stored to read REST from InfluxDB alone. */
async function runAndRead(t: Parameters<typeof startServices>[0], services: Services, urls: string[], db: string) {
  const overrides = { plans, dataDir: join(services.dataDir, db), influx: { api: 'v1' as const, url: urls, database: db, retentionDays: keepForever } }
  const run = await startTestPipeline(t, services, fleet, db, overrides)
  const finals = fleet.map((v) => firstMatch(run.premiums$, (p) => p.policyId === v.policyId && p.effectiveFrom === new Date(lastTs).toISOString()))
  await (await runFleet({ mqttUrl: services.mqttUrl, fleet, startTs, speedup: Infinity, samples: SAMPLES })).done
  await Promise.all(finals)
  await run.stop() // flushes InfluxDB
  // A fresh start answers from InfluxDB alone (its feed journal is empty).
  const reader = await startTestPipeline(t, services, fleet, db, overrides)
  const token = reader.auth.issue({ role: 'analyst' }, 3600_000)
  const get = async (path: string) => {
    const res = await fetch(`${reader.url}${path}`, { headers: { authorization: `Bearer ${token}` } })
    return { status: res.status, body: await res.json() as unknown }
  }
  const answers: Record<string, unknown> = {}
  for (const path of [
    '/api/v1/policies',
    '/api/v1/portfolio/scores?subject=driving',
    `/api/v1/portfolio/premiums?${period}&interval=1h`,
    `/api/v1/portfolio/events?${period}`,
    `/api/v1/models/drift?${period}&interval=10m`,
    `/api/v1/models/shadow?${period}`,
    ...policies.flatMap((p) => ['', '/scores', '/premiums', '/events', '/trips'].map((what) => `/api/v1/policies/${p}${what}`)),
  ]) answers[path] = await get(path)
  await reader.stop()
  return answers
}

/**
 * An answer as compared: numbers to 12 significant digits (a mean merged from two InfluxDBs' means
 * may differ from one InfluxDB's in the last bits), without the audit chain's hashes (each run's
 * chain has its own per-policy keys: they differ with one InfluxDB as with two).
 */
const comparable = (x: unknown): unknown =>
  typeof x === 'number' ? Number(x.toPrecision(12))
    : Array.isArray(x) ? x.map(comparable)
      : x && typeof x === 'object' ? Object.fromEntries(Object.entries(x).filter(([k]) => k !== 'hash' && k !== 'prevHash').map(([k, v]) => [k, comparable(v)]))
        : x

t.test('a fleet written to two InfluxDBs by policy partition answers as it does from one', async (t) => {
  const services = await startServices(t)
  const second = await anotherInflux(t, services)
  const urls = [services.influxUrl, second.influxUrl]
  const shardOf = new Map(policies.map((p) => [p, partitionOf(p, 2)]))
  t.ok(new Set(shardOf.values()).size === 2, `the fleet's policies fall in both partitions: ${JSON.stringify([...shardOf])}`)

  const one = await runAndRead(t, services, [services.influxUrl], 'ubiq_one')
  const two = await runAndRead(t, services, urls, 'ubiq_two')

  // Each InfluxDB holds its partition's policies whole, and nothing of the others'.
  for (const [i, influxql] of [services.influxql, second.influxql].entries()) {
    const mine = policies.filter((p) => shardOf.get(p) === i).sort()
    const devices = fleet.filter((v) => shardOf.get(v.policyId) === i).map((v) => v.deviceId).sort()
    const tagged = async (measurement: string, tag: string) =>
      (await influxql('ubiq_two', `SELECT count(*) FROM ${qualified(measurement)} GROUP BY ${tag}`)).map((s) => s.tags![tag]!).sort()
    t.same(await tagged('obd', 'device_id'), devices, `InfluxDB ${i}: the readings of its policies' devices, and no other's`)
    for (const m of ['score', 'premium', 'trip']) t.same(await tagged(m, 'policy_id'), mine, `InfluxDB ${i}: the ${m}s of its policies, and no other's`)
  }
  const [obd] = await services.influxql('ubiq_one', `SELECT count(speed_kmh) FROM ${qualified('obd')}`)
  t.equal(obd?.values[0]?.[1], fleet.length * SAMPLES, 'the one-InfluxDB run stored every reading')

  for (const path of Object.keys(one)) {
    t.equal((one[path] as { status: number }).status, 200, `${path}: 200`)
    t.same(comparable(two[path]), comparable(one[path]), `${path}: the same from two InfluxDBs as from one`)
  }
  const scores = one['/api/v1/portfolio/scores?subject=driving'] as { body: { n: number } }
  t.equal(scores.body.n, fleet.length, 'the portfolio has every policy')
})
