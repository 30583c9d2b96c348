/**
 * The thin slice, end to end on real services: edge-sim publishes OBD readings for three vehicles
 * over MQTT → ingest validates and stores them in InfluxDB (v1 API) → scoring runs the ONNX model
 * → pricing publishes a retained premium → a websocket client of the dashboards receives its
 * policy's score and premium. Everything is read back from InfluxDB and MQTT and checked by value.
 */
import t from 'tap'
import mqtt from 'mqtt'
import WebSocket from 'ws'
import { driveObd, makeFleet, personas, runFleet } from '../edge-sim/index.ts'
import { qualified, topics, type Rejection } from '../ingest/index.ts'
import { examplePlans, loadPlans, type PremiumAdjustment, type WhatIf } from '../pricing/index.ts'
import type { Score } from '../scoring/index.ts'
import type { FeedMessage } from '../dashboards/index.ts'
import { firstMatch, startServices, startTestPipeline } from './harness.ts'

const SAMPLES = 900 // 15 minutes of 1 Hz driving per vehicle
const DB = 'ubiq_e2e'

t.test('a simulated fleet is stored, scored, priced and fed to its policyholder', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(3, 7) // cautious, average, aggressive
  const [cautious, , aggressive] = fleet as [typeof fleet[0], typeof fleet[0], typeof fleet[0]]
  // The example plan moves no premium before 50 km; a quarter of an hour of driving is ~10 km.
  const [plan] = loadPlans(examplePlans)
  const driving = { ...plan!.subjects.driving!, credibility: { exposure: 'distance_km' as const, full: 1000, minimum: 0 } }
  const pipeline = await startTestPipeline(t, services, fleet, DB, { plans: [{ ...plan!, subjects: { driving } }] })

  // The aggressive driver's policyholder watches the feed; so does the cautious one.
  const feeds = new Map(await Promise.all([aggressive, cautious].map(async (v) => {
    const token = pipeline.auth.issue({ role: 'policyholder', policyId: v.policyId }, 3600_000)
    const ws = new WebSocket(`${pipeline.url.replace('http', 'ws')}/feed?token=${token}`)
    const got: FeedMessage[] = []
    ws.on('message', (data) => got.push(JSON.parse(String(data)) as FeedMessage))
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
    t.teardown(() => ws.close())
    return [v.policyId, got] as const
  })))

  // Bad input goes in beside the fleet: an unknown device, an out-of-range value, a resend.
  const rejections: Rejection[] = []
  const probe = await mqtt.connectAsync(services.mqttUrl, { clientId: 'e2e-probe' })
  t.teardown(() => probe.endAsync())
  probe.on('message', (topic, payload) => {
    if (topic.startsWith('ubiq/v1/rejected/')) rejections.push(JSON.parse(String(payload)) as Rejection)
  })
  await probe.subscribeAsync('ubiq/v1/rejected/+', { qos: 1 })

  const startTs = Date.now() - 2 * 3600_000
  const lastTs = startTs + (SAMPLES - 1) * 1000
  // Each policy's score over its whole drive, and the premium that follows from it (listening
  // from before the first message, as scores$ and premiums$ are hot).
  const finalScore$ = fleet.map((v) => [v.policyId, firstMatch(pipeline.scores$, (s) => s.policyId === v.policyId && s.window.to === lastTs)] as const)
  const finalPremium$ = fleet.map((v) => [v.policyId, firstMatch(pipeline.premiums$, (p) => p.policyId === v.policyId && p.effectiveFrom === new Date(lastTs).toISOString())] as const)
  const run = await runFleet({ mqttUrl: services.mqttUrl, fleet, startTs, speedup: Infinity, samples: SAMPLES })
  await probe.publishAsync(topics.device('veh-9999', 'obd'), JSON.stringify({ seq: 0, ts: startTs, speed_kmh: 50 }), { qos: 1 })
  await probe.publishAsync(topics.device(cautious.deviceId, 'obd'), JSON.stringify({ seq: 100_000, ts: startTs, speed_kmh: 999 }), { qos: 1 })
  await run.done
  const resent = driveObd(personas[cautious.persona], cautious.seed, startTs).next().value
  // A resend re-stamped with a new time: were it not dropped, InfluxDB would hold a second row.
  await probe.publishAsync(topics.device(cautious.deviceId, 'obd'), JSON.stringify({ seq: 0, ...resent, ts: resent.ts + 500 }), { qos: 1 })
  t.equal(run.acknowledged, 3 * (SAMPLES + 2), 'the broker acknowledged every simulated message: ignition on, the samples, ignition off')

  const finalScores = new Map(await Promise.all(finalScore$.map(async ([id, p]) => [id, await p] as const)))
  const finalPremiums = new Map(await Promise.all(finalPremium$.map(async ([id, p]) => [id, await p] as const)))
  // While the pipeline runs: the simulator answers from its latest scores and standings.
  await t.test('the premium simulator prices changed behaviour with the same model and plan', async (t) => {
    const whatIf = (policyId: string, body: unknown) => fetch(`${pipeline.url}/api/v1/policies/${policyId}/what-if/driving`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${pipeline.auth.issue({ role: 'policyholder', policyId }, 60_000)}` }, body: JSON.stringify(body),
    })
    const latest = finalPremiums.get(aggressive.policyId)!
    const res = await whatIf(aggressive.policyId, { scale: { harsh_braking_per_hour: 0.2, harsh_acceleration_per_hour: 0.2 }, set: { speeding_share: 0 } })
    t.equal(res.status, 200)
    const w = (await res.json()) as WhatIf
    t.match(w, { policyId: aggressive.policyId, subject: 'driving', model: finalScores.get(aggressive.policyId)!.model, ruleset: latest.ruleset })
    t.same([w.now.score, w.now.factor, w.now.premium], [finalScores.get(aggressive.policyId)!.value, latest.factor, latest.premium], 'unchanged, it is the latest score and premium exactly')
    t.equal(w.changed.features.harsh_braking_per_hour, w.now.features.harsh_braking_per_hour! * 0.2)
    t.ok(w.changed.score > w.now.score, `calmer driving scores higher: ${w.now.score} → ${w.changed.score}`)
    t.ok(w.changed.factor <= w.now.factor, `and pays no more: ×${w.now.factor} → ×${w.changed.factor}`)
    t.ok(w.changed.reasons.every((r) => typeof r.text === 'string' && r.text.length > 0), 'with its reasons')
    const bad: [unknown, number, RegExp][] = [
      [{ scale: { shoe_size: 2 } }, 400, /has no feature shoe_size; it has harsh_braking_per_hour,[^;]*, and the plan prices km_per_year, night_share/],
      [{ scale: { harsh_braking_per_hour: -1 } }, 400, /\/scale\/harsh_braking_per_hour: Expected number to be greater or equal to 0/],
      [{ colour: 'red' }, 400, /\/colour: Unexpected property/],
      [{}, 400, /no change: give scale, set or more/],
    ]
    for (const [body, status, message] of bad) {
      const r = await whatIf(aggressive.policyId, body)
      t.equal(r.status, status, JSON.stringify(body))
      t.match(((await r.json()) as { message: string }).message, message)
    }
    t.equal((await whatIf('pol-nobody', { set: { night_share: 0 } })).status, 404, 'a policy without a score')
  })

  await pipeline.stop() // flushes InfluxDB

  t.test('InfluxDB holds every valid reading once, with the values the devices sent', async (t) => {
    const counts = await services.influxql(DB, `SELECT count(speed_kmh) FROM ${qualified('obd')} GROUP BY device_id`)
    t.same(
      Object.fromEntries(counts.map((s) => [s.tags!.device_id, s.values[0]![1]])),
      Object.fromEntries(fleet.map((v) => [v.deviceId, SAMPLES])),
      'one row per (device, seq): nothing lost, the resend not stored again, the rejected messages not at all',
    )
    for (const v of fleet) {
      const sent = [...take(driveObd(personas[v.persona], v.seed, startTs), SAMPLES)]
      const [stats] = await services.influxql(DB, `SELECT sum(speed_kmh), max(engine_rpm) FROM ${qualified('obd')} WHERE device_id = '${v.deviceId}'`)
      t.equal(round(stats!.values[0]![1] as number), round(sent.reduce((a, s) => a + s.speed_kmh, 0)), `${v.deviceId}: stored speeds sum to what was sent`)
      t.equal(stats!.values[0]![2], Math.max(...sent.map((s) => s.engine_rpm)), `${v.deviceId}: stored rpm peak is what was sent`)
      const [row] = await services.influxql(DB, `SELECT seq, speed_kmh FROM ${qualified('obd')} WHERE device_id = '${v.deviceId}' AND time = ${sent[123]!.ts}ms`)
      t.same(row!.values[0], [sent[123]!.ts, 124, sent[123]!.speed_kmh], `${v.deviceId}: sample 123 (seq 124, after the ignition on) stored at its device time with its seq`)
    }
  })

  t.test('scores come from the model, with reasons, and order the personas by risk', async (t) => {
    const value = (v: { policyId: string }) => finalScores.get(v.policyId)!.value
    t.ok(value(cautious) > value(aggressive), `cautious ${value(cautious)} scores safer than aggressive ${value(aggressive)}`)
    const aggr = finalScores.get(aggressive.policyId)!
    t.equal(aggr.model, 'driving-frequency@3')
    t.ok((aggr.exposure.distance_km ?? 0) > 5, `aggressive drove ${aggr.exposure.distance_km} km`)
    t.ok(aggr.reasons.length > 0 && aggr.reasons[0]!.impact < 0, `the aggressive score's main reason lowers it: ${aggr.reasons[0]?.text}`)
    const stored = await services.influxql(DB, `SELECT last(value) FROM score GROUP BY policy_id`)
    t.same(
      Object.fromEntries(stored.map((s) => [s.tags!.policy_id, s.values[0]![1]])),
      Object.fromEntries(fleet.map((v) => [v.policyId, value(v)])),
      'the last stored score per policy is the final score',
    )
  })

  t.test('premiums are published retained and stored, riskier drivers paying more', async (t) => {
    const factor = (v: { policyId: string }) => finalPremiums.get(v.policyId)!.factor
    t.ok(factor(aggressive) > factor(cautious), `aggressive ×${factor(aggressive)} > cautious ×${factor(cautious)}`)
    const retained = new Map<string, PremiumAdjustment>()
    const late = await mqtt.connectAsync(services.mqttUrl, { clientId: 'e2e-late-subscriber' })
    late.on('message', (_topic, payload, packet) => {
      if (packet.retain) retained.set((JSON.parse(String(payload)) as PremiumAdjustment).policyId, JSON.parse(String(payload)))
    })
    await late.subscribeAsync('ubiq/v1/premiums/+/driving', { qos: 1 })
    while (retained.size < fleet.length) await new Promise((r) => setTimeout(r, 20))
    await late.endAsync()
    for (const v of fleet) {
      t.same(retained.get(v.policyId), finalPremiums.get(v.policyId), `${v.policyId}: the retained premium is the final adjustment`)
    }
    const stored = await services.influxql(DB, `SELECT last(factor), last(hash) FROM premium GROUP BY policy_id`)
    t.same(
      Object.fromEntries(stored.map((s) => [s.tags!.policy_id, [s.values[0]![1], s.values[0]![2]]])),
      Object.fromEntries(fleet.map((v) => [v.policyId, [factor(v), finalPremiums.get(v.policyId)!.hash]])),
      'the stored premium per policy is the final one, hash included',
    )
  })

  t.test('each policyholder feed carries only its own policy, scores and premiums both', async (t) => {
    for (const v of [aggressive, cautious]) {
      const got = feeds.get(v.policyId)!
      const ids = new Set(got.map((m) => (m.type === 'score' ? m.score.policyId : m.type === 'premium' ? m.premium.policyId : m.event.policyId)))
      t.same([...ids], [v.policyId], `${v.policyId} saw only its own policy`)
      t.same(got.map((m) => m.seq), got.map((m) => m.seq).sort((a, b) => a - b), 'in feed order')
      const lastScore = got.filter((m) => m.type === 'score').at(-1)
      const lastPremium = got.filter((m) => m.type === 'premium').at(-1)
      t.same(lastScore && lastScore.type === 'score' && lastScore.score, finalScores.get(v.policyId), `${v.policyId}: the feed's last score is the final score`)
      t.same(lastPremium && lastPremium.type === 'premium' && lastPremium.premium, finalPremiums.get(v.policyId), `${v.policyId}: the feed's last premium is the final premium`)
    }
  })

  t.test('bad messages are rejected with a reason on the rejected topic', async (t) => {
    t.match(rejections, [
      { deviceId: 'veh-9999', reason: 'unknown_device' },
      { deviceId: cautious.deviceId, reason: 'invalid_payload', seq: 100_000, detail: /speed_kmh/ },
    ])
    t.equal(rejections.length, 2, 'nothing else was rejected')
    const metrics = await pipeline.metrics.metrics()
    t.match(metrics, /ubiq_ingest_duplicates_total 1\b/, 'the resend was dropped as a duplicate, not stored or scored again')
    t.match(metrics, /ubiq_ingest_messages_rejected_total\{reason="unknown_device"\} 1\b/)
  })
})

function* take<T>(it: Iterator<T>, n: number): Generator<T> {
  for (let i = 0; i < n; i++) yield it.next().value as T
}
const round = (x: number) => Math.round(x * 10) / 10
