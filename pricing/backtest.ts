/**
 * `ubiq backtest` (issue #6): a rating plan run over a simulated portfolio before it goes live.
 * Every policy is scored by the real model and rated by the plan exactly as pricing would rate it,
 * then the premiums are set against the simulator's truth: how they spread, how often the plan's
 * limits bind, whether each score decile pays in proportion to its risk, and how premiums differ
 * between groups the plan does not rate on (region, persona), so fairness effects show up front.
 */
import { resolve } from 'node:path'
import { subjectNames, type Subject } from '../ingest/index.ts'
import { DAY_MS, modelId, readPortfolio, scoreBatch, type LoadedModel, type PortfolioRow, type ScoreInput } from '../scoring/index.ts'
import { attributeRelativity, exposureOf, firstStanding, planAt, planId, rate, scoreMeasures, type Limit, type RatingPlan, type SubjectRating } from './plan.ts'

const subjects = subjectNames
/** Inputs per model call: each becomes 1 + features rows, so a batch stays a few thousand rows. */
const BATCH = 256
/** `ubiq sim portfolio`'s default days of wearable and home data per policy. */
const DEFAULT_DATA_DAYS = 90

export interface BacktestOptions {
  /** Folder with driving.csv, health.csv and home.csv (`ubiq sim portfolio` writes them). */
  portfolio: string
  /** Every version of the rating plan; the one in effect at `at` is backtested. */
  plans: readonly RatingPlan[]
  /** The model that scores each subject. */
  models: Partial<Record<Subject, LoadedModel>>
  /** When the plan is applied, ms (default: the latest plan's effective date). */
  at?: number
  /**
   * Days of wearable and home data behind each health and home score: their credibility
   * exposure. health.csv and home.csv do not record it, so it is the portfolio's `--days`
   * (default 90, as `ubiq sim portfolio`'s). Driving's days and km are in driving.csv.
   */
  dataDays?: number
}

/** One policy's subject as the plan rates it, beside the simulator's truth. */
export interface BacktestRow {
  policyId: string
  subject: Subject
  region: string
  persona: string
  score: number
  /** Behaviour × exposure relativity, after the plan's limits. */
  factor: number
  /** The plan's exposure relativity in the factor (pay-as-you-drive: km a year, night share); 1 without one. */
  exposureRelativity: number
  /** A year, in the plan's currency. */
  premium: number
  /** Which limit held the factor back, if one did. */
  limited: Limit
  credibility: number
  /** The truth: expected claims per policy-year (NaN when the portfolio does not carry it). */
  expectedPerYear: number
  /** Claims drawn over `years` of history. */
  claims: number
  years: number
}

/** How values spread over a subject's policies. */
export interface Distribution {
  min: number
  p5: number
  p25: number
  median: number
  p75: number
  p95: number
  max: number
  mean: number
}

/** Policies of a subject that share something, and their share of it. */
export interface Count {
  policies: number
  /** Of the subject's policies, 0–1. */
  share: number
}

/** Policies a limit held back, as pricing's reason codes name it ("change cap"). */
export type LimitCode = `${NonNullable<Limit>['by']} ${NonNullable<Limit>['bound']}`
const limitCodes: readonly LimitCode[] = ['factor floor', 'factor cap', 'exposure floor', 'exposure cap', 'change floor', 'change cap', 'period floor', 'period cap']

/** Premium against risk for a set of policies; loss ratios are relative to the whole subject's. */
export interface RiskGroup {
  policies: number
  meanScore: number
  meanPremium: number
  /** True expected claims per policy-year, mean over the group. */
  expectedPerYear: number
  /** Drawn claims per policy-year, mean over the group. */
  claimsPerYear: number
  /** (true expected claims ÷ premium) of the group ÷ the same of the subject: 1 pays in proportion to its risk, above 1 pays too little. */
  relativeLossRatio: number
  /** The same with the drawn claims. */
  relativeDrawnLossRatio: number
}

/** One of 10 equal-count groups by score; decile 1 holds the lowest scores (riskiest by the model). */
export interface Decile extends RiskGroup {
  decile: number
  minScore: number
  maxScore: number
}

/** Policies sharing one value of an attribute, against the subject's means. */
export interface AttributeGroup extends RiskGroup {
  value: string
  /** Mean premium ÷ the subject's mean premium. */
  premiumRelative: number
  /** Mean true expected frequency ÷ the subject's. */
  expectedRelative: number
}

