import { Type } from '@sinclair/typebox'
import { payloadSchema, type SensorKind } from '../contract.ts'

/** Wearable blood oxygen saturation. */
const schema = payloadSchema({
  spo2_pct: Type.Number({ minimum: 50, maximum: 100, description: 'Peripheral oxygen saturation, %' }),
})

export const spo2: SensorKind<typeof schema> = {
  kind: 'spo2',
  units: { spo2_pct: 'pct' },
  subject: 'health',
  description: 'Wearable SpO2 reading',
  schema,
  storage: { retention: 'raw', why: 'blood oxygen, summed per day in health_day' },
  example: { seq: 77, ts: 1767225600000, spo2_pct: 97 },
}
