/**
 * What `ubiq train` fits for each subject: the features of the shipped models, with the form a
 * fitted model needs. Rates with a long tail (events per 100 km, leaks a year) enter as log(1 + x);
 * driving is fitted per km driven (the exposure offset) and scaled to a year by km per day.
 */
import type { Subject } from '../../ingest/index.ts'
import type { ModelDefinition } from './definition.ts'
import { drivingFrequency } from './driving-frequency.ts'
import { healthFrequency } from './health-frequency.ts'
import { homeFrequency } from './home-frequency.ts'
import type { ModelSpec } from './train.ts'

const longTail = new Set([
  'harsh_braking_per_100km', 'harsh_acceleration_per_100km', 'harsh_lateral_per_100km', 'phone_min_per_100km', 'km_per_day',
  'leaks_per_year', 'smoke_events_per_year', 'freeze_hours_per_30d',
])

const spec = ({ version, file, card, features, ...rest }: ModelDefinition, extra: Partial<ModelSpec> = {}): ModelSpec => ({
  ...rest,
  ...extra,
  features: features.map(({ baseline, ...f }) => (longTail.has(f.name) ? { ...f, transform: 'log1p' as const } : f)),
})

export const trainingSpecs: Readonly<Record<Subject, ModelSpec>> = {
  driving: spec(drivingFrequency, { exposure: { feature: 'km_per_day', perYear: 365.25 } }),
  health: spec(healthFrequency),
  home: spec(homeFrequency),
}
