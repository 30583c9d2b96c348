/**
 * The demo's own fleet (bin/demo.ts, as `ubiq demo` runs it) against the real pipeline: the cars
 * send positions on the simulated city's roads, scoring reads that city's road map, and speeding
 * events come (#23: the demo's cars sent no positions, so nobody was ever speeding).
 */
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { qualified } from '../ingest/index.ts'
import type { PolicyEvent } from '../scoring/index.ts'
import { firstMatch, startServices, testLogger } from '../test/harness.ts'
import { startPipeline } from './pipeline.ts'
import { demoFleet } from './demo.ts'

t.test('the demo: cars with positions on the road map, and speeding events', async (t) => {
  const services = await startServices(t)
  const demo = demoFleet({ vehicles: 3, seed: 1, dataDir: mkdtempSync(join(tmpdir(), 'ubiq-demo-')) })
  const pipeline = await startPipeline({
    mqttUrl: services.mqttUrl, influx: { api: 'v1', url: services.influxUrl, database: 'ubiq_demo' }, devices: demo.registry,
    dataDir: services.dataDir, host: '127.0.0.1', port: 0, roadMapFile: demo.roadMapFile,
  }, testLogger())
  t.teardown(() => pipeline.stop())
  t.same(demo.registry.get('veh-0001')?.kinds, ['status', 'obd', 'gps', 'imu', 'imu_device', 'crash'], 'a car registered for its positions')

  const speeding = firstMatch(pipeline.events$, (e: PolicyEvent) => e.type === 'speeding')
  // As `ubiq demo --speedup 600`: the hour before now in 6 s, then live.
  const run = await demo.run(services.mqttUrl, 600)
  t.teardown(() => run.stop())
  const event = await speeding
  t.match(event, { subject: 'driving', evidence: { limit_kmh: Number } }, `speeding on ${event.policyId}'s car, against the road's limit`)
  const gps = await services.influxql('ubiq_demo', `SELECT count(lat_deg) FROM ${qualified('gps')}`)
  t.ok(Number(gps[0]?.values[0]?.[1]) > 0, 'positions stored')
})
