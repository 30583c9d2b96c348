/**
 * Scores feature rows with a model, micro-batched, each score with its reasons.
 *
 * Reasons work for any ONNX model: each row is scored again with one feature at a time set to its
 * baseline, in the same batch; a feature's impact is how many points it moves the score.
 */
import { bufferTime, concatMap, filter, from, mergeMap, type OperatorFunction } from 'rxjs'
import { Type, type Static } from '@sinclair/typebox'
import { ConsentNote, Subject, toLine } from '../ingest/index.ts'
import type { LoadedModel } from './model.ts'
import { modelId } from './models/index.ts'

/** Why a score is what it is: one feature, its value against the baseline, and its effect. */
export const Reason = Type.Object({
  code: Type.String(),
  text: Type.String({ description: 'Plain words, e.g. "harsh braking 4.1 per 100 km (typical 2): −6 points"' }),
  label: Type.String({ description: 'The feature in plain words ("harsh braking"), for texts of its own (pricing\'s)' }),
  unit: Type.String({ description: 'Its unit ("per 100 km")' }),
  value: Type.Number(),
  baseline: Type.Number(),
  impact: Type.Number({ description: 'Score points this feature moves the score from where the baseline would put it' }),
}, { additionalProperties: false })
export type Reason = Static<typeof Reason>

/**
 * Driving in privacy mode (location paused) within a score's window (scoring/driving.ts
 * privacyNote): each feature in `unmeasured` lacks its measure for that share of driving, which
 * the score counts at the feature's typical value; pricing reads `share` against its plan.
 */
export const PrivacyNote = Type.Object({
  trips: Type.Number(),
  paused_s: Type.Number(),
  share: Type.Number({ description: "Share of the window's moving time in privacy mode, 0–1 (with `hidden_s` counted as moving time)" }),
  hidden_s: Type.Optional(Type.Number({ description: 'Moving time estimated for the window\'s pauses of all telemetry, which leave no trip (driving.ts withHiddenDriving)' })),
  unmeasured: Type.Record(Type.String(), Type.Number(), { description: 'Feature → share of its measure missing' }),
  text: Type.String(),
}, { additionalProperties: false })
export type PrivacyNote = Static<typeof PrivacyNote>

/**
 * How much observation a score rests on (days observed; for driving the distance), and for driving
 * how much and when the policy drove (moving and night seconds): the rating plan's credibility and
 * its exposure relativities (pay-as-you-drive), which the behaviour score leaves out.
 */
export const Exposure = Type.Object({
  days: Type.Number(),
  distance_km: Type.Optional(Type.Number()),
  moving_s: Type.Optional(Type.Number()),
  night_s: Type.Optional(Type.Number()),
}, { additionalProperties: false })
export type Exposure = Static<typeof Exposure>

/** A score: 0–100, higher is safer, with its reasons (DESIGN.md core types), as published on `ubiq/v1/scores/{policyId}`. */
export const Score = Type.Object({
  policyId: Type.String(),
  subject: Subject,
  value: Type.Number({ minimum: 0, maximum: 100, description: '0–100, higher is safer' }),
  model: Type.String({ description: 'name@version' }),
  reasons: Type.Array(Reason),
  window: Type.Object({ from: Type.Number(), to: Type.Number() }, { additionalProperties: false, description: 'ms since the Unix epoch' }),
  exposure: { ...Exposure, description: 'Exposure behind the score, for credibility weighting in pricing' },
  features: Type.Record(Type.String(), Type.Number()),
  consent: Type.Optional(Type.Array(ConsentNote, { description: 'Streams of the subject whose pricing consent was withdrawn within the window: the score still rests on their readings from before (#21)' })),
  privacy: Type.Optional({ ...PrivacyNote, description: 'Driving in privacy mode within the window, and what was not measured in it (#21)' }),
}, { additionalProperties: false })
export type Score = Static<typeof Score>

const exposureKeys = ['days', 'distance_km', 'moving_s', 'night_s'] as const satisfies readonly (keyof Exposure)[]
const notFeatures = new Set<string>(['time', 'value', 'window_from', ...exposureKeys])

/**
 * A score as an InfluxDB line: measurement `score`, tagged with its policy, subject and model, at
 * the end of its window; its exposure and features as fields, its reasons as JSON (what the score
 * history shows beside the value). `scoreFromRow` reads it back.
 */
export const scoreLine = (s: Score) =>
  toLine('score', { policy_id: s.policyId, subject: s.subject, model: s.model }, {
    value: s.value, window_from: s.window.from, ...s.exposure, ...s.features, reasons: JSON.stringify(s.reasons), ...(s.consent ? { consent: JSON.stringify(s.consent) } : {}), ...(s.privacy ? { privacy: JSON.stringify(s.privacy) } : {}),
  }, s.window.to, ['window_from'])

/** A score back from a row of `SELECT * FROM score …` (epoch ms; ingest seriesRows), as it was scored. */
export function scoreFromRow(x: Record<string, unknown>): Score {
  return {
    policyId: x.policy_id as string,
    subject: x.subject as Subject,
    value: x.value as number,
    model: x.model as string,
    reasons: typeof x.reasons === 'string' ? JSON.parse(x.reasons) : [],
    window: { from: x.window_from as number, to: x.time as number },
    exposure: Object.fromEntries(exposureKeys.filter((k) => typeof x[k] === 'number').map((k) => [k, x[k]])) as unknown as Exposure,
    features: Object.fromEntries(Object.entries(x).filter(([k, v]) => !notFeatures.has(k) && typeof v === 'number')) as Record<string, number>,
    ...(typeof x.consent === 'string' ? { consent: JSON.parse(x.consent) as ConsentNote[] } : {}),
    ...(typeof x.privacy === 'string' ? { privacy: JSON.parse(x.privacy) as PrivacyNote } : {}),
  }
}

