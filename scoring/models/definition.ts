import type { Subject } from '../../ingest/index.ts'

/** One model input, in the order the ONNX input tensor's columns hold them. */
export interface FeatureDefinition {
  name: string
  unit: string
  /** A typical policy's value: reasons measure how far a policy's own value moves its score from it. */
  baseline: number
  /** Plain words for reasons ("harsh braking"). */
  label: string
  /**
   * The model sees log(1 + log1pScale · value): rates with a long tail (events per 100 km), or
   * small shares where being above zero matters more than how far (scaled to per mille).
   */
  log1pScale?: number
}

/**
 * What ubiq needs to know about an ONNX model: which features feed it in which order, and what it
 * outputs. Any ONNX model whose single float input is [batch, features.length] and whose output is
 * an expected claim frequency per row can be described this way.
 */
export interface ModelDefinition {
  name: string
  version: string
  subject: Subject
  /** ONNX input name; a float32 tensor [batch, features.length]. */
  input: string
  /** ONNX output name; a float32 tensor [batch, 1] of expected annual claim frequency. */
  output: string
  features: readonly FeatureDefinition[]
  /**
   * A model fitted per unit of exposure (driving: per km) predicts a rate; the yearly frequency is
   * that rate × this feature × `perYear` (km per day × 365.25), the GLM's offset.
   */
  exposure?: { feature: string; perYear: number }
  /** The .onnx file, relative to scoring/models/. */
  file: string
  /** The model card (intended use, data, features, limitations, fairness), relative to scoring/models/. */
  card: string
}

/** `name@version`, as scores and premiums record it. */
export const modelId = (def: ModelDefinition) => `${def.name}@${def.version}`

/** The value a model's core sees for a feature: its log1pScale applied, as the ONNX graph does. */
export const transformed = (f: Pick<FeatureDefinition, 'log1pScale'>, v: number) => (f.log1pScale ? Math.log1p(f.log1pScale * Math.max(0, v)) : v)
