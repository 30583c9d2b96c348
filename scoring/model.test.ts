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
  const baseline = drivingFrequency.features.map((f) => f.baseline)
  const rows = [baseline.map(() => 0), baseline, baseline.map((b, i) => b * (1 + i / 4))]
  const got = await model.frequencies(rows)
  rows.forEach((row, i) => {
    const want = Math.exp(drivingFrequencyGlm.intercept + row.reduce((a, x, j) => a + x * drivingFrequencyGlm.coefficients[j]!, 0))
    t.ok(Math.abs(got[i]! - want) / want < 1e-6, `row ${i}: ${got[i]} ≈ ${want}`)
  })
  t.equal(model.baselineFrequency, got[1], 'the baseline frequency is the model at the baseline features')
})

t.test('scores: 50 at the baseline, lower for riskier driving, with reasons in points and plain words', async (t) => {
  const model = await loadModel(drivingFrequency, modelPath(drivingFrequency))
  const input = (features: Record<string, number>) => ({ policyId: 'p', subject: 'driving' as const, window: { from: 0, to: 1 }, exposure: { days: 1, distance_km: 100 }, features })
  const typicalFeatures = Object.fromEntries(drivingFrequency.features.map((f) => [f.name, f.baseline]))
  const [typical, risky, broken] = await scoreBatch(model, [
    input(typicalFeatures),
    input({ ...typicalFeatures, harsh_braking_per_hour: typicalFeatures.harsh_braking_per_hour! + 10 }),
    input({ ...typicalFeatures, harsh_braking_per_hour: NaN, harsh_acceleration_per_hour: Infinity }),
  ])
  t.equal(typical!.value, 50)
  t.same(typical!.reasons, [], 'a typical policy needs no reasons')
  const braking = drivingFrequencyGlm.coefficients[0]!
  const value = typicalFeatures.harsh_braking_per_hour! + 10
  const impact = Math.round((scoreFromFrequency(Math.exp(braking * 10), 1) - 50) * 10) / 10
  t.equal(risky!.value, 50 + impact, `10 extra brakes an hour: relativity e^${braking * 10}`)
  t.match(risky!.reasons, [{ code: 'harsh_braking_per_hour', value, baseline: typicalFeatures.harsh_braking_per_hour, impact, text: `harsh braking ${value.toFixed(1)} per hour (typical ${typicalFeatures.harsh_braking_per_hour!.toFixed(1)}): −${-impact} points` }])
  t.equal(broken!.value, 50, 'non-finite features never reach the model: they count as typical')
  const [speedy] = await scoreBatch(model, [input({ ...typicalFeatures, speeding_share: 0.16 })])
  t.match(speedy!.reasons[0]!.text, /^speeding 16% of driving time \(typical 6%\): −\d/, 'a share in percent, not 0.16 (#23)')
  t.equal(risky!.model, `driving-frequency@${drivingFrequency.version}`)
})

t.test('a model that does not match its definition is refused at load, with the reason', async (t) => {
  const twoFeatures = { ...drivingFrequency, features: drivingFrequency.features.slice(0, 2) }
  const path = join(tmp, 'two.onnx')
  writeFileSync(path, glmToOnnx(twoFeatures, { intercept: 0, coefficients: [1, 1] }))
  writeFileSync(join(tmp, drivingFrequency.card), '# card')
  await t.rejects(loadModel(drivingFrequency, path), { code: 'UBIQ_MODEL_INVALID', message: /was built for features \[harsh_braking_per_hour,harsh_acceleration_per_hour\], the definition lists \[harsh_braking_per_hour,/ })
  const swapped = { ...drivingFrequency, features: [drivingFrequency.features[1]!, drivingFrequency.features[0]!, ...drivingFrequency.features.slice(2)] }
  writeFileSync(join(tmp, 'swapped.onnx'), glmToOnnx(swapped, { intercept: 0, coefficients: swapped.features.map(() => 1) }))
  await t.rejects(loadModel(drivingFrequency, join(tmp, 'swapped.onnx')), { code: 'UBIQ_MODEL_INVALID', message: /was built for features \[harsh_acceleration_per_hour,harsh_braking_per_hour,/ }, 'two swapped features: the shape matches, the names do not')
  // A model from elsewhere carries no feature names: its input's width is still checked.
  const foreign = onnxProto.onnx.ModelProto.decode(glmToOnnx(twoFeatures, { intercept: 0, coefficients: [1, 1] }))
  foreign.metadataProps = []
  writeFileSync(join(tmp, 'foreign.onnx'), onnxProto.onnx.ModelProto.encode(foreign).finish())
  await t.rejects(loadModel(drivingFrequency, join(tmp, 'foreign.onnx')), { code: 'UBIQ_MODEL_INVALID', message: new RegExp(`has shape \\[batch, 2\\], the definition lists ${drivingFrequency.features.length} features`) })
  await t.rejects(loadModel({ ...drivingFrequency, card: 'no-such-card.md' }, modelPath(drivingFrequency)), { code: 'UBIQ_MODEL_INVALID', message: /has no model card no-such-card.md/ })
  await t.rejects(loadModel({ ...twoFeatures, input: 'x' }, path), { code: 'UBIQ_MODEL_INVALID', message: /needs a float32 tensor input "x"/ })
  await t.rejects(loadModel({ ...twoFeatures, output: 'y' }, path), { code: 'UBIQ_MODEL_INVALID', message: /has no output "y"/ })
  writeFileSync(join(tmp, 'garbage.onnx'), 'not a model')
  await t.rejects(loadModel(drivingFrequency, join(tmp, 'garbage.onnx')), { code: 'UBIQ_MODEL_INVALID', message: /not a valid ONNX model/ })
  await t.rejects(loadModel(drivingFrequency, join(tmp, 'missing.onnx')), { code: 'UBIQ_MODEL_INVALID', message: /cannot read the model file/ })
  await t.resolves(loadModel(drivingFrequency, modelPath(drivingFrequency)), 'the shipped model and its card load')
})
