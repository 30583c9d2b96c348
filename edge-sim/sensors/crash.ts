import { normal } from '../random.ts'
import { r1, type VehicleSensor } from './vehicle.ts'

/** The device's own `crash` message, the moment it sees the impact (dongle or phone). */
export const simulateCrash: VehicleSensor = ({ noise }) => ({
  second: ({ ts, crash }) => (crash
    ? [{ kind: 'crash', ts: ts + Math.round(crash.tau * 1000), body: { peak_accel_ms2: r1(crash.peak), delta_v_kmh: r1(crash.dv * 3.6), direction_deg: r1((360 + normal(noise, 0, 8)) % 360) } }]
    : []),
})
