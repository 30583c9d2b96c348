/**
 * Writes a GLM with log link as an ONNX graph, with the project's own code and no downloaded
 * weights: features [N,F] → MatMul W[F,1] → Add b → Exp → frequency [N,1].
 */
import onnxProto from 'onnx-proto'
import type { ModelDefinition } from './definition.ts'

const { onnx } = onnxProto

/** Serialises a log-link GLM for `def` as ONNX bytes (deterministic for the same inputs). */
export function glmToOnnx(def: ModelDefinition, glm: { intercept: number; coefficients: readonly number[] }): Uint8Array {
  const f = def.features.length
  if (glm.coefficients.length !== f) throw new Error(`${def.name}: ${glm.coefficients.length} coefficients for ${f} features`)
  const FLOAT = onnx.TensorProto.DataType.FLOAT
  const tensorType = (dims: (number | string)[]) => ({
    tensorType: {
      elemType: FLOAT,
      shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
    },
  })
  const model = onnx.ModelProto.create({
    irVersion: 8,
    opsetImport: [{ domain: '', version: 17 }],
    producerName: 'ubiq',
    producerVersion: def.version,
    docString: `${def.name}@${def.version}: Poisson GLM, log link`,
    metadataProps: [
      { key: 'ubiq.model', value: `${def.name}@${def.version}` },
      { key: 'ubiq.features', value: def.features.map((x) => x.name).join(',') },
    ],
    graph: {
      name: def.name,
      node: [
        { opType: 'MatMul', input: [def.input, 'coefficients'], output: ['linear'], name: 'matmul' },
        { opType: 'Add', input: ['linear', 'intercept'], output: ['log_frequency'], name: 'add' },
        { opType: 'Exp', input: ['log_frequency'], output: [def.output], name: 'exp' },
      ],
      initializer: [
        { name: 'coefficients', dataType: FLOAT, dims: [f, 1], floatData: [...glm.coefficients] },
        { name: 'intercept', dataType: FLOAT, dims: [1], floatData: [glm.intercept] },
      ],
      input: [{ name: def.input, type: tensorType(['batch', f]) }],
      output: [{ name: def.output, type: tensorType(['batch', 1]) }],
    },
  })
  return onnx.ModelProto.encode(model).finish()
}
