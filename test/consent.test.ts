/**
 * Consent that lives, and tokens that can be revoked (#21 items 1 and 7), on a real Mosquitto with
 * ubiq's per-device credentials and ACL, and a real InfluxDB: a consent withdrawn mid-stream stops
 * storage from the moment it is acknowledged, granting it again from the device resumes it, a score
 * and its premium say which of its streams lost pricing consent (and the analyst's drill-down, which
 * is for pricing, serves it no more), every change is in the audit chain, and consent comes back
 * after a restart.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import mqtt from 'mqtt'
import WebSocket from 'ws'
import { makeFleet, runFleet } from '../edge-sim/index.ts'
import { deviceRegistry, qualified, topics, type DeviceEntry, type PolicyConsent, type Rejection } from '../ingest/index.ts'
import { auditRecords, examplePlans, loadPlans, openPolicyKeys, reveal, verifyAudit, type PremiumAdjustment } from '../pricing/index.ts'
import type { Score } from '../scoring/index.ts'
import { auditKeysFile, auditLogFile } from '../bin/pipeline.ts'
import { securedBroker, startServices, startTestPipeline } from './harness.ts'

const DB = 'ubiq_consent'
const until = async (ok: () => boolean) => {
  while (!ok()) await new Promise((r) => setTimeout(r, 20))
}

t.test('consent withdrawn mid-stream stops storage, granted again from the device resumes it; scores, audit and restart follow', async (t) => {
  const services = await startServices(t) // its InfluxDB; the broker here is the secured one
  const fleet = makeFleet(2, 11)
  const [a, b] = fleet as [typeof fleet[0], typeof fleet[0]]
  const devices: DeviceEntry[] = [
    ...fleet.map((v) => ({ deviceId: v.deviceId, policyId: v.policyId, kinds: ['status', 'obd', 'gps'] })),
    { deviceId: 'watch-0001', policyId: a.policyId, kinds: ['hr'] },
  ]
  const { credentials, broker, serviceUrl } = await securedBroker(t, services, devices)
  // Premiums from the first trip: no minimum distance.
  const [plan] = loadPlans(examplePlans)
  const driving = { ...plan!.subjects.driving!, credibility: { exposure: 'distance_km' as const, full: 1000, minimum: 0 } }
  const start = () => startTestPipeline(t, services, fleet, DB, { mqttUrl: serviceUrl, devices: deviceRegistry(devices), plans: [{ ...plan!, subjects: { driving } }] })
  let pipeline = await start()
  const api = (method: string, path: string, token?: string, body?: unknown) => fetch(`${pipeline.url}${path}`, {
    method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  })
  const holder = (policyId: string) => pipeline.auth.issue({ role: 'policyholder', policyId }, 3600_000)
  const analyst = () => pipeline.auth.issue({ role: 'analyst' }, 3600_000)
  const consents = `/api/v1/policies/${a.policyId}/consents`

  // Device A with its own credentials: it reads its rejections and the consent ubiq tells it.
  const device = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, username: a.deviceId, password: credentials.devices.get(a.deviceId) })
  t.teardown(() => device.endAsync())
  const rejected: Rejection[] = []
  const told: { seq?: number; by: string; consents: Record<string, string[]> }[] = []
  device.on('message', (topic, payload) => {
    if (topic === topics.rejected(a.deviceId)) rejected.push(JSON.parse(String(payload)) as Rejection)
    if (topic === topics.consent(a.deviceId)) told.push(JSON.parse(String(payload)) as typeof told[0])
  })
  await device.subscribeAsync([topics.rejected(a.deviceId), topics.consent(a.deviceId)], { qos: 1 })
  // One OBD reading a device second, a seq each (consent messages take seqs of the same counter).
  const t0 = Date.now() - 10 * 60_000
  let seq = 0
  const sendObd = () => {
    seq++
    return device.publishAsync(topics.device(a.deviceId, 'obd'), JSON.stringify({ seq, ts: t0 + seq * 1000, speed_kmh: 40 }), { qos: 1 })
  }
  const stored = async () => (await services.influxql(DB, `SELECT seq FROM ${qualified('obd')} WHERE device_id = '${a.deviceId}'`))[0]?.values.map((v) => Number(v[1])) ?? []

  for (let i = 0; i < 20; i++) await sendObd()
  while ((await stored()).length < 20) await new Promise((r) => setTimeout(r, 100))

  // Mid-stream: the device keeps sending while the policyholder withdraws OBD for every purpose.
  let streaming = true
  const stream = (async () => {
    while (streaming) {
      await sendObd()
      await new Promise((r) => setTimeout(r, 10))
    }
  })()
  while (seq < 40) await new Promise((r) => setTimeout(r, 10))
  const withdrawn = await api('POST', consents, holder(a.policyId), { streams: ['obd'], purposes: ['pricing', 'coaching', 'claims'], granted: false })
  t.equal(withdrawn.status, 200, 'the withdrawal is acknowledged')
  const lastBefore = seq // every message sent from here on was sent after the acknowledgement
  const ack = (await withdrawn.json()) as { change: { hash: string; by: { role: string } }; consent: PolicyConsent }
  t.match(ack.change, { by: { role: 'policyholder', tokenId: String }, hash: /^[0-9a-f]{64}$/ }, 'the change as recorded: who, and its audit hash')
  t.same(ack.consent.streams.find((s) => s.stream === 'obd')?.purposes, [], 'obd has no purpose left')
  while (seq < lastBefore + 30) await new Promise((r) => setTimeout(r, 10))
  streaming = false
  await stream
  // A message refused for consent is not read, so its rejection has no seq: count them.
  const refused = () => rejected.filter((r) => r.reason === 'no_consent' && r.kind === 'obd').length
  await until(() => refused() >= seq - lastBefore)
  t.pass(`the ${seq - lastBefore} readings sent after the acknowledgement are rejected with no_consent on ubiq/v1/rejected/${a.deviceId} (${refused()} in all)`)
  t.match(told.at(-1), { by: 'policyholder', consents: { obd: [], status: ['pricing'], gps: ['pricing'] } }, 'and the device is told its consent')

  // Granted again from the device, on its own consent topic: acknowledged there with its seq.
  const grantSeq = ++seq
  await device.publishAsync(topics.device(a.deviceId, 'consent'), JSON.stringify({ seq: grantSeq, ts: t0 + grantSeq * 1000, streams: ['obd'], purposes: ['pricing'], granted: true }), { qos: 1 })
  await until(() => told.some((n) => n.seq === grantSeq))
  t.match(told.find((n) => n.seq === grantSeq), { by: 'device', consents: { obd: ['pricing'] } }, 'the grant is acknowledged on ubiq/v1/consent/{device}')
  const resumedFrom = seq + 1
  for (let i = 0; i < 10; i++) await sendObd()
  // A change the device may not make is rejected with why: the watch's stream is not the car's.
  await device.publishAsync(topics.device(a.deviceId, 'consent'), JSON.stringify({ seq: ++seq, ts: t0 + seq * 1000, streams: ['hr'], purposes: ['pricing'], granted: false }), { qos: 1 })
  await until(() => rejected.some((r) => r.kind === 'consent'))
  t.match(rejected.find((r) => r.kind === 'consent'), { reason: 'invalid_payload', detail: /device veh-0001 is not registered for stream "hr"/ })

  await t.test('who may see and change consent, and what a change must be', async (t) => {
    const post = (path: string, token: string | undefined, body: unknown) => api('POST', path, token, body)
    const withdrawGps = { streams: ['gps'], purposes: ['pricing'], granted: false }
    t.equal((await post(consents, undefined, withdrawGps)).status, 401, 'no token: 401')
    t.equal((await post(consents, holder(b.policyId), withdrawGps)).status, 403, "another policy's token: 403")
    t.equal((await api('GET', consents, holder(b.policyId))).status, 403, 'to read too')
    const unknown = await post('/api/v1/policies/pol-none/consents', analyst(), withdrawGps)
    t.same([unknown.status, await unknown.json()], [404, { error: 'unknown_policy', message: 'no policy pol-none in the device registry', code: 'UBIQ_UNKNOWN_POLICY' }], 'a policy the registry does not know: 404, with its code')
    const cases: [string, unknown, RegExp][] = [
      ['a grant of location with other data', { streams: ['obd', 'gps'], purposes: ['pricing'], granted: true }, /location and health data are consented to separately/],
      ['a purpose that is not one', { streams: ['obd'], purposes: ['marketing'], granted: true }, /body\/purposes\/0 must be equal to one of the allowed values/],
      ['a stream that is not one', { streams: ['radar'], purposes: ['pricing'], granted: true }, /body\/streams\/0 must be equal to one of the allowed values/],
      ['no purposes', { streams: ['obd'], purposes: [], granted: true }, /body\/purposes must NOT have fewer than 1 items/],
      ['granted missing', { streams: ['obd'], purposes: ['pricing'] }, /must have required property 'granted'/],
      ['a stream none of the policy\'s devices sends', { streams: ['steps'], purposes: ['coaching'], granted: true }, /no device of policy pol-0001 is registered for stream "steps"/],
    ]
    for (const [name, body, message] of cases) {
      const res = await post(consents, holder(a.policyId), body)
      t.same([res.status, ((await res.json()) as { message: string }).message.match(message) !== null], [400, true], `${name}: 400 saying why`)
    }
    const health = (await (await post(consents, analyst(), { streams: ['hr'], purposes: ['coaching'], granted: true })).json()) as { change: { by: { role: string } }; consent: PolicyConsent }
    t.equal(health.change.by.role, 'analyst', 'an analyst grants a health purpose, alone')
    t.same(health.consent.streams.map((x) => [x.stream, x.category, x.purposes]), [['obd', 'other', ['pricing']], ['gps', 'location', ['pricing']], ['status', 'other', ['pricing']], ['hr', 'health', ['pricing', 'coaching']]])
    const read = (await (await api('GET', consents, holder(a.policyId))).json()) as PolicyConsent
    t.same(read.changes.map((c) => [c.by.role, c.streams, c.granted]), [['policyholder', ['obd'], false], ['device', ['obd'], true], ['analyst', ['hr'], true]], 'every change, who made it and what it was')
  })

  await t.test('a score and its premium say which of its streams lost pricing consent, and pricing goes on after the change', async (t) => {
    const scores: Score[] = []
    const premiums: PremiumAdjustment[] = []
    pipeline.scores$.subscribe((s) => s.policyId === b.policyId && scores.push(s))
    pipeline.premiums$.subscribe((p) => p.policyId === b.policyId && premiums.push(p))
    const run = await runFleet({ mqttUrl: broker.url, fleet: [b], startTs: Date.now() - 24 * 3600_000, speedup: 600, passwords: credentials.devices })
    t.teardown(() => run.stop())
    await until(() => scores.length >= 1)
    t.equal(scores[0]!.consent, undefined, 'before: no word about consent')
    const res = await api('POST', `/api/v1/policies/${b.policyId}/consents`, analyst(), { streams: ['gps'], purposes: ['pricing'], granted: false })
    const { change } = (await res.json()) as { change: { at: string } }
    const [scoresBefore, premiumsBefore] = [scores.length, premiums.length]
    await until(() => scores.length > scoresBefore + 1 && premiums.length > premiumsBefore)
    await run.stop()
    t.match(scores.at(-1)!.consent, [{ stream: 'gps', withdrawnAt: change.at, text: /^gps: consent for pricing withdrawn at .*; its readings from before then still count in this score, none since$/ }], 'after: the score names the stream and when')
    t.equal(scores.at(-1)!.consent!.length, 1)
    t.match(premiums.at(-1)!.reasons.filter((r) => r.code === 'consent'), [{ text: `gps: consent for pricing withdrawn at ${change.at}: priced on its readings from before then only`, effect: 0 }], 'and so does the premium, among its reasons')
    t.notOk(premiums[0]!.reasons.some((r) => r.code === 'consent'), 'which said nothing of it before')

    // The analyst's drill-down is for pricing: a stream withdrawn from it is not served, though kept
    // (for coaching here) and its readings from before stored.
    for (const change of [{ purposes: ['pricing'], granted: false }, { purposes: ['coaching'], granted: true }]) {
      t.equal((await api('POST', `/api/v1/policies/${b.policyId}/consents`, analyst(), { streams: ['obd'], ...change })).status, 200)
    }
    const readings = `/api/v1/policies/${b.policyId}/readings`
    const refused = await api('GET', `${readings}?kind=obd`, analyst())
    t.same([refused.status, await refused.json()], [403, { error: 'no_consent', message: `policy ${b.policyId} has withdrawn consent to use stream obd for pricing, the purpose of this view: not served` }], 'asked for by name: refused, saying why')
    const all = (await (await api('GET', readings, analyst())).json()) as { series: unknown[]; withheld: { kind: string; reason: string }[] }
    t.same(all.series, [], 'asked for all: none of its readings')
    t.match(all.withheld, [{ kind: 'obd', reason: /withdrawn consent to use stream obd for pricing/ }, { kind: 'gps' }], 'it is named among those withheld, with why')
  })

  await t.test('tokens: a revoked policy token is refused and its feed closed; only an analyst revokes', async (t) => {
    const token = holder(a.policyId)
    const ws = new WebSocket(`${pipeline.url.replace('http', 'ws')}/feed?token=${token}`)
    const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })))
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
    t.equal((await api('GET', consents, token)).status, 200, 'the token works')
    t.equal((await api('POST', '/api/v1/tokens/revocations', token, { policy: a.policyId })).status, 403, 'a policyholder cannot revoke')
    const bad = await api('POST', '/api/v1/tokens/revocations', analyst(), { policy: a.policyId, analysts: true })
    t.equal(bad.status, 400, 'one thing to revoke at a time')
    t.equal((await api('POST', '/api/v1/tokens/revocations', analyst(), { policy: a.policyId })).status, 200, 'an analyst revokes the policy\'s tokens')
    const refused = await api('GET', consents, token)
    t.same([refused.status, await refused.json()], [401, { error: 'revoked_token', message: 'the token has been revoked', code: 'UBIQ_AUTH_REVOKED_TOKEN' }], 'the token is refused from then on')
    t.same(await closed, { code: 4401, reason: 'the token has been revoked' }, 'and the feed it opened is closed')
    t.equal((await api('GET', `/api/v1/policies/${b.policyId}/consents`, holder(b.policyId))).status, 200, "another policy's token still works")
  })

  // Withdrawn before the restart: consent comes back from the audit chain.
  await new Promise((r) => setTimeout(r, 1000)) // a policyholder token of the revocation's second is revoked with it
  t.equal((await api('POST', consents, holder(a.policyId), { streams: ['gps'], purposes: ['pricing'], granted: false })).status, 200)
  await pipeline.stop()
  const storedSeqs = await stored()
  t.ok(storedSeqs.length >= 20 && storedSeqs.every((s) => s <= lastBefore || s >= resumedFrom), `nothing sent after the acknowledgement is stored (${storedSeqs.length} readings stored)`)
  t.same(storedSeqs.filter((s) => s >= resumedFrom).sort((x, y) => x - y), Array.from({ length: 10 }, (_, i) => resumedFrom + i), 'granted again, the next readings are stored')
  const refusedInFlight = refused() - (resumedFrom - 2 - lastBefore) // the grant itself took a seq
  t.equal(storedSeqs.filter((s) => s <= lastBefore).length + refusedInFlight, lastBefore, 'before it, each reading was stored, or (in flight at the change) rejected with no_consent')

  const file = auditLogFile(services.dataDir)
  const verdict = verifyAudit(file)
  // Written pseudonymous (#21 item 5), read back with the policies' keys as ubiq does at start.
  t.notMatch(readFileSync(file, 'utf8'), new RegExp(`${a.policyId}|${b.policyId}|${a.deviceId}`), 'the chain names no policy and no device')
  const keys = openPolicyKeys(auditKeysFile(services.dataDir))
  const records = [...auditRecords(file)].map((r) => reveal(r, keys)!)
  t.match(verdict, { ok: true, records: records.length }, 'ubiq audit verify: the chain holds, consent records in it')
  t.same(records.filter((r) => r.record === 'consent').map((r) => [r.policyId, r.by.role, r.streams, r.granted]), [
    [a.policyId, 'policyholder', ['obd'], false], [a.policyId, 'device', ['obd'], true], [a.policyId, 'analyst', ['hr'], true], [b.policyId, 'analyst', ['gps'], false], [b.policyId, 'analyst', ['obd'], false], [b.policyId, 'analyst', ['obd'], true], [a.policyId, 'policyholder', ['gps'], false],
  ], 'every change, in order, who and what')
  t.ok(records.some((r) => r.record === undefined && r.policyId === b.policyId && records.indexOf(r) > records.findIndex((c) => c.record === 'consent' && c.policyId === b.policyId)), 'a premium linked after a consent record')

  pipeline = await start()
  const back = (await (await api('GET', consents, analyst())).json()) as PolicyConsent
  t.same(back.streams.map((s) => [s.stream, s.purposes]), [['obd', ['pricing']], ['gps', []], ['status', ['pricing']], ['hr', ['pricing', 'coaching']]], 'after a restart, consent as it was')
  t.equal(back.changes.length, 4, 'with its changes')
  const [latest] = ((await (await api('GET', `/api/v1/policies/${b.policyId}/scores?limit=1`, analyst())).json()) as { scores: Score[] }).scores
  t.match(latest?.consent, [{ stream: 'gps' }], 'the stored score keeps its word about consent')
})
