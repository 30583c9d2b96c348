/** Clock skew per device, measured by the real ingest and reported over REST and /metrics. */
import t from 'tap'
import mqtt from 'mqtt'
import { makeFleet } from '../edge-sim/index.ts'
import { topics } from '../ingest/index.ts'
import { startServices, startTestPipeline, untilStored } from './harness.ts'

t.test('a device whose clock is 45 s behind is reported as such', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(1, 1)
  const pipeline = await startTestPipeline(t, services, fleet, 'ubiq_clock')
  const device = await mqtt.connectAsync(services.mqttUrl, { clientId: 'skewed' })
  // Each at its own device time: a stream's second reading at one time is rejected (duplicate_time, #20).
  const behind = Date.now() - 45_000
  for (let seq = 0; seq < 3; seq++) {
    await device.publishAsync(topics.device(fleet[0]!.deviceId, 'obd'), JSON.stringify({ seq, ts: behind - seq, speed_kmh: 50 }), { qos: 1 })
  }
  await device.endAsync()
  await untilStored(pipeline, 3)

  const analyst = { headers: { authorization: `Bearer ${pipeline.auth.issue({ role: 'analyst' }, 60_000)}` } }
  const res = await fetch(`${pipeline.url}/api/v1/devices/${fleet[0]!.deviceId}/clock`, analyst)
  const clock = (await res.json()) as { skewMs: number; samples: number }
  t.ok(clock.skewMs >= 45_000 && clock.skewMs < 46_000, `skew ${clock.skewMs} ms: 45 s plus the least delivery delay`)
  t.equal(clock.samples, 3)
  t.match(await pipeline.metrics.getSingleMetricAsString('ubiq_ingest_devices_clock_skewed'), / 1$/, 'counted among skewed devices in /metrics')
  t.equal((await fetch(`${pipeline.url}/api/v1/devices/veh-9999/clock`, analyst)).status, 404, 'a device not heard from: 404')
  t.equal((await fetch(`${pipeline.url}/api/v1/devices/not%2Fan%2Fid/clock`, analyst)).status, 400, 'not a device id: 400')
  t.equal((await fetch(`${pipeline.url}/api/v1/devices/${fleet[0]!.deviceId}/clock`)).status, 401, 'no token: 401')
  const policyholder = { headers: { authorization: `Bearer ${pipeline.auth.issue({ role: 'policyholder', policyId: fleet[0]!.policyId }, 60_000)}` } }
  t.equal((await fetch(`${pipeline.url}/api/v1/devices/${fleet[0]!.deviceId}/clock`, policyholder)).status, 403, "devices are operators' business: a policyholder gets 403")
})
