/**
 * The detectors a vehicle device gets, one of each per device (the trip tracker owns them). One
 * list, used by the service, the training portfolio, `ubiq evaluate` and the benchmarks, so all
 * of them detect the same way.
 */
import { crashDetector, defaultCrashConfig } from './crash.ts'
import type { Detector } from './events.ts'
import { defaultManoeuvreConfig, manoeuvreDetector, type ManoeuvreConfig } from './manoeuvres.ts'
import { defaultPhoneHandlingConfig, phoneHandlingDetector } from './phone-handling.ts'
import type { RoadMap } from './road-map.ts'
import { defaultSpeedingConfig, speedingDetector } from './speeding.ts'

/**
 * A vehicle's detectors; speeding only with a road map to judge it against. `manoeuvres` is the
 * manoeuvre detector's configuration (cross-validation tries others; the service uses the default).
 */
export const vehicleDetectors = (roads?: RoadMap, manoeuvres: ManoeuvreConfig = defaultManoeuvreConfig) => (deviceId: string, policyId: string): Detector[] => [
  manoeuvreDetector(manoeuvres, deviceId, policyId),
  phoneHandlingDetector(defaultPhoneHandlingConfig, deviceId, policyId),
  crashDetector(defaultCrashConfig, deviceId, policyId),
  ...(roads ? [speedingDetector(defaultSpeedingConfig, roads, deviceId, policyId)] : []),
]
