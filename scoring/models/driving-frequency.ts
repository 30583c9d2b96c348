/**
 * The driving model: a Poisson claim-frequency GLM with log link,
 * frequency = exp(intercept + Σ coefficient·feature), over the 90-day driving features
 * (scoring/driving.ts). Its coefficients are set by hand from published UBI relativities as a
 * starting point (see its model card); `ubiq train` fits them on a portfolio. The .onnx file is
 * built from this definition by `npm run models` and committed.
 */
import type { ModelDefinition } from './definition.ts'

export const drivingFrequency: ModelDefinition = {
  name: 'driving-frequency',
  version: '2',
  subject: 'driving',
  input: 'features',
  output: 'frequency',
  file: 'driving-frequency@2.onnx',
  card: 'driving-frequency@2.md',
  features: [
    { name: 'harsh_braking_per_100km', unit: 'per 100 km', baseline: 2, label: 'harsh braking' },
    { name: 'harsh_acceleration_per_100km', unit: 'per 100 km', baseline: 2, label: 'harsh acceleration' },
    { name: 'harsh_lateral_per_100km', unit: 'per 100 km', baseline: 2, label: 'harsh cornering and lane changes' },
    { name: 'speeding_share', unit: 'of driving time', baseline: 0.03, label: 'speeding' },
    { name: 'night_share', unit: 'of driving time', baseline: 0.05, label: 'night driving' },
    { name: 'phone_min_per_100km', unit: 'min per 100 km', baseline: 1, label: 'phone handling' },
    { name: 'km_per_day', unit: 'km per day', baseline: 30, label: 'distance driven' },
  ],
}

/** GLM parameters: log of a 6% annual frequency at zero features, and log-relativities per unit. */
export const drivingFrequencyGlm = {
  intercept: Math.log(0.06),
  coefficients: [0.04, 0.02, 0.03, 2.0, 1.0, 0.1, 0.01],
}
