/**
 * What `ubiq train` fits for each subject: the features of the shipped models, with the form a
 * fitted model needs. Rates with a long tail (events per 100 km, leaks a year) enter as log(1 + x),
 * the small share of humid time as log(1 + per mille);
 * driving is fitted per km driven (log km the offset) and scaled to a typical year's km, since how
 * much is driven is the rating plan's exposure, never the behaviour model's input (#19).
 * Home adds the background carbon monoxide level, which the hand-set home model does not use:
 * indoor smoking shows in it every day, long before a smoke alarm.
 */
import type { Subject } from '../../ingest/index.ts'
import type { ModelDefinition } from './definition.ts'
import { drivingFrequency } from './driving-frequency.ts'
import { healthFrequency } from './health-frequency.ts'
import { homeFrequency } from './home-frequency.ts'
import type { ModelSpec } from './train.ts'

const log1pScale: Record<string, number> = {
  harsh_braking_per_hour: 1, harsh_acceleration_per_hour: 1, harsh_lateral_per_hour: 1, phone_min_per_hour: 1,
  leaks_per_year: 1, smoke_events_per_year: 1, freeze_hours_per_30d: 1, humidity_share: 1000,
}

const spec = ({ version, file, card, features, ...rest }: ModelDefinition, extra: Partial<ModelSpec> = {}): ModelSpec => ({
  ...rest,
  form: 'glm',
  ...extra,
  features: features.map(({ baseline, ...f }) => (log1pScale[f.name] ? { ...f, log1pScale: log1pScale[f.name] } : f)),
})

export const trainingSpecs: Readonly<Record<Subject, ModelSpec>> = {
  driving: spec(drivingFrequency, { perUnit: 'km' }),
  health: spec(healthFrequency),
  home: spec({ ...homeFrequency, features: [...homeFrequency.features, { name: 'co_ppm_mean', unit: 'ppm', baseline: 0, label: 'carbon monoxide, mean level' }] }),
}
