/**
 * The first home model: a Poisson claim-frequency GLM with log link,
 * frequency = exp(intercept + Σ coefficient·feature), over the smart-home features of the last 90
 * days (scoring/home.ts). The coefficients are set by hand from what drives home claims (escape of
 * water is the most frequent, then fire and frost) as a starting point for `ubiq train`; the .onnx
 * file is built from this definition by `npm run models` and committed.
 */
import type { ModelDefinition } from './definition.ts'

export const homeFrequency: ModelDefinition = {
  name: 'home-frequency',
  version: '1',
  subject: 'home',
  input: 'features',
  output: 'frequency',
  file: 'home-frequency@1.onnx',
  card: 'home-frequency@1.md',
  features: [
    { name: 'leaks_per_year', unit: 'per year', baseline: 0.5, label: 'water leaks' },
    { name: 'smoke_events_per_year', unit: 'per year', baseline: 0.5, label: 'smoke alarms' },
    { name: 'freeze_hours_per_30d', unit: 'h per 30 days', baseline: 2, label: 'pipes near freezing' },
    { name: 'humidity_share', unit: 'of the time', baseline: 0.02, label: 'humidity above 70%' },
    { name: 'offline_share', unit: 'of sensor time', baseline: 0.01, label: 'sensors offline' },
    { name: 'low_battery_days', unit: 'days in 30', baseline: 0, label: 'low sensor batteries' },
    { name: 'valve_response_s', unit: 's', baseline: 60, label: 'valve shut-off time' },
  ],
}

/**
 * Log-relativities per unit, and the intercept that puts the baseline home at the portfolio's 8% a
 * year (edge-sim's claimBase.home_perYear):
 * - a leak at the probe a year: +8% (most are caught by the valve; repeated ones mean failing plumbing);
 * - a smoke alarm a year: +4% (most are cooking or smoking, a few are fires);
 * - an hour a month below 3 °C at the pipes: +1% (frozen pipes burst: 25 h a month ≈ +28%);
 * - the share of time above 70% RH: +100% at all of it (damp and mould damage);
 * - the share of sensor time offline: +100% at all of it (an offline sensor cannot warn);
 * - a low-battery day: +2%; each second the valve takes to shut after a leak: +0.3% (a minute ≈ +20%).
 */
const coefficients = [0.08, 0.04, 0.01, 1, 1, 0.02, 0.003]
export const homeFrequencyGlm = {
  intercept: Math.log(0.08) - homeFrequency.features.reduce((a, f, i) => a + f.baseline * coefficients[i]!, 0),
  coefficients,
}
