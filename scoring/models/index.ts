/** The model catalogue: one line per model, with the code that builds its .onnx file. */
import { drivingFrequency, drivingFrequencyGlm } from './driving-frequency.ts'
import { healthFrequency, healthFrequencyGlm } from './health-frequency.ts'
import { homeFrequency, homeFrequencyGlm } from './home-frequency.ts'
import { glmToOnnx } from './onnx.ts'
import type { ModelDefinition } from './definition.ts'

export { modelId, type ModelDefinition, type FeatureDefinition } from './definition.ts'
export { drivingFrequency } from './driving-frequency.ts'
export { healthFrequency } from './health-frequency.ts'
export { homeFrequency } from './home-frequency.ts'

/** Every model ubiq ships, and how its ONNX bytes are made. */
export const builtInModels: readonly { definition: ModelDefinition; build(): Uint8Array }[] = [
  { definition: drivingFrequency, build: () => glmToOnnx(drivingFrequency, drivingFrequencyGlm) },
  { definition: healthFrequency, build: () => glmToOnnx(healthFrequency, healthFrequencyGlm) },
  { definition: homeFrequency, build: () => glmToOnnx(homeFrequency, homeFrequencyGlm) },
]
