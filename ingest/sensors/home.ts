import { Type } from '@sinclair/typebox'
import { payloadSchema, type SensorKind } from '../contract.ts'

/** Smart-home sensors: each sends on change and as a heartbeat (battery) every hour. */
const battery_pct = Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: 'Sensor battery, %' }))

const leakSchema = payloadSchema({
  leak_detected: Type.Boolean({ description: 'Water at the probe' }),
  battery_pct,
})
export const leak: SensorKind<typeof leakSchema> = {
  kind: 'leak', subject: 'home', description: 'Water leak sensor', schema: leakSchema,
  units: { battery_pct: 'pct' },
  storage: { retention: 'raw', why: 'leak events at once, and leaks per day in home_day' },
  example: { seq: 5, ts: 1767225600000, leak_detected: false, battery_pct: 87 },
}

const smokeSchema = payloadSchema({
  smoke_detected: Type.Boolean({ description: 'Smoke alarm sounding' }),
  co_ppm: Type.Optional(Type.Number({ minimum: 0, maximum: 10_000, description: 'Carbon monoxide, ppm' })),
  battery_pct,
})
export const smoke: SensorKind<typeof smokeSchema> = {
  kind: 'smoke', subject: 'home', description: 'Smoke and CO alarm', schema: smokeSchema,
  units: { co_ppm: 'ppm', battery_pct: 'pct' },
  storage: { retention: 'raw', why: 'smoke events at once, and smoke and CO per day in home_day' },
  example: { seq: 12, ts: 1767225600000, smoke_detected: false, co_ppm: 0, battery_pct: 93 },
}

const climateSchema = payloadSchema({
  temp_c: Type.Number({ minimum: -50, maximum: 100, description: 'Air temperature, °C' }),
  humidity_pct: Type.Optional(Type.Number({ minimum: 0, maximum: 100, description: 'Relative humidity, %' })),
  battery_pct,
})
export const climate: SensorKind<typeof climateSchema> = {
  kind: 'climate', subject: 'home', description: 'Temperature and humidity sensor', schema: climateSchema,
  units: { temp_c: 'c', humidity_pct: 'pct', battery_pct: 'pct' },
  storage: { retention: 'raw', why: 'freeze and humidity exposure, per day in home_day' },
  example: { seq: 400, ts: 1767225600000, temp_c: 19.5, humidity_pct: 48, battery_pct: 71 },
}

const contactSchema = payloadSchema({
  open: Type.Boolean({ description: 'Door or window open' }),
  battery_pct,
})
export const contact: SensorKind<typeof contactSchema> = {
  kind: 'contact', subject: 'home', description: 'Door or window contact sensor', schema: contactSchema,
  units: { battery_pct: 'pct' },
  storage: { retention: 'raw', why: 'sensor liveness and battery, per day in home_day' },
  example: { seq: 18, ts: 1767225600000, open: false, battery_pct: 99 },
}

const valveSchema = payloadSchema({
  valve_open: Type.Boolean({ description: 'Main water valve open (false: shut off)' }),
})
export const valve: SensorKind<typeof valveSchema> = {
  kind: 'valve', subject: 'home', description: 'Main water valve state (automatic shut-off)', schema: valveSchema,
  units: {},
  storage: { retention: 'raw', why: 'the shut-off\'s response to a leak, per day in home_day' },
  example: { seq: 2, ts: 1767225600000, valve_open: true },
}