/** What scoring hands the model: one policy's features and exposure for one subject. */
export type ScoreInput = Omit<Score, 'value' | 'model' | 'reasons'>

/** The model that scores each subject. */
export type ModelsBySubject = Partial<Record<Subject, LoadedModel>>

export interface BatchConfig {
  /** Most inputs per batch (each input becomes 1 + features rows of its subject's model call). */
  maxBatch: number
  /** Longest an input waits for its batch, ms. */
  maxWaitMs: number
}

/**
 * Score on a 0–100 scale from an expected frequency: 50 at the baseline policy's frequency,
 * 100·f0/(f0+f), so the odds (100 − s)/s are the frequency relativity f/f0 pricing uses.
 */
export const scoreFromFrequency = (frequency: number, baseline: number) => (100 * baseline) / (baseline + frequency)

/** The models a batch is scored with: per subject a champion, and shadows beside it. */
export interface ActiveModels {
  champions: ModelsBySubject
  shadows: Partial<Record<Subject, readonly LoadedModel[]>>
}

/**
 * Stage: feature sets → scores, micro-batched through each subject's champion (one model call per
 * subject per batch). Inputs of a subject without a model are dropped. `models` is asked once per
 * batch, so a promoted model takes over between two batches. Shadow models score the same batch;
 * their scores go to `onShadow`, never downstream, so they move no price.
 */
export function scoreWith(models: () => ActiveModels, batch: BatchConfig, onError: (err: Error) => void, onShadow: (scores: Score[]) => void = () => {}): OperatorFunction<ScoreInput, Score> {
  return (inputs$) => inputs$.pipe(
    bufferTime(batch.maxWaitMs, null, batch.maxBatch),
    filter((rows) => rows.length > 0),
    concatMap(async (rows) => {
      const { champions, shadows } = models()
      const scores: Score[] = []
      for (const [subject, model] of Object.entries(champions) as [Subject, LoadedModel][]) {
        const mine = rows.filter((r) => r.subject === subject)
        if (mine.length === 0) continue
        try {
          scores.push(...(await scoreBatch(model, mine)))
        } catch (err) {
          // A failed model call is an infrastructure fault, not bad data: report it, keep the stream.
          onError(err as Error)
        }
        for (const shadow of shadows[subject] ?? []) {
          try {
            onShadow(await scoreBatch(shadow, mine))
          } catch (err) {
            onError(err as Error)
          }
        }
      }
      return scores
    }),
    mergeMap((scores) => from(scores)),
  )
}

/** Scores one batch: each input's own row plus one row per feature at its baseline. */
export async function scoreBatch(model: LoadedModel, inputs: readonly ScoreInput[]): Promise<Score[]> {
  const defs = model.definition.features
  const rows: number[][] = []
  for (const input of inputs) {
    // The share of a feature's measure missing in privacy mode counts at its typical value: the
    // feature's sum lacks that part (privacy mode adds nothing to it), so the typical share of it is added.
    const own = defs.map((d) => finiteOr(input.features[d.name], d.baseline) + (input.privacy?.unmeasured[d.name] ?? 0) * d.baseline)
    rows.push(own)
    defs.forEach((_, i) => rows.push(own.map((v, j) => (j === i ? defs[j]!.baseline : v))))
  }
  const freqs = await model.frequencies(rows)
  const score = (i: number) => scoreFromFrequency(freqs[i]!, model.baselineFrequency)
  return inputs.map((input, k) => {
    const base = k * (defs.length + 1)
    const value = score(base)
    const reasons = defs
      .map((d, i) => {
        const v = rows[base]![i]!
        const impact = round1(value - score(base + 1 + i))
        return {
          code: d.name,
          text: `${featureText(d.label, v, d.unit, d.baseline)}: ${impact > 0 ? '+' : impact < 0 ? '−' : '±'}${Math.abs(impact)} points`,
          label: d.label,
          unit: d.unit,
          value: v,
          baseline: d.baseline,
          impact,
        }
      })
      .filter((r) => r.impact !== 0)
      .sort((a, b) => Math.abs(b.impact) - Math.abs(a.impact))
    return { ...input, value: round1(value), model: modelId(model.definition), reasons }
  })
}

/** Nothing non-finite reaches a model: a missing or broken feature counts as typical. */
const finiteOr = (v: number | undefined, fallback: number) => (v !== undefined && Number.isFinite(v) ? v : fallback)
const round1 = (x: number) => Math.round(x * 10) / 10
const fmt = (x: number) => (Math.abs(x) < 1 ? x.toFixed(2) : x.toFixed(1))
/** A share ("of driving time") in percent, to a tenth below 10%: a person reads 16%, not 0.16. */
const percent = (x: number) => {
  const p = x * 100
  return `${Math.abs(p) < 10 ? Number(p.toFixed(1)) : Math.round(p)}%`
}
/**
 * A feature in plain words, the same words in a score's reasons and in a premium's (#23: one said
 * "typical", the other "portfolio median"): "night driving 16% of driving time (typical 5%)",
 * "harsh braking 4.1 per hour (typical 2.0)".
 */
export function featureText(label: string, value: number, unit: string, typical: number): string {
  const f = unit.startsWith('of ') ? percent : fmt
  return `${label} ${f(value)} ${unit} (typical ${f(typical)})`
}
