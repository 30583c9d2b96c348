/**
 * The pricing service: scores → premium adjustments by the rating plan in effect, with reasons in
 * plain words, hash-chained, appended to the audit log, then published retained on
 * `ubiq/v1/premiums/{policyId}` and stored in InfluxDB.
 */
import { createHash } from 'node:crypto'
import type { MqttClient } from 'mqtt'
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import { defer, filter, map, share, tap, type Observable, type OperatorFunction } from 'rxjs'
import { Type, type Static } from '@sinclair/typebox'
import { Subject, toLine, topics, type Influx } from '../ingest/index.ts'
import { featureText, type Score } from '../scoring/index.ts'
import type { AuditLog, AuditRecord, HouseholdRecord } from './audit.ts'
import { reveal, type PolicyKeys } from './pseudonyms.ts'
import {
  attributeRelativity, credibleExposure, credibleFactor, exposureOf, exposureParts, firstStanding, Limit, planAt, planId, preventionParts, preventionRelativity, privacyPriced, rate, scoreMeasures,
  PriceReason, pct, type ExposureMeasures, type Rating, type RatingPlan, type Standing, type SubjectRating,
} from './plan.ts'
import { householdPremium, type HouseholdPremium, type LatestPremium } from './household.ts'

export { PriceReason }

/** A premium change, with everything needed to explain and reproduce it (DESIGN.md core types), as published on `ubiq/v1/premiums/{policyId}/{subject}`. */
export const PremiumAdjustment = Type.Object({
  policyId: Type.String(),
  subject: Subject,
  factor: Type.Number(),
  premium: Type.Number({ description: 'basePremium × attribute relativities × factor, rounded as the plan says; a year, in `currency`' }),
  currency: Type.String(),
  previousFactor: Type.Number(),
  period: Type.Object({ from: Type.String(), factor: Type.Number() }, { additionalProperties: false, description: "The period the plan's period limits apply to: its start (ISO 8601) and the factor then" }),
  reasons: Type.Array(PriceReason),
  models: Type.Array(Type.String(), { description: 'name@version of each model behind it' }),
  ruleset: Type.String(),
  effectiveFrom: Type.String({ description: 'ISO 8601' }),
  inputsHash: Type.String({ description: 'sha256 of the canonical inputs: the same inputs always give the same adjustment' }),
  prevHash: Type.String({ description: "Hash of the previous record in the audit chain ('' for the first)" }),
  hash: Type.String({ description: 'Hash of this adjustment, prevHash included' }),
  credibility: Type.Number(),
  limited: Limit,
}, { additionalProperties: false })
export type PremiumAdjustment = Static<typeof PremiumAdjustment>

/** Where pricing stands: the chain's last hash, and per policy and subject its standing and last score's time. */
export interface PricingState {
  lastHash: string
  /**
   * `before`: the standing before the last adjustment (none for a policy's first), for the premium
   * simulator; `latest`: the adjustment's premium, for the household (#24).
   */
  standings: Map<string, { standing: Standing; before?: Standing; lastTo: number; latest: LatestPremium }>
}

const key = (policyId: string, subject: Subject) => `${policyId}/${subject}`

/**
 * Pricing's state from its own audit log: a restart carries on exactly where the last run ended.
 * With the policies' keys, adjustments are read back by them; an erased policy's (its key gone),
 * like consent, privacy and erasure records, only move the chain's end.
 */
export function pricingStateFromAudit(records: Iterable<AuditRecord>, keys?: PolicyKeys): PricingState {
  const state: PricingState = { lastHash: '', standings: new Map() }
  for (const r of records) {
    const known = keys ? reveal(r, keys) : r
    if (known && known.record === undefined) applyAdjustment(state, known)
    else state.lastHash = r.hash
  }
  return state
}

