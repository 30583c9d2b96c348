/**
 * A restart loses nothing and changes nothing: the same simulated days through one uninterrupted
 * pipeline, and through a pipeline stopped in the middle of a trip and started again, give the same
 * trips, days and scores in InfluxDB. Real Mosquitto, real InfluxDB, the whole pipeline.
 */
import { join } from 'node:path'
import t from 'tap'
import mqtt from 'mqtt'
import { deviceRegistry } from '../ingest/index.ts'
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

/** Every row of `measurement`, tags included, as comparable text. */
async function rows(services: Services, db: string, measurement: string): Promise<string[]> {
  const series = await services.influxql(db, `SELECT * FROM ${measurement} GROUP BY *`)
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

  await run(t, services, 'uninterrupted', join(services.dataDir, 'a'), messages)
  await run(t, services, 'restarted', join(services.dataDir, 'b'), before)
  await run(t, services, 'restarted', join(services.dataDir, 'b'), after)

  for (const measurement of ['trip', 'health_day', 'home_day', 'score', 'event']) {
    const [want, got] = [await rows(services, 'uninterrupted', measurement), await rows(services, 'restarted', measurement)]
    t.ok(want.length > 0, `${measurement}: ${want.length} rows`)
    t.same(got, want, `${measurement}: the same rows after the restart`)
  }
  const [openAtStop] = await services.influxql('restarted', `SELECT end_ms FROM trip WHERE time < ${split}ms AND end_ms > ${split}`)
  t.equal(openAtStop?.values.length, 1, 'the trip open at the stop was stored once, whole')
})
