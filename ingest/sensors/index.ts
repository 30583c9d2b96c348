/** The catalogue of sensor kinds: one line per kind (DESIGN.md "Declare once"). */
import type { SensorKind } from '../contract.ts'
import { crash } from './crash.ts'
import { gps } from './gps.ts'
import { hr } from './hr.ts'
import { climate, contact, leak, smoke, valve } from './home.ts'
import { imu } from './imu.ts'
import { imuDevice } from './imu-device.ts'
import { obd } from './obd.ts'
import { sleep } from './sleep.ts'
import { spo2 } from './spo2.ts'
import { status } from './status.ts'
import { steps } from './steps.ts'

export const sensors: readonly SensorKind[] = [
  obd,
  gps,
  imu,
  imuDevice,
  status,
  crash,
  hr,
  steps,
  sleep,
  spo2,
  leak,
  smoke,
  climate,
  contact,
  valve,
]

/** The catalogue by kind name. */
export const sensorsByKind: ReadonlyMap<string, SensorKind> = new Map(sensors.map((s) => [s.kind, s]))
