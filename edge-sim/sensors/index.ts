/**
 * How edge-sim simulates each sensor kind of the device contract (ingest/sensors/): one line per
 * kind (#22), in the order a device's registry entry lists its streams. A vehicle kind's line
 * names its simulation, which the driving model runs every second of a trip; wearable and home
 * kinds come from the wearer's day (health.ts) and the household's (home.ts). device-streams.test.ts
 * fails for a contract kind no simulated device sends.
 */
import { simulateCrash } from './crash.ts'
import { simulateGps } from './gps.ts'
import { simulateImu } from './imu.ts'
import { simulateObd } from './obd.ts'
import { simulateStatus } from './status.ts'
import type { VehicleSensor } from './vehicle.ts'

/** The kinds of simulated device: a vehicle's dongle or phone, a wearable, a home hub. */
export type DeviceType = 'vehicle' | 'wearable' | 'home'

/** Which device sends a kind, and for a vehicle's, its simulation. */
export type KindSimulation = { device: 'vehicle'; simulate: VehicleSensor } | { device: 'wearable' | 'home' }

const vehicle = (simulate: VehicleSensor): KindSimulation => ({ device: 'vehicle', simulate })
const wearable: KindSimulation = { device: 'wearable' }
const home: KindSimulation = { device: 'home' }

export const simulations: Readonly<Record<string, KindSimulation>> = {
  status: vehicle(simulateStatus),
  obd: vehicle(simulateObd),
  gps: vehicle(simulateGps),
  imu: vehicle(simulateImu('imu')),
  imu_device: vehicle(simulateImu('imu_device')),
  crash: vehicle(simulateCrash),
  hr: wearable,
  steps: wearable,
  sleep: wearable,
  spo2: wearable,
  leak: home,
  smoke: home,
  climate: home,
  contact: home,
  valve: home,
}

/** A vehicle's sensors, in catalogue order: each second of a trip they are read in this order. */
export const vehicleSensors: readonly VehicleSensor[] = Object.values(simulations).flatMap((s) => (s.device === 'vehicle' ? [s.simulate] : []))

/** The streams each kind of simulated device sends: what its policy must consent to. */
export const deviceKinds: Readonly<Record<DeviceType, readonly string[]>> = {
  vehicle: kindsOf('vehicle'),
  wearable: kindsOf('wearable'),
  home: kindsOf('home'),
}
function kindsOf(device: DeviceType): string[] {
  return Object.entries(simulations).filter(([, s]) => s.device === device).map(([kind]) => kind)
}

export type { VehicleSensor, TripContext, DrivenSecond, SensorOnTrip, CarState, PhoneMount, PhoneInHand } from './vehicle.ts'
