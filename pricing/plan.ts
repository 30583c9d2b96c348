/**
 * A rating plan (#6): how scores become premiums, as a versioned JSON file that is validated when
 * it loads. Per subject: a base premium, the score-to-relativity mapping, credibility by exposure
 * (km driven, or days of data), a minimum exposure before any change, floors and caps on the
 * factor, on each change and over a period, and rounding. The plan applies from its effective
 * date; a later plan takes over from its own. A plan may rate on policy attributes too, but never
 * on ones the law or fairness rule out (sex, ethnicity, genetic data and similar): such a plan is
 * refused when it loads.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Type, type Static, type TObject, type TOptional } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { codes, subjectNames, type Subject } from '../ingest/device-contract.ts'
import type { Exposure, Score } from '../scoring/index.ts'

const bounds = (what: string) => ({
  floor: Type.Number({ exclusiveMinimum: 0, maximum: 1, description: `lowest ${what} (0.7: at most −30%; 1: no decrease)` }),
  cap: Type.Number({ minimum: 1, description: `highest ${what} (1.3: at most +30%; 1: discounts only)` }),
})

const relativityTable = (x: string, xMax?: number) => Type.Object({
  typical: Type.Number({ minimum: 0, ...(xMax ? { maximum: xMax } : {}), description: `a typical policy's ${x}: the table must give it relativity 1, and reasons read against it` }),
  points: Type.Array(Type.Tuple([Type.Number({ minimum: 0, ...(xMax ? { maximum: xMax } : {}) }), Type.Number({ exclusiveMinimum: 0 })]), { minItems: 2, description: `[${x}, relativity] pairs by rising ${x}, relativity not falling; straight lines between, flat beyond` }),
}, { additionalProperties: false })

/**
 * Pay-as-you-drive beside the score's pay-how-you-drive (#19): how much and when a policy drives,
 * as a relativity that multiplies the behaviour factor. Weighted by the same credibility as the
 * score (an annual mileage from a fortnight is an estimate), within its own floor and cap.
 */
const ExposurePlan = Type.Object({
  distance: Type.Optional(relativityTable('km a year')),
  night: Type.Optional(relativityTable('night share of driving time', 1)),
  ...bounds('exposure relativity'),
}, { additionalProperties: false })

/**
 * Privacy mode (#21): driving with location paused has no speeding measure, which the score counts
 * at its typical value. Up to `neutralShare` of the window's driving time that stands; the share
 * beyond it is priced at `beyondFactor`, so that pausing is not a way around the price. A driving
 * plan without it has no allowance: all driving in privacy mode is priced at the factor cap.
 */
const PrivacyPlan = Type.Object({
  neutralShare: Type.Number({ minimum: 0, maximum: 1, description: "share of the window's driving time in privacy mode priced on the typical value of what it did not measure (0.2: a fifth)" }),
  beyondFactor: Type.Number({ minimum: 1, description: 'the factor the driving in privacy mode beyond neutralShare is priced at (at least 1: pausing must not pay; the factor cap: it never pays)' }),
}, { additionalProperties: false })

/**
 * The reward for prevention (#24 item 4): discounts on the factor for what a policyholder does to
 * prevent a loss, each within the subject's factor floor like any other part of it. `goalStreak`
 * (health): the activity goals kept so many days in a row (scoring/health.ts `goal_streak_days`),
 * as wellness programmes reward 90 days of them. `valveTested` (home): a main water valve that
 * answered ubiq's command, acknowledged done or reported closed (ingest/commands.ts, on the audit
 * chain), within the last `withinDays`: fitted, and known to work.
 */
const PreventionPlan = Type.Object({
  goalStreak: Type.Optional(Type.Object({
    days: Type.Integer({ minimum: 1, description: 'goal days in a row that earn it (90)' }),
    discount: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: 'off the factor (0.05: −5%)' }),
  }, { additionalProperties: false })),
  valveTested: Type.Optional(Type.Object({
    withinDays: Type.Integer({ minimum: 1, description: 'a valve that last answered a command longer ago than this earns nothing (365: tested once a year)' }),
    discount: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: 'off the factor (0.05: −5%)' }),
  }, { additionalProperties: false })),
}, { additionalProperties: false })

