/**
 * `ubiq train` (issue #6): fits a subject's claim-frequency model on a portfolio, checks it on the
 * policies held out of the fit, and writes it as ONNX with its model card.
 *
 * Each feature's baseline becomes the training portfolio's median, so a reason reads against what
 * is typical in the portfolio ("harsh braking 4.1 per 100 km (typical 1.2)").
 */
import { subjects, type Subject } from '../../ingest/index.ts'
import { transformed, type FeatureDefinition, type ModelDefinition } from './definition.ts'
import { fitPoissonGlm, glmRate, poissonDeviance, type GlmFit } from './glm.ts'
import { frequencyModelToOnnx, glmCore } from './onnx.ts'
import { modelQuality, type ModelQuality } from './quality.ts'
import { fitPoissonTrees, predictTrees, treeCore, type Tree, type TreeEnsemble, type TreeNode } from './trees.ts'

/** One policy's subject in a training portfolio. */
export interface TrainingRow {
  policyId: string
  features: Record<string, number>
  /** Exposure of the claims: km (a model with an exposure feature) or policy-years. */
  exposure: number
  years: number
  claims: number
  /** The true expected frequency per year, when the portfolio is simulated: for checking only. */
  expectedPerYear?: number
  /** The simulator's persona, for the card's summary only. */
  persona?: string
}

/**
 * What a model is fitted on: everything of a definition but its version, files and baselines, and
 * its form: a Poisson GLM (log-linear in the features), or gradient-boosted Poisson trees where the
 * risk comes in levels a log-linear form cannot draw (a home that shows nothing is not simply the
 * far end of a line through homes that show a little).
 */
export type ModelSpec = Omit<ModelDefinition, 'version' | 'file' | 'card' | 'features'> & {
  features: Omit<FeatureDefinition, 'baseline'>[]
  form: 'glm' | 'trees'
  /**
   * Claims are fitted per this unit of the rows' exposure (driving: 'km'), which is no model input
   * because the rating plan prices it: the fitted rate is scaled to a year at the training
   * portfolio's median exposure a year, so the model predicts a typical year's claims from
   * behaviour alone, and a score does not move with how much is driven (#19).
   */
  perUnit?: string
  /**
   * Exposure the rating plan prices (driving: km per day, night share), fitted beside the
   * features so their effect is not taken for behaviour's, then fixed at the training portfolio's
   * medians in the model written: its score reads behaviour only, and the card gives their fitted
   * relativities for the plan's exposure tables. The quality goals are measured with them.
   */
  exposureTerms?: Omit<FeatureDefinition, 'baseline'>[]
}

/** A fitted core: log rate per unit of exposure from the transformed features. */
export type Fit = { form: 'glm'; glm: GlmFit } | { form: 'trees'; trees: TreeEnsemble }

export interface TrainedModel {
  definition: ModelDefinition
  fit: Fit
  onnx: Uint8Array
  card: string
  /** Fitted on, and held out. */
  trained: number
  heldOut: number
  /** On the held-out policies, when the portfolio has a truth. */
  quality?: ModelQuality
}

/** The quality goals of issue #6. */
export const goals = { giniRatio: 0.9, calibration: 0.1 } as const

/** About a third of the policies, chosen by a hash of the policy id: the same split on every run. */
export const isHeldOut = (policyId: string) => fnv1a(policyId) % 3 === 0