/** Moves `state` past adjustment `a`: the chain's last hash, and its policy's standing (and the one before). */
export function applyAdjustment(state: PricingState, a: PremiumAdjustment): void {
  const k = key(a.policyId, a.subject)
  state.lastHash = a.hash
  const latest = { subject: a.subject, premium: a.premium, factor: a.factor, hash: a.hash, effectiveFrom: a.effectiveFrom }
  state.standings.set(k, { standing: standingOf(a), before: state.standings.get(k)?.standing, lastTo: Date.parse(a.effectiveFrom), latest })
}

/** The standing an adjustment leaves its policy in. */
export const standingOf = (a: PremiumAdjustment): Standing => ({ factor: a.factor, periodFrom: Date.parse(a.period.from), periodFactor: a.period.factor })

export interface PricingDeps {
  scores$: Observable<Score>
  mqtt: MqttClient
  influx: Influx
  /** Every version of the rating plan; each score is priced by the one in effect at its time. */
  plans: readonly RatingPlan[]
  /** Every adjustment is appended here before it is published; pricing continues from its records. */
  audit: AuditLog
  /** The state the audit log's records give (`pricingStateFromAudit`). */
  state: PricingState
  logger: Logger
  metrics: Registry
  /** A policy's last valve test, from the command store (#24), for plans that reward one. */
  valveTest?: (policyId: string) => ValveTest | undefined
}

/** A policy's latest premium per subject in `state`. */
const latestOf = (state: PricingState, policyId: string) => Subject.anyOf.flatMap((s) => state.standings.get(key(policyId, s.const))?.latest ?? [])

/** Starts pricing; premiums$ is hot and shared. */
export function startPricing(deps: PricingDeps): {
  premiums$: Observable<PremiumAdjustment>
  /** A policy's household now, from its latest premiums: what the last household record says. */
  household(policyId: string): HouseholdPremium | undefined
  /** A policy's standing after its last adjustment of `subject`, and before it (for the premium simulator). */
  standing(policyId: string, subject: Subject): { standing: Standing; before?: Standing } | undefined
} {
  const log = deps.logger.child({ stage: 'pricing' })
  const priced = new Counter({ name: 'ubiq_premium_adjustments_total', help: 'Premium adjustments published', labelNames: ['subject'], registers: [deps.metrics] })
  const unpriced = new Counter({ name: 'ubiq_scores_unpriced_total', help: 'Scores that moved no premium, by reason', labelNames: ['reason'], registers: [deps.metrics] })
  if (deps.audit.dropped > 0) log.warn({ bytes: deps.audit.dropped }, 'audit log: dropped a partial last record, never published')
  const published: PricingState = { lastHash: deps.state.lastHash, standings: new Map(deps.state.standings) }
  const premiums$ = deps.scores$.pipe(
    priceScores(deps.plans, deps.state, (reason) => unpriced.inc({ reason }), undefined, (err, s) => {
      log.error({ err, policyId: s.policyId, subject: s.subject }, 'pricing a score threw: it is left unpriced, the other scores are priced')
    }, deps.valveTest),
    // In the log before any subscriber sees it: nothing is published that the audit log lacks (#6).
    // Linked to the log's last record, which a consent change (#21) may have written since the
    // last adjustment: the same hashes as priceScores' own when none did.
    map(({ prevHash: _, hash: __, ...body }) => deps.audit.link<PremiumAdjustment>(body)),
    // The household it changes follows it into the chain (#24), when the plan has a household rule.
    tap((p) => {
      applyAdjustment(published, p)
      const h = householdPremium(deps.plans, p.policyId, latestOf(published, p.policyId))
      if (h) deps.audit.link<HouseholdRecord>({ record: 'household', ...h })
    }),
    share(),
  )
  premiums$.subscribe({
    next: (p) => {
      priced.inc({ subject: p.subject })
      log.debug({ policyId: p.policyId, subject: p.subject, factor: p.factor }, 'premium adjusted')
      deps.mqtt.publish(topics.premiums(p.policyId, p.subject), JSON.stringify(p), { qos: 1, retain: true })
      deps.influx.write([premiumLine(p)])
    },
    // An adjustment that cannot be audited is never published: premiums$ ends with the error.
    error: (err: Error) => log.error({ err }, 'pricing stopped: the audit log failed'),
  })
  return {
    premiums$,
    household: (policyId) => householdPremium(deps.plans, policyId, latestOf(published, policyId)),
    standing: (policyId, subject) => published.standings.get(key(policyId, subject)),
  }
}