/**
 * One household, a policy's covers together (#24 item 4): a discount on the total for holding
 * `minCovers` covers or more, and the total's floor and cap against the covers' base premiums
 * (every discount stacked: behaviour, prevention, bundle).
 */
const HouseholdPlan = Type.Object({
  bundle: Type.Object({
    minCovers: Type.Integer({ minimum: 2, maximum: 3, description: 'covers (driving, health, home) the policy must hold' }),
    discount: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, description: 'off the household total (0.05: −5%)' }),
  }, { additionalProperties: false }),
  ...bounds("household total over the covers' base premiums"),
}, { additionalProperties: false })

const SubjectPlan = Type.Object({
  basePremium: Type.Number({ exclusiveMinimum: 0, description: 'premium a year at factor 1, in the plan currency' }),
  mapping: Type.Union([
    Type.Object({ type: Type.Literal('model') }, { additionalProperties: false, description: "the model's own relativity: odds (100 − score)/score, 1 at score 50" }),
    Type.Object({
      type: Type.Literal('table'),
      points: Type.Array(Type.Tuple([Type.Number({ minimum: 0, maximum: 100 }), Type.Number({ exclusiveMinimum: 0 })]), { minItems: 2, description: '[score, relativity] pairs by rising score, relativity not rising; straight lines between, flat beyond' }),
    }, { additionalProperties: false }),
  ]),
  credibility: Type.Object({
    exposure: Type.Union([Type.Literal('distance_km'), Type.Literal('days')], { description: "what a score's credibility is measured in" }),
    full: Type.Number({ exclusiveMinimum: 0, description: 'exposure for full credibility: Z = min(1, √(exposure / full))' }),
    minimum: Type.Number({ minimum: 0, description: 'below this exposure the factor does not change at all' }),
  }, { additionalProperties: false }),
  factor: Type.Object(bounds('factor'), { additionalProperties: false }),
  change: Type.Object(bounds('factor over the previous factor, per adjustment'), { additionalProperties: false }),
  period: Type.Object({ ...bounds('factor over the factor at the start of the period'), days: Type.Integer({ minimum: 1, description: 'length of a period (365: a policy year from the first adjustment)' }) }, { additionalProperties: false }),
  exposure: Type.Optional(ExposurePlan),
  privacy: Type.Optional(PrivacyPlan),
  prevention: Type.Optional(PreventionPlan),
}, { additionalProperties: false })

export const RatingPlanSchema = Type.Object({
  name: Type.String({ pattern: '^[a-z0-9][a-z0-9-]*$' }),
  version: Type.String({ pattern: '^[A-Za-z0-9._-]+$' }),
  effectiveFrom: Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T', description: 'ISO 8601; scores of earlier times are priced by an earlier plan, or not at all' }),
  currency: Type.String({ pattern: '^[A-Z]{3}$' }),
  rounding: Type.Number({ exclusiveMinimum: 0, description: 'premiums are rounded to a multiple of this (0.01: cents)' }),
  subjects: Type.Object(Object.fromEntries(subjectNames.map((s) => [s, Type.Optional(SubjectPlan)])), { additionalProperties: false }) as unknown as TObject<Record<Subject, TOptional<typeof SubjectPlan>>>,
  household: Type.Optional(HouseholdPlan),
  attributes: Type.Optional(Type.Record(Type.String(), Type.Record(Type.String(), Type.Number({ exclusiveMinimum: 0 })), { description: 'policy attribute → value → relativity on the base premium' })),
}, { additionalProperties: false })

export type RatingPlan = Static<typeof RatingPlanSchema>
export type SubjectRating = Static<typeof SubjectPlan>
export type HouseholdRating = Static<typeof HouseholdPlan>

/** Why a premium is what it is: one feature against the portfolio's median, or a rule of the plan. */
export const PriceReason = Type.Object({
  code: Type.String(),
  text: Type.String({ description: 'Plain words, as the score\'s reasons say the feature: "harsh braking 4.1 per 100 km (typical 1.2): +6%"' }),
  value: Type.Number(),
  baseline: Type.Number(),
  effect: Type.Number({ description: 'The premium change this feature makes against the median (0.06: +6%), before the plan\'s limits' }),
}, { additionalProperties: false })
export type PriceReason = Static<typeof PriceReason>

