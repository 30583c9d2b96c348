/**
 * The premium simulator (#6): for a policy's latest score and hypothetical changes in behaviour
 * ("20% fewer harsh brakes": scale harsh_braking_per_100km by 0.8; "no night driving": set
 * night_share to 0), the premium it would get, through the same model and the same plan as a real
 * adjustment, from the policy's real standing (so the plan's limits apply as they would).
 */
import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import { scoreBatch, type LoadedModel, type Score } from '../scoring/index.ts'
import { exposureOf, firstStanding, planAt, planId, rate, type RatingPlan, type Standing } from './plan.ts'
import { priceReasons, type PriceReason } from './pricing.ts'

export const WhatIfSchema = Type.Object({
  scale: Type.Optional(Type.Record(Type.String(), Type.Number({ minimum: 0, maximum: 100 }), { description: 'feature → factor (0.8: 20% less)' })),
  set: Type.Optional(Type.Record(Type.String(), Type.Number({ minimum: 0 }), { description: 'feature → value (night_share 0: no night driving)' })),
}, { additionalProperties: false })
export type WhatIfChanges = Static<typeof WhatIfSchema>

/** One side of the comparison: a score and the premium the plan gives it. */
export interface Quote {
  score: number
  factor: number
  premium: number
  reasons: PriceReason[]
  features: Record<string, number>
}

export interface WhatIf {
  policyId: string
  subject: Score['subject']
  model: string
  ruleset: string
  currency: string
  /** As the latest score stands, and with the changes. */
  now: Quote
  changed: Quote
}

/** A what-if that cannot be answered: the reason is for the person who asked. */
export class WhatIfError extends Error {
  readonly code = 'WHAT_IF_INVALID'
}

/** Prices `score` and its changed twin with `model` and the plan in effect at the score's time. */
export async function whatIf(model: LoadedModel, plans: readonly RatingPlan[], score: Score, standing: Standing | undefined, changes: unknown): Promise<WhatIf> {
  const problems = [...Value.Errors(WhatIfSchema, changes)].map((e) => `${e.path || '/'}: ${e.message}`)
  if (problems.length) throw new WhatIfError(`changes are not valid: ${problems.join('; ')}`)
  const { scale = {}, set = {} } = changes as WhatIfChanges
  const names = model.definition.features.map((f) => f.name)
  const unknown = [...Object.keys(scale), ...Object.keys(set)].filter((n) => !names.includes(n))
  if (unknown.length) throw new WhatIfError(`${model.definition.name} has no feature ${unknown.join(', ')}; it has ${names.join(', ')}`)
  if (Object.keys(scale).length + Object.keys(set).length === 0) throw new WhatIfError('no change: give scale or set')
  const plan = planAt(plans, score.window.to)
  const sp = plan?.subjects[score.subject]
  if (!plan || !sp) throw new WhatIfError(`no rating plan prices ${score.subject} at ${new Date(score.window.to).toISOString()}`)

  const features = { ...score.features }
  for (const [n, k] of Object.entries(scale)) features[n] = (features[n] ?? 0) * k
  Object.assign(features, set)
  const [now, changed] = await scoreBatch(model, [score, { ...score, features }])
  const before = standing ?? firstStanding(score.window.to)
  const exposure = exposureOf(sp, score.exposure)
  const quote = (s: Score): Quote => {
    const r = rate(sp, s.value, exposure, s.window.to, before, plan.rounding)
    return { score: s.value, factor: r.factor, premium: r.premium, reasons: priceReasons(sp, s, exposure, r, before), features: s.features }
  }
  return { policyId: score.policyId, subject: score.subject, model: now!.model, ruleset: planId(plan), currency: plan.currency, now: quote(now!), changed: quote(changed!) }
}
