import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { from, lastValueFrom, toArray } from 'rxjs'
import { canonicalJson, checkPlan, examplePlans, firstStanding, loadPlans, planAt, priceScores, rate, relativity, type RatingPlan, type SubjectRating, type Unpriced } from './index.ts'
import type { Score } from '../scoring/index.ts'
import { exposureMeasures } from './plan.ts'

const DAY = 86_400_000
const example = loadPlans(examplePlans)[0]!
/** The example plan, in effect from 1970 so that scores at small timestamps are priced. */
const plan: RatingPlan = { ...example, effectiveFrom: '1970-01-01T00:00:00Z' }
const driving = plan.subjects.driving!

t.test('the shipped example plan is valid and prices every subject', async (t) => {
  t.same(Object.keys(example.subjects).sort(), ['driving', 'health', 'home'])
  t.equal(example.subjects.health!.factor.cap, 1, 'health is discounts only')
})

t.test('plans that cannot be used are refused when they load, with every reason', async (t) => {
  const bad = (change: (p: any) => void) => {
    const p = structuredClone(example) as any
    change(p)
    return p
  }
  const cases: [string, unknown, RegExp][] = [
    ['a protected attribute', bad((p) => (p.attributes = { driver_gender: { f: 0.9, m: 1.1 } })), /\/attributes\/driver_gender: rating on gender is not allowed/],
    ['genetic data', bad((p) => (p.attributes = { 'Genetic-Test': { positive: 1.2 } })), /rating on genetic is not allowed/],
    ['ethnicity', bad((p) => (p.attributes = { ethnicity: { a: 1 } })), /rating on ethnicity/],
    ['a relativity that rises with the score', bad((p) => (p.subjects.driving.mapping = { type: 'table', points: [[0, 1.2], [50, 1], [100, 1.1]] })), /points\/2: a higher score is safer/],
    ['scores out of order', bad((p) => (p.subjects.driving.mapping = { type: 'table', points: [[50, 1], [40, 0.9]] })), /points\/1: scores must rise/],
    ['distance for health', bad((p) => (p.subjects.health.credibility.exposure = 'distance_km')), /health has no distance; use days/],
    ['a cap below 1', bad((p) => (p.subjects.home.change.cap = 0.9)), /\/subjects\/home\/change\/cap/],
    ['an unknown field', bad((p) => (p.subjects.driving.discount = 5)), /\/subjects\/driving/],
    ['no effective date', bad((p) => delete p.effectiveFrom), /effectiveFrom/],
    ['an impossible date', bad((p) => (p.effectiveFrom = '2026-13-45T00:00:00Z')), /not a date/],
    ['no subject', bad((p) => (p.subjects = {})), /prices no subject/],
    ['exposure for home', bad((p) => (p.subjects.home.exposure = p.subjects.driving.exposure)), /\/subjects\/home\/exposure: home has no km or night driving/],
    ['less risk for more km', bad((p) => (p.subjects.driving.exposure.distance.points = [[2000, 0.6], [10000, 1], [20000, 0.9]])), /\/subjects\/driving\/exposure\/distance\/points\/2: more exposure is no less risk/],
    ['a typical mileage not at 1', bad((p) => (p.subjects.driving.exposure.distance.typical = 12000)), /\/subjects\/driving\/exposure\/distance\/typical: the table gives 1.06 at 12000/],
    ['a night share above 1', bad((p) => (p.subjects.driving.exposure.night.points[3][0] = 1.5)), /\/subjects\/driving\/exposure\/night\/points\/3\/0/],
    ['an empty exposure part', bad((p) => (p.subjects.driving.exposure = { floor: 0.8, cap: 1.2 })), /\/subjects\/driving\/exposure: gives neither distance nor night/],
  ]
  for (const [name, value, reason] of cases) t.throws(() => checkPlan(value), { code: 'UBIQ_PLAN_INVALID', message: reason }, name)
  const both = bad((p) => ((p.attributes = { sex: { f: 1 } }), (p.subjects.home.credibility.exposure = 'distance_km')))
  t.throws(() => checkPlan(both), { message: /home has no distance[\s\S]*rating on sex/ }, 'every problem at once')
  t.ok(checkPlan(bad((p) => (p.attributes = { vehicle_group: { a: 0.9, b: 1.1 } }))), 'an allowed attribute loads')
})

