/**
 * The policyholder's summary (#23): each reason as a sentence with a tip, from one catalogue that
 * covers every feature the shipped models price; and, from scores stored in a real InfluxDB, the
 * weekly trend, where the policy stands among the others (counts only, and only with enough of
 * them), and the premium after 50 more km like the last ones, priced by the real model and plan.
 */
import { fileURLToPath } from 'node:url'
import t from 'tap'
import pino from 'pino'
import { Registry } from 'prom-client'
import { NEVER } from 'rxjs'
import { connectInflux, consentStore, deviceRegistry } from '../ingest/index.ts'
import { examplePlans, loadPlans, whatIf, type WhatIf } from '../pricing/index.ts'
import { builtInModels, drivingFrequency, loadModel, scoreBatch, scoreLine, type Reason, type Score } from '../scoring/index.ts'
import { COACHING, outlookText, tipOf, type Summary } from './coaching.ts'
import { startDashboards, tokenAuthority } from './index.ts'
import { keepForever, startServices } from '../test/harness.ts'

t.test('every feature of the shipped models has its words, and a reason reads as a sentence with a tip', async (t) => {
  const missing = builtInModels.flatMap((m) => m.definition.features.map((f) => f.name)).filter((n) => !(n in COACHING))
  t.same(missing, [], 'the catalogue covers every feature a shipped model prices')
  const reason = (code: string, value: number, baseline: number, impact: number): Reason => ({ code, value, baseline, impact, text: 'statistics', label: code, unit: '' })
  t.equal(tipOf(reason('harsh_braking_per_hour', 7.24, 4, -3.1)), 'You braked hard 7.2 times per hour of driving; most drivers do so 4 times. Leave more distance to the car ahead and look further down the road, so you can slow down early.')
  t.equal(tipOf(reason('speeding_share', 0.124, 0.06, -2)), 'You drove above the speed limit 12.4% of the time; most drivers 6%. Keep to the limit, especially in towns; cruise control or a speed limiter helps.', 'shares in percent')
  t.equal(tipOf(reason('steps_per_day', 10250, 7000, 2.5)), 'You walked 10,250 steps a day; most members 7,000. That helps your score: keep it up.', 'a reason that helps is praised')
  t.equal(tipOf(reason('privacy_mode', 0, 0, 0)), 'statistics', 'a reason the catalogue does not know keeps its own words')
  // Below the plan's minimum (50 km), the behaviour does not count yet; 50 km more and it does.
  const quote = (premium: number, credibility: number, exposure: number, reasons: { code: string; text: string; baseline: number }[] = []) => ({ score: 40, factor: premium / 600, premium, credibility, exposure, features: {}, reasons: reasons.map((r) => ({ ...r, value: exposure, effect: 0 })) })
  const early = { policyId: 'p', subject: 'driving', model: 'm', ruleset: 'r', currency: 'EUR', now: quote(600, 0, 7.9, [{ code: 'exposure', text: '7.9 km observed, the plan needs 50 before any change: premium unchanged', baseline: 50 }]), changed: quote(653.4, 0.241, 57.9) } as const
  t.equal(outlookText('driving', early), "After 50 more km driven like your last ones, your premium would be 653.40 EUR a year (now 600.00 EUR). So far 7.9 km observed: the plan needs 50 km before your own driving counts, so your premium stays as it is. After 50 more km, it counts for 24% of the change from the base premium, the rest is the typical policyholder's; the more we observe, the more it counts.")
})

const WEEK = 7 * 86_400_000

