/**
 * The premium simulator (#6): for a policy's latest score and hypothetical changes in behaviour
 * ("20% fewer harsh brakes": scale harsh_braking_per_hour by 0.8) or in how much and when it
 * drives, which the plan's exposure part prices ("a third fewer km": scale km_per_year by 0.67;
 * "no night driving": set night_share to 0), the premium it would get, through the same model and
 * the same plan as a real adjustment, from the policy's real standing (so the plan's limits apply
 * as they would). Credibility stays that of the driving observed, unless `more` asks what the same
 * behaviour gives once more of it is observed ("after 50 more km like your last ones"): every
 * exposure of the score grows in proportion, so its km a year and night share stay as they are.
 */
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { scoreBatch, type LoadedModel, type Score } from '../scoring/index.ts'
import { codes, Subject } from '../ingest/index.ts'
import { exposureOf, firstStanding, planAt, planId, rate, type ExposureMeasures, type RatingPlan, type Standing } from './plan.ts'
import { measuresOf, PriceReason, priceReasons, type ValveTest } from './pricing.ts'

export const WhatIfSchema = Type.Object({
  scale: Type.Optional(Type.Record(Type.String(), Type.Number({ minimum: 0, maximum: 100 }), { description: 'model feature, priced exposure (km_per_year, night_share) or rewarded goal streak (goal_streak_days) → factor (0.8: 20% less)' })),
  set: Type.Optional(Type.Record(Type.String(), Type.Number({ minimum: 0 }), { description: 'model feature, priced exposure or rewarded goal streak → value (night_share 0: no night driving; goal_streak_days 90)' })),
  more: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 1_000_000, description: "this much more observation like the score's own (km for a plan that weighs driving by distance, else days): the same behaviour, weighted by the credibility of the larger exposure (#23's premium outlook)" })),
}, { additionalProperties: false })
export type WhatIfChanges = Static<typeof WhatIfSchema>

/** One side of the comparison: a score and the premium the plan gives it. */
export const Quote = Type.Object({
  score: Type.Number(),
  factor: Type.Number(),
  premium: Type.Number(),
  credibility: Type.Number({ description: "how much of the behaviour's effect applies (0–1), by the exposure observed" }),
  exposure: Type.Number({ description: "the exposure credibility is measured in: km (driving) or days" }),
  reasons: Type.Array(PriceReason),
  features: Type.Record(Type.String(), Type.Number()),
}, { additionalProperties: false })
export type Quote = Static<typeof Quote>

/** The premium simulator's answer: the policy's latest score as it stands (`now`) and with the changes (`changed`), each priced. */
export const WhatIf = Type.Object({
  policyId: Type.String(),
  subject: Subject,
  model: Type.String(),
  ruleset: Type.String(),
  currency: Type.String(),
  now: Quote,
  changed: Quote,
}, { additionalProperties: false })
export type WhatIf = Static<typeof WhatIf>

/** Prices `score` and its changed twin with `model` and the plan in effect at the score's time (and the home's last valve test, which it rewards). */
export async function whatIf(model: LoadedModel, plans: readonly RatingPlan[], score: Score, standing: Standing | undefined, changes: unknown, valveTest?: ValveTest): Promise<WhatIf> {
  const problems = [...Value.Errors(WhatIfSchema, changes)].map((e) => `${e.path || '/'}: ${e.message}`)
  if (problems.length) throw new codes.UBIQ_WHAT_IF_INVALID(`changes are not valid: ${problems.join('; ')}`)
  const { scale = {}, set = {}, more } = changes as WhatIfChanges
  const plan = planAt(plans, score.window.to)
  const sp = plan?.subjects[score.subject]
  if (!plan || !sp) throw new codes.UBIQ_WHAT_IF_INVALID(`no rating plan prices ${score.subject} at ${new Date(score.window.to).toISOString()}`)
  const features = model.definition.features.map((f) => f.name)
  const measures = measuresOf(score, sp.prevention?.valveTested ? valveTest : undefined)
  // Exposure the plan prices and the score carries can change too, and so can a goal streak the plan rewards ("what if I keep my goals 90 days").
  const usage = Object.keys(measures).filter((n) => (n === 'km_per_year' ? sp.exposure?.distance : n === 'night_share' ? sp.exposure?.night : n === 'goal_streak_days' ? sp.prevention?.goalStreak : undefined))
  const unknown = [...Object.keys(scale), ...Object.keys(set)].filter((n) => !features.includes(n) && !usage.includes(n))
  if (unknown.length) throw new codes.UBIQ_WHAT_IF_INVALID(`${model.definition.name} has no feature ${unknown.join(', ')}; it has ${features.join(', ')}${usage.length ? `, and the plan prices ${usage.join(', ')}` : ''}`)
  if (Object.keys(scale).length + Object.keys(set).length === 0 && more === undefined) throw new codes.UBIQ_WHAT_IF_INVALID('no change: give scale, set or more')

  const changedFeatures = { ...score.features }
  const changedMeasures: Record<string, number> = { ...measures }
  const target = (n: string) => (usage.includes(n) ? changedMeasures : changedFeatures)
  for (const [n, k] of Object.entries(scale)) target(n)[n] = (target(n)[n] ?? 0) * k
  for (const [n, v] of Object.entries(set)) target(n)[n] = v
  const [now, changed] = await scoreBatch(model, [score, { ...score, features: changedFeatures }])
  const before = standing ?? firstStanding(score.window.to)
  const exposure = exposureOf(sp, score.exposure)
  if (more !== undefined && exposure === 0) throw new codes.UBIQ_WHAT_IF_INVALID(`no ${sp.credibility.exposure === 'days' ? 'days' : 'km'} observed yet: nothing to continue like`)
  const grown = more === undefined ? 1 : (exposure + more) / exposure
  const moreExposure = Object.fromEntries(Object.entries(score.exposure).map(([k, v]) => [k, v * grown])) as Score['exposure']
  const quote = (s: Score, m: ExposureMeasures): Quote => {
    const e = exposureOf(sp, s.exposure)
    const r = rate(sp, s.value, e, s.window.to, before, plan.rounding, 1, m)
    return { score: s.value, factor: r.factor, premium: r.premium, credibility: r.credibility, exposure: e, reasons: priceReasons(sp, s, e, r, before, m), features: { ...s.features, ...m } }
  }
  return { policyId: score.policyId, subject: score.subject, model: now!.model, ruleset: planId(plan), currency: plan.currency, now: quote(now!, measures), changed: quote({ ...changed!, exposure: moreExposure }, changedMeasures) }
}