t.test('plan files: versions by effective date; unreadable, non-JSON and ambiguous folders are refused', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-plans-'))
  const v1 = { ...example, version: '1', effectiveFrom: '2026-01-01T00:00:00Z' }
  const v2 = { ...example, version: '2', effectiveFrom: '2026-07-01T00:00:00Z' }
  writeFileSync(join(dir, 'a.json'), JSON.stringify(v1))
  writeFileSync(join(dir, 'b.json'), JSON.stringify(v2))
  const plans = loadPlans(dir)
  t.equal(planAt(plans, Date.parse('2025-12-31T23:59:59Z')), undefined, 'nothing before the first plan')
  t.equal(planAt(plans, Date.parse('2026-03-01T00:00:00Z'))!.version, '1')
  t.equal(planAt(plans, Date.parse('2026-07-01T00:00:00Z'))!.version, '2', 'the later plan from its own date on')
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ ...v2, version: '3' }))
  t.throws(() => loadPlans(dir), { code: 'UBIQ_PLAN_INVALID', message: /both take effect at 2026-07-01/ })
  writeFileSync(join(dir, 'c.json'), '{"name": ')
  t.throws(() => loadPlans(dir), { code: 'UBIQ_PLAN_INVALID', message: /c\.json is not JSON/ })
  t.throws(() => loadPlans(join(dir, 'missing.json')), { code: 'UBIQ_PLAN_INVALID', message: /cannot read it/ })
})

t.test('mapping: the model\'s odds, or a table with straight lines between points and flat beyond', async (t) => {
  t.equal(relativity(driving, 50), 1)
  t.equal(relativity(driving, 40), 1.5)
  const table: SubjectRating = { ...driving, mapping: { type: 'table', points: [[20, 1.2], [50, 1], [80, 0.85]] } }
  t.same([10, 20, 35, 50, 65, 80, 95].map((s) => Number(relativity(table, s).toFixed(3))), [1.2, 1.2, 1.1, 1, 0.925, 0.85, 0.85])
})

t.test('rate: credibility, minimum exposure, and the factor\'s, the period\'s and the change\'s limits', async (t) => {
  const open = firstStanding(0)
  const cases: [string, number, number, { factor: number; limited: unknown }][] = [
    ['typical score, full credibility', 50, 1000, { factor: 1, limited: null }],
    ['safe, full credibility: the change floor (−10%) holds', 55, 4000, { factor: 0.9, limited: { by: 'change', bound: 'floor' } }],
    ['a little safer, a quarter of the exposure: Z = 0.5', 51, 250, { factor: 0.98, limited: null }],
    ['risky, full credibility: the change cap (+10%) holds', 20, 1000, { factor: 1.1, limited: { by: 'change', bound: 'cap' } }],
    ['below the minimum exposure nothing changes', 10, 49, { factor: 1, limited: null }],
  ]
  for (const [name, score, km, want] of cases) t.match(rate(driving, score, km, 0, open, 0.01), want, name)
  t.equal(rate(driving, 40, 1000, 0, open, 0.01).premium, 660, 'premium = base 600 × factor 1.1, rounded to cents')
  t.equal(rate(driving, 40, 1000, 0, open, 5).premium, 660, 'and to a multiple of 5')
  t.equal(rate(driving, 45, 1000, 0, open, 0.01, 1.05).premium, 693, 'an attribute relativity scales the base: 600 × 1.05 × 1.1 (1.222, capped by the change limit)')

  // Step by step from a risky start: +10% a change, until the factor's own cap (1.3) holds.
  let s = open
  const factors: number[] = []
  for (let day = 0; day < 5; day++) {
    const r = rate(driving, 20, 1000, day * DAY, s, 0.01)
    factors.push(r.factor)
    s = r.standing
  }
  t.same(factors, [1.1, 1.21, 1.3, 1.3, 1.3], 'three changes reach the factor cap 1.3 (the period cap is 1.3 too)')

  // A period cap tighter than the factor cap: +15% a year, whatever the changes allow.
  const yearly: SubjectRating = { ...driving, period: { days: 365, floor: 0.8, cap: 1.15 } }
  s = open
  const steps: [number, number, string | undefined][] = []
  for (const day of [0, 100, 200, 366, 400]) {
    const r = rate(yearly, 20, 1000, day * DAY, s, 0.01)
    steps.push([day, r.factor, r.limited?.by])
    s = r.standing
  }
  t.same(steps, [[0, 1.1, 'change'], [100, 1.15, 'period'], [200, 1.15, 'period'], [366, 1.265, 'change'], [400, 1.3, 'factor']], 'a new period starts from the factor it ends with')

  const discountsOnly: SubjectRating = { ...driving, factor: { floor: 0.7, cap: 1 }, change: { floor: 0.9, cap: 1 }, period: { days: 365, floor: 0.7, cap: 1 } }
  t.match(rate(discountsOnly, 10, 5000, 0, open, 0.01), { factor: 1, limited: { bound: 'cap' } }, 'a discounts-only plan never raises')
  t.match(rate(discountsOnly, 60, 5000, 0, open, 0.01), { factor: 0.9 }, 'and does lower')
})

