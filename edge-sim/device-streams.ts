/**
 * From simulated readings to what a device publishes: one MQTT message per reading on the
 * device's topic, with the contract's envelope (`seq` one counter per device across all its
 * streams, +1 per message; `ts` device time, ms). Faults (faults.ts) transform these messages.
 */
import { topics, type DeviceEntry } from '../ingest/device-contract.ts'
import { emptyFaultReport, injectFaults, type FaultConfig, type FaultName, type FaultReport } from './faults.ts'
import { driveVehicle, type PhoneMount, type TripTruth, type Vehicle } from './driving.ts'
import { liveHealth, type HealthOptions, type Wearer } from './health.ts'
import { liveHome, type HomeEvent, type Household } from './home.ts'
import { drivingPersonas, healthPersonas, homePersonas } from './personas.ts'
import { deriveSeed } from './random.ts'
import type { City } from './roads.ts'
import { deviceKinds, type DeviceType } from './sensors/index.ts'
import { choosePlaces } from './trips.ts'

/** What a simulated sensor produces: a payload of a kind, without the envelope's `seq`. */
export interface SensorReading {
  kind: string
  /** Device time of the reading, ms. */
  ts: number
  /** The kind's fields (docs/device-contract.md), without `seq` and `ts`. */
  body: Record<string, unknown>
  /** When the device sends it, if later than `ts` (a crash window uploaded after the crash). */
  sendAt?: number
}

/** One MQTT publish of a simulated device. */
export interface DeviceMessage {
  /** The device that publishes (its MQTT user): not always the one in the topic (a fault). */
  deviceId: string
  kind: string
  topic: string
  /** What goes on the wire: JSON, unless a fault spoiled it. */
  payload: string
  seq: number
  /** Device time in the payload, ms (after any clock fault). */
  ts: number
  /** True time at which the device publishes, ms: messages come in this order. */
  sendAt: number
  /** Faults injected into this message, if any. */
  faults?: FaultName[]
}

export { deviceKinds, type DeviceType }

/** Numbers its readings with the device's `seq` (from `firstSeq`) and turns them into messages, in order. */
export function* toMessages(deviceId: string, readings: Iterable<SensorReading>, firstSeq = 0): Generator<DeviceMessage> {
  let seq = firstSeq
  for (const r of readings) {
    yield {
      deviceId,
      kind: r.kind,
      topic: topics.device(deviceId, r.kind),
      // seq and ts first, as the contract's examples show them (spliced in: this is the hot path).
      payload: `{"seq":${seq},"ts":${r.ts}${Object.keys(r.body).length ? ',' : ''}${JSON.stringify(r.body).slice(1)}`,
      seq: seq++,
      ts: r.ts,
      sendAt: r.sendAt ?? r.ts,
    }
  }
}

/** A device registry entry for a simulated device: it consents to the streams its kind of device sends. */
export const registryEntry = (deviceId: string, policyId: string, device: DeviceType): DeviceEntry =>
  ({ deviceId, policyId, kinds: [...deviceKinds[device]] })

/** A simulated policyholder: up to one vehicle, one wearable and one home, each with its persona. */
export interface SimPolicy {
  policyId: string
  seed: number
  vehicle?: Vehicle & { deviceId: string }
  wearable?: Wearer & { deviceId: string }
  home?: Household & { deviceId: string }
}

/** How `makePolicies` builds its policies. */
export interface PolicyOptions {
  seed?: number
  /** The devices every policy has; default all three. */
  devices?: readonly DeviceType[]
  /** Put before every id, to keep simulated fleets apart in one registry. */
  prefix?: string
}

/**
 * `n` policies, deterministic for a seed. Personas cycle, so every persona is equally represented
 * in any multiple of 12 policies, and health and home personas are not tied to each other.
 */
