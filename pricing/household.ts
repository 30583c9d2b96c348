/**
 * One household (#24 item 4): a policy's covers (driving, health, home) together, each at its
 * latest premium, and the plan's bundle rule on their total: a discount for holding `minCovers`
 * or more, then the total's floor and cap against the covers' base premiums. Pricing appends it
 * to the audit chain after every adjustment (`record: "household"`); the REST route gives the same
 * from the same premiums, so the number a policyholder sees is the one audited.
 */
import { Type, type Static } from '@sinclair/typebox'
import { Subject } from '../ingest/index.ts'
import { planAt, planId, PriceReason, pct, type RatingPlan } from './plan.ts'

/** A cover in the household: its latest premium and the adjustment that set it. */
export const HouseholdCover = Type.Object({
  subject: Subject,
  premium: Type.Number(),
  factor: Type.Number(),
  basePremium: Type.Number({ description: "The plan's base premium of the subject: the premium at factor 1" }),
  hash: Type.String({ description: 'The hash of the premium adjustment, in the audit chain' }),
}, { additionalProperties: false })

/** The household's premium: its covers, their sum, and the total after the plan's bundle rule, with the reasons in words. */
export const HouseholdPremium = Type.Object({
  policyId: Type.String(),
  currency: Type.String(),
  ruleset: Type.String({ description: 'The plan whose bundle rule applies: the one in effect at the latest cover\'s premium' }),
  effectiveFrom: Type.String({ description: "ISO 8601: the latest cover's premium" }),
  covers: Type.Array(HouseholdCover),
  basePremium: Type.Number({ description: "The covers' base premiums together" }),
  subtotal: Type.Number({ description: "The covers' premiums together, before the bundle rule" }),
  total: Type.Number({ description: 'What the household pays a year, in `currency`' }),
  reasons: Type.Array(PriceReason, { description: 'The bundle rule and any limit on the total, in words' }),
}, { additionalProperties: false })
export type HouseholdPremium = Static<typeof HouseholdPremium>

/** What the household reads of a cover's latest premium adjustment. */
export interface LatestPremium {
  subject: Subject
  premium: number
  factor: number
  hash: string
  effectiveFrom: string
}

/** Covers in words, as a policyholder names them. */
const coverWord: Record<Subject, string> = { driving: 'car', health: 'health', home: 'home' }
const listed = (words: string[]) => (words.length < 2 ? words.join('') : `${words.slice(0, -1).join(', ')} and ${words.at(-1)}`)

/**
 * The household of `policyId` from its latest premium per subject, by the plan in effect at the
 * latest of them; undefined when that plan has no household rule, or none of the covers is in it.
 */
export function householdPremium(plans: readonly RatingPlan[], policyId: string, latest: readonly LatestPremium[]): HouseholdPremium | undefined {
  const newest = latest.reduce<LatestPremium | undefined>((a, p) => (!a || Date.parse(p.effectiveFrom) > Date.parse(a.effectiveFrom) ? p : a), undefined)
  const plan = newest && planAt(plans, Date.parse(newest.effectiveFrom))
  const rule = plan?.household
  if (!plan || !rule) return undefined
  const order: Subject[] = ['driving', 'health', 'home']
  const covers = order.flatMap((subject) => {
    const p = latest.find((x) => x.subject === subject)
    const sp = plan.subjects[subject]
    return p && sp ? [{ subject, premium: p.premium, factor: p.factor, basePremium: sp.basePremium, hash: p.hash }] : []
  })
  if (covers.length === 0) return undefined
  const round = (x: number) => Number((Math.round(x / plan.rounding) * plan.rounding).toFixed(6))
  const subtotal = round(covers.reduce((s, c) => s + c.premium, 0))
  const basePremium = round(covers.reduce((s, c) => s + c.basePremium, 0))
  const words = listed(covers.map((c) => coverWord[c.subject]))
  const { minCovers, discount } = rule.bundle
  const earned = covers.length >= minCovers
  const reasons: PriceReason[] = [{
    code: 'bundle',
    text: earned
      ? `${words} together (the plan's bundle from ${minCovers} covers): ${pct(-discount)}`
      : `${words} alone: the plan's bundle takes ${pct(-discount)} off from ${minCovers} covers`,
    value: covers.length,
    baseline: minCovers,
    effect: earned ? -discount : 0,
  }]
  const bundled = subtotal * (earned ? 1 - discount : 1)
  const bounded = Math.min(Math.max(bundled, basePremium * rule.floor), basePremium * rule.cap)
  if (bounded !== bundled) {
    const bound = bounded > bundled ? 'floor' : 'cap'
    reasons.push({
      code: `household ${bound}`,
      text: `household ${bound === 'cap' ? 'increase capped' : 'decrease floored'} at ${pct(rule[bound] - 1)} on the covers' base premiums (${basePremium} ${plan.currency})`,
      value: round(bundled),
      baseline: round(basePremium * rule[bound]),
      effect: Math.round((bounded / bundled - 1) * 1000) / 1000,
    })
  }
  return { policyId, currency: plan.currency, ruleset: planId(plan), effectiveFrom: newest.effectiveFrom, covers, basePremium, subtotal, total: round(bounded), reasons }
}