t.test('the summary: weekly trend, better than X% of drivers, the premium outlook in words, tips; the policyholder\'s own only', async (t) => {
  const services = await startServices(t)
  const influx = await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_summary', retentionDays: keepForever })
  t.teardown(() => influx.close())
  const model = await loadModel(drivingFrequency, fileURLToPath(new URL(`../scoring/models/${drivingFrequency.file}`, import.meta.url)))
  const plans = loadPlans(examplePlans)
  const now = Date.now()
  // 400 km over 14.6 days (10,000 km a year, typical): 63% credibility (√(400/1000)); harsh braking above typical.
  const features = { ...Object.fromEntries(drivingFrequency.features.map((f) => [f.name, f.baseline])) }
  const scoreAt = async (policyId: string, to: number, braking: number) => (await scoreBatch(model, [{
    policyId, subject: 'driving', window: { from: to - 10 * 86_400_000, to }, exposure: { days: 14.6, distance_km: 400, moving_s: 28_800, night_s: 1000 }, features: { ...features, harsh_braking_per_hour: braking },
  }]))[0]!
  const history = [await scoreAt('pol-1', now - 3 * WEEK, 9), await scoreAt('pol-1', now - 2 * WEEK, 8), await scoreAt('pol-1', now - WEEK, 7), await scoreAt('pol-1', now - 3600_000, 6)]
  const latest = history.at(-1)!
  // Twelve other drivers: five below the policy's score, seven above.
  const peers = [-30, -20, -10, -5, -1, 1, 2, 5, 10, 15, 20, 25].map((d, i): Score => ({ ...latest, policyId: `peer-${i}`, value: latest.value + d }))
  // A health score with only two others: too few to say where it stands.
  const health: Score = { ...latest, subject: 'health', model: 'health-frequency@1', features: {}, reasons: [], exposure: { days: 30 } }
  influx.write([...history, ...peers, health, { ...health, policyId: 'peer-0' }, { ...health, policyId: 'peer-1' }].map(scoreLine))
  await influx.flush()

  const auth = tokenAuthority('a test secret of at least thirty-two bytes')
  const server = await startDashboards({
    consents: consentStore({ registry: deviceRegistry([]), record: () => '' }),
    scores$: NEVER, events$: NEVER, premiums$: NEVER, influx, auth, metrics: new Registry(), deviceClock: () => undefined,
    whatIf: async (s, changes) => (s.subject === 'driving' ? whatIf(model, plans, s, undefined, changes) : undefined),
    health: () => ({ ok: true, checks: {} }), logger: pino({ level: 'silent' }), host: '127.0.0.1', port: 0,
  })
  t.teardown(() => server.close())
  const get = (token: string, policy = 'pol-1') => fetch(`${server.url}/api/v1/policies/${policy}/summary`, { headers: { authorization: `Bearer ${token}` } })
  t.equal((await get(auth.issue({ role: 'policyholder', policyId: 'peer-0' }, 60_000))).status, 403, "another policyholder's token: 403")
  const res = await get(auth.issue({ role: 'policyholder', policyId: 'pol-1' }, 60_000))
  t.equal(res.status, 200)
  const { subjects } = await res.json() as Summary
  const driving = subjects.find((s) => s.subject === 'driving')!

  t.same(driving.weeks.map((w) => w.score), history.map((s) => s.value), 'one score a week, the last of each, oldest first')
  t.ok(driving.weeks.every((w) => new Date(w.week).getUTCDay() === 1 && w.week.endsWith('T00:00:00.000Z')), 'weeks start on Monday')
  t.equal(driving.betterThan, 41, 'better than 5 of the 12 other drivers: 41%')
  t.equal(subjects.find((s) => s.subject === 'health')!.betterThan, null, 'with two others, where the policy stands is not said')
  t.notMatch(JSON.stringify(subjects), /peer-/, "no other policy's id")

  const expected = await whatIf(model, plans, latest, undefined, { more: 50 }) as WhatIf
  t.equal(expected.changed.credibility.toFixed(3), Math.sqrt(450 / 1000).toFixed(3), 'the what-if weighs 450 km')
  t.equal(expected.changed.features.km_per_year, expected.now.features.km_per_year, 'driving like the last trips: the same km a year')
  t.match(driving.outlook, {
    more: 50, unit: 'km', premium: expected.changed.premium, currency: 'EUR',
    text: `After 50 more km driven like your last ones, your premium would be ${expected.changed.premium.toFixed(2)} EUR a year (now ${expected.now.premium.toFixed(2)} EUR). So far 400 km observed: your own driving counts for 63% of the change from the base premium, the rest is the typical policyholder's. The more we observe, the more your own behaviour counts: after 50 more km, 67%.`,
  }, 'the outlook in words, credibility explained')
  t.ok(expected.changed.premium > expected.now.premium, 'more of a below-typical driving costs more as it counts more')
  const braking = latest.reasons.find((r) => r.code === 'harsh_braking_per_hour')!
  t.same(driving.tips[0], { code: 'harsh_braking_per_hour', text: tipOf(braking), points: braking.impact }, 'the reason that costs most first, as a tip')
  t.match(driving.tips[0]!.text, /^You braked hard 6 times per hour of driving; most drivers do so 4 times\. Leave more distance/)
  t.same(driving.changes, [{ feature: 'harsh_braking_per_hour', label: 'hard braking' }], 'the simulator offers the behaviours the score has reasons for, by their names')
})
