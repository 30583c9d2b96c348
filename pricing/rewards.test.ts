/**
 * The reward for prevention (#24 item 4): goal streaks and a tested leak valve priced as discounts
 * with their reasons, within the plan's limits; the household's bundle rule on the covers' total.
 */
import t from 'tap'
import { from, lastValueFrom, toArray } from 'rxjs'
import { fileURLToPath } from 'node:url'
import { checkPlan, examplePlans, householdPremium, loadPlans, priceScores, whatIf, type RatingPlan, type ValveTest } from './index.ts'
import { healthFrequency, homeFrequency, loadModel, scoreBatch, type ModelDefinition, type Score } from '../scoring/index.ts'

const DAY = 86_400_000
const example = loadPlans(examplePlans)[0]!
/** The example plan from 1970, with room under its floors so that a discount shows whole. */
const plan: RatingPlan = structuredClone({ ...example, effectiveFrom: '1970-01-01T00:00:00Z' })
for (const s of [plan.subjects.health!, plan.subjects.home!]) {
  s.factor.floor = s.change.floor = s.period.floor = 0.5
}
const T = 200 * DAY

const score = (subject: 'health' | 'home', features: Record<string, number> = {}, policyId = 'p'): Score => ({
  policyId, subject, value: 50, model: `${subject}-frequency@1`, reasons: [], window: { from: T - 90 * DAY, to: T }, exposure: { days: 90 }, features,
})
const price = (scores: Score[], valveTest?: (policyId: string) => ValveTest | undefined, plans = [plan]) =>
  lastValueFrom(from(scores).pipe(priceScores(plans, undefined, undefined, undefined, undefined, valveTest), toArray()))