export interface SubjectBacktest {
  subject: Subject
  rating: SubjectRating
  policies: number
  /** Policies below the plan's minimum exposure: their factor stays 1. */
  belowMinimum: Count
  premium: Distribution
  factor: Distribution
  /** The exposure relativity in the factors (1 for every policy when the plan has no exposure part). */
  exposureRelativity: Distribution
  limited: { any: Count; floor: Count; cap: Count; by: Record<LimitCode, Count> }
  deciles: Decile[]
  /** Per attribute: its groups, and whether the plan rates on it (persona never can: it is the simulator's truth). */
  groups: { attribute: 'region' | 'persona'; ratedByPlan: boolean; values: AttributeGroup[] }[]
}

export interface Backtest {
  /** `name@version` of the plan backtested. */
  plan: string
  currency: string
  effectiveFrom: string
  /** When the plan was applied, ms. */
  at: number
  models: string[]
  portfolio: string
  dataDays: number
  /** Every rated policy subject, in subject then portfolio order. */
  rows: BacktestRow[]
  subjects: SubjectBacktest[]
  /** Subjects not backtested, and why. */
  skipped: { subject: Subject; reason: string }[]
}

/**
 * Scores every policy of the portfolio with its subject's model and rates it with the plan in
 * effect at `at`, as pricing does a new policy's first adjustment (previous factor 1, a new
 * period), then summarises each subject against the simulator's truth.
 */
export async function backtest(opts: BacktestOptions): Promise<Backtest> {
  if (opts.plans.length === 0) throw new Error('no rating plan to backtest')
  const at = opts.at ?? Math.max(...opts.plans.map((p) => Date.parse(p.effectiveFrom)))
  const plan = planAt(opts.plans, at)
  if (!plan) throw new Error(`no rating plan in effect at ${new Date(at).toISOString()}; the earliest takes effect ${opts.plans.map((p) => p.effectiveFrom).sort()[0]}`)
  const portfolio = resolve(opts.portfolio)
  const dataDays = opts.dataDays ?? DEFAULT_DATA_DAYS
  const csv = readPortfolio(portfolio)
  const rows: BacktestRow[] = []
  const summaries: SubjectBacktest[] = []
  const skipped: Backtest['skipped'] = []
  const used: string[] = []
  for (const subject of subjects) {
    const rating = plan.subjects[subject]
    const model = opts.models[subject]
    const policies = csv[subject]
    if (!rating || !model || !policies) {
      skipped.push({ subject, reason: !rating ? `${planId(plan)} does not price ${subject}` : !model ? `no ${subject} model` : `no ${subject}.csv in the portfolio` })
      continue
    }
    if (model.definition.subject !== subject) throw new Error(`${modelId(model.definition)} scores ${model.definition.subject}, not ${subject}`)
    used.push(modelId(model.definition))
    const mine = await rateSubject(plan, rating, model, policies, at, dataDays)
    rows.push(...mine)
    summaries.push(summarise(subject, rating, mine, 'region' in (plan.attributes ?? {})))
  }
  if (summaries.length === 0) throw new Error(`nothing to backtest: ${skipped.map((s) => s.reason).join('; ')}`)
  return { plan: planId(plan), currency: plan.currency, effectiveFrom: plan.effectiveFrom, at, models: used, portfolio, dataDays, rows, subjects: summaries, skipped }
}

/**
 * A backtest without its per-policy rows (`--out` writes those): the summary the analyst's page
 * shows, a few kB of JSON. Without the portfolio's path too: where the server's files are is none
 * of a web client's business.
 */
export type BacktestSummary = Omit<Backtest, 'rows' | 'portfolio'>

export function backtestSummary(b: Backtest): BacktestSummary {
  const { rows: _rows, portfolio: _portfolio, ...summary } = b
  return summary
}

/**
 * The summary of a backtest with the models `models()` gives now, run on first request and kept
 * for that set of models: the inputs are files and fixed plans, so the numbers only change when a
 * model is promoted or rolled back, and a run blocks the event loop for a few hundred ms of ONNX
 * inference. A failed run is not kept: the next request tries again.
 */
