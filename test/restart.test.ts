/**
 * A restart, or a policy leaving scoring's memory when idle, loses nothing and changes nothing: the
 * same simulated days through one uninterrupted pipeline, through a pipeline stopped in the middle
 * of a trip and started again, and through one that forgets the policies in the middle of a trip
 * (rebuilding them from InfluxDB when they return), give the same trips, days and scores in
 * InfluxDB. Real Mosquitto, real InfluxDB, the whole pipeline.
 */
import { join } from 'node:path'
import { setTimeout } from 'node:timers/promises'
import t, { type Test } from 'tap'
import mqtt from 'mqtt'
import type { Pipeline } from '../bin/pipeline.ts'
import { deviceRegistry, qualified } from '../ingest/index.ts'
import { makeCity, makePolicies, policyDevices, policyRegistry, type DeviceMessage, type TripTruth } from '../edge-sim/index.ts'
import { startServices, startTestPipeline, untilStored, type Services } from './harness.ts'

const city = makeCity()
const policies = makePolicies(city, 3)
const trips: TripTruth[] = []
const messages: DeviceMessage[] = policies
  .flatMap((p) => policyDevices(city, p, { startTs: Date.UTC(2026, 10, 16), days: 3, imuHz: 10, onTrip: (_, trip) => trips.push(trip) }))
  .flatMap((d) => [...d.messages])
  .sort((a, b) => a.sendAt - b.sendAt)
const registry = deviceRegistry(policyRegistry(policies))

/**
 * Runs the pipeline over `batches` in database `db`, one after the other, `between` each two, then
 * stops it (flushing InfluxDB).
 */
async function run(
  t: Parameters<typeof startServices>[0], services: Services, db: string, dataDir: string, batches: readonly (readonly DeviceMessage[])[],
  options: { policyIdleMs?: number; between?: (pipeline: Pipeline) => Promise<void> } = {},
): Promise<void> {
  const pipeline = await startTestPipeline(t, services, [], db, { devices: registry, dataDir, policyIdleMs: options.policyIdleMs })
  const device = await mqtt.connectAsync(services.mqttUrl, { clientId: `sim-${db}` })
  let sent = 0
  for (const [i, batch] of batches.entries()) {
    if (i > 0) await options.between?.(pipeline)
    await Promise.all(batch.map((m) => device.publishAsync(m.topic, m.payload, { qos: 1 })))
    await untilStored(pipeline, (sent += batch.length))
  }
  await device.endAsync()
  await pipeline.stop()
}

/** Records what ubiq publishes on `topics` until `stop`: payloads as sorted text. */
async function record(services: Services, name: string, topics: string[]) {
  const client = await mqtt.connectAsync(services.mqttUrl, { clientId: `recorder-${name}` })
  const got: string[] = []
  client.on('message', (_topic, payload) => got.push(payload.toString()))
  await client.subscribeAsync(topics, { qos: 1 })
  return async () => {
    await client.endAsync()
    return got.sort()
  }
}

/** Every row of `measurement`, tags included, as comparable text. */
async function rows(services: Services, db: string, measurement: string): Promise<string[]> {
  const series = await services.influxql(db, `SELECT * FROM ${qualified(measurement)} GROUP BY *`)
  return series.flatMap((s) => s.values.map((v) => JSON.stringify([s.tags, ...v]))).sort()
}

const services = await startServices(t)
// Stop (or idle) in the middle of the first trip of the second day.
const trip = trips.filter((x) => x.startTs > Date.UTC(2026, 10, 17)).sort((a, b) => a.startTs - b.startTs)[0]!
const split = (trip.startTs + trip.endTs) / 2
const before = messages.filter((m) => m.sendAt < split)
const after = messages.filter((m) => m.sendAt >= split)
/** The end of the day open at the split: a stop or an idle expiry closes it early. */
const splitDayEnd = Math.floor(split / 86_400_000 + 1) * 86_400_000
// Published once each: rows in InfluxDB cannot show it (a point written twice is one point).
const published = ['ubiq/v1/events/+', 'ubiq/v1/scores/+']
const isDriving = (p: string) => !p.includes('"subject":"health"') && !p.includes('"subject":"home"')
const recordA = await record(services, 'a', published)
await run(t, services, 'uninterrupted', join(services.dataDir, 'a'), [messages])
const publishedA = await recordA()

/** What `db` stored and `publishedB` says, against the uninterrupted run's. */
async function sameAsUninterrupted(t: Test, db: string, publishedB: string[], what: string): Promise<void> {
  for (const measurement of ['trip', 'health_day', 'home_day', 'score', 'event']) {
    const [want, got] = [await rows(services, 'uninterrupted', measurement), await rows(services, db, measurement)]
    t.ok(want.length > 0, `${measurement}: ${want.length} rows`)
    t.same(got, want, `${measurement}: the same rows ${what}`)
  }
  t.ok(publishedA.length > 100, `${publishedA.length} events and scores published`)
  t.same(publishedB.filter(isDriving), publishedA.filter(isDriving), 'driving events and scores: each published once, as in the uninterrupted run')
  // The day open when its policy left memory (a stop, an idle expiry) is stored as it stood and
  // scored once complete: no score of a part of a day, to be priced in the full day's place (#20).
  t.same([...publishedB].filter((p) => !isDriving(p)).sort(), publishedA.filter((p) => !isDriving(p)).sort(), 'health and home events and scores: each published once, as in the uninterrupted run, none of a part of a day')
}

t.test('stopped mid-trip and started again, the pipeline stores the trips, days and scores of an uninterrupted run', async (t) => {
  t.ok(before.length > 1000 && after.length > 1000, `${before.length} messages before the stop, ${after.length} after`)
  const recordB = await record(services, 'b', published)
  await run(t, services, 'restarted', join(services.dataDir, 'b'), [before])
  await run(t, services, 'restarted', join(services.dataDir, 'b'), [after])
  const publishedB = await recordB()
  await sameAsUninterrupted(t, 'restarted', publishedB, 'after the restart')
  const [openAtStop] = await services.influxql('restarted', `SELECT end_ms, ended FROM ${qualified('trip')} WHERE time < ${split}ms AND end_ms > ${split}`)
  t.same(openAtStop?.values.map(([, endMs, ended]) => [endMs, ended]), [[Math.round(trip.endTs), 'ignition']], 'the trip open at the stop was stored whole, ended by its ignition off')
})

t.test('policies that leave scoring\'s memory mid-trip and come back are rebuilt from InfluxDB: the trips, days and scores of an uninterrupted run (#20 item 5)', async (t) => {
  const policyIdleMs = 2000
  const recordC = await record(services, 'c', published)
  await run(t, services, 'idled', join(services.dataDir, 'c'), [before, after], {
    policyIdleMs,
    // Until every policy has left memory: its open health and home days stored on expiry, and its
    // driving days (gone policyIdleMs after its last trip, which came before its last reading).
    async between() {
      for (;;) {
        const stored = await services.influxql('idled', `SELECT count(steps) FROM ${qualified('health_day')} WHERE time >= ${splitDayEnd - 86_400_000}ms GROUP BY policy_id`)
        const homes = await services.influxql('idled', `SELECT count(*) FROM ${qualified('home_day')} WHERE time >= ${splitDayEnd - 86_400_000}ms GROUP BY policy_id`)
        if (stored.length === policies.length && homes.length === policies.length) break
        await setTimeout(50)
      }
      await setTimeout(policyIdleMs)
    },
  })
  const publishedC = await recordC()
  await sameAsUninterrupted(t, 'idled', publishedC, 'after the idle expiry')
})
