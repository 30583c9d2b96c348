import t from 'tap'
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { builtInModels, drivingFrequency, loadModel, scoreBatch, scoreFromFrequency, type ModelDefinition } from './index.ts'
import { drivingFrequencyGlm } from './models/driving-frequency.ts'
import { glmToOnnx } from './models/onnx.ts'

const modelPath = (def: ModelDefinition) => fileURLToPath(new URL(`./models/${def.file}`, import.meta.url))
const tmp = mkdtempSync(join(tmpdir(), 'ubiq-model-'))

t.test('each committed .onnx file is exactly what its definition builds (npm run models)', async (t) => {
  for (const { definition, build } of builtInModels) {
    t.same(readFileSync(modelPath(definition)), Buffer.from(build()), definition.file)
  }
})

t.test('onnxruntime computes the GLM: exp(intercept + Σ coefficient·feature)', async (t) => {
  const model = await loadModel(drivingFrequency, modelPath(drivingFrequency))
  const rows = [[0, 0, 0], [2, 2, 0.02], [10, 4, 0.3]]
  const got = await model.frequencies(rows)
  rows.forEach((row, i) => {
    const want = Math.exp(drivingFrequencyGlm.intercept + row.reduce((a, x, j) => a + x * drivingFrequencyGlm.coefficients[j]!, 0))
    t.ok(Math.abs(got[i]! - want) / want < 1e-6, `row ${i}: ${got[i]} ≈ ${want}`)
  })
  t.equal(model.baselineFrequency, got[1], 'the baseline frequency is the model at the baseline features')
})

t.test('scores: 50 at the baseline, lower for riskier driving, with reasons in points and plain words', async (t) => {
  const model = await loadModel(drivingFrequency, modelPath(drivingFrequency))
  const input = (features: Record<string, number>) => ({ policyId: 'p', window: { from: 0, to: 1 }, exposure: { days: 1, distance_km: 100 }, features })
  const [typical, risky, broken] = await scoreBatch(model, [
    input({ harsh_brakes_per_100km: 2, harsh_accels_per_100km: 2, speeding_share: 0.02 }),
    input({ harsh_brakes_per_100km: 12, harsh_accels_per_100km: 2, speeding_share: 0.02 }),
    input({ harsh_brakes_per_100km: NaN, harsh_accels_per_100km: Infinity, speeding_share: 0.02 }),
  ])
  t.equal(typical!.value, 50)
  t.same(typical!.reasons, [], 'a typical policy needs no reasons')
  t.equal(risky!.value, Math.round(scoreFromFrequency(Math.exp(0.03 * 10), 1) * 10) / 10, '10 extra brakes/100 km: relativity e^0.3')
  t.match(risky!.reasons, [{ code: 'harsh_brakes_per_100km', value: 12, baseline: 2, impact: -7.4, text: 'harsh braking 12.0 per 100 km (typical 2.0): −7.4 points' }])
  t.equal(broken!.value, 50, 'non-finite features never reach the model: they count as typical')
  t.equal(risky!.model, 'driving-frequency@1')
})

t.test('a model that does not match its definition is refused at load, with the reason', async (t) => {
  const twoFeatures = { ...drivingFrequency, features: drivingFrequency.features.slice(0, 2) }
  const path = join(tmp, 'two.onnx')
  writeFileSync(path, glmToOnnx(twoFeatures, { intercept: 0, coefficients: [1, 1] }))
  await t.rejects(loadModel(drivingFrequency, path), { code: 'MODEL_INVALID', message: /has shape \[batch, 2\], the definition lists 3 features/ })
  await t.rejects(loadModel({ ...twoFeatures, input: 'x' }, path), { code: 'MODEL_INVALID', message: /needs a float32 tensor input "x"/ })
  await t.rejects(loadModel({ ...twoFeatures, output: 'y' }, path), { code: 'MODEL_INVALID', message: /has no output "y"/ })
  writeFileSync(join(tmp, 'garbage.onnx'), 'not a model')
  await t.rejects(loadModel(drivingFrequency, join(tmp, 'garbage.onnx')), { code: 'MODEL_INVALID', message: /not a valid ONNX model/ })
  await t.rejects(loadModel(drivingFrequency, join(tmp, 'missing.onnx')), { code: 'MODEL_INVALID', message: /cannot read the model file/ })
})