/** Fits `spec` on the training part of `rows`, checks it on the rest, and builds its file and card. */
export function trainModel(spec: ModelSpec, version: string, rows: readonly TrainingRow[], source: string): TrainedModel {
  const train = rows.filter((r) => !isHeldOut(r.policyId))
  const test = rows.filter((r) => isHeldOut(r.policyId))
  const { form, perUnit, exposureTerms = [], ...described } = spec
  const fitted = [...spec.features, ...exposureTerms]
  if (train.length < 10 * (fitted.length + 1)) throw new Error(`${spec.subject}: ${train.length} training policies; at least ${10 * (fitted.length + 1)} are needed for ${fitted.length} features`)
  const all = fitted.map((f) => ({ ...f, baseline: median(train.map((r) => r.features[f.name] ?? 0)) }))
  const features = all.slice(0, spec.features.length)
  const definition: ModelDefinition = { ...described, version, features, file: `${spec.name}@${version}.onnx`, card: `${spec.name}@${version}.md` }
  const xAll = (r: TrainingRow) => all.map((f) => transformed(f, r.features[f.name] ?? f.baseline))
  const data = { x: train.map(xAll), claims: train.map((r) => r.claims), exposure: train.map((r) => r.exposure) }
  // The rows' exposure a year that the model's output is for: 1 (a policy-year) unless fitted per unit.
  const typical = perUnit ? median(train.map((r) => r.exposure / r.years)) : 1
  const joint: Fit = form === 'glm' ? { form, glm: fitPoissonGlm(data) } : { form, trees: fitPoissonTrees(data) }
  const rateOf = (f: Fit) => (row: readonly number[]) => (f.form === 'glm' ? glmRate(f.glm, row) : Math.exp(predictTrees(f.trees, row)))
  // Quality is the whole fit's, exposure terms included: what the premium is when the plan's tables follow them.
  const perYear = (r: TrainingRow) => (rateOf(joint)(xAll(r)) * r.exposure) / r.years
  const fit = scaled(fixedAt(joint, features.length, all.slice(features.length).map((f) => transformed(f, f.baseline))), Math.log(typical))
  const rate = rateOf(fit)
  const truth = test.filter((r) => r.expectedPerYear !== undefined)
  const quality = truth.length > 0 ? modelQuality(truth.map((r) => ({ predicted: perYear(r), truth: r.expectedPerYear!, years: r.years }))) : undefined
  const heldOutDeviance = poissonDeviance(test.map((r) => r.claims), test.map((r) => perYear(r) * r.years))
  const exposureRows = all.slice(features.length).map((f, j) => {
    const column = features.length + j
    const at = (v: number) => rateOf(joint)(all.map((g, i) => transformed(g, i === column ? v : g.baseline)))
    const [p10, p90] = [0.1, 0.9].map((q) => quantile(train.map((r) => r.features[f.name] ?? f.baseline), q))
    return `| ${f.name} | ${f.unit} | ${fmt(f.baseline)} | ${fmt(p10!)}: ${(at(p10!) / at(f.baseline)).toFixed(3)} | ${fmt(p90!)}: ${(at(p90!) / at(f.baseline)).toFixed(3)} |`
  })
  const card = modelCard(definition, fit, rate, { train, test, quality, heldOutDeviance, source, perUnit: perUnit ? { unit: perUnit, typical } : undefined, exposureRows })
  const core = fit.form === 'glm' ? glmCore(definition, fit.glm) : treeCore(definition, fit.trees)
  return { definition, fit, onnx: frequencyModelToOnnx(definition, core, card), card, trained: train.length, heldOut: test.length, quality }
}

/**
 * The fit on its first `n` columns, the others fixed at `at`: a GLM's fixed terms go into its
 * intercept; a tree's splits on them are replaced by the branch `at` takes.
 */
function fixedAt(fit: Fit, n: number, at: readonly number[]): Fit {
  if (at.length === 0) return fit
  if (fit.form === 'glm') {
    const { coefficients, intercept } = fit.glm
    return { ...fit, glm: { ...fit.glm, intercept: intercept + at.reduce((a, v, j) => a + coefficients[n + j]! * v, 0), coefficients: coefficients.slice(0, n) } }
  }
  const resolve = (tree: Tree, node: TreeNode): TreeNode => {
    while (!('leaf' in node) && node.feature >= n) node = tree[Math.fround(at[node.feature - n]!) <= node.threshold ? node.left : node.right]!
    return node
  }
  return { ...fit, trees: { ...fit.trees, trees: fit.trees.trees.map((tree) => tree.map((node) => resolve(tree, node))) } }
}

