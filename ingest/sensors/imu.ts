import type { Static } from '@sinclair/typebox'
import { batchSchema, type BatchColumn, type SensorKind } from '../contract.ts'

/**
 * Phone or dongle IMU, batched: about one message a second carrying 10–200 Hz samples of linear
 * acceleration (gravity removed) and angular velocity in the earth frame (x east, y north, z up).
 */
const columns: BatchColumn[] = [
  { name: 'ax_ms2', unit: 'ms2', minimum: -160, maximum: 160, description: 'linear acceleration east, m/s²' },
  { name: 'ay_ms2', unit: 'ms2', minimum: -160, maximum: 160, description: 'linear acceleration north, m/s²' },
  { name: 'az_ms2', unit: 'ms2', minimum: -160, maximum: 160, description: 'linear acceleration up, m/s²' },
  { name: 'gx_rads', unit: 'rads', minimum: -35, maximum: 35, description: 'angular velocity about east, rad/s' },
  { name: 'gy_rads', unit: 'rads', minimum: -35, maximum: 35, description: 'angular velocity about north, rad/s' },
  { name: 'gz_rads', unit: 'rads', minimum: -35, maximum: 35, description: 'angular velocity about up (yaw rate), rad/s' },
]
const schema = batchSchema(columns, 200, 400)

export const imu: SensorKind<typeof schema> = {
  kind: 'imu',
  units: { rate_hz: 'hz' },
  subject: 'driving',
  description: 'Phone or dongle IMU: batched linear acceleration and rotation, earth frame',
  schema,
  storage: { retention: 'raw_imu', why: 'manoeuvres, phone handling, crashes and driving dynamics; a crash recorder\'s window is stored beside the regular batches' },
  batch: { columns },
  // (TypeBox types a tuple built from a list as [], so the example is cast; the schema checks it.)
  example: { seq: 7, ts: 1767225600000, rate_hz: 50, samples: [[0.12, -3.9, 0.05, 0.001, -0.002, 0.04], [0.1, -4.1, 0.02, 0.001, -0.001, 0.05]] } as unknown as Static<typeof schema>,
}
