/**
 * The premium simulator (#6): for a policy's latest score and hypothetical changes in behaviour
 * ("20% fewer harsh brakes": scale harsh_braking_per_hour by 0.8) or in how much and when it
 * drives, which the plan's exposure part prices ("a third fewer km": scale km_per_year by 0.67;
 * "no night driving": set night_share to 0), the premium it would get, through the same model and
 * the same plan as a real adjustment, from the policy's real standing (so the plan's limits apply
 * as they would). Credibility stays that of the driving observed.
 */
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { scoreBatch, type LoadedModel, type Score } from '../scoring/index.ts'
import { codes, Subject } from '../ingest/index.ts'
import { exposureOf, firstStanding, planAt, planId, rate, scoreMeasures, type ExposureMeasures, type RatingPlan, type Standing } from './plan.ts'
import { PriceReason, priceReasons } from './pricing.ts'

export const WhatIfSchema = Type.Object({
  scale: Type.Optional(Type.Record(Type.String(), Type.Number({ minimum: 0, maximum: 100 }), { description: 'model feature or priced exposure (km_per_year, night_share) → factor (0.8: 20% less)' })),
  set: Type.Optional(Type.Record(Type.String(), Type.Number({ minimum: 0 }), { description: 'model feature or priced exposure → value (night_share 0: no night driving)' })),
}, { additionalProperties: false })
export type WhatIfChanges = Static<typeof WhatIfSchema>

/** One side of the comparison: a score and the premium the plan gives it. */
export const Quote = Type.Object({
  score: Type.Number(),
  factor: Type.Number(),
  premium: Type.Number(),
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

/** Prices `score` and its changed twin with `model` and the plan in effect at the score's time. */
export async function whatIf(model: LoadedModel, plans: readonly RatingPlan[], score: Score, standing: Standing | undefined, changes: unknown): Promise<WhatIf> {
  const problems = [...Value.Errors(WhatIfSchema, changes)].map((e) => `${e.path || '/'}: ${e.message}`)
  if (problems.length) throw new codes.UBIQ_WHAT_IF_INVALID(`changes are not valid: ${problems.join('; ')}`)
  const { scale = {}, set = {} } = changes as WhatIfChanges
  const plan = planAt(plans, score.window.to)
  const sp = plan?.subjects[score.subject]
  if (!plan || !sp) throw new codes.UBIQ_WHAT_IF_INVALID(`no rating plan prices ${score.subject} at ${new Date(score.window.to).toISOString()}`)
  const features = model.definition.features.map((f) => f.name)
  const measures = scoreMeasures(score)
  // Exposure the plan prices and the score carries can change too.
  const usage = Object.keys(measures).filter((n) => (n === 'km_per_year' ? sp.exposure?.distance : n === 'night_share' ? sp.exposure?.night : undefined))
  const unknown = [...Object.keys(scale), ...Object.keys(set)].filter((n) => !features.includes(n) && !usage.includes(n))
  if (unknown.length) throw new codes.UBIQ_WHAT_IF_INVALID(`${model.definition.name} has no feature ${unknown.join(', ')}; it has ${features.join(', ')}${usage.length ? `, and the plan prices ${usage.join(', ')}` : ''}`)
  if (Object.keys(scale).length + Object.keys(set).length === 0) throw new codes.UBIQ_WHAT_IF_INVALID('no change: give scale or set')

  const changedFeatures = { ...score.features }
  const changedMeasures: Record<string, number> = { ...measures }
  const target = (n: string) => (usage.includes(n) ? changedMeasures : changedFeatures)
  for (const [n, k] of Object.entries(scale)) target(n)[n] = (target(n)[n] ?? 0) * k
  for (const [n, v] of Object.entries(set)) target(n)[n] = v
  const [now, changed] = await scoreBatch(model, [score, { ...score, features: changedFeatures }])
  const before = standing ?? firstStanding(score.window.to)
  const exposure = exposureOf(sp, score.exposure)
  const quote = (s: Score, m: ExposureMeasures): Quote => {
    const r = rate(sp, s.value, exposure, s.window.to, before, plan.rounding, 1, m)
    return { score: s.value, factor: r.factor, premium: r.premium, reasons: priceReasons(sp, s, exposure, r, before, m), features: { ...s.features, ...m } }
  }
  return { policyId: score.policyId, subject: score.subject, model: now!.model, ruleset: planId(plan), currency: plan.currency, now: quote(now!, measures), changed: quote(changed!, changedMeasures) }
}