/** A change in percent, as reasons say it: "+6%", "−5%", "±0%". */
export const pct = (x: number) => {
  const p = Math.round(x * 100)
  return p > 0 ? `+${p}%` : p < 0 ? `−${-p}%` : '±0%'
}

/**
 * Attributes no plan may rate on: protected characteristics (EU Gender Directive as applied in
 * Test-Achats, equality law) and genetic data. Matched on the words of an attribute's name, so
 * `driver_gender` and `Ethnic-Origin` are refused too.
 */
export const refusedAttributes = ['sex', 'gender', 'ethnicity', 'ethnic', 'race', 'religion', 'belief', 'genetic', 'genome', 'dna', 'disability', 'orientation', 'pregnancy', 'nationality'] as const

/** The shipped example plan's folder: a plan to copy and adapt. */
export const examplePlans = fileURLToPath(new URL('./plans/', import.meta.url))

/** `name@version`, as adjustments record it. */
export const planId = (plan: RatingPlan) => `${plan.name}@${plan.version}`

/** Validates a parsed plan; throws UBIQ_PLAN_INVALID listing every problem. */
export function checkPlan(value: unknown, where = 'rating plan'): RatingPlan {
  const problems = [...Value.Errors(RatingPlanSchema, value)].map((e) => `${e.path || '/'}: ${e.message}`)
  if (problems.length === 0) {
    const plan = value as RatingPlan
    if (Number.isNaN(Date.parse(plan.effectiveFrom))) problems.push(`/effectiveFrom: not a date: ${plan.effectiveFrom}`)
    for (const [subject, s] of Object.entries(plan.subjects) as [Subject, SubjectRating][]) {
      if (subject !== 'driving' && s.credibility.exposure === 'distance_km') problems.push(`/subjects/${subject}/credibility/exposure: ${subject} has no distance; use days`)
      if (s.mapping.type === 'table') {
        const p = s.mapping.points
        for (let i = 1; i < p.length; i++) {
          if (!(p[i]![0] > p[i - 1]![0])) problems.push(`/subjects/${subject}/mapping/points/${i}: scores must rise (${p[i - 1]![0]} then ${p[i]![0]})`)
          if (p[i]![1] > p[i - 1]![1]) problems.push(`/subjects/${subject}/mapping/points/${i}: a higher score is safer, so its relativity may not rise (${p[i - 1]![1]} then ${p[i]![1]})`)
        }
      }
      if (s.exposure) problems.push(...exposureProblems(subject, s.exposure))
      if (s.privacy && subject !== 'driving') problems.push(`/subjects/${subject}/privacy: only driving is priced in privacy mode (location paused)`)
      if (s.prevention?.goalStreak && subject !== 'health') problems.push(`/subjects/${subject}/prevention/goalStreak: activity goals are health's`)
      if (s.prevention?.valveTested && subject !== 'home') problems.push(`/subjects/${subject}/prevention/valveTested: a water valve is home's`)
    }
    for (const name of Object.keys(plan.attributes ?? {})) {
      const words = name.toLowerCase().split(/[^a-z0-9]+/)
      const refused = refusedAttributes.find((r) => words.includes(r))
      if (refused) problems.push(`/attributes/${name}: rating on ${refused} is not allowed`)
    }
    if (Object.keys(plan.subjects).length === 0) problems.push('/subjects: the plan prices no subject')
  }
  if (problems.length) throw new codes.UBIQ_PLAN_INVALID(`${where} is not valid:\n  ${problems.join('\n  ')}`)
  return value as RatingPlan
}

/** What is wrong with a subject's exposure part, each named by its path. */
function exposureProblems(subject: Subject, e: NonNullable<SubjectRating['exposure']>): string[] {
  const at = `/subjects/${subject}/exposure`
  if (subject !== 'driving') return [`${at}: ${subject} has no km or night driving; only driving has an exposure part`]
  const problems = e.distance || e.night ? [] : [`${at}: gives neither distance nor night`]
  if (e.floor > e.cap) problems.push(`${at}/floor: ${e.floor} is above the cap ${e.cap}`)
  for (const [name, table] of [['distance', e.distance], ['night', e.night]] as const) {
    if (!table) continue
    const p = table.points
    for (let i = 1; i < p.length; i++) {
      if (!(p[i]![0] > p[i - 1]![0])) problems.push(`${at}/${name}/points/${i}: values must rise (${p[i - 1]![0]} then ${p[i]![0]})`)
      if (p[i]![1] < p[i - 1]![1]) problems.push(`${at}/${name}/points/${i}: more exposure is no less risk, so its relativity may not fall (${p[i - 1]![1]} then ${p[i]![1]})`)
    }
    const atTypical = interpolate(p, table.typical)
    if (Math.abs(atTypical - 1) > 1e-9) problems.push(`${at}/${name}/typical: the table gives ${atTypical} at ${table.typical}; a typical policy's relativity must be 1`)
  }
  return problems
}

