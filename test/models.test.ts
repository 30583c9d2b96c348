/**
 * The model registry through the whole pipeline (#6), with a model from "elsewhere": a driving
 * tree ensemble built by the project, its ONNX file stripped of ubiq's metadata and described by a
 * definition file beside it, as a model exported from LightGBM would be. `ubiq models shadow`
 * makes it score beside the champion (stored, never published or priced), `promote` makes it the
 * champion while readings are flowing, `rollback` brings the old one back: no restart, and every
 * trip gets exactly one score. Real Mosquitto, real InfluxDB, the real CLI.
 */
import { execFile } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import t from 'tap'
import mqtt from 'mqtt'
import onnxProto from 'onnx-proto'
import { deviceRegistry } from '../ingest/index.ts'
import { makeCity, makePolicies, policyDevices, policyRegistry, type DeviceMessage } from '../edge-sim/index.ts'
import { drivingFrequency, modelId, scoreFromFrequency, trainingSpecs, trainModel, type Score, type Trip, type TrainingRow } from '../scoring/index.ts'
import { applyTransforms, predictTrees } from '../scoring/models/trees.ts'
import type { PremiumAdjustment } from '../pricing/index.ts'
import { startServices, startTestPipeline, untilStored } from './harness.ts'

const ubiq = fileURLToPath(new URL('../bin/ubiq.js', import.meta.url))
const cli = (args: string[], env: Record<string, string>) =>
  promisify(execFile)(process.execPath, [ubiq, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } }).then(
    (r) => ({ code: 0, ...r }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: err.stdout, stderr: err.stderr }),
  )

const city = makeCity()
const policies = makePolicies(city, 3)
const DAY = 86_400_000
const start = Date.UTC(2026, 10, 16)
const messages: DeviceMessage[] = policies
  .flatMap((p) => policyDevices(city, p, { startTs: start, days: 4, imuHz: 10 }))
  .flatMap((d) => [...d.messages])
  .filter((m) => m.topic.endsWith('/obd') || m.topic.endsWith('/gps') || m.topic.endsWith('/imu'))
  .sort((a, b) => a.sendAt - b.sendAt)
const day = (n: number) => messages.filter((m) => m.sendAt >= start + n * DAY && m.sendAt < start + (n + 1) * DAY)

/** A driving tree ensemble fitted on made-up policies whose claims per km rise with harsh braking and speeding. */
function treeModel() {
  let seed = 7
  const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647)
  const rows: TrainingRow[] = Array.from({ length: 600 }, (_, i) => {
    const features = Object.fromEntries(drivingFrequency.features.map((f) => [f.name, f.baseline * (0.2 + 1.6 * random())]))
    const perKm = 1.2e-5 * Math.exp(0.3 * features.harsh_braking_per_hour! + 10 * features.speeding_share!)
    const km = (5 + 40 * random()) * 365.25 * 20
    return { policyId: `p${i}`, features, exposure: km, years: 20, claims: Math.round(perKm * km * (0.5 + random())) }
  })
  return trainModel({ ...trainingSpecs.driving, name: 'driving-trees', form: 'trees' }, '1', rows, '600 made-up policies')
}

