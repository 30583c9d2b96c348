import t from 'tap'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { loadModel } from '../model.ts'
import type { ModelDefinition } from './definition.ts'
import { poissonDeviance, type GlmData } from './glm.ts'
import { frequencyModelToOnnx } from './onnx.ts'
import { applyTransforms, fitPoissonTrees, predictTrees, treeCore, type TreeEnsemble } from './trees.ts'

const tmp = mkdtempSync(join(tmpdir(), 'ubiq-trees-'))

const def: ModelDefinition = {
  name: 'driving-trees',
  version: '1',
  subject: 'driving',
  input: 'features',
  output: 'frequency',
  file: 'driving-trees@1.onnx',
  card: 'driving-trees@1.md',
  features: [
    { name: 'speeding_share', unit: 'of driving time', baseline: 0.03, label: 'speeding' },
    { name: 'night_share', unit: 'of driving time', baseline: 0.05, label: 'night driving' },
    { name: 'phone_min_per_100km', unit: 'min per 100 km', baseline: 1, label: 'phone handling' },
    { name: 'km_per_day', unit: 'km per day', baseline: 30, label: 'distance driven' },
  ],
}

/** mulberry32: a small seeded generator, so every run fits the same data. */
function random(seed: number) {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let r = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296
  }
}
function poisson(rnd: () => number, mean: number) {
  let k = 0
  for (let p = rnd(), l = Math.exp(-mean); p > l; p *= rnd()) k++
  return k
}
const row = (rnd: () => number) => [0.3 * rnd(), 0.5 * rnd(), 10 * rnd(), 5 + 95 * rnd()]
/** Known annual rate: doubles above 10% speeding, and ×1.5 more when that comes with over 20% night driving. */
const trueRate = (r: readonly number[]) => 0.1 * (r[0]! > 0.1 ? 2 : 1) * (r[0]! > 0.1 && r[1]! > 0.2 ? 1.5 : 1)

function synthetic(n: number, seed: number, perKm = false): GlmData {
  const rnd = random(seed)
  const x = Array.from({ length: n }, () => row(rnd))
  const years = x.map(() => 0.5 + 1.5 * rnd())
  // Per km: the rate per km is the annual rate at 30 km a day, so frequency grows with distance.
  const exposure = x.map((r, i) => (perKm ? years[i]! * r[3]! * 365.25 : years[i]!))
  const unit = perKm ? 30 * 365.25 : 1
  const claims = x.map((r, i) => poisson(rnd, (exposure[i]! * trueRate(r)) / unit))
  return { x, claims, exposure }
}

const nextFloat32 = (v: number) => {
  const f = new Float32Array([v]), i = new Int32Array(f.buffer)
  i[0]! += v >= 0 ? 1 : -1
  return f[0]!
}
/** Random rows, plus rows exactly at every threshold and one float32 step above it. */
function testRows(e: TreeEnsemble, seed: number) {
  const rnd = random(seed)
  const rows = Array.from({ length: 300 }, () => row(rnd))
  for (const tree of e.trees) {
    for (const node of tree) {
      if ('leaf' in node) continue
      for (const v of [node.threshold, nextFloat32(node.threshold)]) {
        const r = row(rnd)
        r[node.feature] = v
        rows.push(r)
      }
    }
  }
  return rows
}

async function onnxModel(d: ModelDefinition, e: TreeEnsemble, file: string) {
  const path = join(tmp, file)
  writeFileSync(path, frequencyModelToOnnx(d, treeCore(d, e), '# card'))
  writeFileSync(join(tmp, d.card), '# card')
  return loadModel(d, path)
}

function agree(t: { ok(ok: boolean, message: string): unknown }, got: number[], want: number[]) {
  const worst = Math.max(...got.map((g, i) => Math.abs(g - want[i]!) / want[i]!))
  t.ok(worst < 1e-5, `${got.length} rows: onnxruntime matches JavaScript within 1e-5 (worst ${worst.toExponential(2)})`)
}

const data = synthetic(20000, 1)
const ensemble = fitPoissonTrees(data)

