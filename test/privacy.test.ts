/**
 * Privacy mode (#21 item 2) on a real Mosquitto with ubiq's per-device credentials and ACL, and a
 * real InfluxDB: a location pause keeps every position of its window out of InfluxDB while the
 * other streams are stored, the premium of a trip driven in it says how it was priced, a pause
 * ends on time (and early, from the page or the device), bad pauses are refused with reasons, and
 * every pause and end is in the audit chain.
 */
import t from 'tap'
import mqtt from 'mqtt'
import { makeFleet } from '../edge-sim/index.ts'
import { deviceRegistry, qualified, topics, type Pause, type Rejection } from '../ingest/index.ts'
import { auditRecords, examplePlans, loadPlans, verifyAudit, type PremiumAdjustment } from '../pricing/index.ts'
import type { Score } from '../scoring/index.ts'
import { auditLogFile } from '../bin/pipeline.ts'
import { firstMatch, securedBroker, startServices, startTestPipeline } from './harness.ts'
import { openBrowser } from './browser.ts'

const DB = 'ubiq_privacy'
const until = async (ok: () => boolean) => {
  while (!ok()) await new Promise((r) => setTimeout(r, 20))
}
const iso = (ms: number) => new Date(ms).toISOString()

t.test('privacy mode: positions paused are not stored, the premium says how the trip was priced, pauses end on time, bad ones are refused', async (t) => {
  const services = await startServices(t)
  const [a, b] = makeFleet(2, 11) as [ReturnType<typeof makeFleet>[0], ReturnType<typeof makeFleet>[0]]
  const devices = [a, b].map((v) => ({ deviceId: v.deviceId, policyId: v.policyId, kinds: ['status', 'obd', 'gps'] }))
  const { credentials, broker, serviceUrl } = await securedBroker(t, services, devices)
  // The shipped plan (20% of driving in privacy mode priced neutral, the rest at factor 1.3), premiums from the first trip.
  const [plan] = loadPlans(examplePlans)
  const driving = { ...plan!.subjects.driving!, credibility: { exposure: 'distance_km' as const, full: 1000, minimum: 0 } }
  const pipeline = await startTestPipeline(t, services, [a, b], DB, { mqttUrl: serviceUrl, devices: deviceRegistry(devices), plans: [{ ...plan!, subjects: { driving } }] })
  const api = async (method: string, path: string, token?: string, body?: unknown) => {
    const res = await fetch(`${pipeline.url}${path}`, {
      method, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    })
    return { status: res.status, body: (await res.json()) as { message: string; pause: Pause & { until: string; state: string }; pauses: (Pause & { state: string })[] } }
  }
  const holder = pipeline.auth.issue({ role: 'policyholder', policyId: a.policyId }, 3600_000)
  const analyst = pipeline.auth.issue({ role: 'analyst' }, 3600_000)
  const privacy = `/api/v1/policies/${a.policyId}/privacy`

  // The car, with its own credentials: it reads its rejections and the pauses ubiq tells it.
  const device = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0, username: a.deviceId, password: credentials.devices.get(a.deviceId) })
  t.teardown(() => device.endAsync())
  const rejected: Rejection[] = []
  const told: { seq?: number; by: string; change: { action: string; id: string }; pauses: { id: string; scope: string; from: string; to: string }[] }[] = []
  device.on('message', (topic, payload) => {
    if (topic === topics.rejected(a.deviceId)) rejected.push(JSON.parse(String(payload)) as Rejection)
    if (topic === topics.privacy(a.deviceId)) told.push(JSON.parse(String(payload)) as typeof told[0])
  })
  await device.subscribeAsync([topics.rejected(a.deviceId), topics.privacy(a.deviceId)], { qos: 1 })
  let seq = 0
  const send = (kind: string, ts: number, body: Record<string, unknown>) => device.publishAsync(topics.device(a.deviceId, kind), JSON.stringify({ seq: ++seq, ts, ...body }), { qos: 1 })
  const fix = (ts: number, i: number) => send('gps', ts, { lat_deg: 52 + i * 0.0001, lon_deg: 4.9, accuracy_m: 5, speed_kmh: 40 })
  const stored = async (kind: string) => (await services.influxql(DB, `SELECT seq FROM ${qualified(kind)} WHERE device_id = '${a.deviceId}'`))[0]?.values.map((v) => Number(v[0])) ?? []
  const privacyRejections = () => rejected.filter((r) => r.reason === 'privacy_mode')

  // The policyholder pauses location for half an hour, from now.
  const paused = await api('POST', privacy, holder, { scope: 'location', minutes: 30 })
  t.equal(paused.status, 200, 'the policyholder pauses location')
  const p1 = paused.body.pause
  t.match(p1, { scope: 'location', by: { role: 'policyholder' }, state: 'in force', id: /^[0-9a-f]{64}$/ })
  t.equal(Date.parse(p1.to) - Date.parse(p1.from), 30 * 60_000, 'for 30 minutes')
  await until(() => told.some((n) => n.change.id === p1.id))
  t.match(told.at(-1), { by: 'policyholder', change: { action: 'pause' }, pauses: [{ id: p1.id, scope: 'location' }] }, 'the device is told, retained')

  // A trip in it: ignition, two minutes of OBD speed and GNSS fixes, ignition off.
  const T = Date.parse(p1.from)
  const premium = firstMatch(pipeline.premiums$, (p: PremiumAdjustment) => p.policyId === a.policyId)
  const score = firstMatch(pipeline.scores$, (s: Score) => s.policyId === a.policyId)
  await send('status', T + 1000, { ignition_on: true })
  for (let i = 1; i <= 120; i++) {
    await send('obd', T + 1000 + i * 1000, { speed_kmh: 40 })
    await fix(T + 1000 + i * 1000, i)
  }
  await send('status', T + 122_000, { ignition_on: false })
  await until(() => privacyRejections().length >= 120)
  t.ok(privacyRejections().every((r) => r.kind === 'gps' && /^the policy paused location from /.test(r.detail)), 'each position is rejected with privacy_mode, saying why, on ubiq/v1/rejected/{device}')
  const metrics = await pipeline.metrics.getSingleMetricAsString('ubiq_ingest_messages_rejected_total')
  t.match(metrics, /reason="privacy_mode"} 120/, 'and counted')

  const [s, p] = await Promise.all([score, premium])
  t.match(s.privacy, { trips: 1, share: 1, unmeasured: { speeding_share: 1 }, text: /^1 trip in privacy mode \(2 min, 100% of driving time\): speeding not measured there, counted at typical$/ }, 'the score says which driving was in privacy mode')
  // Unblended, its speeding share would be 0, a reason worth points; at the typical value it moves nothing.
  t.notOk(s.reasons.some((r) => r.code === 'speeding_share'), 'its speeding counts at the typical value')
  const reason = p.reasons.find((r) => r.code === 'privacy_mode')
  t.match(reason?.text, /^1 trip in privacy mode \(2 min, 100% of driving time\): speeding not measured there, counted at typical; 80% of driving beyond the plan's 20% allowance priced at factor 1\.3: \+\d+%$/, 'the premium explains how it was priced')
  t.ok(reason!.effect > 0, 'and privacy mode beyond the allowance does not pay')
  t.equal((await stored('gps')).length, 0, 'no position of the pause is stored')
  t.equal((await stored('obd')).length, 120, 'every OBD reading is')

  await t.test('the page: the pause shown, ended early, and a pause of all telemetry made and ended', async (t) => {
    const { page, errors } = await openBrowser(t)
    await page.goto(`${pipeline.url}/#token=${holder}`)
    await page.locator('#pauses li.pause', { hasText: 'location paused since' }).waitFor()
    await page.locator('#pauses li.pause button.end').click()
    await page.locator('#pause-status', { hasText: 'pause ended' }).waitFor()
    await page.locator('#pauses li', { hasText: 'nothing paused' }).waitFor()
    await page.locator('#pause-scope').selectOption('all')
    await page.locator('#pause-minutes').selectOption('60')
    await page.locator('#pause button').click()
    await page.locator('#pause-status', { hasText: 'paused until' }).waitFor()
    t.match(await page.locator('#pauses li.pause').textContent(), /^all telemetry paused since /, 'a pause of all telemetry, from the page')
    await page.locator('#pauses li.pause button.end').click()
    await page.locator('#pauses li', { hasText: 'nothing paused' }).waitFor()
    const analystPage = await (await openBrowser(t)).page
    await analystPage.goto(`${pipeline.url}/?policy=${a.policyId}#token=${analyst}`)
    await analystPage.locator('#pauses li').first().waitFor()
    t.notOk(await analystPage.locator('#pause').isVisible(), 'an analyst sees pauses but gets no control to pause')
    t.same(errors, [], 'no script errors')
  })
  const { body: { pauses } } = await api('GET', privacy, holder)
  t.same(pauses.map((x) => [x.scope, x.state, x.endedAt !== undefined]), [['location', 'over', true], ['all', 'over', true]], 'both ended early')
  const ended = Date.parse(pauses[0]!.endedAt!)
  // Positions after its end are stored again, though sent for times the pause once covered.
  const afterEnd = ended + 2000
  await fix(afterEnd, 200)
  while ((await stored('gps')).length < 1) await new Promise((r) => setTimeout(r, 50))
  t.same(await stored('gps'), [afterEnd], 'the position after the early end is stored')

  await t.test('a pause from the device ends on time; another is ended early from the device', async (t) => {
    const X = ended + 60_000
    const pauseSeq = ++seq
    await device.publishAsync(topics.device(a.deviceId, 'privacy'), JSON.stringify({ seq: pauseSeq, ts: Date.now(), scope: 'location', from: iso(X), to: iso(X + 30_000) }), { qos: 1 })
    await until(() => told.some((n) => n.seq === pauseSeq))
    t.match(told.find((n) => n.seq === pauseSeq), { by: 'device', change: { action: 'pause' }, pauses: [{ scope: 'location', from: iso(X), to: iso(X + 30_000) }] }, 'acknowledged on ubiq/v1/privacy/{device} with its seq')
    const before = privacyRejections().length
    await fix(X + 10_000, 300) // in it
    await fix(X + 30_000, 301) // at its end: no longer in it
    await fix(X + 40_000, 302)
    while ((await stored('gps')).length < 3) await new Promise((r) => setTimeout(r, 50))
    t.same(await stored('gps'), [afterEnd, X + 30_000, X + 40_000], 'positions from its end on are stored')
    t.equal(privacyRejections().length, before + 1, 'the one in it is not')

    // All telemetry, then ended early from the device with the id it was told.
    const allSeq = ++seq
    await device.publishAsync(topics.device(a.deviceId, 'privacy'), JSON.stringify({ seq: allSeq, ts: Date.now(), scope: 'all', from: iso(X + 60_000), minutes: 10 }), { qos: 1 })
    await until(() => told.some((n) => n.seq === allSeq))
    const id = told.find((n) => n.seq === allSeq)!.change.id
    await send('obd', X + 70_000, { speed_kmh: 0 })
    await until(() => privacyRejections().some((r) => r.kind === 'obd'))
    t.pass('an OBD reading in a pause of all telemetry is rejected with privacy_mode')
    const endSeq = ++seq
    await device.publishAsync(topics.device(a.deviceId, 'privacy'), JSON.stringify({ seq: endSeq, ts: Date.now(), end: id }), { qos: 1 })
    await until(() => told.some((n) => n.seq === endSeq))
    t.match(told.find((n) => n.seq === endSeq), { change: { action: 'end', id }, pauses: [{ scope: 'location' }] }, 'the end is acknowledged; the pause left is the one still to come')
    await send('obd', X + 71_000, { speed_kmh: 0 })
    while ((await stored('obd')).length < 121) await new Promise((r) => setTimeout(r, 50))
    t.pass('after the early end, the next OBD reading is stored')
    // A message that is not one thing or the other is refused with why.
    await device.publishAsync(topics.device(a.deviceId, 'privacy'), JSON.stringify({ seq: ++seq, ts: Date.now(), end: id, scope: 'all' }), { qos: 1 })
    await until(() => rejected.some((r) => r.kind === 'privacy'))
    t.match(rejected.find((r) => r.kind === 'privacy'), { reason: 'invalid_payload', detail: /`end` comes alone/ })
  })

  await t.test('who may pause, and bad pauses refused with reasons', async (t) => {
    t.equal((await api('POST', privacy, undefined, { scope: 'location', minutes: 5 })).status, 401, 'no token: 401')
    t.equal((await api('POST', privacy, pipeline.auth.issue({ role: 'policyholder', policyId: b.policyId }, 60_000), { scope: 'location', minutes: 5 })).status, 403, "another policy's token: 403")
    const byAnalyst = await api('POST', privacy, analyst, { scope: 'location', minutes: 5 })
    t.same([byAnalyst.status, byAnalyst.body.message], [403, "privacy mode is the policyholder's to pause and end: an analyst token reads it"], 'an analyst does not pause')
    t.equal((await api('GET', privacy, analyst)).status, 200, 'but reads')
    const now = Date.now()
    const cases: [string, unknown, RegExp][] = [
      ['longer than a day', { scope: 'location', minutes: 1441 }, /body\/minutes must be <= 1440/],
      ['a day and more by its end', { scope: 'location', from: iso(now + 3600_000), to: iso(now + 3600_000 + 25 * 3600_000) }, /a pause lasts at most 24 h \(asked: 1500 min\)/],
      ['no end', { scope: 'location' }, /give how long the pause lasts: `to` or `minutes`, one of them/],
      ['two ends', { scope: 'location', minutes: 5, to: iso(now + 600_000) }, /one of them/],
      ['a start in the past', { scope: 'location', from: iso(now - 3600_000), minutes: 5 }, /a pause cannot start in the past/],
      ['a start too far ahead', { scope: 'location', from: iso(now + 8 * 86_400_000), minutes: 5 }, /a pause starts at most 7 days ahead/],
      ['an end before the start', { scope: 'location', from: iso(now + 600_000), to: iso(now + 300_000) }, /the pause must end after it starts/],
      ['not a date', { scope: 'location', to: '2026-02-30Tnoon' }, /\/to: not a date/],
      ['a scope that is not one', { scope: 'health', minutes: 5 }, /body\/scope must be equal to one of the allowed values/],
      ['an unknown field', { scope: 'location', minutes: 5, hours: 1 }, /must NOT have additional properties/],
    ]
    for (const [name, body, message] of cases) {
      const res = await api('POST', privacy, holder, body)
      t.same([res.status, message.test(res.body.message)], [400, true], `${name}: 400 saying why (${res.body.message})`)
    }
    const first = await api('POST', privacy, holder, { scope: 'location', from: iso(now + 3600_000), minutes: 60 })
    t.equal(first.body.pause.state, 'scheduled', 'a pause ahead is scheduled')
    const overlap = await api('POST', privacy, holder, { scope: 'all', from: iso(now + 3600_000 + 1800_000), minutes: 60 })
    t.same([overlap.status, /overlaps it: end that one first, or start after it/.test(overlap.body.message)], [400, true], 'pauses do not overlap')
    const end = (id: string) => api('POST', `${privacy}/${id}/end`, holder)
    t.equal((await end(first.body.pause.id)).body.pause.state, 'over', 'a scheduled pause ended never starts')
    t.match((await end(first.body.pause.id)).body.message, /is over already \(ended at /, 'and cannot be ended twice')
    t.match((await end('0'.repeat(64))).body.message, /^no pause 0{64} of policy pol-0001$/)
    t.equal((await api('POST', '/api/v1/policies/pol-none/privacy', pipeline.auth.issue({ role: 'policyholder', policyId: 'pol-none' }, 60_000), { scope: 'location', minutes: 5 })).status, 404, 'a policy the registry does not know: 404')
  })

  await pipeline.stop()
  const file = auditLogFile(services.dataDir)
  const records = [...auditRecords(file)]
  t.match(verifyAudit(file), { ok: true, records: records.length }, 'ubiq audit verify: the chain holds, privacy records in it')
  t.same(records.filter((r) => r.record === 'privacy').map((r) => [r.by.role, r.action, r.scope]), [
    ['policyholder', 'pause', 'location'], ['policyholder', 'end', 'location'], ['policyholder', 'pause', 'all'], ['policyholder', 'end', 'all'],
    ['device', 'pause', 'location'], ['device', 'pause', 'all'], ['device', 'end', 'all'], ['policyholder', 'pause', 'location'], ['policyholder', 'end', 'location'],
  ], 'every pause and end: who, what')
  t.ok(records.filter((r) => r.record === 'privacy').every((r) => r.record === 'privacy' && r.from && r.to && r.at), 'with its window and when')
})
