/** The model catalogue: one line per model, with the code that builds its .onnx file. */
import { drivingFrequency, drivingFrequencyGlm } from './driving-frequency.ts'
import { glmToOnnx } from './onnx.ts'
import type { ModelDefinition } from './definition.ts'

export { modelId, type ModelDefinition, type FeatureDefinition } from './definition.ts'
export { drivingFrequency } from './driving-frequency.ts'

/** Every model ubiq ships, and how its ONNX bytes are made. */
export const builtInModels: readonly { definition: ModelDefinition; build(): Uint8Array }[] = [
  { definition: drivingFrequency, build: () => glmToOnnx(drivingFrequency, drivingFrequencyGlm) },
]
