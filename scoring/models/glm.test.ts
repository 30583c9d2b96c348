import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { seededRandom } from '../../edge-sim/index.ts'
import { loadModel } from '../model.ts'
import { transformed, type ModelDefinition } from './definition.ts'
import { fitPoissonGlm, glmRate, poissonDeviance } from './glm.ts'
import { glmToOnnx } from './onnx.ts'
import { gini, modelQuality } from './quality.ts'

const rand = seededRandom(42)
const poisson = (mean: number) => {
  let n = 0, p = Math.exp(-mean), c = p
  const u = rand()
  while (u > c && n < 10_000) p *= mean / ++n, c += p
  return n
}

t.test('the IRLS fit recovers known coefficients, with the exposure as offset', async (t) => {
  const truth = { intercept: Math.log(0.002), coefficients: [0.5, -0.3, 0] }
  const x = Array.from({ length: 20_000 }, () => [rand() * 2, rand() * 3, rand()])
  const exposure = x.map(() => 100 + rand() * 900)
  const claims = x.map((row, i) => poisson(exposure[i]! * glmRate(truth, row)))
  const fit = fitPoissonGlm({ x, claims, exposure })
  t.ok(Math.abs(fit.intercept - truth.intercept) < 0.06, `intercept ${fit.intercept.toFixed(3)} vs ${truth.intercept.toFixed(3)}`)
  fit.coefficients.forEach((c, j) => t.ok(Math.abs(c - truth.coefficients[j]!) < 0.05, `coefficient ${j}: ${c.toFixed(3)} vs ${truth.coefficients[j]}`))
  const constant = claims.reduce((a, b) => a + b, 0) / exposure.reduce((a, b) => a + b, 0)
  t.ok(fit.deviance < poissonDeviance(claims, exposure.map((e) => e * constant)) * 0.9, 'far better than a constant rate')
  t.throws(() => fitPoissonGlm({ x, claims: claims.map(() => 0), exposure }), /no claims/)
  t.throws(() => fitPoissonGlm({ x, claims, exposure: exposure.map(() => 0) }), /positive exposure/)
})

t.test('Gini and calibration against the truth: ties are one block, a perfect model has ratio 1', async (t) => {
  const rows = [1, 2, 3, 4].map((truth) => ({ truth, predicted: truth, years: 1 }))
  // Ordered Lorenz of claims 1,2,3,4 (shares .1 .2 .3 .4) over equal years: area = .25·(.05 + .2 + .45 + .8) = .375, Gini 1 − 2·.375.
  t.equal(Math.round(gini(rows, (r) => r.truth) * 1000) / 1000, 0.25)
  const perfect = modelQuality(rows)
  t.equal(perfect.giniRatio, 1)
  t.same(perfect.deciles.map((d) => d.ratio), [1, 1, 1, 1])
  // A model that gives everyone the same frequency ranks nobody: one block, Gini 0, and it is not
  // credited with the truth's order inside the block.
  const flat = modelQuality(rows.map((r) => ({ ...r, predicted: 2.5 })))
  t.equal(flat.gini, 0)
  t.equal(flat.deciles.length, 1)
  t.equal(flat.deciles[0]!.ratio, 1)
  const reversed = modelQuality(rows.map((r) => ({ ...r, predicted: 5 - r.truth })))
  t.ok(reversed.giniRatio < 0, 'a reversed ranking has a negative ratio')
  t.equal(Math.round(reversed.worstCalibration * 100) / 100, 3, 'and its worst decile is 4 over 1')
})

t.test('the ONNX graph computes what the GLM says: log(1 + scale·x) transforms and the km exposure', async (t) => {
  const def: ModelDefinition = {
    name: 'glm-check', version: '1', subject: 'driving', input: 'features', output: 'frequency', file: 'glm-check@1.onnx', card: 'glm-check@1.md',
    features: [
      { name: 'harsh_braking_per_100km', unit: 'per 100 km', baseline: 1, label: 'harsh braking', log1pScale: 1 },
      { name: 'humidity_share', unit: 'share', baseline: 0.001, label: 'humid', log1pScale: 1000 },
      { name: 'speeding_share', unit: 'share', baseline: 0.02, label: 'speeding' },
      { name: 'km_per_day', unit: 'km per day', baseline: 30, label: 'distance', log1pScale: 1 },
    ],
    exposure: { feature: 'km_per_day', perYear: 365.25 },
  }
  const glm = { intercept: Math.log(1e-5), coefficients: [0.2, 0.3, 0.7, -0.1] }
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-glm-'))
  writeFileSync(join(dir, def.file), glmToOnnx(def, glm, '# card'))
  writeFileSync(join(dir, def.card), '# card')
  const model = await loadModel(def, join(dir, def.file))
  const rows = Array.from({ length: 200 }, () => [rand() * 40, rand() * 0.02, rand() * 0.3, 1 + rand() * 80])
  const got = await model.frequencies(rows)
  const want = rows.map((r) => glmRate(glm, r.map((v, j) => transformed(def.features[j]!, v))) * r[3]! * 365.25)
  const worst = Math.max(...got.map((g, i) => Math.abs(g / want[i]! - 1)))
  t.ok(worst < 1e-5, `ONNX and JavaScript agree within float32 (worst relative difference ${worst.toExponential(1)})`)
  const [half, full] = await model.frequencies([[0, 0, 0, 15], [0, 0, 0, 30]])
  t.ok(Math.abs(full! / half! - 2 * Math.exp(-0.1 * (Math.log1p(30) - Math.log1p(15)))) < 1e-5, 'twice the km: twice the exposure, times the fitted km relativity')
})
