import type { Static } from '@sinclair/typebox'
import { batchSchema, type BatchColumn, type SensorKind } from '../contract.ts'
import { imu } from './imu.ts'

/**
 * A phone's own accelerometer and gyroscope, batched, in the phone's frame, mounted at any angle
 * (issue #19, "Phones in any mount"): what Android's TYPE_ACCELEROMETER and TYPE_GYROSCOPE give
 * (iOS: Core Motion's raw acceleration times −9.81, as iOS reports it in g with the opposite sign,
 * and its rotation rate), with no sensor fusion on the phone. ubiq estimates the vehicle frame
 * itself (scoring/vehicle-frame.ts): gravity by low-pass filtering, the forward axis from GPS speed
 * changes or the main axis of braking.
 */
// The `imu` kind's columns (names, units, ±16 g and ±2000 °/s ranges): only the frame and gravity differ.
const meanings = [
  'specific force along the phone\'s x axis (right edge of the screen), gravity included: a phone lying face up at rest reads 0, 0, +9.81 (as Android; iOS reports g with the opposite sign: multiply by −9.81), m/s²',
  'specific force along the phone\'s y axis (top edge of the screen), gravity included, m/s²',
  'specific force along the phone\'s z axis (out of the screen), gravity included, m/s²',
  'angular velocity about the phone\'s x axis, counter-clockwise seen from its positive end (right-hand rule, as Android and iOS), rad/s',
  'angular velocity about the phone\'s y axis, counter-clockwise seen from its positive end, rad/s',
  'angular velocity about the phone\'s z axis, counter-clockwise seen from its positive end, rad/s',
]
const columns: BatchColumn[] = imu.batch!.columns.map((c, i) => ({ ...c, description: meanings[i]! }))
const schema = batchSchema(columns, 200, 400)

export const imuDevice: SensorKind<typeof schema> = {
  kind: 'imu_device',
  units: { rate_hz: 'hz' },
  subject: 'driving',
  description: 'Phone IMU in the phone\'s own frame, any mount: batched raw accelerometer (gravity included) and gyroscope; ubiq finds the vehicle\'s axes',
  schema,
  storage: { retention: 'raw_imu', why: 'the same as imu, once turned into the vehicle\'s frame by scoring' },
  batch: { columns },
  // A phone standing in a windshield mount (screen towards the driver, top up) while the car brakes.
  // (TypeBox types a tuple built from a list as [], so the example is cast; the schema checks it.)
  example: { seq: 8, ts: 1767225600000, rate_hz: 50, samples: [[0.08, 9.79, 3.62, 0.002, 0.004, -0.01], [0.11, 9.81, 3.7, 0.001, 0.003, -0.012]] } as unknown as Static<typeof schema>,
}