/** Reads and validates a plan file. */
export function loadPlan(file: string): RatingPlan {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new codes.UBIQ_PLAN_INVALID(`rating plan ${file}: cannot read it: ${(err as Error).message}`)
  }
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch (err) {
    throw new codes.UBIQ_PLAN_INVALID(`rating plan ${file} is not JSON: ${(err as Error).message}`)
  }
  return checkPlan(value, `rating plan ${file}`)
}

/**
 * A plan file, or every `.json` plan in a folder (the versions of a plan over time). Two plans may
 * not take effect at the same moment, and `name@version` is unique: either would make a price
 * ambiguous.
 */
export function loadPlans(path: string): RatingPlan[] {
  let files: string[]
  try {
    files = statSync(path).isDirectory() ? readdirSync(path).filter((f) => f.endsWith('.json')).sort().map((f) => join(path, f)) : [path]
  } catch (err) {
    throw new codes.UBIQ_PLAN_INVALID(`rating plan ${path}: cannot read it: ${(err as Error).message}`)
  }
  if (files.length === 0) throw new codes.UBIQ_PLAN_INVALID(`rating plan folder ${path} holds no .json plan`)
  const plans = files.map(loadPlan)
  for (let i = 0; i < plans.length; i++) {
    for (let j = 0; j < i; j++) {
      if (planId(plans[i]!) === planId(plans[j]!)) throw new codes.UBIQ_PLAN_INVALID(`${files[i]} and ${files[j]} are both ${planId(plans[i]!)}`)
      if (Date.parse(plans[i]!.effectiveFrom) === Date.parse(plans[j]!.effectiveFrom)) throw new codes.UBIQ_PLAN_INVALID(`${files[i]} and ${files[j]} both take effect at ${plans[i]!.effectiveFrom}`)
    }
  }
  return plans
}

/** The plan in effect at `ts` among `plans`: the one with the latest effective date not after it. */
export function planAt(plans: readonly RatingPlan[], ts: number): RatingPlan | undefined {
  let best: RatingPlan | undefined
  for (const p of plans) if (Date.parse(p.effectiveFrom) <= ts && (!best || Date.parse(p.effectiveFrom) > Date.parse(best.effectiveFrom))) best = p
  return best
}

/** A policy's standing under a plan for one subject: its last factor and the period it is in. */
export interface Standing {
  factor: number
  /** When the current period began (ms), and the factor then. */
  periodFrom: number
  periodFactor: number
}

/** Which limit held a factor back. */
export const Limit = Type.Union([
  Type.Object({
    by: Type.Union(['factor', 'exposure', 'change', 'period'].map((b) => Type.Literal(b as 'factor' | 'exposure' | 'change' | 'period'))),
    bound: Type.Union([Type.Literal('floor'), Type.Literal('cap')]),
  }, { additionalProperties: false }),
  Type.Null(),
], { description: 'Which limit of the plan held the factor back, if one did' })
export type Limit = Static<typeof Limit>

/** What a plan makes of one score. */
export interface Rating {
  factor: number
  premium: number
  /** The mapping's relativity for the score, before credibility and limits. */
  relativity: number
  credibility: number
  /** The exposure relativity (pay-as-you-drive) in the factor, after credibility and its limits; 1 without an exposure part. */
  exposureRelativity: number
  limited: Limit
  /** The standing after this rating. */
  standing: Standing
}

/** The mapping's relativity for a score. */
export function relativity(s: SubjectRating, score: number): number {
  if (s.mapping.type === 'model') {
    const v = Math.min(Math.max(score, 0.1), 99.9)
    return (100 - v) / v
  }
  return interpolate(s.mapping.points, score)
}