/** A fit whose log rate is `log` higher: a rate per unit of exposure made a rate per `e^log` units. */
function scaled(fit: Fit, log: number): Fit {
  return fit.form === 'glm' ? { ...fit, glm: { ...fit.glm, intercept: fit.glm.intercept + log } } : { ...fit, trees: { ...fit.trees, base: fit.trees.base + log } }
}

/** Whether a quality meets the goals, and if not, why. */
export function meetsGoals(q: ModelQuality): string[] {
  const misses: string[] = []
  if (!(q.giniRatio >= goals.giniRatio)) misses.push(`Gini ratio ${q.giniRatio.toFixed(3)} < ${goals.giniRatio}`)
  for (const d of q.deciles) if (!(Math.abs(d.ratio - 1) <= goals.calibration)) misses.push(`decile ${d.decile}: true/predicted ${d.ratio.toFixed(3)} outside 1 ± ${goals.calibration}`)
  return misses
}

/** The model card: intended use, features and relativities, data, metrics, limits. */
function modelCard(def: ModelDefinition, fit: Fit, rate: (row: readonly number[]) => number, d: { train: readonly TrainingRow[]; test: readonly TrainingRow[]; quality?: ModelQuality; heldOutDeviance: number; source: string; perUnit?: { unit: string; typical: number }; exposureRows: string[] }): string {
  const claims = (rows: readonly TrainingRow[]) => rows.reduce((a, r) => a + r.claims, 0)
  const exposure = (rows: readonly TrainingRow[]) => rows.reduce((a, r) => a + r.exposure, 0)
  const years = (rows: readonly TrainingRow[]) => rows.reduce((a, r) => a + r.years, 0)
  const personas = new Map<string, number>()
  for (const r of d.train) if (r.persona) personas.set(r.persona, (personas.get(r.persona) ?? 0) + 1)
  const atBaseline = def.features.map((f) => transformed(f, f.baseline))
  const featureRows = def.features.map((f, i) => {
    const p90 = quantile(d.train.map((r) => r.features[f.name] ?? f.baseline), 0.9)
    const rel = rate(atBaseline.map((v, j) => (j === i ? transformed(f, p90) : v))) / rate(atBaseline)
    const coefficient = fit.form === 'glm' ? `${fit.glm.coefficients[i]!.toPrecision(4)} | ` : ''
    return `| ${f.name} | ${f.unit} | ${f.log1pScale ? `log(1 + ${f.log1pScale}·x)` : '–'} | ${fmt(f.baseline)} | ${coefficient}${fmt(p90)} | ${rel.toFixed(3)} |`
  })
  const glm = fit.form === 'glm' ? fit.glm : undefined
  const offset = d.perUnit ? `, fitted per ${d.perUnit.unit} with log(${d.perUnit.unit}) as offset and scaled to a year of the training portfolio's median ${fmt(d.perUnit.typical)} ${d.perUnit.unit} (how much is driven is the rating plan's exposure, not the model's)` : ''
  const form = glm
    ? `A Poisson GLM with log link${offset}: \`f = exp(intercept + Σ coefficient·feature)\`, fitted by iteratively reweighted least squares (${glm.iterations} iterations, ridge 0.001 on standardised features)`
    : `Gradient-boosted Poisson regression trees${offset}: \`f = exp(base + Σ tree(features))\`, ${fit.form === 'trees' ? fit.trees.trees.length : 0} trees of depth 2, learning rate 0.1, run by onnxruntime as an ai.onnx.ml TreeEnsembleRegressor`
  const q = d.quality
  return [
    `# Model card: ${def.name}@${def.version}`,
    '',
    `**What it predicts.** The expected number of ${subjects[def.subject].cover} claims a year for a policy, from its ${def.subject} features. ubiq turns the frequency \`f\` into a 0–100 score (higher is safer) as \`100·f0/(f0+f)\`, where \`f0\` is the model at the baseline features (the training portfolio's medians): 50 is a typical policy.`,
    '',
    `**Form.** ${form}; written as ONNX by ubiq's own code. Features with a transform enter as log(1 + scale·value).`,
    '',
    `**Intended use.** Ranking and explaining ${def.subject} risk within a portfolio like the one it was trained on, as one input to a rating plan that caps and credibility-weights its effect. Not a decision on its own, and not for portfolios whose devices, roads or population differ without refitting.`,
    '',
    `**Features, in the order of the input tensor \`${def.input}\` [batch, ${def.features.length}].** Relativity at p90: the frequency factor of a policy at the training portfolio's 90th percentile of that feature against one at the median, others equal.`,
    '',
    `| feature | unit | transform | baseline (median) | ${glm ? 'coefficient | ' : ''}p90 | relativity at p90 |`,
    `|---|---|---|---|${glm ? '---|' : ''}---|---|`,
    ...featureRows,
    ...(glm ? [`| intercept | | | | ${glm.intercept.toPrecision(6)} | | |`] : []),
    '',
    ...(d.exposureRows.length ? [
      '**Exposure, fitted beside the features and not a model input.** Fixed at the median in this model; the rating plan prices it. Relativity of the whole fit at the 10th and 90th percentile against the median, others equal: a guide for the plan\'s exposure tables.',
      '',
      '| exposure | unit | median | p10: relativity | p90: relativity |',
      '|---|---|---|---|---|',
      ...d.exposureRows,
      '',
    ] : []),
    `**Training data.** ${d.source}. ${d.train.length} policies fitted (${d.perUnit ? `${fmt(exposure(d.train))} ${d.perUnit.unit}, ` : ''}${fmt(years(d.train))} policy-years, ${claims(d.train)} claims), ${d.test.length} held out by a hash of the policy id (${claims(d.test)} claims).${personas.size ? ` Personas in the fit: ${[...personas].map(([p, n]) => `${p} ${n}`).join(', ')}.` : ''}`,
    '',
    `**Metrics, on the held-out policies.** Poisson deviance ${d.heldOutDeviance.toFixed(1)} on ${d.test.length} policies.` + (q ? ` Against the simulator's true expected frequencies: Gini ${q.gini.toFixed(3)}, the truth's own Gini ${q.giniTruth.toFixed(3)}, **ratio ${q.giniRatio.toFixed(3)}** (goal ≥ ${goals.giniRatio}); calibration, true over predicted claims per decile of predicted frequency (goal 1 ± ${goals.calibration}):` : ''),
    ...(q ? ['', '| decile | policies | predicted /year | true /year | true / predicted |', '|---|---|---|---|---|', ...q.deciles.map((x) => `| ${x.decile} | ${x.policies} | ${x.predicted.toFixed(4)} | ${x.truth.toFixed(4)} | ${x.ratio.toFixed(3)} |`)] : []),
    '',
    `**Known limits.** Trained on simulated policies: the relativities are as good as the simulator's personas are true to life, and a feature the simulator does not vary has no effect here. ${glm ? 'A log-linear form cannot bend: a feature whose risk rises then falls is averaged.' : 'Trees give risk in steps: a policy just either side of a split can differ more than its behaviour does, and reasons show a feature only where the policy is on the other side of a split from the baseline.'} Features are a short observation of each policy; policies with little data are noisy and the rating plan's credibility weighting must account for it.`,
    '',
    `**Fairness.** Inputs describe behaviour and the condition of the insured thing only: no age, sex, ethnicity, postcode, health record or genetic data. Behaviour can still correlate with protected attributes; \`ubiq backtest\` reports premium differences between groups the plan does not use.`,
    '',
  ].join('\n')
}

const fmt = (x: number) => (Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 1 ? x.toFixed(2) : x.toPrecision(3))
function quantile(xs: readonly number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? 0
}
const median = (xs: readonly number[]) => quantile(xs, 0.5)
function fnv1a(s: string): number {
  let h = 0x811c9dc5
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193)
  return h >>> 0
}
