/**
 * The first health model: a Poisson claim-frequency GLM with log link,
 * frequency = exp(intercept + Σ coefficient·feature), over the wearable features of the last 30
 * days (scoring/health.ts). The coefficients are set by hand from the direction and rough size of
 * published associations (below) as a starting point for `ubiq train`; the .onnx file is built
 * from this definition by `npm run models` and committed.
 */
import type { ModelDefinition } from './definition.ts'

export const healthFrequency: ModelDefinition = {
  name: 'health-frequency',
  version: '1',
  subject: 'health',
  input: 'features',
  output: 'frequency',
  file: 'health-frequency@1.onnx',
  card: 'health-frequency@1.md',
  features: [
    { name: 'steps_per_day', unit: 'steps per day', baseline: 7000, label: 'daily steps' },
    { name: 'active_min_per_day', unit: 'min per day', baseline: 15, label: 'active minutes' },
    { name: 'resting_hr_bpm', unit: 'bpm', baseline: 68, label: 'resting heart rate' },
    { name: 'resting_hr_trend_bpm', unit: 'bpm (30 vs 90 days)', baseline: 0, label: 'resting heart rate trend' },
    { name: 'sleep_deficit_h', unit: 'h per night under 7 h', baseline: 0.4, label: 'short sleep' },
    { name: 'sleep_sd_h', unit: 'h (night-to-night spread)', baseline: 0.7, label: 'irregular sleep' },
  ],
}

/**
 * Log-relativities per unit, and the intercept that puts the baseline policy at the portfolio's
 * 15% a year (edge-sim's claimBase.health_perYear):
 * - steps: −8% per 1,000 a day (meta-analyses of daily steps and mortality find 10–15% per 1,000; claims move less than deaths);
 * - active minutes: −1% per minute a day (150 min a week of moderate activity: about −20%);
 * - resting heart rate: +2% per bpm (about +20% per 10 bpm, as cohort studies report for mortality);
 * - its trend: +15% per bpm the last 30 days are above the 90: a rising resting rate is an early sign of declining fitness or illness, beyond its level;
 * - sleep under 7 h: +20% per hour; night-to-night spread: +20% per hour of standard deviation.
 */
const coefficients = [-0.00008, -0.01, 0.02, 0.15, 0.2, 0.2]
export const healthFrequencyGlm = {
  intercept: Math.log(0.15) - healthFrequency.features.reduce((a, f, i) => a + f.baseline * coefficients[i]!, 0),
  coefficients,
}