/** A table's value at `x`: straight lines between its [x, y] points by rising x, flat beyond. */
function interpolate(p: readonly (readonly [number, number])[], x: number): number {
  if (x <= p[0]![0]) return p[0]![1]
  for (let i = 1; i < p.length; i++) {
    const [x1, y1] = p[i]!, [x0, y0] = p[i - 1]!
    if (x <= x1) return y0 + ((x - x0) / (x1 - x0)) * (y1 - y0)
  }
  return p[p.length - 1]![1]
}

/** What a plan's exposure part reads from a score's exposure, where the score carries it. */
export interface ExposureMeasures {
  km_per_year?: number
  night_share?: number
  /** Share of driving time in privacy mode (the score's `privacy` note). */
  privacy_share?: number
  /** Activity goals kept in a row up to the score (health's `goal_streak_days` feature). */
  goal_streak_days?: number
  /** Days from the home's last valve test (a command its valve answered) to the score; negative: answered after the score's window. */
  valve_tested_days_ago?: number
}

/** km a year (the observed km per day over a year) and the night share of moving time. */
export const exposureMeasures = (e: Exposure): ExposureMeasures => ({
  ...(e.distance_km !== undefined && e.days > 0 ? { km_per_year: (e.distance_km / e.days) * 365.25 } : {}),
  ...(e.moving_s ? { night_share: (e.night_s ?? 0) / e.moving_s } : {}),
})

/** What a plan reads from a score: its exposure measures, and the share of its driving in privacy mode. */
export const scoreMeasures = (s: Pick<Score, 'exposure' | 'privacy' | 'features'>): ExposureMeasures => ({
  ...exposureMeasures(s.exposure),
  ...(s.privacy ? { privacy_share: s.privacy.share } : {}),
  ...(s.features.goal_streak_days !== undefined ? { goal_streak_days: s.features.goal_streak_days } : {}),
})

/** The prevention discounts a subject's plan gives for the measures, each as its relativity (0.95: −5%); none earned, none listed. */
export function preventionParts(s: SubjectRating, m: ExposureMeasures): { code: 'goal_streak' | 'valve_tested'; relativity: number }[] {
  const { goalStreak, valveTested } = s.prevention ?? {}
  return [
    ...(goalStreak && (m.goal_streak_days ?? 0) >= goalStreak.days ? [{ code: 'goal_streak' as const, relativity: 1 - goalStreak.discount }] : []),
    ...(valveTested && m.valve_tested_days_ago !== undefined && m.valve_tested_days_ago <= valveTested.withinDays ? [{ code: 'valve_tested' as const, relativity: 1 - valveTested.discount }] : []),
  ]
}

/** The product of the prevention discounts earned: 1 when none is. */
export const preventionRelativity = (s: SubjectRating, m: ExposureMeasures) => preventionParts(s, m).reduce((r, p) => r * p.relativity, 1)

/**
 * The behaviour factor with privacy mode priced as the plan says: the share of driving in privacy
 * mode beyond the plan's allowance at its `beyondFactor` (the factor cap without a `privacy` part),
 * the rest at `factor`. With no driving in privacy mode, `factor` itself.
 */
export function privacyPriced(s: SubjectRating, factor: number, share = 0): { factor: number; beyond: number } {
  const beyond = Math.max(0, share - (s.privacy?.neutralShare ?? 0))
  return { factor: factor * (1 - beyond) + beyond * (s.privacy?.beyondFactor ?? s.factor.cap), beyond }
}

/** Each exposure table's relativity for the measures (a measure the score lacks counts as typical). */
export function exposureParts(s: SubjectRating, m: ExposureMeasures): { km_per_year: number; night_share: number } {
  const part = (table: { typical: number; points: [number, number][] } | undefined, v: number | undefined) => (table ? interpolate(table.points, v ?? table.typical) : 1)
  return { km_per_year: part(s.exposure?.distance, m.km_per_year), night_share: part(s.exposure?.night, m.night_share) }
}

/** The exposure relativity before its limits: its parts' product pulled towards 1 by credibility z. */
export const credibleExposure = (parts: { km_per_year: number; night_share: number }, z: number) => 1 + z * (parts.km_per_year * parts.night_share - 1)

