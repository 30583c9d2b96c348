/**
 * The catalogue of a vehicle device's detectors (#22): one line per detector, with its
 * configuration's schema (thresholds with their defaults, thresholds.ts) and the prefix of its
 * variables in ubiq's configuration (bin/config.ts: `CRASH_IMPULSE_MS2`…). The trip tracker owns one
 * of each per device. One list, used by the service, the training portfolio, `ubiq evaluate` and
 * the benchmarks, so all of them detect the same way.
 */
import type { Static, TObject, TSchema } from '@sinclair/typebox'
import { CrashConfig, crashDetector } from './crash.ts'
import type { Detector } from './events.ts'
import { ManoeuvreConfig, manoeuvreDetector } from './manoeuvres.ts'
import { PhoneHandlingConfig, phoneHandlingDetector } from './phone-handling.ts'
import type { RoadMap } from './road-map.ts'
import { SpeedingConfig, speedingDetector } from './speeding.ts'
import { defaultsOf } from './thresholds.ts'

/** A detector: its configuration and how to make one for a device (none where it cannot judge, e.g. speeding without a road map). */
interface DetectorEntry<C extends TObject> {
  config: C
  /** Prefix of its variables in ubiq's configuration. */
  env: string
  make(cfg: Static<C>, roads: RoadMap | undefined, deviceId: string, policyId: string): Detector | undefined
}
const entry = <C extends TObject>(e: DetectorEntry<C>) => e

export const detectors = {
  manoeuvres: entry({ config: ManoeuvreConfig, env: 'MANOEUVRE', make: (cfg, _roads, deviceId, policyId) => manoeuvreDetector(cfg, deviceId, policyId) }),
  phoneHandling: entry({ config: PhoneHandlingConfig, env: 'PHONE_HANDLING', make: (cfg, _roads, deviceId, policyId) => phoneHandlingDetector(cfg, deviceId, policyId) }),
  crash: entry({ config: CrashConfig, env: 'CRASH', make: (cfg, _roads, deviceId, policyId) => crashDetector(cfg, deviceId, policyId) }),
  speeding: entry({ config: SpeedingConfig, env: 'SPEEDING', make: (cfg, roads, deviceId, policyId) => roads && speedingDetector(cfg, roads, deviceId, policyId) }),
}

type Detectors = typeof detectors
/** Every detector's configuration, by its name in the catalogue. */
export type DetectorConfigs = { [K in keyof Detectors]: Static<Detectors[K]['config']> }

const names = Object.keys(detectors) as (keyof Detectors)[]

/** Each detector's configuration as its defaults give it. */
export const defaultDetectorConfigs = (): DetectorConfigs =>
  Object.fromEntries(names.map((name) => [name, defaultsOf(detectors[name].config)])) as DetectorConfigs

/** `speedTolerance_kmh` in `SPEEDING` → `SPEEDING_SPEED_TOLERANCE_KMH`. */
const variable = (env: string, field: string) => `${env}_${field.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()}`

/** The detectors' thresholds as configuration variables, each with its default and description: part of ubiq's ConfigSchema. */
export const detectorVariables = (): Record<string, TSchema> =>
  Object.fromEntries(names.flatMap((name) => Object.entries(detectors[name].config.properties).map(([field, schema]) => [variable(detectors[name].env, field), schema])))

/** The detectors' configurations from the configuration's variables (read and defaulted by bin/config.ts). */
export function detectorConfigs(variables: Readonly<Record<string, unknown>>): DetectorConfigs {
  return Object.fromEntries(names.map((name) => {
    const { env, config } = detectors[name]
    return [name, Object.fromEntries(Object.keys(config.properties).map((field) => [field, variables[variable(env, field)]]))]
  })) as DetectorConfigs
}

/**
 * A vehicle's detectors, one of each in the catalogue; speeding only with a road map to judge it
 * against. `configs` replaces the defaults of those it names (cross-validation tries other
 * manoeuvre settings; the service passes its configuration).
 */
export const vehicleDetectors = (roads?: RoadMap, configs: Partial<DetectorConfigs> = {}) => {
  const cfg = { ...defaultDetectorConfigs(), ...configs }
  return (deviceId: string, policyId: string): Detector[] =>
    names.flatMap((name) => (detectors[name] as DetectorEntry<TObject>).make(cfg[name], roads, deviceId, policyId) ?? [])
}
