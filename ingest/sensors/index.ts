/** The catalogue of sensor kinds: one line per kind (DESIGN.md "Declare once"). */
import type { SensorKind } from '../contract.ts'
import { gps } from './gps.ts'
import { obd } from './obd.ts'

export const sensors: readonly SensorKind[] = [
  obd,
  gps,
]

/** The catalogue by kind name. */
export const sensorsByKind: ReadonlyMap<string, SensorKind> = new Map(sensors.map((s) => [s.kind, s]))
