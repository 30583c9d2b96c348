import t from 'tap'
import { readFileSync, writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { builtInModels, drivingFrequency, loadModel, scoreBatch, scoreFromFrequency, type ModelDefinition } from './index.ts'
import { drivingFrequencyGlm } from './models/driving-frequency.ts'
import onnxProto from 'onnx-proto'
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
  const rows = [[0, 0, 0, 0, 0, 0, 0], [2, 2, 2, 0.03, 0.05, 1, 30], [10, 4, 1, 0.3, 0.2, 5, 80]]
  const got = await model.frequencies(rows)
  rows.forEach((row, i) => {
    const want = Math.exp(drivingFrequencyGlm.intercept + row.reduce((a, x, j) => a + x * drivingFrequencyGlm.coefficients[j]!, 0))
    t.ok(Math.abs(got[i]! - want) / want < 1e-6, `row ${i}: ${got[i]} ≈ ${want}`)
  })
  t.same(rows[1], drivingFrequency.features.map((f) => f.baseline), 'row 1 is the baseline')
  t.equal(model.baselineFrequency, got[1], 'the baseline frequency is the model at the baseline features')
})

t.test('scores: 50 at the baseline, lower for riskier driving, with reasons in points and plain words', async (t) => {
  const model = await loadModel(drivingFrequency, modelPath(drivingFrequency))
  const input = (features: Record<string, number>) => ({ policyId: 'p', subject: 'driving' as const, window: { from: 0, to: 1 }, exposure: { days: 1, distance_km: 100 }, features })
  const typicalFeatures = Object.fromEntries(drivingFrequency.features.map((f) => [f.name, f.baseline]))
  const [typical, risky, broken] = await scoreBatch(model, [
    input(typicalFeatures),
    input({ ...typicalFeatures, harsh_braking_per_100km: 12 }),
    input({ ...typicalFeatures, harsh_braking_per_100km: NaN, harsh_acceleration_per_100km: Infinity }),
  ])
  t.equal(typical!.value, 50)
  t.same(typical!.reasons, [], 'a typical policy needs no reasons')
  t.equal(risky!.value, Math.round(scoreFromFrequency(Math.exp(0.04 * 10), 1) * 10) / 10, '10 extra brakes/100 km: relativity e^0.4')
  t.match(risky!.reasons, [{ code: 'harsh_braking_per_100km', value: 12, baseline: 2, impact: -9.9, text: 'harsh braking 12.0 per 100 km (typical 2.0): −9.9 points' }])
  t.equal(broken!.value, 50, 'non-finite features never reach the model: they count as typical')
  t.equal(risky!.model, 'driving-frequency@2')
})

t.test('a model that does not match its definition is refused at load, with the reason', async (t) => {
  const twoFeatures = { ...drivingFrequency, features: drivingFrequency.features.slice(0, 2) }
  const path = join(tmp, 'two.onnx')
  writeFileSync(path, glmToOnnx(twoFeatures, { intercept: 0, coefficients: [1, 1] }))
  writeFileSync(join(tmp, drivingFrequency.card), '# card')
  await t.rejects(loadModel(drivingFrequency, path), { code: 'MODEL_INVALID', message: /was built for features \[harsh_braking_per_100km,harsh_acceleration_per_100km\], the definition lists \[harsh_braking_per_100km,/ })
  const swapped = { ...drivingFrequency, features: [drivingFrequency.features[1]!, drivingFrequency.features[0]!, ...drivingFrequency.features.slice(2)] }
  writeFileSync(join(tmp, 'swapped.onnx'), glmToOnnx(swapped, { intercept: 0, coefficients: [1, 1, 1, 1, 1, 1, 1] }))
  await t.rejects(loadModel(drivingFrequency, join(tmp, 'swapped.onnx')), { code: 'MODEL_INVALID', message: /was built for features \[harsh_acceleration_per_100km,harsh_braking_per_100km,/ }, 'two swapped features: the shape matches, the names do not')
  // A model from elsewhere carries no feature names: its input's width is still checked.
  const foreign = onnxProto.onnx.ModelProto.decode(glmToOnnx(twoFeatures, { intercept: 0, coefficients: [1, 1] }))
  foreign.metadataProps = []
  writeFileSync(join(tmp, 'foreign.onnx'), onnxProto.onnx.ModelProto.encode(foreign).finish())
  await t.rejects(loadModel(drivingFrequency, join(tmp, 'foreign.onnx')), { code: 'MODEL_INVALID', message: /has shape \[batch, 2\], the definition lists 7 features/ })
  await t.rejects(loadModel({ ...drivingFrequency, card: 'no-such-card.md' }, modelPath(drivingFrequency)), { code: 'MODEL_INVALID', message: /has no model card no-such-card.md/ })
  await t.rejects(loadModel({ ...twoFeatures, input: 'x' }, path), { code: 'MODEL_INVALID', message: /needs a float32 tensor input "x"/ })
  await t.rejects(loadModel({ ...twoFeatures, output: 'y' }, path), { code: 'MODEL_INVALID', message: /has no output "y"/ })
  writeFileSync(join(tmp, 'garbage.onnx'), 'not a model')
  await t.rejects(loadModel(drivingFrequency, join(tmp, 'garbage.onnx')), { code: 'MODEL_INVALID', message: /not a valid ONNX model/ })
  await t.rejects(loadModel(drivingFrequency, join(tmp, 'missing.onnx')), { code: 'MODEL_INVALID', message: /cannot read the model file/ })
  await t.resolves(loadModel(drivingFrequency, modelPath(drivingFrequency)), 'the shipped model and its card load')
})
