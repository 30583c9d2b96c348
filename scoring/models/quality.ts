/**
 * How good a frequency model is against the simulator's ground truth (issue #6):
 *
 * - Ranking: the Gini of the ordered Lorenz curve. Policies sorted from the lowest predicted
 *   frequency to the highest; x the cumulative share of policy-years, y the cumulative share of the
 *   true expected claims. The same with policies sorted by the true frequency gives the best Gini
 *   any model could reach on these policies; the ratio of the two says how much of the ranking the
 *   model found (1: all of it).
 * - Calibration: policies in ten groups of equal policy-years by predicted frequency (policies with
 *   the same prediction stay together, so a group may be empty); in each, the true expected claims
 *   over the predicted ones (1: exact).
 *
 * The truth here is the expected frequency, not drawn claims: a few thousand claims would hide a
 * 10% error in a decile behind Poisson noise.
 */

/** One held-out policy: the model's and the truth's frequency per year, and its years. */
export interface Scored {
  predicted: number
  truth: number
  years: number
}

export interface Decile {
  decile: number
  policies: number
  /** Mean predicted and true frequency per year, exposure-weighted. */
  predicted: number
  truth: number
  /** truth / predicted. */
  ratio: number
}

export interface ModelQuality {
  policies: number
  gini: number
  giniTruth: number
  giniRatio: number
  deciles: Decile[]
  /** The decile furthest from 1, as a signed share (−0.08: truth 8% below the prediction). */
  worstCalibration: number
}

/**
 * Policies sorted by `by`, in blocks of equal value: a model cannot order policies it gives the
 * same frequency, so a block is one step of the Lorenz curve and is never split between deciles.
 */
function blocks(rows: readonly Scored[], by: (r: Scored) => number): Scored[][] {
  const sorted = [...rows].sort((a, b) => by(a) - by(b))
  const out: Scored[][] = []
  for (const r of sorted) {
    const last = out.at(-1)
    if (last && by(last[0]!) === by(r)) last.push(r)
    else out.push([r])
  }
  return out
}

const years = (rows: readonly Scored[]) => rows.reduce((a, r) => a + r.years, 0)
const claims = (rows: readonly Scored[]) => rows.reduce((a, r) => a + r.truth * r.years, 0)

/** Gini of the truth's claims when policies are ordered by `by`. */
export function gini(rows: readonly Scored[], by: (r: Scored) => number): number {
  const totalYears = years(rows)
  const totalClaims = claims(rows)
  let y = 0, area = 0
  for (const block of blocks(rows, by)) {
    const dx = years(block) / totalYears
    const dy = claims(block) / totalClaims
    area += dx * (y + dy / 2)
    y += dy
  }
  return 1 - 2 * area
}

/** Ranking and calibration of a model's predictions against the truth. */
export function modelQuality(rows: readonly Scored[]): ModelQuality {
  const g = gini(rows, (r) => r.predicted)
  const gTruth = gini(rows, (r) => r.truth)
  const totalYears = years(rows)
  const groups: Scored[][] = Array.from({ length: 10 }, () => [])
  let seen = 0
  for (const block of blocks(rows, (r) => r.predicted)) {
    const y = years(block)
    groups[Math.min(9, Math.floor(((seen + y / 2) / totalYears) * 10))]!.push(...block)
    seen += y
  }
  const deciles = groups.map((g, i) => ({ g, decile: i + 1 })).filter(({ g }) => g.length > 0).map(({ g, decile }) => {
    const predicted = g.reduce((a, r) => a + r.predicted * r.years, 0) / years(g)
    const truth = claims(g) / years(g)
    return { decile, policies: g.length, predicted, truth, ratio: truth / predicted }
  })
  const worst = deciles.reduce((w, d) => (Math.abs(d.ratio - 1) > Math.abs(w) ? d.ratio - 1 : w), 0)
  return { policies: rows.length, gini: g, giniTruth: gTruth, giniRatio: g / gTruth, deciles, worstCalibration: worst }
}