/** Credibility Z of an exposure (limited fluctuation, square-root rule); 0 below the minimum. */
export const credibility = (s: SubjectRating, exposure: number) =>
  exposure < s.credibility.minimum ? 0 : Math.min(1, Math.sqrt(exposure / s.credibility.full))

/** A score's exposure in the unit the subject's credibility is measured in. */
export const exposureOf = (s: SubjectRating, e: Exposure) => (s.credibility.exposure === 'days' ? e.days : (e.distance_km ?? 0))

/** The factor before limits: the relativity pulled towards 1 by credibility. */
export const credibleFactor = (s: SubjectRating, score: number, exposure: number) => 1 + credibility(s, exposure) * (relativity(s, score) - 1)

/** A new policy's standing: factor 1 since `ts`. */
export const firstStanding = (ts: number): Standing => ({ factor: 1, periodFrom: ts, periodFactor: 1 })

/**
 * Rates one score at time `ts` for a policy whose standing is `before`. The factor is
 * pay-how-you-drive × pay-as-you-drive: the score's relativity weighted by credibility (the share of
 * driving in privacy mode beyond the plan's allowance at its `beyondFactor`) times the prevention
 * discounts earned, within the factor's floor and cap, times the exposure relativity (`measures` read through the plan's
 * exposure tables, weighted by the same credibility, within the exposure floor and cap); then the
 * period's and the change's limits on the product, then rounding. The factor is kept to 3 decimals
 * so the same inputs give the same number everywhere. `attributeRelativity` multiplies the base
 * premium (1 when the plan rates on no attribute).
 */
export function rate(s: SubjectRating, score: number, exposure: number, ts: number, before: Standing, rounding: number, attributeRelativity = 1, measures: ExposureMeasures = {}): Rating {
  const z = credibility(s, exposure)
  const rel = relativity(s, score)
  const newPeriod = ts - before.periodFrom >= s.period.days * 86_400_000
  const periodFrom = newPeriod ? ts : before.periodFrom
  const periodFactor = newPeriod ? before.factor : before.periodFactor
  let factor = 1 + z * (rel - 1)
  let exposureRel = s.exposure ? credibleExposure(exposureParts(s, measures), z) : 1
  let limited: Limit = null
  /** `x` within [lo, hi]; the last limit that held it is the one the reasons name. */
  const clamp = (by: NonNullable<Limit>['by'], x: number, lo: number, hi: number) => {
    if (x < lo) return (limited = { by, bound: 'floor' }), lo
    if (x > hi) return (limited = { by, bound: 'cap' }), hi
    return x
  }
  if (z === 0) (factor = before.factor), (exposureRel = 1) // below the minimum exposure, nothing changes
  else {
    // Prevention discounts (#24) are part of the factor, so its floor bounds them with the behaviour's.
    factor = clamp('factor', privacyPriced(s, factor, measures.privacy_share).factor * preventionRelativity(s, measures), s.factor.floor, s.factor.cap)
    if (s.exposure) exposureRel = clamp('exposure', exposureRel, s.exposure.floor, s.exposure.cap)
    factor *= exposureRel
    factor = clamp('period', factor, periodFactor * s.period.floor, periodFactor * s.period.cap)
    factor = clamp('change', factor, before.factor * s.change.floor, before.factor * s.change.cap)
  }
  factor = Math.round(factor * 1000) / 1000
  const premium = Math.round((s.basePremium * attributeRelativity * factor) / rounding) * rounding
  return { factor, premium: Number(premium.toFixed(6)), relativity: rel, credibility: z, exposureRelativity: exposureRel, limited, standing: { factor, periodFrom, periodFactor } }
}

/** The product of a plan's attribute relativities for a policy; throws on a value the plan does not list. */
export function attributeRelativity(plan: RatingPlan, attributes: Record<string, string> | undefined): number {
  let r = 1
  for (const [name, table] of Object.entries(plan.attributes ?? {})) {
    const v = attributes?.[name]
    if (v === undefined || table[v] === undefined) throw new codes.UBIQ_PLAN_INVALID(`${planId(plan)}: rates on ${name}, and the policy's ${name} is ${v === undefined ? 'unknown' : `"${v}", which the plan does not list`}`)
    r *= table[v]!
  }
  return r
}