t.test('shadow, promote and roll back a tree-ensemble model from elsewhere while the pipeline runs', async (t) => {
  const services = await startServices(t)
  const modelsDir = join(services.dataDir, 'models')
  mkdirSync(modelsDir, { recursive: true })
  const trees = treeModel()
  const id = modelId(trees.definition)
  t.equal(trees.fit.form, 'trees')
  // As exported from elsewhere: no ubiq metadata in the file; the definition and card beside it.
  const proto = onnxProto.onnx.ModelProto.decode(trees.onnx)
  proto.metadataProps = []
  writeFileSync(join(modelsDir, trees.definition.file), onnxProto.onnx.ModelProto.encode(proto).finish())
  writeFileSync(join(modelsDir, trees.definition.file.replace('.onnx', '.json')), JSON.stringify(trees.definition, null, 2))
  writeFileSync(join(modelsDir, trees.definition.card), trees.card)
  // One without a definition, and one that is not ONNX: neither can be used.
  writeFileSync(join(modelsDir, 'driving-bare@1.onnx'), onnxProto.onnx.ModelProto.encode(proto).finish())
  writeFileSync(join(modelsDir, 'driving-broken@1.onnx'), 'not a model')
  writeFileSync(join(modelsDir, 'driving-broken@1.json'), JSON.stringify({ ...trees.definition, name: 'driving-broken', file: 'driving-broken@1.onnx', card: 'driving-broken@1.md' }))
  writeFileSync(join(modelsDir, 'driving-broken@1.md'), '# broken')

  const dataDir = join(services.dataDir, 'ubiq')
  const env = { UBIQ_DATA_DIR: dataDir, MODELS_DIR: modelsDir }
  const pipeline = await startTestPipeline(t, services, [], 'models', { devices: deviceRegistry(policyRegistry(policies)), dataDir, modelsDir, reorderWindowMs: 100 })
  const scores: Score[] = [], trips: Trip[] = [], premiums: PremiumAdjustment[] = []
  pipeline.scores$.subscribe((s) => s.subject === 'driving' && scores.push(s))
  pipeline.trips$.subscribe((x) => trips.push(x))
  pipeline.premiums$.subscribe((p) => premiums.push(p))
  const published: Score[] = []
  const listener = await mqtt.connectAsync(services.mqttUrl, { clientId: 'models-listener' })
  listener.on('message', (_topic, payload) => published.push(JSON.parse(String(payload))))
  await listener.subscribeAsync('ubiq/v1/scores/+', { qos: 1 })
  const device = await mqtt.connectAsync(services.mqttUrl, { clientId: 'models-devices' })
  let sent = 0
  const publish = async (batch: DeviceMessage[]) => {
    for (const m of batch) await device.publishAsync(m.topic, m.payload, { qos: 1 })
    sent += batch.length
  }
  const swapped = async (test: () => boolean) => {
    while (!test()) await new Promise((r) => setTimeout(r, 50))
  }
  /** Everything sent is stored, and every trip closed so far is scored. */
  const settled = async () => {
    await untilStored(pipeline, sent)
    await new Promise((r) => setTimeout(r, 300)) // the reorder window, and a micro-batch
    await swapped(() => scores.length === trips.length)
  }
  const champion = () => modelId(pipeline.models().champions.driving!.definition)

  const list = await cli(['models', 'list'], env)
  t.match(list.stdout, new RegExp(`${id} +driving +\\S*${modelsDir}`), 'list shows the model from elsewhere')
  t.match(list.stdout, /not usable:\n.*driving-bare@1\.onnx: no definition: write driving-bare@1\.json beside it/, 'and names one it cannot use, with why')

  await publish(day(0))
  await settled()
  const shadow = await cli(['models', 'shadow', id], env)
  t.equal(shadow.code, 0, shadow.stderr)
  await swapped(() => pipeline.models().shadows.driving?.length === 1)
  const shadowFrom = scores.length
  await publish(day(1))
  await settled()

  // Promote while a day of readings is on its way: the swap happens between two batches.
  const promoting = cli(['models', 'promote', id], env)
  await publish(day(2))
  t.equal((await promoting).code, 0)
  await swapped(() => champion() === id)
  await settled()
  const broken = await cli(['models', 'promote', 'driving-broken@1'], env)
  t.equal(broken.code, 1)
  t.match(broken.stderr, /UBIQ_MODEL_INVALID.*driving-broken@1/, 'a model that does not load is refused, with the reason')
  const rollback = await cli(['models', 'rollback', 'driving'], env)
  t.equal(rollback.code, 0, rollback.stderr)
  await swapped(() => champion() === modelId(drivingFrequency))
  await publish(day(3))
  await untilStored(pipeline, sent)
  await device.endAsync()
  await pipeline.stop()
  await listener.endAsync()

  t.ok(trips.length >= 12, `${trips.length} trips over four days`)
  t.same(scores.map((s) => `${s.policyId}@${s.window.to}`).sort(), trips.map((x) => `${x.policyId}@${x.to}`).sort(), 'every trip got exactly one score, across the swaps')
  const models = scores.map((s) => s.model)
  const first = models.indexOf(id), last = models.lastIndexOf(id)
  t.ok(first > 0 && last < models.length - 1, 'the shipped model scored before the promotion and after the rollback')
  t.same(new Set(models.slice(first, last + 1)), new Set([id]), 'the promoted model scored everything in between')
  t.same(new Set(models.filter((m) => m !== id)), new Set([modelId(drivingFrequency)]))
  t.same(new Set(premiums.filter((p) => p.subject === 'driving').flatMap((p) => p.models)), new Set([id, modelId(drivingFrequency)]), 'premiums record the model that priced them')

  const shadowRows = (await services.influxql('models', `SELECT value FROM shadow_score WHERE model = '${id}' GROUP BY policy_id`))
    .flatMap((s) => s.values.map(([time]) => `${s.tags!.policy_id}@${time}`))
  const shadowPhase = scores.slice(shadowFrom, first)
  t.ok(shadowPhase.length >= 3, `${shadowPhase.length} trips scored while ${id} was a shadow`)
  t.same(shadowRows.sort(), shadowPhase.map((s) => `${s.policyId}@${s.window.to}`).sort(), 'the shadow scored each of them, stored as shadow_score')
  t.notOk(published.some((s) => s.model === id && s.window.to < scores[first]!.window.to), 'shadow scores were never published')

  // The tree ensemble ran in onnxruntime exactly as fitted: its score from the JS trees.
  const def = trees.definition
  const fit = trees.fit.form === 'trees' ? trees.fit.trees : undefined
  // Fitted per km and scaled to a typical year: behaviour alone, no km input.
  const frequency = (row: number[]) => Math.exp(predictTrees(fit!, applyTransforms(def, row)))
  const baseline = frequency(def.features.map((f) => f.baseline))
  for (const s of scores.filter((x) => x.model === id)) {
    const want = scoreFromFrequency(frequency(def.features.map((f) => s.features[f.name] ?? f.baseline)), baseline)
    t.ok(Math.abs(s.value - want) <= 0.051, `${s.policyId}@${s.window.to}: score ${s.value} from onnxruntime, ${want.toFixed(2)} from the JS trees`)
  }
})