t.test('the fit finds a threshold and an interaction that a constant cannot', async (t) => {
  const total = data.claims.reduce((a, c) => a + c, 0) / data.exposure.reduce((a, e) => a + e, 0)
  const constant = poissonDeviance(data.claims, data.exposure.map((e) => e * total))
  const deviance = (d: GlmData, rate: (r: readonly number[]) => number) => poissonDeviance(d.claims, d.x.map((r, i) => d.exposure[i]! * rate(r)))
  const fitted = deviance(data, (r) => Math.exp(predictTrees(ensemble, r))), truth = deviance(data, trueRate)
  t.ok(fitted < constant - 0.8 * (constant - truth), `deviance ${fitted.toFixed(0)}, constant ${constant.toFixed(0)}, true rates ${truth.toFixed(0)}`)
  // On fresh data, the trees do about as well as the true rates: they learnt the rate, not the noise.
  const fresh = synthetic(20000, 9)
  const freshFitted = deviance(fresh, (r) => Math.exp(predictTrees(ensemble, r))), freshTruth = deviance(fresh, trueRate)
  t.ok(freshFitted < freshTruth * 1.005, `fresh data: deviance ${freshFitted.toFixed(0)}, true rates ${freshTruth.toFixed(0)}`)
  for (const r of [[0.05, 0.1, 5, 50], [0.05, 0.4, 5, 50], [0.2, 0.1, 5, 50], [0.2, 0.4, 5, 50], [0.25, 0.45, 1, 10]]) {
    const got = Math.exp(predictTrees(ensemble, r))
    t.ok(Math.abs(got / trueRate(r) - 1) < 0.1, `[${r}]: ${got.toFixed(4)} ≈ ${trueRate(r)}`)
  }
  t.same(fitPoissonTrees(data), ensemble, 'deterministic')
  t.throws(() => fitPoissonTrees({ ...data, claims: data.claims.map(() => 0) }), /no claims/)
})

t.test('onnxruntime computes the ensemble: exp(base + Σ tree(x)), thresholds included', async (t) => {
  const model = await onnxModel(def, ensemble, 'trees.onnx')
  const rows = testRows(ensemble, 2)
  t.ok(rows.length > 400, `${rows.length} rows`)
  agree(t, await model.frequencies(rows), rows.map((r) => Math.exp(predictTrees(ensemble, r))))
  agree(t, [model.baselineFrequency], [Math.exp(predictTrees(ensemble, def.features.map((f) => f.baseline)))])
})

t.test('with an exposure feature, the graph multiplies the rate by km per day × days per year', async (t) => {
  const perKm: ModelDefinition = { ...def, name: 'driving-trees-per-km', exposure: { feature: 'km_per_day', perYear: 365.25 } }
  const d = synthetic(20000, 3, true)
  const e = fitPoissonTrees(d)
  const model = await onnxModel(perKm, e, 'per-km.onnx')
  const rows = testRows(e, 4)
  agree(t, await model.frequencies(rows), rows.map((r) => Math.exp(predictTrees(e, r)) * r[3]! * 365.25))
  const [typical, twice] = await model.frequencies([[0.2, 0.4, 5, 30], [0.2, 0.4, 5, 60]])
  t.ok(Math.abs(typical! / trueRate([0.2, 0.4]) - 1) < 0.1, `30 km a day: ${typical!.toFixed(4)} ≈ ${trueRate([0.2, 0.4])}`)
  t.ok(Math.abs(twice! / typical! - 2) < 0.1, `twice the distance, about twice the frequency (${(twice! / typical!).toFixed(3)})`)
})

t.test('features marked log1p: the trees are fitted on the values the graph feeds them', async (t) => {
  const marked: ModelDefinition = { ...def, name: 'driving-trees-log1p', features: def.features.map((f) => (f.name === 'phone_min_per_100km' || f.name === 'km_per_day' ? { ...f, log1pScale: 1 } : f)) }
  // A rate that depends on distance too: the trees must split on log1p(km per day).
  const rnd = random(5)
  const x = Array.from({ length: 5000 }, () => row(rnd))
  const exposure = x.map(() => 1)
  const claims = x.map((r) => poisson(rnd, trueRate(r) * (r[3]! > 50 ? 2 : 1)))
  const e = fitPoissonTrees({ x: x.map((r) => applyTransforms(marked, r)), claims, exposure })
  t.ok(e.trees.some((tree) => tree.some((n) => !('leaf' in n) && n.feature === 3 && Math.abs(n.threshold - Math.log1p(50)) < 0.05)), 'a split near log1p(50)')
  const model = await onnxModel(marked, e, 'log1p.onnx')
  // Random rows only: the graph's float32 log1p may send a value a few float32 steps from a threshold the other way.
  const rows = Array.from({ length: 300 }, () => row(rnd))
  agree(t, await model.frequencies(rows), rows.map((r) => Math.exp(predictTrees(e, applyTransforms(marked, r)))))
})

t.test('trees that are a single leaf, and a core that names a feature the definition lacks', async (t) => {
  const stumps = fitPoissonTrees(data, { trees: 3, depth: 0 })
  t.same(stumps.trees.map((tree) => tree.length), [1, 1, 1])
  const model = await onnxModel(def, stumps, 'stumps.onnx')
  agree(t, await model.frequencies([[0, 0, 0, 0], [0.3, 0.5, 10, 100]]), [0, 1].map(() => Math.exp(predictTrees(stumps, [0, 0, 0, 0]))))
  t.throws(() => treeCore({ ...def, features: def.features.slice(0, 2) }, ensemble), /splits on feature [23], the definition lists 2/)
})
