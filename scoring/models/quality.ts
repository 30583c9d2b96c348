/**
 * How good a frequency model is against the simulator's ground truth (issue #6):
 *
 * - Ranking: the Gini of the ordered Lorenz curve. Policies sorted from the lowest predicted
 *   frequency to the highest; x the cumulative share of policy-years, y the cumulative share of the
 *   true expected claims. The same with policies sorted by the true frequency gives the best Gini
 *   any model could reach on these policies; the ratio of the two says how much of the ranking the
 *   model found (1: all of it).
 * - Calibration: policies in ten groups of equal policy-years by predicted frequency; in each, the
 *   true expected claims over the predicted ones (1: exact).
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

/** Gini of the truth's claims when policies are ordered by `by`. */
export function gini(rows: readonly Scored[], by: (r: Scored) => number): number {
  const sorted = [...rows].sort((a, b) => by(a) - by(b) || a.truth - b.truth)
  const totalYears = sorted.reduce((a, r) => a + r.years, 0)
  const totalClaims = sorted.reduce((a, r) => a + r.truth * r.years, 0)
  let x = 0, y = 0, area = 0
  for (const r of sorted) {
    const dx = r.years / totalYears
    const dy = (r.truth * r.years) / totalClaims
    area += dx * (y + dy / 2)
    x += dx
    y += dy
  }
  return 1 - 2 * area
}

/** Ranking and calibration of a model's predictions against the truth. */
export function modelQuality(rows: readonly Scored[]): ModelQuality {
  const g = gini(rows, (r) => r.predicted)
  const gTruth = gini(rows, (r) => r.truth)
  const sorted = [...rows].sort((a, b) => a.predicted - b.predicted)
  const totalYears = sorted.reduce((a, r) => a + r.years, 0)
  const groups: Scored[][] = Array.from({ length: 10 }, () => [])
  let seen = 0
  for (const r of sorted) {
    groups[Math.min(9, Math.floor(((seen + r.years / 2) / totalYears) * 10))]!.push(r)
    seen += r.years
  }
  const deciles = groups.filter((g) => g.length > 0).map((g, i) => {
    const years = g.reduce((a, r) => a + r.years, 0)
    const predicted = g.reduce((a, r) => a + r.predicted * r.years, 0) / years
    const truth = g.reduce((a, r) => a + r.truth * r.years, 0) / years
    return { decile: i + 1, policies: g.length, predicted, truth, ratio: truth / predicted }
  })
  const worst = deciles.reduce((w, d) => (Math.abs(d.ratio - 1) > Math.abs(w) ? d.ratio - 1 : w), 0)
  return { policies: rows.length, gini: g, giniTruth: gTruth, giniRatio: g / gTruth, deciles, worstCalibration: worst }
}
