import { Type } from '@sinclair/typebox'
import { payloadSchema, type SensorKind } from '../contract.ts'

/** One sleep session, sent when it ends (`ts` is the wake time). */
const stage = (description: string) => Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400, description }))
const schema = payloadSchema({
  duration_s: Type.Integer({ minimum: 0, maximum: 86_400, description: 'Time from falling asleep to waking, s' }),
  deep_s: stage('Deep sleep, s'),
  rem_s: stage('REM sleep, s'),
  light_s: stage('Light sleep, s'),
  awake_s: stage('Awake during the session, s'),
})

export const sleep: SensorKind<typeof schema> = {
  kind: 'sleep',
  units: { duration_s: 's', deep_s: 's', rem_s: 's', light_s: 's', awake_s: 's' },
  subject: 'health',
  description: 'Wearable sleep session with its stages',
  schema,
  storage: { retention: 'raw', why: 'sleep duration and regularity (summed per day in health_day)' },
  example: { seq: 31, ts: 1767250800000, duration_s: 26_400, deep_s: 5_400, rem_s: 6_000, light_s: 13_800, awake_s: 1_200 },
}