export function makePolicies(city: City, n: number, opts: PolicyOptions = {}): SimPolicy[] {
  const { seed = 1, devices = ['vehicle', 'wearable', 'home'], prefix = '' } = opts
  const [driving, health, home] = [Object.values(drivingPersonas), Object.values(healthPersonas), Object.values(homePersonas)]
  return Array.from({ length: n }, (_, i) => {
    const id = String(i + 1).padStart(6, '0')
    const policySeed = deriveSeed(seed, i)
    const policy: SimPolicy = { policyId: `${prefix}pol-${id}`, seed: policySeed }
    if (devices.includes('vehicle')) {
      const persona = driving[i % driving.length]!
      const vehicleSeed = deriveSeed(policySeed, 1)
      policy.vehicle = { deviceId: `${prefix}car-${id}`, persona: persona.name, places: choosePlaces(city, persona, vehicleSeed), seed: vehicleSeed }
    }
    if (devices.includes('wearable')) policy.wearable = { deviceId: `${prefix}wear-${id}`, persona: health[i % health.length]!.name, seed: deriveSeed(policySeed, 2) }
    if (devices.includes('home')) policy.home = { deviceId: `${prefix}home-${id}`, persona: home[(i + Math.floor(i / home.length)) % home.length]!.name, seed: deriveSeed(policySeed, 3) }
    return policy
  })
}

/** The device registry entries for simulated policies: each device consents to its own streams. */
export function policyRegistry(policies: readonly SimPolicy[]): DeviceEntry[] {
  return policies.flatMap((p) => [
    ...(p.vehicle ? [registryEntry(p.vehicle.deviceId, p.policyId, 'vehicle')] : []),
    ...(p.wearable ? [registryEntry(p.wearable.deviceId, p.policyId, 'wearable')] : []),
    ...(p.home ? [registryEntry(p.home.deviceId, p.policyId, 'home')] : []),
  ])
}

/** What to simulate for a policy's devices: the span, sensor rates, scenarios and faults. */
export interface StreamOptions {
  startTs: number
  days: number
  /** IMU rate of vehicles, Hz (10–100; 0 for none). Default 25. */
  imuHz?: number
  /** Vehicles are phones in this mount (GNSS and own-frame IMU, no OBD or ignition) instead of dongles. */
  phone?: PhoneMount
  /** Seconds between wearable heart-rate readings. Default 300. */
  hrEvery_s?: number
  scenarios?: {
    /** The vehicle's trip (0-based over the run) that ends in a crash. */
    crashOnTrip?: number
    leakAt?: number
    smokeAt?: number
    healthAnomaly?: HealthOptions['anomaly']
  }
  /** Faults to inject into every device's stream; none by default. */
  faults?: FaultConfig
  onTrip?: (deviceId: string, trip: TripTruth) => void
  onHomeEvent?: (deviceId: string, event: HomeEvent) => void
}

/** A simulated device's message stream, ready to publish, and the faults injected into it so far. */
export interface SimDevice {
  deviceId: string
  policyId: string
  device: DeviceType
  messages: Generator<DeviceMessage>
  faults: FaultReport
}

/** One stream per device of the policy. Lazy: nothing is simulated until a stream is iterated. */
export function policyDevices(city: City, policy: SimPolicy, opts: StreamOptions): SimDevice[] {
  const { startTs, days, scenarios = {} } = opts
  const devices: SimDevice[] = []
  const add = (deviceId: string, device: DeviceType, seed: number, readings: Iterable<SensorReading>) => {
    const faults = emptyFaultReport()
    const messages = toMessages(deviceId, readings)
    devices.push({ deviceId, policyId: policy.policyId, device, faults, messages: opts.faults ? injectFaults(messages, opts.faults, deriveSeed(seed, 0xfa), faults) : messages })
  }
  const { vehicle, wearable, home } = policy
  if (vehicle) {
    const onTrip = opts.onTrip && ((t: TripTruth) => opts.onTrip!(vehicle.deviceId, t))
    add(vehicle.deviceId, 'vehicle', vehicle.seed, driveVehicle(city, vehicle, { startTs, days, imuHz: opts.imuHz, crashOnTrip: scenarios.crashOnTrip, ...(opts.phone ? { phone: opts.phone } : {}) }, onTrip))
  }
  if (wearable) add(wearable.deviceId, 'wearable', wearable.seed, liveHealth(wearable, { startTs, days, hrEvery_s: opts.hrEvery_s, anomaly: scenarios.healthAnomaly }))
  if (home) {
    const onEvent = opts.onHomeEvent && ((e: HomeEvent) => opts.onHomeEvent!(home.deviceId, e))
    add(home.deviceId, 'home', home.seed, liveHome(home, { startTs, days, leakAt: scenarios.leakAt, smokeAt: scenarios.smokeAt }, onEvent))
  }
  return devices
}
