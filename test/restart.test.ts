/**
 * A restart loses nothing and changes nothing: the same simulated days through one uninterrupted
 * pipeline, and through a pipeline stopped in the middle of a trip and started again, give the same
 * trips, days and scores in InfluxDB. Real Mosquitto, real InfluxDB, the whole pipeline.
 */
import { join } from 'node:path'
import t from 'tap'
import mqtt from 'mqtt'
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

/** Runs the pipeline over `batch` in database `db`, then stops it (flushing InfluxDB). */
async function run(t: Parameters<typeof startServices>[0], services: Services, db: string, dataDir: string, batch: readonly DeviceMessage[]): Promise<void> {
  const pipeline = await startTestPipeline(t, services, [], db, { devices: registry, dataDir })
  const device = await mqtt.connectAsync(services.mqttUrl, { clientId: `sim-${db}` })
  await Promise.all(batch.map((m) => device.publishAsync(m.topic, m.payload, { qos: 1 })))
  await device.endAsync()
  await untilStored(pipeline, batch.length)
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

t.test('stopped mid-trip and started again, the pipeline stores the trips, days and scores of an uninterrupted run', async (t) => {
  const services = await startServices(t)
  // Stop in the middle of the first trip of the second day.
  const trip = trips.filter((x) => x.startTs > Date.UTC(2026, 10, 17)).sort((a, b) => a.startTs - b.startTs)[0]!
  const split = (trip.startTs + trip.endTs) / 2
  const before = messages.filter((m) => m.sendAt < split)
  const after = messages.filter((m) => m.sendAt >= split)
  t.ok(before.length > 1000 && after.length > 1000, `${before.length} messages before the stop, ${after.length} after`)

  // Published once each: rows in InfluxDB cannot show it (a point written twice is one point).
  const published = ['ubiq/v1/events/+', 'ubiq/v1/scores/+']
  const recordA = await record(services, 'a', published)
  await run(t, services, 'uninterrupted', join(services.dataDir, 'a'), messages)
  const publishedA = await recordA()
  const recordB = await record(services, 'b', published)
  await run(t, services, 'restarted', join(services.dataDir, 'b'), before)
  await run(t, services, 'restarted', join(services.dataDir, 'b'), after)
  const publishedB = await recordB()

  for (const measurement of ['trip', 'health_day', 'home_day', 'score', 'event']) {
    const [want, got] = [await rows(services, 'uninterrupted', measurement), await rows(services, 'restarted', measurement)]
    t.ok(want.length > 0, `${measurement}: ${want.length} rows`)
    t.same(got, want, `${measurement}: the same rows after the restart`)
  }
  const [openAtStop] = await services.influxql('restarted', `SELECT end_ms, ended FROM ${qualified('trip')} WHERE time < ${split}ms AND end_ms > ${split}`)
  t.same(openAtStop?.values.map(([, endMs, ended]) => [endMs, ended]), [[Math.round(trip.endTs), 'ignition']], 'the trip open at the stop was stored whole, ended by its ignition off')
  const isDriving = (p: string) => !p.includes('"subject":"health"') && !p.includes('"subject":"home"')
  t.ok(publishedA.length > 100, `${publishedA.length} events and scores published`)
  t.same(publishedB.filter(isDriving), publishedA.filter(isDriving), 'driving events and scores: each published once, as in the uninterrupted run')
  // Health and home: everything the uninterrupted run published, and besides it the score of each
  // policy's day as it stood at the stop (a stop closes the open day early; known, see the note on #5).
  const extra = [...publishedB]
  for (const p of publishedA) extra.splice(extra.indexOf(p), extra.includes(p) ? 1 : 0)
  t.equal(publishedB.length - extra.length, publishedA.length, 'health and home: all the uninterrupted run published, was published')
  const stopDayEnd = Math.floor(split / 86_400_000 + 1) * 86_400_000
  t.same(extra.map((p) => JSON.parse(p) as { subject: string; window: { to: number } }).map((s) => [s.subject, s.window.to]).sort(),
    [...Array(3).fill(['health', stopDayEnd]), ...Array(3).fill(['home', stopDayEnd])], 'and one score more per policy and subject: its day as it stood at the stop')
})
