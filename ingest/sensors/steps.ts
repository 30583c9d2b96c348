import { Type } from '@sinclair/typebox'
import { payloadSchema, type SensorKind } from '../contract.ts'

/** Wearable step count over an interval ending at `ts`. */
const schema = payloadSchema({
  steps_count: Type.Integer({ minimum: 0, maximum: 100_000, description: 'Steps in the interval' }),
  interval_s: Type.Integer({ minimum: 1, maximum: 86_400, description: 'Length of the interval, s' }),
})

export const steps: SensorKind<typeof schema> = {
  kind: 'steps',
  units: { steps_count: 'count', interval_s: 's' },
  subject: 'health',
  description: 'Wearable step count per interval',
  schema,
  storage: { retention: 'raw', why: 'daily steps and activity points (summed per day in health_day)' },
  example: { seq: 120, ts: 1767225600000, steps_count: 412, interval_s: 300 },
}
