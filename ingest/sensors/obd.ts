import { Type } from '@sinclair/typebox'
import { envelope, payloadSchema, type SensorKind } from '../contract.ts'
import { decodePids, pids } from './obd-pids.ts'

/**
 * Vehicle OBD-II dongle at 1 Hz, as decoded values or as raw mode 01 PID responses. Names follow
 * COVESA VSS where it has the signal, with the unit in the name.
 */
const schema = payloadSchema({
  speed_kmh: Type.Number({ minimum: 0, maximum: 255, description: 'Vehicle.Speed (PID 0D), km/h' }),
  engine_rpm: Type.Optional(Type.Number({ minimum: 0, maximum: 16383.75, description: 'Vehicle.Powertrain.CombustionEngine.Speed (PID 0C), rpm' })),
  throttle_pct: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: 'Vehicle.OBD.ThrottlePosition (PID 11), %' })),
  engine_load_pct: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: 'Vehicle.OBD.EngineLoad (PID 04), %' })),
  coolant_temp_c: Type.Optional(Type.Number({ minimum: -40, maximum: 215, description: 'Vehicle.OBD.CoolantTemperature (PID 05), °C' })),
  fuel_level_pct: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: 'Vehicle.OBD.FuelLevel (PID 2F), %' })),
  odometer_km: Type.Optional(Type.Number({ minimum: 0, maximum: 429_496_729.5, description: 'Vehicle.TraveledDistance (PID A6), km' })),
  dtc_count: Type.Optional(Type.Integer({ minimum: 0, maximum: 127, description: 'Vehicle.OBD.DTCCount: stored diagnostic trouble codes (PID 01)' })),
  mil_on: Type.Optional(Type.Boolean({ description: 'Vehicle.OBD.Status.IsMILOn: check-engine lamp (PID 01)' })),
})

const rawSchema = Type.Object({
  ...envelope,
  pids: Type.Record(Type.String({ pattern: '^[0-9A-Fa-f]{2}$' }), Type.String({ pattern: '^([0-9A-Fa-f]{2})+$' }), {
    description: `Raw mode 01 responses by PID (hex data bytes after mode and PID), decoded with the SAE J1979 formulas: ${pids.map((p) => `${p.pid} → ${p.field} = ${p.formula}`).join('; ')}`,
  }),
}, { additionalProperties: false })

export const obd: SensorKind<typeof schema> = {
  kind: 'obd',
  units: { speed_kmh: 'kmh', engine_rpm: 'rpm', throttle_pct: 'pct', engine_load_pct: 'pct', coolant_temp_c: 'c', fuel_level_pct: 'pct', odometer_km: 'km', dtc_count: 'count' },
  subject: 'driving',
  description: 'Vehicle OBD-II dongle: engine and speed values, one message per second',
  schema,
  storage: { retention: 'raw', why: 'speed for trips, distance and harsh braking and acceleration; the engine values for the analyst\'s drill-down' },
  example: { seq: 42, ts: 1767225600000, speed_kmh: 63.5, engine_rpm: 2100, throttle_pct: 18, coolant_temp_c: 88, mil_on: false },
  alternative: {
    description: 'Raw OBD-II mode 01 PID responses, as a dongle reads them off the bus',
    schema: rawSchema,
    example: { seq: 43, ts: 1767225601000, pids: { '0D': '40', '0C': '20D0', '05': '80', '01': '00076100' } },
    normalize(body) {
      const { pids: raw, ...rest } = body
      if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) return rest
      const decoded = decodePids(raw as Record<string, unknown>)
      return typeof decoded === 'string' ? decoded : { ...rest, ...decoded }
    },
  },
}