export function cachedBacktest(opts: Omit<BacktestOptions, 'models'>, models: () => BacktestOptions['models']): () => Promise<BacktestSummary> {
  const runs = new Map<string, Promise<BacktestSummary>>()
  return () => {
    const current = models()
    // The plans are fixed for the cache's life, so the models alone tell runs apart.
    const key = Object.values(current).map((m) => modelId(m.definition)).sort().join(' ')
    let run = runs.get(key)
    if (!run) {
      runs.set(key, (run = backtest({ ...opts, models: current }).then(backtestSummary)))
      run.catch(() => runs.delete(key))
    }
    return run
  }
}

/** Scores one subject's policies a batch at a time and rates each score as pricing does. */
async function rateSubject(plan: RatingPlan, rating: SubjectRating, model: LoadedModel, policies: readonly PortfolioRow[], at: number, dataDays: number): Promise<BacktestRow[]> {
  const out: BacktestRow[] = []
  for (let i = 0; i < policies.length; i += BATCH) {
    const batch = policies.slice(i, i + BATCH)
    const scores = await scoreBatch(model, batch.map((row) => scoreInput(row, at, dataDays)))
    scores.forEach((score, k) => {
      const row = batch[k]!
      // The same exposure and call as pricing's priceScores, for a policy with no standing yet (a
      // goal streak the plan rewards included; the portfolio knows of no valve test).
      const exposure = exposureOf(rating, score.exposure)
      const r = rate(rating, score.value, exposure, at, firstStanding(at), plan.rounding, attributeRelativity(plan, { region: row.region }), scoreMeasures(score))
      out.push({
        policyId: row.policyId, subject: row.subject, region: row.region, persona: row.persona,
        score: score.value, factor: r.factor, exposureRelativity: Math.round(r.exposureRelativity * 1000) / 1000, premium: r.premium, limited: r.limited, credibility: Math.round(r.credibility * 1000) / 1000,
        expectedPerYear: row.expectedPerYear, claims: row.claims, years: row.years,
      })
    })
  }
  return out
}

/**
 * What scoring would hand the model at the end of the observed span: the CSV's features, and the
 * exposure a live score carries (driving: its days, km, moving and night time observed; health and
 * home: days of data).
 */
function scoreInput(row: PortfolioRow, at: number, dataDays: number): ScoreInput {
  const feature = (name: string) => {
    const v = row.features[name]
    if (v === undefined) throw new Error(`driving.csv: ${row.policyId} has no ${name}, which a driving score's exposure needs`)
    return v
  }
  const moving_s = row.subject === 'driving' ? feature('moving_h') * 3600 : 0
  // No night share is written for a policy that never moved: it drove no night either.
  const exposure = row.subject === 'driving'
    ? { days: feature('days_observed'), distance_km: feature('distance_km'), moving_s, night_s: (row.features.night_share ?? 0) * moving_s }
    : { days: dataDays }
  return { policyId: row.policyId, subject: row.subject, window: { from: at - exposure.days * DAY_MS, to: at }, exposure, features: row.features }
}