/**
 * A premium adjustment as an InfluxDB line: measurement `premium`, tagged with its policy, subject
 * and ruleset, at its effective time; the rest as fields (reasons, models and limit as JSON), so
 * that `premiumFromRow` gives the adjustment back whole: the feed's standing of a policy it no
 * longer holds in memory comes from here (#20 item 5).
 */
export const premiumLine = (p: PremiumAdjustment) => toLine('premium', { policy_id: p.policyId, subject: p.subject, ruleset: p.ruleset }, {
  factor: p.factor, previous_factor: p.previousFactor, premium: p.premium, currency: p.currency, credibility: p.credibility,
  period_from: Date.parse(p.period.from), period_factor: p.period.factor, inputs_hash: p.inputsHash, prev_hash: p.prevHash, hash: p.hash,
  reasons: JSON.stringify(p.reasons), models: JSON.stringify(p.models), limited: JSON.stringify(p.limited),
}, Date.parse(p.effectiveFrom), ['period_from'])

/**
 * An adjustment back from a row of `SELECT * FROM premium …` (epoch ms; ingest seriesRows). Those
 * stored before currency, period, models and limit were (#20) come back without them.
 */
export function premiumFromRow(x: Record<string, unknown>): PremiumAdjustment {
  const iso = (ms: unknown) => new Date(ms as number).toISOString()
  const json = (text: unknown) => (typeof text === 'string' ? JSON.parse(text) : undefined)
  return {
    policyId: x.policy_id as string,
    subject: x.subject as Subject,
    factor: x.factor as number,
    premium: x.premium as number,
    currency: x.currency as string,
    previousFactor: x.previous_factor as number,
    ...(x.period_from !== undefined ? { period: { from: iso(x.period_from), factor: x.period_factor as number } } : {}),
    reasons: json(x.reasons) ?? [],
    models: json(x.models),
    ruleset: x.ruleset as string,
    effectiveFrom: iso(x.time),
    inputsHash: x.inputs_hash as string,
    prevHash: x.prev_hash as string,
    hash: x.hash as string,
    credibility: x.credibility as number,
    limited: json(x.limited),
  } as PremiumAdjustment
}

/** A home's last valve test: a command its valve answered (acknowledged done, or reported closed), from the audit chain's command records. */
export interface ValveTest {
  /** The command's id (its audit record's hash). */
  id: string
  /** When the valve answered, ISO 8601. */
  at: string
}

/** What pricing reads from a score, with the home's last valve test where `valveTest` knows one. */
export const measuresOf = (s: Score, test: ValveTest | undefined): ExposureMeasures => ({
  ...scoreMeasures(s),
  ...(s.subject === 'home' && test ? { valve_tested_days_ago: Math.round((s.window.to - Date.parse(test.at)) / 8_640_000) / 10 } : {}),
})

/** Why a score moved no premium. */
export type Unpriced = 'already priced' | 'no plan in effect' | 'subject not in plan' | 'policy attributes' | 'pricing failed'

/**
 * Stage: scores → adjustments. A score no later than the last one priced for its policy and
 * subject (a redelivery, or a stale score) yields nothing: an adjustment never applies twice, and
 * with the state rebuilt from the audit log that holds across restarts too. Each score is priced
 * by the plan in effect at its time, from the policy's standing (last factor, period).
 * `attributes` gives a policy's rating attributes, for plans that rate on them.
 *
 * A score whose pricing throws is `onError`'s and unpriced ('pricing failed'), and the others are
 * priced on (#20: one policy's exception ended premiums$ for everyone). Its policy keeps its
 * standing: that is the audit log's record, and nothing of the failed score was applied to it.
 * Without `onError`, the exception is the stream's error (for tests, which should see it).
 * `valveTest` gives a policy's last valve test, for plans that reward one (#24).
 */