t.test('the example plan prices a 90-day goal streak, a tested valve and a bundle; a reward for the wrong subject is refused', async (t) => {
  t.match(example.subjects.health!.prevention, { goalStreak: { days: 90, discount: 0.05 } })
  t.match(example.subjects.home!.prevention, { valveTested: { withinDays: 365, discount: 0.05 } })
  t.match(example.household, { bundle: { minCovers: 2, discount: 0.05 } })
  const bad = (change: (p: any) => void) => {
    const p = structuredClone(example) as any
    change(p)
    return p
  }
  t.throws(() => checkPlan(bad((p) => (p.subjects.home.prevention = { goalStreak: { days: 90, discount: 0.05 } }))), { message: /\/subjects\/home\/prevention\/goalStreak: activity goals are health's/ })
  t.throws(() => checkPlan(bad((p) => (p.subjects.driving.prevention = { valveTested: { withinDays: 365, discount: 0.05 } }))), { message: /\/subjects\/driving\/prevention\/valveTested: a water valve is home's/ })
  t.throws(() => checkPlan(bad((p) => (p.household.floor = 1.2))), { message: /\/household\/floor/ })
  t.throws(() => checkPlan(bad((p) => (p.household.bundle.discount = 1))), { message: /\/household\/bundle\/discount/ })
})

t.test('a goal streak of the plan\'s length takes its discount off the factor, with its reason; a shorter one does not', async (t) => {
  const [kept, short] = await price([score('health', { goal_streak_days: 92 }), score('health', { goal_streak_days: 89 }, 'q')])
  t.equal(kept!.factor, 0.95, 'a typical score, 92 goal days in a row: −5%')
  t.same(kept!.reasons.find((r) => r.code === 'goal_streak'), { code: 'goal_streak', text: 'activity goals kept 92 days in a row (the plan rewards 90): −5%', value: 92, baseline: 90, effect: -0.05 })
  t.equal(short!.factor, 1, '89 days earn nothing')
  t.notOk(short!.reasons.some((r) => r.code === 'goal_streak'))
})

t.test('the discount is bounded by the plan\'s limits, and the limit says how much of it held', async (t) => {
  const [held] = await price([score('health', { goal_streak_days: 120 })], undefined, [{ ...example, effectiveFrom: plan.effectiveFrom }])
  t.equal(held!.factor, 0.95, "the example's change floor: at most −5% an adjustment")
  const tight: RatingPlan = structuredClone(plan)
  tight.subjects.health!.factor.floor = 0.97
  const [floored] = await price([score('health', { goal_streak_days: 120 })], undefined, [tight])
  t.equal(floored!.factor, 0.97)
  t.match(floored!.reasons.map((r) => [r.code, r.effect]), [['goal_streak', -0.05], ['factor floor', 0.021]], 'the streak, then the floor that held 2 points of it back')
})

t.test('a home whose valve answered a command within the plan\'s days gets its discount, and the test is in the inputs hash', async (t) => {
  const test: ValveTest = { id: 'c'.repeat(64), at: new Date(T - 10 * DAY).toISOString() }
  const [tested] = await price([score('home')], () => test)
  const [untested] = await price([score('home')])
  const [stale] = await price([score('home')], () => ({ ...test, at: new Date(T - 400 * DAY).toISOString() }))
  t.equal(tested!.factor, 0.95)
  t.same(tested!.reasons.find((r) => r.code === 'valve_tested'), { code: 'valve_tested', text: 'leak valve fitted and tested: it answered a shut-off command 10 days ago (the plan counts a test for 365 days): −5%', value: 10, baseline: 365, effect: -0.05 })
  t.equal(untested!.factor, 1, 'no valve test, no discount')
  t.equal(stale!.factor, 1, 'a test 400 days old no longer counts')
  t.not(tested!.inputsHash, untested!.inputsHash, 'the valve test is an input of the price')
  const [health] = await price([score('health')], () => test)
  t.notOk(health!.reasons.some((r) => r.code === 'valve_tested'), 'a valve is no reason for health')
})

t.test('the household: covers together, the bundle rule on their total, the total within its floor', async (t) => {
  const cover = (subject: 'driving' | 'health' | 'home', premium: number, factor: number) => ({ subject, premium, factor, hash: subject, effectiveFrom: new Date(T).toISOString() })
  const two = householdPremium([plan], 'p', [cover('health', 380, 0.95), cover('home', 285, 0.95)])!
  t.match(two, { policyId: 'p', currency: 'EUR', ruleset: 'ubiq-example@1', basePremium: 700, subtotal: 665, total: 631.75 }, '665 less 5%')
  t.same(two.covers.map((c) => [c.subject, c.premium, c.basePremium, c.hash]), [['health', 380, 400, 'health'], ['home', 285, 300, 'home']])
  t.same(two.reasons, [{ code: 'bundle', text: "health and home together (the plan's bundle from 2 covers): −5%", value: 2, baseline: 2, effect: -0.05 }])
  const one = householdPremium([plan], 'p', [cover('driving', 600, 1)])!
  t.match(one, { subtotal: 600, total: 600 })
  t.same(one.reasons, [{ code: 'bundle', text: "car alone: the plan's bundle takes −5% off from 2 covers", value: 1, baseline: 2, effect: 0 }], 'one cover: what the bundle would give, and no change')
  const low = householdPremium([plan], 'p', [cover('driving', 360, 0.6), cover('health', 340, 0.85), cover('home', 240, 0.8)])!
  t.equal(low.total, 910, 'three covers near their floors, less 5%, would be 893; the household floor holds the total at 70% of 1,300')
  t.match(low.reasons, [{ code: 'bundle', text: /^car, health and home together/ }, { code: 'household floor', text: "household decrease floored at −30% on the covers' base premiums (1300 EUR)", effect: 0.019 }])
  t.equal(householdPremium([{ ...plan, household: undefined }], 'p', [cover('home', 285, 0.95)]), undefined, 'no household rule, no household')
})

t.test('the premium simulator prices the valve test as pricing does, and a goal streak can be asked about', async (t) => {
  const model = (d: ModelDefinition) => loadModel(d, fileURLToPath(new URL(`../scoring/models/${d.file}`, import.meta.url)))
  const [home, health] = await Promise.all([model(homeFrequency), model(healthFrequency)])
  const test: ValveTest = { id: 'c'.repeat(64), at: new Date(T - DAY).toISOString() }
  const [homeScore] = await scoreBatch(home, [score('home')])
  const [priced] = await price([homeScore!], () => test)
  const asked = await whatIf(home, [plan], homeScore!, undefined, { scale: { leaks_per_year: 1 } }, test)
  t.equal(asked.now.premium, priced!.premium, 'unchanged, the simulator gives the premium pricing gave, valve discount and all')
  t.ok(asked.now.reasons.some((r) => r.code === 'valve_tested'))
  const [healthScore] = await scoreBatch(health, [score('health', { goal_streak_days: 30 })])
  const streak = await whatIf(health, [plan], healthScore!, undefined, { set: { goal_streak_days: 90 } })
  t.equal(streak.changed.factor, Math.round(streak.now.factor * 0.95 * 1000) / 1000, 'keeping the goals 90 days in a row: −5%')
  t.match(streak.changed.reasons.find((r) => r.code === 'goal_streak'), { text: 'activity goals kept 90 days in a row (the plan rewards 90): −5%' })
})