const reasons = [
  { code: 'harsh_braking_per_100km', text: '', label: 'harsh braking', unit: 'per 100 km', value: 4.1, baseline: 1.2, impact: -6 },
  { code: 'night_share', text: '', label: 'driving at night', unit: 'of the distance', value: 0.02, baseline: 0.05, impact: 0.5 },
]
const score = (policyId: string, value: number, to: number, km = 1000, subject: Score['subject'] = 'driving'): Score => ({
  policyId, subject, value, model: 'driving-frequency@3', reasons, window: { from: 0, to },
  exposure: { days: 30, distance_km: km }, features: {},
})
const priced = (scores: Score[], plans = [plan]) => {
  const unpriced: [Unpriced, string][] = []
  return lastValueFrom(from(scores).pipe(priceScores(plans, undefined, (why, s) => unpriced.push([why, s.policyId])), toArray())).then((out) => ({ out, unpriced }))
}

t.test('priceScores: a redelivered or stale score never applies twice; the chain links every adjustment', async (t) => {
  const scores = [score('a', 40, 1), score('a', 40, 1), score('b', 60, 1), score('a', 45, 2), score('a', 30, 1)]
  const { out, unpriced } = await priced(scores)
  t.same(out.map((p) => [p.policyId, p.factor, p.previousFactor]), [['a', 1.1, 1], ['b', 0.9, 1], ['a', 1.21, 1.1]])
  t.same(unpriced, [['already priced', 'a'], ['already priced', 'a']], 'the duplicate of a@1, and a score older than the last priced')
  t.equal(out[0]!.prevHash, '', 'the chain starts empty')
  t.equal(out[1]!.prevHash, out[0]!.hash)
  t.equal(out[2]!.prevHash, out[1]!.hash)
  t.same((await priced(scores)).out, out, 'the same inputs give the same adjustments, hashes included')
  t.match(out[0], { subject: 'driving', premium: 660, currency: 'EUR', ruleset: 'ubiq-example@1', models: ['driving-frequency@3'], effectiveFrom: new Date(1).toISOString() })
})

t.test('priceScores: each subject by its own part of the plan; nothing without a plan in effect', async (t) => {
  const { out, unpriced } = await priced([score('a', 60, 1, 1000, 'home'), score('a', 60, 1, 1000, 'driving')], [example])
  t.same(out, [])
  t.same(unpriced.map(([why]) => why), ['no plan in effect', 'no plan in effect'], 'the example plan starts in 2026')
  const homeOnly: RatingPlan = { ...plan, subjects: { home: plan.subjects.home! } }
  const r = await priced([score('a', 60, 1, 1000, 'home'), score('a', 40, 1)], [homeOnly])
  t.same(r.out.map((p) => [p.subject, p.factor, p.premium]), [['home', 0.9, 270]], 'home: base 300, −10% a change')
  t.same(r.unpriced, [['subject not in plan', 'a']])
})

t.test('reasons in plain words: each feature\'s effect on the premium against the median, then the plan\'s rules', async (t) => {
  const { out } = await priced([score('a', 40, 1), score('b', 49, 1, 250), score('c', 40, 1, 10)])
  t.same(out[0]!.reasons.map((r) => r.text), [
    'harsh braking 4.1 per 100 km (typical 1.2): +28%',
    'driving at night 2% of the distance (typical 5%): −2%',
    '12,200 km a year (typical 10,000): +7%',
    'increase capped at +10% on the previous premium (factor 1)',
  ])
  t.equal(out[0]!.reasons[0]!.effect, 0.278, 'relativity 1.5 at score 40 against 1.174 at 46 (the score with braking at the median)')
  t.same(out[1]!.reasons.map((r) => r.text), [
    'harsh braking 4.1 per 100 km (typical 1.2): +12%',
    'driving at night 2% of the distance (typical 5%): −1%',
    '3,000 km a year (typical 10,000): −16%',
    '250 km observed of 1000 for full weight: 50% of the behaviour\'s effect applies',
    'decrease floored at −10% on the previous premium (factor 1)',
  ])
  t.same(out[2]!.reasons.map((r) => r.text), ['10 km observed, the plan needs 50 before any change: premium unchanged'])
  t.equal(out[2]!.factor, 1)
})

