import { Type } from '@sinclair/typebox'
import { payloadSchema, type SensorKind } from '../contract.ts'

/** Wearable heart rate: a health value, never logged. */
const schema = payloadSchema({
  hr_bpm: Type.Number({ minimum: 20, maximum: 250, description: 'Heart rate, beats per minute' }),
  resting: Type.Optional(Type.Boolean({ description: 'The wearable judged the wearer at rest' })),
})

export const hr: SensorKind<typeof schema> = {
  kind: 'hr',
  units: { hr_bpm: 'bpm' },
  subject: 'health',
  description: 'Wearable heart rate, every few seconds to every few minutes',
  schema,
  storage: { retention: 'raw', why: 'resting heart rate and its trend, active minutes (summed per day in health_day)' },
  example: { seq: 9001, ts: 1767225600000, hr_bpm: 62, resting: true },
}