export function priceScores(
  plans: readonly RatingPlan[],
  start: PricingState = { lastHash: '', standings: new Map() },
  onUnpriced: (reason: Unpriced, score: Score) => void = () => {},
  attributes: (policyId: string) => Record<string, string> | undefined = () => undefined,
  onError?: (err: unknown, score: Score) => void,
  valveTest: (policyId: string) => ValveTest | undefined = () => undefined,
): OperatorFunction<Score, PremiumAdjustment> {
  // State per subscription, not per pipe: two subscribers must not share one chain.
  return (scores$) => defer(() => {
    const state: PricingState = { lastHash: start.lastHash, standings: new Map(start.standings) }
    const price = (s: Score): PremiumAdjustment | Unpriced => {
      const k = key(s.policyId, s.subject)
      const last = state.standings.get(k)
      if (last && s.window.to <= last.lastTo) return 'already priced'
      const plan = planAt(plans, s.window.to)
      if (!plan) return 'no plan in effect'
      const sp = plan.subjects[s.subject]
      if (!sp) return 'subject not in plan'
      let attributeRel: number
      try {
        attributeRel = attributeRelativity(plan, attributes(s.policyId))
      } catch {
        return 'policy attributes'
      }
      const before = last?.standing ?? firstStanding(s.window.to)
      const exposure = exposureOf(sp, s.exposure)
      const test = sp.prevention?.valveTested ? valveTest(s.policyId) : undefined
      const measures = measuresOf(s, test)
      const inputs = { policyId: s.policyId, subject: s.subject, score: s.value, model: s.model, window: s.window, exposure: s.exposure, reasons: s.reasons, consent: s.consent, ruleset: planId(plan), before, attributeRel, privacyShare: s.privacy?.share, goalStreakDays: measures.goal_streak_days, valveTest: test }
      const r = rate(sp, s.value, exposure, s.window.to, before, plan.rounding, attributeRel, measures)
      const body = {
        policyId: s.policyId,
        subject: s.subject,
        factor: r.factor,
        premium: r.premium,
        currency: plan.currency,
        previousFactor: before.factor,
        period: { from: new Date(r.standing.periodFrom).toISOString(), factor: r.standing.periodFactor },
        reasons: priceReasons(sp, s, exposure, r, before, measures),
        models: [s.model],
        ruleset: planId(plan),
        effectiveFrom: new Date(s.window.to).toISOString(),
        inputsHash: sha256(canonicalJson(inputs)),
        prevHash: state.lastHash,
        credibility: Math.round(r.credibility * 1000) / 1000,
        limited: r.limited,
      }
      const adjustment = { ...body, hash: adjustmentHash(body) }
      applyAdjustment(state, adjustment)
      return adjustment
    }
    const priceOrReport = (s: Score): PremiumAdjustment | Unpriced => {
      if (!onError) return price(s)
      try {
        return price(s)
      } catch (err) {
        onError(err, s)
        return 'pricing failed'
      }
    }
    return scores$.pipe(
      map((s) => ({ s, out: priceOrReport(s) })),
      filter(({ s, out }) => {
        if (typeof out === 'string') onUnpriced(out, s)
        return typeof out !== 'string'
      }),
      map(({ out }) => out as PremiumAdjustment),
    )
  })
}

/**
 * The reasons in plain words: each feature's effect on the premium against the portfolio median
 * (the score with that feature at its median, through the same mapping and credibility), then how
 * much and when the policy drives against the plan's typical (the exposure relativity with that
 * part at typical), then the plan's rules that shaped the number: too little exposure, partial
 * credibility, a limit. `measures` are the exposure the rating used (the score's own by default).
 */
