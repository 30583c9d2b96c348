import { clamp, jitter, r1, type VehicleSensor } from './vehicle.ts'

/** Km/h per 1000 rpm in each gear of a typical six-speed car. */
const GEARS = [8, 14, 21, 29, 37, 46]

/** Engine speed in the lowest gear that keeps it under the driver's upshift point. */
function gearRpm(kmh: number, shift_rpm: number): number {
  for (const kmhPer1000 of GEARS) {
    const rpm = (kmh / kmhPer1000) * 1000
    if (rpm <= shift_rpm) return Math.max(900, rpm)
  }
  return (kmh / GEARS[GEARS.length - 1]!) * 1000
}

/** The dongle's 1 Hz `obd`: speed, engine, throttle and the car's fuel, coolant and odometer. */
export const simulateObd: VehicleSensor = ({ car, persona, noise, phone }) => ({
  second({ ts, v, a }) {
    const kmh = v * 3.6
    const throttle = v < 0.1 && a <= 0 ? 0 : a < -0.3 ? 0 : clamp((100 * (a + 0.12 + 0.0004 * v * v)) / 4, 0, 100)
    const body = {
      speed_kmh: r1(kmh),
      engine_rpm: Math.round(v < 0.3 ? 800 + jitter(noise) * 15 : gearRpm(kmh, persona.shift_rpm)),
      throttle_pct: r1(throttle),
      engine_load_pct: r1(v < 0.1 && a <= 0 ? 22 : clamp(18 + 0.75 * throttle, 0, 100)),
      coolant_temp_c: r1(car.coolant_c),
      fuel_level_pct: r1(car.fuel_pct),
      odometer_km: r1(car.odometer_km),
    }
    return phone ? [] : [{ kind: 'obd', ts, body }]
  },
})