t.test('pay-as-you-drive beside pay-how-you-drive: the premium is base × behaviour × exposure relativity, with reasons in plain words', async (t) => {
  const wide = { floor: 0.1, cap: 10 }
  const sp: SubjectRating = { ...driving, factor: wide, change: wide, period: { ...wide, days: 365 } }
  const [distance, night] = [sp.exposure!.distance!, sp.exposure!.night!]
  const perYear = (km: number) => ({ days: 30, distance_km: (km * 30) / 365.25, moving_s: 36_000 })
  const at = (km: number, night_s = 1800, score = 40) => rate(sp, score, 1000, 0, firstStanding(0), 0.01, 1, exposureMeasures({ ...perYear(km), night_s }))
  const behaviour = rate(sp, 40, 1000, 0, firstStanding(0), 0.01).factor
  t.equal(at(distance.typical, night.typical * 36_000).factor, behaviour, 'typical km and night share: the behaviour factor alone')
  const km = distance.points[4]![0], kmRel = distance.points[4]![1]
  t.equal(at(km, night.typical * 36_000).factor, Math.round(behaviour * kmRel * 1000) / 1000, `${km} km a year: × ${kmRel}`)
  t.equal(at(km, night.typical * 36_000, 60).factor, Math.round(rate(sp, 60, 1000, 0, firstStanding(0), 0.01).factor * kmRel * 1000) / 1000, 'the same for a safer driver: the two multiply')
  const many = at(distance.points.at(-1)![0] * 2, 36_000)
  t.match(many, { exposureRelativity: sp.exposure!.cap, limited: { by: 'exposure', bound: 'cap' } }, 'the exposure relativity has its own cap')

  const s: Score = { ...score('a', 40, 1), exposure: { ...perYear(12_400), night_s: 0.2 * 36_000 } }
  const { out } = await priced([s], [{ ...plan, subjects: { driving: sp } }])
  const rel = (p: [number, number][], x: number) => {
    const i = p.findIndex(([x1]) => x1 >= x)
    return p[i - 1]![1] + ((x - p[i - 1]![0]) / (p[i]![0] - p[i - 1]![0])) * (p[i]![1] - p[i - 1]![1])
  }
  const pct = (r: number) => `+${Math.round((r - 1) * 100)}%`
  t.same(out[0]!.reasons.slice(2).map((r) => r.text), [
    `12,400 km a year (typical 10,000): ${pct(rel(distance.points, 12_400))}`,
    `night driving 20% of driving time (typical 5%): ${pct(rel(night.points, 0.2))}`,
  ], 'km a year and the night share against the plan\'s typical')
  t.equal(out[0]!.factor, Math.round(behaviour * rel(distance.points, 12_400) * rel(night.points, 0.2) * 1000) / 1000)

  const little = await priced([{ ...s, exposure: { ...s.exposure, distance_km: 300 } }], [{ ...plan, subjects: { driving: sp } }])
  t.equal(little.out[0]!.credibility, Math.round(Math.sqrt(300 / 1000) * 1000) / 1000)
  t.equal(little.out[0]!.factor, Math.round((1 + little.out[0]!.credibility * (rate(sp, 40, 1e9, 0, firstStanding(0), 0.01).relativity - 1)) * (1 + little.out[0]!.credibility * (rel(distance.points, (300 / 30) * 365.25) * rel(night.points, 0.2) - 1)) * 1000) / 1000, 'partial credibility weighs behaviour and exposure alike')
  t.same((await priced([{ ...s, exposure: { ...s.exposure, distance_km: 10 } }], [{ ...plan, subjects: { driving: sp } }])).out[0]!.factor, 1, 'below the minimum exposure nothing changes, exposure neither')

  // A limit that holds back the exposure part: its reason measures what it held back of behaviour × exposure.
  const held = { ...sp, change: { floor: 0.9, cap: 1.1 } }
  const few = await priced([{ ...s, value: 50, exposure: { ...perYear(distance.points[0]![0]), night_s: night.typical * 36_000 } }], [{ ...plan, subjects: { driving: held } }])
  const limitReason = few.out[0]!.reasons.find((r) => r.code === 'change floor')!
  const unheld = rate({ ...held, change: wide }, 50, perYear(distance.points[0]![0]).distance_km, 0, firstStanding(0), 0.01, 1, exposureMeasures({ ...perYear(distance.points[0]![0]), night_s: night.typical * 36_000 })).factor
  t.equal(few.out[0]!.factor, 0.9, 'the change floor holds the factor')
  t.ok(Math.abs(limitReason.effect - (0.9 / unheld - 1)) < 0.005, `the floor's effect ${limitReason.effect}: ×0.9 against the ×${unheld} it held back (it read the behaviour part alone: −0.1)`)
})