export function priceReasons(sp: SubjectRating, s: Score, exposure: number, r: Rating, before: Standing, measures: ExposureMeasures = scoreMeasures(s)): PriceReason[] {
  const unit = sp.credibility.exposure === 'days' ? 'days of data' : 'km'
  if (r.credibility === 0) {
    return [{ code: 'exposure', text: `${fmt(exposure)} ${unit} observed, the plan needs ${sp.credibility.minimum} before any change: premium unchanged`, value: exposure, baseline: sp.credibility.minimum, effect: 0 }, ...consentReasons(s)]
  }
  const f = credibleFactor(sp, s.value, exposure)
  const features = s.reasons
    .map((x) => {
      const effect = f / credibleFactor(sp, s.value - x.impact, exposure) - 1
      return { code: x.code, text: `${featureText(x.label, x.value, x.unit, x.baseline)}: ${pct(effect)}`, value: x.value, baseline: x.baseline, effect: Math.round(effect * 1000) / 1000 }
    })
    .filter((x) => pct(x.effect) !== '±0%')
  const usage = exposureReasons(sp, measures, r.credibility).filter((x) => pct(x.effect) !== '±0%')
  const prevention = preventionReasons(sp, measures)
  const rules: PriceReason[] = s.privacy ? [privacyReason(sp, s.privacy.text, f, measures.privacy_share ?? 0)] : []
  if (r.credibility < 1) {
    rules.push({ code: 'credibility', text: `${fmt(exposure)} ${unit} observed of ${sp.credibility.full} for full weight: ${Math.round(r.credibility * 100)}% of the behaviour's effect applies`, value: exposure, baseline: sp.credibility.full, effect: 0 })
  }
  if (r.limited) {
    const { by, bound } = r.limited
    const of = by === 'factor' ? 'the base premium' : by === 'exposure' ? 'the base premium for how much and when the car is driven' : by === 'change' ? `the previous premium (factor ${before.factor})` : `the premium at the start of the period (factor ${r.standing.periodFactor})`
    const limit = (by === 'factor' ? sp.factor : by === 'exposure' ? sp.exposure! : by === 'change' ? sp.change : sp.period)[bound]
    // The limit's effect against the factor it held back: behaviour times exposure, as rate() multiplied them.
    const unlimited = privacyPriced(sp, f, measures.privacy_share).factor * preventionRelativity(sp, measures) * (sp.exposure ? credibleExposure(exposureParts(sp, measures), r.credibility) : 1)
    rules.push({ code: `${by} ${bound}`, text: `${bound === 'cap' ? 'increase capped' : 'decrease floored'} at ${pct(limit - 1)} on ${of}`, value: r.factor, baseline: limit, effect: Math.round((r.factor / unlimited - 1) * 1000) / 1000 })
  }
  return [...features, ...usage, ...prevention, ...rules, ...consentReasons(s)]
}

/**
 * The prevention discounts earned, in words (#24): "activity goals kept 92 days in a row (the plan
 * rewards 90): −5%", "leak valve fitted and tested: it answered a shut-off command today (the plan
 * counts a test for 365 days): −5%". Their effect is before the plan's limits, as the features'.
 */
function preventionReasons(sp: SubjectRating, m: ExposureMeasures): PriceReason[] {
  return preventionParts(sp, m).map(({ code, relativity }) => {
    const effect = Math.round((relativity - 1) * 1000) / 1000
    if (code === 'goal_streak') {
      const days = sp.prevention!.goalStreak!.days
      return { code, text: `activity goals kept ${m.goal_streak_days} days in a row (the plan rewards ${days}): ${pct(effect)}`, value: m.goal_streak_days!, baseline: days, effect }
    }
    const ago = m.valve_tested_days_ago!, within = sp.prevention!.valveTested!.withinDays
    const when = ago < 0 ? 'after this period' : ago < 1 ? 'today' : `${Math.floor(ago)} days ago`
    return { code, text: `leak valve fitted and tested: it answered a shut-off command ${when} (the plan counts a test for ${within} days): ${pct(effect)}`, value: ago, baseline: within, effect }
  })
}

