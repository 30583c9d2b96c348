/**
 * Loads an ONNX model once, checks it against its definition, and scores rows of features.
 */
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import onnxProto from 'onnx-proto'
import ort from 'onnxruntime-node'
import type { ModelDefinition } from './models/index.ts'
import { codes } from '../ingest/device-contract.ts'

/** A loaded model: `frequencies` runs one batch; `baselineFrequency` is a typical policy's. */
export interface LoadedModel {
  definition: ModelDefinition
  frequencies(rows: readonly (readonly number[])[]): Promise<number[]>
  baselineFrequency: number
}

/**
 * Reads the .onnx file at `path`, creates its session, and checks it against its definition: the
 * model card is there, the input and output tensors match, and the feature names the file was
 * built with are the definition's, in order (a shape cannot tell two swapped features apart).
 */
export async function loadModel(definition: ModelDefinition, path: string): Promise<LoadedModel> {
  const where = `${definition.name}@${definition.version} (${path})`
  const bytes = await readFile(path).catch((err) => {
    throw new codes.UBIQ_MODEL_INVALID(`${where}: cannot read the model file: ${(err as Error).message}`)
  })
  const card = join(dirname(path), definition.card)
  if (!existsSync(card)) throw new codes.UBIQ_MODEL_INVALID(`${where}: has no model card ${definition.card} beside it`)
  const built = builtWith(bytes)
  const names = definition.features.map((x) => x.name).join(',')
  if (built !== undefined && built !== names) throw new codes.UBIQ_MODEL_INVALID(`${where}: was built for features [${built}], the definition lists [${names}]`)
  const session = await ort.InferenceSession.create(bytes).catch((err) => {
    throw new codes.UBIQ_MODEL_INVALID(`${where}: not a valid ONNX model: ${(err as Error).message}`)
  })
  const f = definition.features.length
  const input = session.inputMetadata.find((m) => m.name === definition.input)
  if (!input || !input.isTensor || input.type !== 'float32') {
    throw new codes.UBIQ_MODEL_INVALID(`${where}: needs a float32 tensor input "${definition.input}", has ${session.inputNames.join(', ')}`)
  }
  const width = input.shape[1]
  if (input.shape.length !== 2 || (typeof width === 'number' && width !== f)) {
    throw new codes.UBIQ_MODEL_INVALID(`${where}: input "${definition.input}" has shape [${input.shape.join(', ')}], the definition lists ${f} features`)
  }
  if (!session.outputNames.includes(definition.output)) {
    throw new codes.UBIQ_MODEL_INVALID(`${where}: has no output "${definition.output}" (outputs: ${session.outputNames.join(', ')})`)
  }

  async function frequencies(rows: readonly (readonly number[])[]): Promise<number[]> {
    const data = new Float32Array(rows.length * f)
    rows.forEach((row, i) => data.set(row, i * f))
    const out = await session.run({ [definition.input]: new ort.Tensor('float32', data, [rows.length, f]) })
    return Array.from(out[definition.output]!.data as Float32Array)
  }
  const [baselineFrequency] = await frequencies([definition.features.map((x) => x.baseline)])
  if (!(baselineFrequency! > 0) || !Number.isFinite(baselineFrequency)) {
    throw new codes.UBIQ_MODEL_INVALID(`${where}: predicts ${baselineFrequency} at the baseline; a frequency must be positive and finite`)
  }
  return { definition, frequencies, baselineFrequency: baselineFrequency! }
}

/** The feature names ubiq wrote into the model's metadata (`ubiq.features`), if it has them (models from elsewhere may not). */
function builtWith(bytes: Uint8Array): string | undefined {
  try {
    return onnxProto.onnx.ModelProto.decode(bytes).metadataProps.find((p) => p.key === 'ubiq.features')?.value ?? undefined
  } catch {
    return undefined // not ONNX: the session below says so
  }
}
