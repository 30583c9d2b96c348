/**
 * The first driving model: a Poisson claim-frequency GLM with log link,
 * frequency = exp(intercept + Σ coefficient·feature). Its coefficients are set by hand from
 * published UBI relativities as a starting point; `ubiq train` (a later issue) fits them on a
 * portfolio. The .onnx file is built from this definition by `npm run models` and committed.
 */
import type { ModelDefinition } from './definition.ts'

export const drivingFrequency: ModelDefinition = {
  name: 'driving-frequency',
  version: '1',
  subject: 'driving',
  input: 'features',
  output: 'frequency',
  file: 'driving-frequency@1.onnx',
  features: [
    { name: 'harsh_brakes_per_100km', unit: 'per 100 km', baseline: 2, label: 'harsh braking' },
    { name: 'harsh_accels_per_100km', unit: 'per 100 km', baseline: 2, label: 'harsh acceleration' },
    { name: 'speeding_share', unit: 'of driving time', baseline: 0.02, label: 'speeding over 120 km/h' },
  ],
}

/** GLM parameters: log of a 6% annual frequency at zero features, and log-relativities per unit. */
export const drivingFrequencyGlm = {
  intercept: Math.log(0.06),
  coefficients: [0.03, 0.02, 1.5],
}
