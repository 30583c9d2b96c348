/**
 * The driving model: a Poisson claim-frequency GLM with log link,
 * frequency = exp(intercept + Σ coefficient·feature), over how someone drives, per km and per hour
 * driven (scoring/driving.ts `behaviourFeatures`): no distance, hours or time of day, so the same
 * driving scores the same over a short trip and a long one. How much and when a policy drives is
 * exposure, priced by the rating plan beside the score (#19). Coefficients are set by hand from
 * published relativities as a starting point (see its model card); `ubiq train` fits them on a
 * portfolio. The .onnx file is built from this definition by `npm run models` and committed.
 */
import type { ModelDefinition } from './definition.ts'

export const drivingFrequency: ModelDefinition = {
  name: 'driving-frequency',
  version: '3',
  subject: 'driving',
  input: 'features',
  output: 'frequency',
  file: 'driving-frequency@3.onnx',
  card: 'driving-frequency@3.md',
  features: [
    { name: 'harsh_braking_per_hour', unit: 'per hour', baseline: 4, label: 'harsh braking' },
    { name: 'harsh_acceleration_per_hour', unit: 'per hour', baseline: 0, label: 'harsh acceleration' },
    { name: 'harsh_lateral_per_hour', unit: 'per hour', baseline: 25, label: 'harsh cornering and lane changes' },
    { name: 'speeding_share', unit: 'of driving time', baseline: 0.06, label: 'speeding' },
    { name: 'phone_min_per_hour', unit: 'min per hour', baseline: 0.05, label: 'phone handling' },
    { name: 'accel_share', unit: 'of driving time', baseline: 0.07, label: 'time accelerating hard' },
    { name: 'braking_share', unit: 'of driving time', baseline: 0.11, label: 'time braking hard' },
    { name: 'cornering_share', unit: 'of driving time', baseline: 0.02, label: 'time cornering hard' },
    { name: 'long_accel_rms_ms2', unit: 'm/s² RMS', baseline: 1, label: 'speed changes' },
    { name: 'lat_accel_rms_ms2', unit: 'm/s² RMS', baseline: 0.55, label: 'sideways forces' },
  ],
}

/** Log-relativities per unit of each feature, in the definition's order (the model card says where each comes from). */
const coefficients = [0.03, 0.015, 0.01, 1.0, 0.045, 2.0, 3.0, 5.0, 0.5, 0.5]

/** GLM parameters: the intercept puts a policy at every baseline at 7% claims a year (a typical year's mileage). */
export const drivingFrequencyGlm = {
  intercept: Math.log(0.07) - drivingFrequency.features.reduce((a, f, i) => a + coefficients[i]! * f.baseline, 0),
  coefficients,
}
