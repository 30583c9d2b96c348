import { Type } from '@sinclair/typebox'
import { payloadSchema, type SensorKind } from '../contract.ts'

/** A crash the device detected itself (high-g impulse), sent at once; the IMU window follows on `imu`. */
const schema = payloadSchema({
  peak_accel_ms2: Type.Number({ minimum: 0, maximum: 2000, description: 'Peak acceleration magnitude of the impulse, m/s²' }),
  delta_v_kmh: Type.Optional(Type.Number({ minimum: 0, maximum: 300, description: 'Speed change across the impulse, km/h' })),
  direction_deg: Type.Optional(Type.Number({ minimum: 0, maximum: 360, description: 'Direction of the impulse, degrees clockwise from vehicle forward' })),
})

export const crash: SensorKind<typeof schema> = {
  kind: 'crash',
  units: { peak_accel_ms2: 'ms2', delta_v_kmh: 'kmh', direction_deg: 'deg' },
  subject: 'driving',
  description: 'Crash alert from the device: a high-g impulse',
  schema,
  storage: { retention: 'claims', why: 'a crash the device saw: an urgent event now, and evidence for the claim later' },
  example: { seq: 812, ts: 1767225600000, peak_accel_ms2: 58.4, delta_v_kmh: 31, direction_deg: 5 },
}
