/**
 * The reward for prevention (#24 item 4) on a real Mosquitto and a real InfluxDB: a wearable whose
 * activity goal was kept 95 days in a row gets the plan's goal-streak discount on its health
 * premium; a home whose valve answered ubiq's close_valve (edge-sim's obeyCommand) gets the
 * tested-valve discount on its home premium; the policy holding both covers has a household view
 * with the bundle rule applied (on the policyholder's page too, on a phone), and the audit chain
 * verifies with the household records in it.
 */
import t from 'tap'
import mqtt from 'mqtt'
import { obeyCommand } from '../edge-sim/index.ts'
import { deviceRegistry, topics, type CommandMessage } from '../ingest/index.ts'
import { auditRecords, examplePlans, loadPlans, openPolicyKeys, relativity, reveal, verifyAudit, type HouseholdRecord, type PremiumAdjustment, type RatingPlan } from '../pricing/index.ts'
import { auditKeysFile, auditLogFile } from '../bin/pipeline.ts'
import { startServices, startTestPipeline } from './harness.ts'
import { cells, openBrowser, screenshot } from './browser.ts'

const DAY = 86_400_000
const until = async (ok: () => boolean) => {
  while (!ok()) await new Promise((r) => setTimeout(r, 20))
}

t.test('a 95-day goal streak and a tested valve are priced as discounts with their reasons; the household applies the bundle rule, audited', async (t) => {
  const services = await startServices(t)
  // The example plan with room under its health and home floors, so that each discount shows whole in the factor.
  const plan = structuredClone(loadPlans(examplePlans)[0]!) as RatingPlan
  for (const s of [plan.subjects.health!, plan.subjects.home!]) s.factor.floor = s.change.floor = s.period.floor = 0.5
  const policyId = 'pol-1'
  const devices = [{ deviceId: 'wear-1', policyId, kinds: ['steps'] }, { deviceId: 'home-1', policyId, kinds: ['leak', 'valve'] }]
  // The home's day of the leak closes with a reading of the next day, which is ahead of the clock.
  const pipeline = await startTestPipeline(t, services, [], 'ubiq_rewards', { devices: deviceRegistry(devices), plans: [plan], maxFutureSkewMs: 2 * DAY })
  const premiums: PremiumAdjustment[] = []
  pipeline.premiums$.subscribe((p) => premiums.push(p))

  const client = await mqtt.connectAsync(services.mqttUrl, { reconnectPeriod: 0 })
  t.teardown(() => client.endAsync())
  const seq: Record<string, number> = {}
  const send = (deviceId: string, kind: string, ts: number, body: Record<string, unknown>) =>
    client.publishAsync(topics.device(deviceId, kind), JSON.stringify({ seq: (seq[deviceId] = (seq[deviceId] ?? 0) + 1), ts, ...body }), { qos: 1 })
  const commands: CommandMessage[] = []
  client.on('message', (_topic, payload) => commands.push(JSON.parse(String(payload)) as CommandMessage))
  await client.subscribeAsync(`ubiq/v1/cmd/home-1/#`, { qos: 1 })

  const now = Date.now()
  const today = Math.floor(now / DAY) * DAY
  // The wearable: 11,000 steps a day (the goal's 10,000 tier) for 95 days; today's first steps close yesterday.
  for (let i = 95; i >= 1; i--) await send('wear-1', 'steps', today - i * DAY + 12 * 3600_000, { steps_count: 11_000, interval_s: 86_400 })
  await send('wear-1', 'steps', now - 60_000, { steps_count: 100, interval_s: 60 })
  // The home: 20 quiet days, its valve open, then a leak now.
  for (let i = 20; i >= 1; i--) {
    await send('home-1', 'valve', today - i * DAY + 12 * 3600_000, { valve_open: true })
    await send('home-1', 'leak', today - i * DAY + 13 * 3600_000, { leak_detected: false, battery_pct: 90 })
  }
  await send('home-1', 'leak', now - 1000, { leak_detected: true, battery_pct: 90 })
  await until(() => commands.length > 0)
  // The hub obeys: acknowledges, and its valve reports closed; the answer is on the chain.
  for (const r of obeyCommand(commands[0]!, Date.now())) await send('home-1', r.kind, r.ts, r.body)
  const file = auditLogFile(services.dataDir)
  await until(() => [...auditRecords(file)].some((r) => r.record === 'command' && r.action === 'confirmed'))
  // Tomorrow's first reading closes today's home day: its score is priced after the valve's answer.
  await send('home-1', 'leak', today + DAY + 60_000, { leak_detected: false, battery_pct: 90 })
  const at = (subject: string, day: number) => premiums.find((p) => p.subject === subject && p.effectiveFrom === new Date(day).toISOString())
  await until(() => at('health', today) !== undefined && at('home', today + DAY) !== undefined)

  const health = at('health', today)!
  const streak = health.reasons.find((r) => r.code === 'goal_streak')
  t.same(streak, { code: 'goal_streak', text: 'activity goals kept 95 days in a row (the plan rewards 90): −5%', value: 95, baseline: 90, effect: -0.05 }, 'the health premium names the streak and its discount')
  const score = (await (await fetch(`${pipeline.url}/api/v1/policies/${policyId}/scores?subject=health&limit=1`, { headers: { authorization: `Bearer ${pipeline.auth.issue({ role: 'analyst' }, 3600_000)}` } })).json()).scores[0] as { value: number }
  t.equal(health.factor, Math.min(1, Math.round(relativity(plan.subjects.health!, score.value) * 0.95 * 1000) / 1000), 'and the factor is the score\'s relativity less 5% (at full credibility)')
  t.notOk(premiums.some((p) => p.subject === 'health' && Date.parse(p.effectiveFrom) < today - 5 * DAY && p.reasons.some((r) => r.code === 'goal_streak')), 'no streak discount before 90 goal days')

  const home = at('home', today + DAY)!
  t.match(home.reasons.find((r) => r.code === 'valve_tested'), { text: 'leak valve fitted and tested: it answered a shut-off command today (the plan counts a test for 365 days): −5%', effect: -0.05 }, 'the home premium names the tested valve and its discount')
  t.notOk(premiums.some((p) => p.subject === 'home' && Date.parse(p.effectiveFrom) <= today && p.reasons.some((r) => r.code === 'valve_tested')), 'none before the valve answered')

  // The household, as the policyholder sees it: both covers, the bundle rule, the total.
  const res = await fetch(`${pipeline.url}/api/v1/policies/${policyId}/household`, { headers: { authorization: `Bearer ${pipeline.auth.issue({ role: 'policyholder', policyId }, 3600_000)}` } })
  t.equal(res.status, 200)
  const household = await res.json() as HouseholdRecord
  const healthNow = premiums.filter((p) => p.subject === 'health').at(-1)!
  t.match(household, { policyId, currency: 'EUR', basePremium: 700, subtotal: Math.round((healthNow.premium + home.premium) * 100) / 100 })
  t.same(household.covers.map((c) => [c.subject, c.premium, c.hash]), [['health', healthNow.premium, healthNow.hash], ['home', home.premium, home.hash]], "each cover's latest premium and its adjustment's hash")
  t.same(household.reasons, [{ code: 'bundle', text: "health and home together (the plan's bundle from 2 covers): −5%", value: 2, baseline: 2, effect: -0.05 }], 'the bundle rule, in words')
  t.equal(household.total, Math.round(household.subtotal * 0.95 * 100) / 100, 'the total: the covers less 5%')
  const other = await fetch(`${pipeline.url}/api/v1/policies/pol-2/household`, { headers: { authorization: `Bearer ${pipeline.auth.issue({ role: 'policyholder', policyId }, 3600_000)}` } })
  t.equal(other.status, 403, "another policy's household is not the policyholder's to see")

  // The audit chain: it verifies, and its last household record is what the route shows.
  t.match(verifyAudit(file), { ok: true }, 'the audit chain holds, household records in it')
  const keys = openPolicyKeys(auditKeysFile(services.dataDir))
  const records = [...auditRecords(file)].map((r) => reveal(r, keys)!)
  const households = records.filter((r): r is HouseholdRecord => r.record === 'household')
  t.equal(households.length, records.filter((r) => r.record === undefined).length, 'a household record follows every adjustment')
  const { record: _, prevHash: __, hash: ___, ...last } = households.at(-1)!
  t.same(last, household, 'the household the policyholder sees is the one audited')
  t.ok(records.some((r) => r.record === undefined && r.hash === home.hash && r.reasons.some((x) => x.code === 'valve_tested')), 'the discounted premium is in the chain with its reason')

  // The policyholder's page on a phone: the household card, in words, within the screen.
  const { newPage, errors } = await openBrowser(t)
  const phone = await newPage()
  await phone.setViewportSize({ width: 390, height: 844 })
  await phone.goto(`${pipeline.url}/#token=${pipeline.auth.issue({ role: 'policyholder', policyId }, 3600_000)}`)
  await phone.locator('#household-total', { hasText: household.total.toFixed(2) }).waitFor()
  const change = (x: number) => `${x < 1 ? '−' : '+'}${Math.abs(Math.round((x - 1) * 1000) / 10)}%`
  t.same(await cells(phone, 'household-card'), [
    ['Health', `${healthNow.premium.toFixed(2)} EUR`, change(healthNow.factor)],
    ['Home', `${home.premium.toFixed(2)} EUR`, change(home.factor)],
    ['Covers together', `${household.subtotal.toFixed(2)} EUR`, change(household.subtotal / 700)],
  ], 'each cover with its premium and change, and the covers together')
  t.same(await phone.locator('#household-why li').allTextContents(), [household.reasons[0]!.text], 'the bundle rule in words')
  t.equal(await phone.locator('#household-change').textContent(), `for the household: ${change(household.total / 700)} on the base premiums of 700.00 EUR`)
  t.same(await phone.evaluate(() => [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 390).map((e) => e.id || e.tagName)), [], 'nothing wider than the phone')
  await screenshot(phone, 'household-phone')
  t.same(errors, [], 'no script errors on the page')
})