function summarise(subject: Subject, rating: SubjectRating, rows: readonly BacktestRow[], regionRated: boolean): SubjectBacktest {
  const n = rows.length
  const count = (keep: (r: BacktestRow) => boolean): Count => {
    const policies = rows.filter(keep).length
    return { policies, share: policies / n }
  }
  const whole = totals(rows)
  const group = (members: readonly BacktestRow[]): RiskGroup => {
    const g = totals(members)
    return {
      policies: members.length,
      meanScore: g.score / members.length,
      meanPremium: g.premium / members.length,
      expectedPerYear: g.expected / members.length,
      claimsPerYear: g.drawn / members.length,
      relativeLossRatio: g.expected / g.premium / (whole.expected / whole.premium),
      relativeDrawnLossRatio: g.drawn / g.premium / (whole.drawn / whole.premium),
    }
  }
  // Ties in score are split by policy id, so the deciles are the same on every run.
  const byScore = [...rows].sort((a, b) => a.score - b.score || a.policyId.localeCompare(b.policyId))
  const deciles = Array.from({ length: 10 }, (_, d) => byScore.slice(Math.floor((d * n) / 10), Math.floor(((d + 1) * n) / 10)))
    .map((members, d) => ({ members, d }))
    .filter(({ members }) => members.length > 0)
    .map(({ members, d }) => ({ decile: d + 1, minScore: members[0]!.score, maxScore: members.at(-1)!.score, ...group(members) }))
  const attributeGroups = (attribute: 'region' | 'persona') => {
    const values = [...new Set(rows.map((r) => r[attribute]))].sort()
    return values.map((value) => {
      const g = group(rows.filter((r) => r[attribute] === value))
      return { value, ...g, premiumRelative: g.meanPremium / (whole.premium / n), expectedRelative: g.expectedPerYear / (whole.expected / n) }
    })
  }
  return {
    subject,
    rating,
    policies: n,
    belowMinimum: count((r) => r.credibility === 0),
    premium: distribution(rows.map((r) => r.premium)),
    factor: distribution(rows.map((r) => r.factor)),
    exposureRelativity: distribution(rows.map((r) => r.exposureRelativity)),
    limited: {
      any: count((r) => r.limited !== null),
      floor: count((r) => r.limited?.bound === 'floor'),
      cap: count((r) => r.limited?.bound === 'cap'),
      by: Object.fromEntries(limitCodes.map((code) => [code, count((r) => r.limited !== null && `${r.limited.by} ${r.limited.bound}` === code)])) as Record<LimitCode, Count>,
    },
    deciles,
    groups: [
      { attribute: 'region', ratedByPlan: regionRated, values: attributeGroups('region') },
      { attribute: 'persona', ratedByPlan: false, values: attributeGroups('persona') },
    ],
  }
}

const totals = (rows: readonly BacktestRow[]) => ({
  score: sum(rows.map((r) => r.score)),
  premium: sum(rows.map((r) => r.premium)),
  expected: sum(rows.map((r) => r.expectedPerYear)),
  drawn: sum(rows.map((r) => r.claims / r.years)),
})

const sum = (xs: readonly number[]) => xs.reduce((a, x) => a + x, 0)

/** Quantiles interpolate linearly between the sorted values (as R's type 7 and numpy's default). */
function distribution(values: readonly number[]): Distribution {
  const xs = [...values].sort((a, b) => a - b)
  const q = (p: number) => {
    const h = (xs.length - 1) * p
    const lo = Math.floor(h)
    return xs[lo]! + (h - lo) * ((xs[lo + 1] ?? xs[lo]!) - xs[lo]!)
  }
  return { min: xs[0]!, p5: q(0.05), p25: q(0.25), median: q(0.5), p75: q(0.75), p95: q(0.95), max: xs.at(-1)!, mean: sum(xs) / xs.length }
}

/** The backtest as a readable report: what was run, then a section per subject with aligned tables. */
export function backtestReport(b: Backtest): string {
  const policies = new Set(b.rows.map((r) => r.policyId)).size
  const lines = [
    `backtest of ${b.plan} with ${b.models.join(', ')} on ${b.portfolio}: ${policies} policies, ${b.rows.length} policy subjects rated`,
    `Plan in effect from ${b.effectiveFrom}, applied at ${new Date(b.at).toISOString()}. Each policy is rated as a new policy's first adjustment`,
    `(previous factor 1, a new period), so a change limit bounds the factor itself.`,
    ...(b.subjects.some((s) => s.subject !== 'driving') ? [`Health and home scores rest on ${b.dataDays} days of data each (the portfolio's CSV does not record it); driving on each policy's observed days and km.`] : []),
    ...b.skipped.map((s) => `Not backtested: ${s.subject}: ${s.reason}.`),
  ]
  for (const s of b.subjects) lines.push('', ...subjectSection(s, b.currency))
  return lines.join('\n') + '\n'
}

