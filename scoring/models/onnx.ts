/**
 * Writes frequency models as ONNX graphs, with the project's own code and no downloaded weights.
 * Every graph has the same frame around its core:
 *
 *   features [N,F] → log(1 + scale·x) of the features the definition scales → core → log rate [N,1]
 *     (+ log(exposure feature × per year), when the definition has one) → Exp → frequency [N,1]
 *
 * The core is a GLM (MatMul, Add) or a tree ensemble (ai.onnx.ml TreeEnsembleRegressor). The
 * definition and the model card travel in the file's metadata, so a model file describes itself.
 */
import onnxProto from 'onnx-proto'
import type { ModelDefinition } from './definition.ts'

const { onnx } = onnxProto
const FLOAT = onnx.TensorProto.DataType.FLOAT
const INT64 = onnx.TensorProto.DataType.INT64
type Node = onnxProto.onnx.INodeProto
type Tensor = onnxProto.onnx.ITensorProto

/** The part of a graph that turns (transformed) features into a log rate per unit of exposure. */
export interface Core {
  /** Nodes from the tensor named `input` to one named `output` ([N,1]). */
  nodes(input: string, output: string): Node[]
  initializers: Tensor[]
  /** Operator sets beyond the default one (e.g. ai.onnx.ml for trees). */
  opsets?: { domain: string; version: number }[]
  /** What the docString says the core is. */
  form: string
}

/** A log-link GLM's core: features · coefficients + intercept. */
export function glmCore(def: ModelDefinition, glm: { intercept: number; coefficients: readonly number[] }): Core {
  const f = def.features.length
  if (glm.coefficients.length !== f) throw new Error(`${def.name}: ${glm.coefficients.length} coefficients for ${f} features`)
  return {
    form: 'Poisson GLM, log link',
    initializers: [
      { name: 'coefficients', dataType: FLOAT, dims: [f, 1], floatData: [...glm.coefficients] },
      { name: 'intercept', dataType: FLOAT, dims: [1], floatData: [glm.intercept] },
    ],
    nodes: (input, output) => [
      { opType: 'MatMul', input: [input, 'coefficients'], output: ['linear'], name: 'matmul' },
      { opType: 'Add', input: ['linear', 'intercept'], output: [output], name: 'add' },
    ],
  }
}

/** Serialises a frequency model for `def` as ONNX bytes (deterministic for the same inputs). */
export function frequencyModelToOnnx(def: ModelDefinition, core: Core, card?: string): Uint8Array {
  const f = def.features.length
  const nodes: Node[] = []
  const initializers: Tensor[] = [...core.initializers]
  let features = def.input
  // log(1 + scale·x) where a scale is set: x + mask·(log(1 + scale·max(x, 0)) − x), elementwise over the columns.
  const mask = def.features.map((x) => (x.log1pScale ? 1 : 0))
  if (mask.some((m) => m === 1)) {
    initializers.push(
      { name: 'log1p_mask', dataType: FLOAT, dims: [f], floatData: mask },
      { name: 'log1p_scale', dataType: FLOAT, dims: [f], floatData: def.features.map((x) => x.log1pScale ?? 0) },
      { name: 'zero', dataType: FLOAT, dims: [], floatData: [0] },
      { name: 'one', dataType: FLOAT, dims: [], floatData: [1] },
    )
    nodes.push(
      { opType: 'Max', input: [def.input, 'zero'], output: ['nonnegative'], name: 'nonnegative' },
      { opType: 'Mul', input: ['nonnegative', 'log1p_scale'], output: ['scaled'], name: 'scaled' },
      { opType: 'Add', input: ['scaled', 'one'], output: ['plus_one'], name: 'plus_one' },
      { opType: 'Log', input: ['plus_one'], output: ['log1p'], name: 'log1p' },
      { opType: 'Sub', input: ['log1p', def.input], output: ['log1p_change'], name: 'log1p_change' },
      { opType: 'Mul', input: ['log1p_change', 'log1p_mask'], output: ['masked_change'], name: 'masked_change' },
      { opType: 'Add', input: [def.input, 'masked_change'], output: ['transformed'], name: 'transformed' },
    )
    features = 'transformed'
  }
  nodes.push(...core.nodes(features, 'log_rate'))
  let logFrequency = 'log_rate'
  if (def.exposure) {
    const column = def.features.findIndex((x) => x.name === def.exposure!.feature)
    if (column < 0) throw new Error(`${def.name}: exposure feature ${def.exposure.feature} is not among its features`)
    initializers.push(
      { name: 'exposure_column', dataType: INT64, dims: [1], int64Data: [column] },
      { name: 'per_year', dataType: FLOAT, dims: [], floatData: [def.exposure.perYear] },
    )
    nodes.push(
      { opType: 'Gather', input: [def.input, 'exposure_column'], output: ['exposure'], name: 'exposure', attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }] },
      { opType: 'Mul', input: ['exposure', 'per_year'], output: ['exposure_per_year'], name: 'exposure_per_year' },
      { opType: 'Log', input: ['exposure_per_year'], output: ['log_exposure'], name: 'log_exposure' },
      { opType: 'Add', input: ['log_rate', 'log_exposure'], output: ['log_frequency'], name: 'offset' },
    )
    logFrequency = 'log_frequency'
  }
  nodes.push({ opType: 'Exp', input: [logFrequency], output: [def.output], name: 'exp' })
  const tensorType = (dims: (number | string)[]) => ({
    tensorType: { elemType: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } },
  })
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }, ...(core.opsets ?? [])],
    producerName: 'ubiq',
    producerVersion: def.version,
    docString: `${def.name}@${def.version}: ${core.form}`,
    metadataProps: [
      { key: 'ubiq.model', value: `${def.name}@${def.version}` },
      { key: 'ubiq.features', value: def.features.map((x) => x.name).join(',') },
      { key: 'ubiq.definition', value: JSON.stringify(def) },
      ...(card ? [{ key: 'ubiq.card', value: card }] : []),
    ],
    graph: {
      name: def.name,
      node: nodes,
      initializer: initializers,
      input: [{ name: def.input, type: tensorType(['batch', f]) }],
      output: [{ name: def.output, type: tensorType(['batch', 1]) }],
    },
  })
  return onnx.ModelProto.encode(model).finish()
}

/** A log-link GLM for `def` as ONNX bytes. */
export const glmToOnnx = (def: ModelDefinition, glm: { intercept: number; coefficients: readonly number[] }, card?: string) =>
  frequencyModelToOnnx(def, glmCore(def, glm), card)
