/**
 * Poisson claim-frequency GLM with log link and an exposure offset, fitted by iteratively
 * reweighted least squares (the textbook actuarial fit, McCullagh & Nelder ch. 6):
 *
 *   claims ~ Poisson(exposure · exp(intercept + Σ coefficient·feature))
 *
 * Features are standardised for the fit and the coefficients given back per unit of each feature.
 * A small ridge penalty (not on the intercept) keeps a feature that barely varies in the training
 * data from taking an absurd coefficient.
 */

export interface Glm {
  intercept: number
  coefficients: number[]
}

export interface GlmFit extends Glm {
  iterations: number
  /** Poisson deviance of the fit on its own data. */
  deviance: number
}

export interface GlmData {
  /** Feature rows, one per policy. */
  x: readonly (readonly number[])[]
  /** Claims observed. */
  claims: readonly number[]
  /** Exposure of each row (km, or years): the offset is its log. */
  exposure: readonly number[]
}

/** Fits the GLM; throws with a reason when the data cannot carry one. */
export function fitPoissonGlm(data: GlmData, opts: { ridge?: number; maxIterations?: number } = {}): GlmFit {
  checkFrequencyData(data)
  const { x, claims, exposure } = data
  const n = x.length
  const p = x[0]!.length
  const total = claims.reduce((a, c) => a + c, 0)
  const ridge = opts.ridge ?? 1e-3
  // Standardise: z = (x − mean) / sd; a constant column keeps sd 1 and gets a zero coefficient from the ridge.
  const mean = Array.from({ length: p }, (_, j) => x.reduce((a, r) => a + r[j]!, 0) / n)
  const sd = mean.map((m, j) => Math.sqrt(x.reduce((a, r) => a + (r[j]! - m) ** 2, 0) / n) || 1)
  const z = x.map((r) => [1, ...r.map((v, j) => (v - mean[j]!) / sd[j]!)])
  const offset = exposure.map(Math.log)
  const k = p + 1
  let beta = [Math.log(total / exposure.reduce((a, e) => a + e, 0)), ...Array<number>(p).fill(0)]
  let iterations = 0
  for (; iterations < (opts.maxIterations ?? 50); iterations++) {
    const xtwx = Array.from({ length: k }, () => new Float64Array(k))
    const xtwz = new Float64Array(k)
    for (let i = 0; i < n; i++) {
      const row = z[i]!
      const eta = dot(row, beta) + offset[i]!
      const mu = Math.exp(eta)
      const work = eta - offset[i]! + (claims[i]! - mu) / mu
      for (let a = 0; a < k; a++) {
        xtwz[a]! += row[a]! * mu * work
        for (let b = 0; b <= a; b++) xtwx[a]![b]! += row[a]! * mu * row[b]!
      }
    }
    for (let a = 0; a < k; a++) {
      for (let b = 0; b < a; b++) xtwx[b]![a] = xtwx[a]![b]!
      if (a > 0) xtwx[a]![a]! += ridge * n
    }
    const next = solve(xtwx, xtwz)
    const change = Math.max(...next.map((v, i) => Math.abs(v - beta[i]!)))
    beta = next
    if (change < 1e-9) break
  }
  if (beta.some((b) => !Number.isFinite(b))) throw new Error('the fit did not converge')
  const coefficients = beta.slice(1).map((b, j) => b / sd[j]!)
  const intercept = beta[0]! - coefficients.reduce((a, c, j) => a + c * mean[j]!, 0)
  const glm = { intercept, coefficients }
  const deviance = poissonDeviance(claims, x.map((r, i) => exposure[i]! * glmRate(glm, r)))
  return { ...glm, iterations: iterations + 1, deviance }
}

/** Throws with the reason when rows cannot carry a claim frequency (GLM and trees alike). */
export function checkFrequencyData({ x, claims, exposure }: GlmData): void {
  const n = x.length
  const p = x[0]?.length ?? 0
  if (n === 0) throw new Error('no rows to fit')
  if (claims.length !== n || exposure.length !== n) throw new Error('rows, claims and exposures differ in number')
  if (exposure.some((e) => !(e > 0))) throw new Error('every row needs a positive exposure')
  if (x.some((r) => r.length !== p || r.some((v) => !Number.isFinite(v)))) throw new Error(`every row needs ${p} finite features`)
  if (claims.every((c) => c === 0)) throw new Error('no claims in the data: a frequency cannot be fitted')
}

/** The GLM's rate per unit of exposure for one row of features. */
export const glmRate = (glm: Glm, row: readonly number[]) => Math.exp(glm.intercept + dot(row, glm.coefficients))

/** Poisson deviance of observed counts against expected ones. */
export function poissonDeviance(observed: readonly number[], expected: readonly number[]): number {
  let d = 0
  for (let i = 0; i < observed.length; i++) {
    const y = observed[i]!, mu = expected[i]!
    d += 2 * ((y > 0 ? y * Math.log(y / mu) : 0) - (y - mu))
  }
  return d
}

const dot = (a: readonly number[], b: readonly number[]) => a.reduce((s, v, i) => s + v * b[i]!, 0)

/** Solves A·x = b for a small symmetric positive definite A (Gaussian elimination with partial pivoting). */
function solve(a: Float64Array[], b: Float64Array): number[] {
  const n = b.length
  const m = a.map((row, i) => [...row, b[i]!])
  for (let c = 0; c < n; c++) {
    let pivot = c
    for (let r = c + 1; r < n; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[pivot]![c]!)) pivot = r
    ;[m[c], m[pivot]] = [m[pivot]!, m[c]!]
    const d = m[c]![c]!
    if (d === 0) throw new Error('the features are linearly dependent')
    for (let r = c + 1; r < n; r++) {
      const f = m[r]![c]! / d
      for (let j = c; j <= n; j++) m[r]![j]! -= f * m[c]![j]!
    }
  }
  const out = Array<number>(n).fill(0)
  for (let r = n - 1; r >= 0; r--) out[r] = (m[r]![n]! - m[r]!.slice(r + 1, n).reduce((s, v, j) => s + v * out[r + 1 + j]!, 0)) / m[r]![r]!
  return out
}
