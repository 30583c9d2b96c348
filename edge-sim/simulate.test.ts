import t from 'tap'
import { deviceRegistry, retentionPolicyNames } from '../ingest/index.ts'
import { startServices, startTestPipeline, untilStored } from '../test/harness.ts'
import { makeCity, makePolicies, policyDevices, policyRegistry, runSimulation } from './index.ts'

t.test('a simulated fleet with faults through a real broker and ingest: what was injected is what ingest saw', async (t) => {
  const services = await startServices(t)
  const city = makeCity({ seed: 3 })
  const policies = makePolicies(city, 2, { seed: 3 })
  const pipeline = await startTestPipeline(t, services, [], 'ubiq_sim', { devices: deviceRegistry(policyRegistry(policies)) })
  // A weekday morning with its commutes, in the past: sent as fast as the broker acknowledges.
  const startTs = Date.UTC(2026, 10, 16, 6, 30)
  const devices = policies.flatMap((p) => policyDevices(city, p, { startTs, days: 0.125, imuHz: 10, faults: { duplicate: 0.03, malformed: 0.01 } }))
  t.equal(devices.length, 6, 'a car, a wearable and a home per policy')
  const run = await runSimulation({ mqttUrl: services.mqttUrl, devices, startTs, speedup: Infinity })
  await run.done
  const injected = devices.reduce((n, d) => ({ messages: n.messages + d.faults.messages, duplicate: n.duplicate + d.faults.duplicate, malformed: n.malformed + d.faults.malformed }), { messages: 0, duplicate: 0, malformed: 0 })
  t.ok(injected.messages > 1000 && injected.duplicate > 10 && injected.malformed > 3, `a commute's worth of messages, with faults: ${JSON.stringify(injected)}`)
  t.equal(run.acknowledged, injected.messages + injected.duplicate, 'the broker acknowledged every message and every duplicate')
  t.equal(run.refused, 0)
  await untilStored(pipeline, injected.messages - injected.malformed)
  const metric = async (name: string) => Number(/ (\d+)$/.exec((await pipeline.metrics.getSingleMetricAsString(name)).trim())?.[1] ?? NaN)
  t.equal(await metric('ubiq_ingest_messages_stored_total'), injected.messages - injected.malformed, 'each good message stored once')
  // A duplicate of a malformed message is rejected as malformed, not counted as a duplicate.
  const rejected = await pipeline.metrics.getSingleMetricAsString('ubiq_ingest_messages_rejected_total')
  const malformedRejected = Number(/reason="malformed_json"\} (\d+)/.exec(rejected)?.[1] ?? 0)
  t.equal((await metric('ubiq_ingest_duplicates_total')) + malformedRejected, injected.duplicate + injected.malformed, 'every duplicate dropped, every malformed payload rejected')
})

t.test('devices sharing connections: every device\'s stream arrives whole, on its own topics', async (t) => {
  const services = await startServices(t)
  const city = makeCity({ seed: 4 })
  const policies = makePolicies(city, 2, { seed: 4 })
  const pipeline = await startTestPipeline(t, services, [], 'ubiq_sim_shared', { devices: deviceRegistry(policyRegistry(policies)) })
  const startTs = Date.UTC(2026, 10, 16, 7)
  const streams = () => policies.flatMap((p) => policyDevices(city, p, { startTs, days: 0.05, imuHz: 0 }))
  // The same seed gives the same streams: one copy counted here, the other published.
  const expected: Record<string, number> = Object.fromEntries(streams().map((d) => [d.deviceId, [...d.messages].length] as const).filter(([, n]) => n > 0))
  const devices = streams()
  const run = await runSimulation({ mqttUrl: services.mqttUrl, devices, startTs, speedup: Infinity, connections: 2 })
  t.equal(run.clients, 2, 'six devices, two MQTT clients')
  t.equal(run.connected, 6)
  await run.done
  const sent = Object.values(expected).reduce((a, b) => a + b)
  t.equal(run.acknowledged, sent, 'the broker acknowledged every message')
  await untilStored(pipeline, sent)
  await pipeline.stop()
  const stored = await services.influxql('ubiq_sim_shared', `SELECT count(seq) FROM ${retentionPolicyNames.map((rp) => `"${rp}"./.*/`).join(', ')} GROUP BY device_id`)
  const perDevice = new Map<string, number>()
  for (const s of stored) perDevice.set(s.tags!.device_id!, (perDevice.get(s.tags!.device_id!) ?? 0) + Number(s.values[0]![1]))
  t.same(Object.fromEntries(perDevice), expected, 'each device\'s messages stored under its own id')
})