function subjectSection(s: SubjectBacktest, currency: string): string[] {
  const r = s.rating
  const unit = r.credibility.exposure === 'days' ? 'days' : 'km'
  const count = (c: Count) => `${c.policies} (${pct(c.share)})`
  const dist = (name: string, d: Distribution, digits: number) => [name, ...[d.min, d.p5, d.p25, d.median, d.p75, d.p95, d.max, d.mean].map((x) => num(x, digits))]
  const risk = (g: RiskGroup) => [num(g.meanPremium, 2), num(g.expectedPerYear, 4), num(g.claimsPerYear, 4), num(g.relativeLossRatio, 2), num(g.relativeDrawnLossRatio, 2)]
  return [
    `${s.subject}: ${s.policies} policies; base premium ${r.basePremium} ${currency}; credibility full at ${r.credibility.full} ${unit}, none below ${r.credibility.minimum} ${unit};`,
    `  factor ${r.factor.floor}–${r.factor.cap}, change ${r.change.floor}–${r.change.cap}, period ${r.period.floor}–${r.period.cap} over ${r.period.days} days`,
    ...(r.exposure ? [`  factor = behaviour × exposure relativity (${[r.exposure.distance && `km a year, typical ${r.exposure.distance.typical}`, r.exposure.night && `night share, typical ${r.exposure.night.typical}`].filter(Boolean).join('; ')}; ${r.exposure.floor}–${r.exposure.cap})`] : []),
    `  below the minimum exposure (factor stays 1): ${count(s.belowMinimum)}`,
    '',
    ...indent(table(['', 'min', 'p5', 'p25', 'median', 'p75', 'p95', 'max', 'mean'], [
      dist(`premium (${currency})`, s.premium, 2), dist('factor', s.factor, 3), ...(r.exposure ? [dist('exposure relativity', s.exposureRelativity, 3)] : []),
    ])),
    '',
    `  limited: ${count(s.limited.any)}: floored ${count(s.limited.floor)}, capped ${count(s.limited.cap)}`,
    ...indent(table(['limit', ...limitCodes], [['policies', ...limitCodes.map((c) => count(s.limited.by[c]))]])),
    '',
    '  Loss ratio by score decile, decile 1 = lowest scores (riskiest by the model). Relative loss ratio: (claims ÷ premium) of the decile',
    '  ÷ the same of all the subject\'s policies; 1 pays in proportion to its risk, above 1 pays too little, below 1 too much.',
    ...indent(table(
      ['decile', 'policies', 'scores', 'mean score', 'mean premium', 'true claims/yr', 'drawn claims/yr', 'rel. LR true', 'rel. LR drawn'],
      s.deciles.map((d) => [String(d.decile), String(d.policies), `${num(d.minScore, 1)}–${num(d.maxScore, 1)}`, num(d.meanScore, 1), ...risk(d)]),
    )),
    ...s.groups.flatMap((g) => [
      '',
      `  By ${g.attribute} (${g.ratedByPlan ? 'rated on by the plan' : 'not rated on by the plan'}); relative to the subject's mean:`,
      ...indent(table(
        [g.attribute, 'policies', 'premium rel.', 'true freq. rel.', 'mean premium', 'true claims/yr', 'drawn claims/yr', 'rel. LR true', 'rel. LR drawn'],
        g.values.map((v) => [v.value, String(v.policies), num(v.premiumRelative, 3), num(v.expectedRelative, 3), ...risk(v)]),
      )),
    ]),
  ]
}

/** Columns padded to their widest cell: the first left-aligned (labels), the rest right-aligned (numbers). */
function table(head: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = head.map((h, j) => Math.max(h.length, ...rows.map((r) => r[j]!.length)))
  return [head, ...rows].map((cells) => cells.map((c, j) => (j === 0 ? c.padEnd(widths[j]!) : c.padStart(widths[j]!))).join('  ').trimEnd())
}

const indent = (lines: readonly string[]) => lines.map((l) => `  ${l}`)
/** A number to fixed digits; '–' for one the portfolio could not give (no true frequencies). */
const num = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : '–')
const pct = (x: number) => `${(100 * x).toFixed(1)}%`

/** The rated policies as CSV, a header line first: one line per policy and subject. */
export function backtestCsv(b: Backtest): string {
  const head = ['policy_id', 'subject', 'region', 'persona', 'score', 'factor', 'exposure_relativity', 'premium', 'limited', 'credibility', 'expected_claims_per_year', 'claims', 'years']
  // Ids, regions and persona names come from the portfolio's CSV cells: no commas, nothing to quote.
  const lines = b.rows.map((r) => [
    r.policyId, r.subject, r.region, r.persona, r.score, r.factor, r.exposureRelativity, r.premium, r.limited ? `${r.limited.by} ${r.limited.bound}` : '', r.credibility,
    Number.isFinite(r.expectedPerYear) ? r.expectedPerYear : '', r.claims, r.years,
  ].join(','))
  return [head.join(','), ...lines].join('\n') + '\n'
}
