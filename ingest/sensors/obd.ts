import { Type } from '@sinclair/typebox'
import { payloadSchema, type SensorKind } from '../contract.ts'

/**
 * Vehicle OBD-II dongle, decoded values at 1 Hz. Names follow COVESA VSS where it has the signal
 * (Vehicle.Speed, Vehicle.Powertrain.CombustionEngine.Speed), with the unit in the name.
 */
const schema = payloadSchema({
  speed_kmh: Type.Number({ minimum: 0, maximum: 400, description: 'Vehicle.Speed (OBD PID 0x0D), km/h' }),
  engine_rpm: Type.Optional(Type.Number({ minimum: 0, maximum: 16383.75, description: 'Vehicle.Powertrain.CombustionEngine.Speed (PID 0x0C), rpm' })),
  throttle_pct: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: 'Throttle position (PID 0x11), %' })),
})

export const obd: SensorKind<typeof schema> = {
  kind: 'obd',
  subject: 'driving',
  description: 'Vehicle OBD-II dongle: decoded engine and speed values, one message per second',
  schema,
  example: { seq: 42, ts: 1767225600000, speed_kmh: 63.5, engine_rpm: 2100, throttle_pct: 18 },
}