/**
 * A stream the score lost pricing consent for within its window (#21: scores that depended on it
 * say so, and so does the premium): "gps: consent for pricing withdrawn at …: priced on its
 * readings from before then only". It measures nothing: value, baseline and effect are 0.
 */
const consentReasons = (s: Score): PriceReason[] => (s.consent ?? []).map((n) => ({
  code: 'consent',
  text: `${n.stream}: consent for pricing withdrawn at ${n.withdrawnAt}: priced on its readings from before then only${n.grantedAgainAt ? ` and from ${n.grantedAgainAt}, when it was granted again` : ''}`,
  value: 0, baseline: 0, effect: 0,
}))
/** Privacy mode in plain words: the score's note, and how the plan priced it (within its allowance, or the share beyond it at its factor). */
function privacyReason(sp: SubjectRating, note: string, f: number, share: number): PriceReason {
  const { factor, beyond } = privacyPriced(sp, f, share)
  const neutral = sp.privacy?.neutralShare ?? 0
  const effect = Math.round((factor / f - 1) * 1000) / 1000
  const how = beyond > 0
    ? `${pct(beyond).replace('+', '')} of driving beyond the plan's ${Math.round(neutral * 100)}% allowance priced at factor ${sp.privacy?.beyondFactor ?? sp.factor.cap}: ${pct(effect)}`
    : `within the plan's ${Math.round(neutral * 100)}% allowance: priced neutral`
  return { code: 'privacy_mode', text: `${note}; ${how}`, value: share, baseline: neutral, effect }
}

/** Pay-as-you-drive in plain words: "12,400 km a year (typical 10,000): +8%", the night share likewise. */
function exposureReasons(sp: SubjectRating, m: ExposureMeasures, z: number): PriceReason[] {
  if (!sp.exposure) return []
  const parts = exposureParts(sp, m)
  const all = credibleExposure(parts, z)
  const reasons: PriceReason[] = []
  const effect = (typical: Partial<typeof parts>) => Math.round((all / credibleExposure({ ...parts, ...typical }, z) - 1) * 1000) / 1000
  const { distance, night } = sp.exposure
  if (distance && m.km_per_year !== undefined) {
    const km = (x: number) => (Math.round(x / 100) * 100).toLocaleString('en-US')
    const e = effect({ km_per_year: 1 })
    reasons.push({ code: 'km_per_year', text: `${km(m.km_per_year)} km a year (typical ${km(distance.typical)}): ${pct(e)}`, value: Math.round(m.km_per_year), baseline: distance.typical, effect: e })
  }
  if (night && m.night_share !== undefined) {
    const e = effect({ night_share: 1 })
    reasons.push({ code: 'night_share', text: `${featureText('night driving', m.night_share, 'of driving time', night.typical)}: ${pct(e)}`, value: Math.round(m.night_share * 1000) / 1000, baseline: night.typical, effect: e })
  }
  return reasons
}

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : Math.abs(x) < 1 ? x.toFixed(2) : Math.abs(x) < 100 ? x.toFixed(1) : x.toFixed(0))

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex')

/** An adjustment's hash (any audit record's): over everything in it but the hash itself, prevHash included. */
export function adjustmentHash(body: Omit<PremiumAdjustment, 'hash'> | Omit<AuditRecord, 'hash'>): string {
  return sha256(canonicalJson(body))
}

/** JSON with object keys sorted at every level, so equal values hash equal. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>
    return `{${Object.keys(obj).sort().filter((k) => obj[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`
  }
  return JSON.stringify(value)
}