t.test('canonicalJson sorts keys at every level', async (t) => {
  t.equal(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: null } }), '{"a":{"c":null,"d":[2,{"e":0,"f":1}]},"b":1}')
})

t.test('priceScores: a score whose pricing throws is left unpriced and reported; the others are priced (#20)', async (t) => {
  const failed: string[] = []
  const unpriced: [Unpriced, string][] = []
  // A time past what a Date can hold: building the adjustment throws (a RangeError), as any bug might.
  const scores = [score('a', 40, 1), score('b', 40, 9e15), score('a', 45, 2), score('b', 60, 3)]
  const out = await lastValueFrom(from(scores).pipe(priceScores([plan], undefined, (why, s) => unpriced.push([why, s.policyId]), undefined, (err, s) => failed.push(`${s.policyId}: ${(err as Error).name}`)), toArray()))
  t.same(out.map((p) => [p.policyId, p.effectiveFrom]), [['a', new Date(1).toISOString()], ['a', new Date(2).toISOString()], ['b', new Date(3).toISOString()]], 'every other score priced, b\'s next one too')
  t.same(failed, ['b: RangeError'], 'the failure reported with its score')
  t.same(unpriced, [['pricing failed', 'b']], 'and counted as unpriced')
  t.equal(out[2]!.previousFactor, 1, 'b starts from its standing as it was: nothing of the failed score applied')
  t.equal(out[2]!.prevHash, out[1]!.hash, 'the chain skips the failed score')
})

t.test('privacy mode (#21): driving in it within the plan\'s allowance is priced on the score as it is, the share beyond at beyondFactor', async (t) => {
  const [plan] = loadPlans(examplePlans)
  // The example plan (allowance 20%, beyond it factor 1.3, the factor cap), with change and period limits out of the way.
  const wide = { ...plan!.subjects.driving!, change: { floor: 0.5, cap: 2 }, period: { ...plan!.subjects.driving!.period, floor: 0.5, cap: 2 } }
  const at = (score: number, share?: number, s: SubjectRating = wide) => rate(s, score, 1000, 0, firstStanding(0), 0.01, 1, share === undefined ? {} : { privacy_share: share }).factor
  t.equal(at(55), 0.818, 'a safe driver: odds 45/55')
  t.equal(at(55, 0.2), 0.818, 'within the 20% allowance: the factor of the score')
  t.equal(at(55, 0.6), Math.round((0.6 * (45 / 55) + 0.4 * 1.3) * 1000) / 1000, 'beyond it, that share at factor 1.3')
  t.equal(at(20, 1), at(20), 'a driver already at the cap pays the cap: pausing never pays')
  const { privacy: _, ...without } = wide
  t.equal(at(55, 1, without), 1.3, 'a plan without a privacy part prices all of it at the factor cap')
  const bad = structuredClone(plan!) as RatingPlan
  bad.subjects.driving!.privacy = { neutralShare: 0.2, beyondFactor: 0.9 }
  t.throws(() => checkPlan(bad), /\/subjects\/driving\/privacy\/beyondFactor: Expected number to be greater or equal to 1/, 'pausing must not pay')
  const health = structuredClone(plan!) as RatingPlan
  health.subjects.health!.privacy = { neutralShare: 0.2, beyondFactor: 1.1 }
  t.throws(() => checkPlan(health), /\/subjects\/health\/privacy: only driving is priced in privacy mode/, 'only driving is priced in it')
})
