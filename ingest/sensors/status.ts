import { Type } from '@sinclair/typebox'
import { payloadSchema, type SensorKind } from '../contract.ts'

/** Vehicle or app status: ignition and supply voltage, sent on change and every minute. */
const schema = payloadSchema({
  ignition_on: Type.Boolean({ description: 'Vehicle.LowVoltageSystemState is ON/START: a trip starts and ends here' }),
  battery_v: Type.Optional(Type.Number({ minimum: 0, maximum: 60, description: 'Vehicle.LowVoltageBattery.CurrentVoltage, V' })),
})

export const status: SensorKind<typeof schema> = {
  kind: 'status',
  units: { battery_v: 'v' },
  subject: 'driving',
  description: 'Ignition on/off (trip start and end) and supply voltage',
  schema,
  storage: { retention: 'raw', why: 'ignition starts and ends trips' },
  example: { seq: 3, ts: 1767225600000, ignition_on: true, battery_v: 12.6 },
}
