/**
 * The demo's fleet, one policy per vehicle: its cars on the simulated city's roads (fleetCars), a
 * wearable and a home beside each (fleetLiving). And the tests' lighter fleet (runFleet): vehicles
 * sending the contract's `obd` stream alone between ignition on and off `status` messages, a run
 * with an end one trip, an endless run parked after each trip of 3 to 20 simulated minutes, with
 * trips timed to the second. All published by the same runner as the full simulation (simulate.ts).
 */
import type { DeviceEntry } from '../ingest/device-contract.ts'
import { makePolicies, policyDevices, policyRegistry, registryEntry, toMessages, type SensorReading, type SimDevice } from './device-streams.ts'
import { driveTrips } from './driving.ts'
import { emptyFaultReport } from './faults.ts'
import { drivingPersonas } from './personas.ts'
import { between, deriveSeed, seededRandom } from './random.ts'
import { makeCity, type City } from './roads.ts'
import { choosePlaces, type Places, type TripPlan } from './trips.ts'
import { runSimulation, type SimulationRun } from './simulate.ts'
import { driveObd, personas, type PersonaName } from './vehicle.ts'

/** A simulated policy with one vehicle, and the persona (the ground truth) behind it. */
export interface SimVehicle {
  deviceId: string
  policyId: string
  persona: PersonaName
  seed: number
}

/** `n` vehicles cycling through the personas, deterministic for a seed. */
export function makeFleet(n: number, seed = 1): SimVehicle[] {
  const names = Object.keys(personas) as PersonaName[]
  return Array.from({ length: n }, (_, i) => ({
    deviceId: `veh-${String(i + 1).padStart(4, '0')}`,
    policyId: `pol-${String(i + 1).padStart(4, '0')}`,
    persona: names[i % names.length]!,
    seed: (Math.imul(seed, 0x9e3779b1) + i * 7919) >>> 0,
  }))
}

/** The device registry entries for a fleet: each vehicle sends `obd` for its own policy. */
export function fleetRegistry(fleet: readonly SimVehicle[]): DeviceEntry[] {
  return fleet.map((v) => ({ deviceId: v.deviceId, policyId: v.policyId, kinds: ['status', 'obd'] }))
}

/**
 * A wearable and a home for each of the fleet's policies (#23: with cars alone the demo's Health
 * and Home cards stayed empty), simulated for `days` from `startTs` as ubiq sim simulates them,
 * their personas cycling as makePolicies' do: `wear-0001` and `home-0001` beside `veh-0001`.
 */
export function fleetLiving(fleet: readonly SimVehicle[], seed: number, startTs: number, days: number): { registry: DeviceEntry[]; devices: SimDevice[] } {
  const city = makeCity({ seed })
  const policies = makePolicies(city, fleet.length, { seed, devices: ['wearable', 'home'] }).map((p, i) => {
    const { policyId, deviceId } = fleet[i]!
    const n = deviceId.slice('veh-'.length)
    return { policyId, seed: p.seed, wearable: { ...p.wearable!, deviceId: `wear-${n}` }, home: { ...p.home!, deviceId: `home-${n}` } }
  })
  return { registry: policyRegistry(policies), devices: policies.flatMap((p) => policyDevices(city, p, { startTs, days })) }
}

/**
 * The fleet's cars on the roads of `city` (#23: the demo's cars sent speed alone, no position, so
 * with the city's road map nobody was ever speeding): each drives from place to place for ever,
 * home, work (if its persona commutes), the shops, home, parked PARK_S after each trip, and sends
 * what driving.ts' dongle sends (status, obd, 1 Hz gps, `imuHz` imu). Same ids as makeFleet's.
 */
export function fleetCars(fleet: readonly SimVehicle[], city: City, startTs: number, imuHz = 10): { registry: DeviceEntry[]; devices: SimDevice[] } {
  const devices = fleet.map((v): SimDevice => {
    const vehicle = { persona: v.persona, places: choosePlaces(city, drivingPersonas[v.persona], v.seed), seed: v.seed }
    const round: (keyof Places)[] = vehicle.places.work === undefined ? ['home', 'shops'] : ['home', 'work', 'shops']
    let endTs = startTs - PARK_S * 1000
    // Lazy: the next trip is planned once the last one ended (driveTrips reports each end first).
    function* plans(): Generator<TripPlan> {
      for (let i = 0; ; i++) {
        const from = round[i % round.length]!, to = round[(i + 1) % round.length]!
        yield { startTs: endTs + PARK_S * 1000, from, to, fromNode: vehicle.places[from]!, toNode: vehicle.places[to]! }
      }
    }
    const readings = driveTrips(city, vehicle, plans(), { imuHz }, (trip) => (endTs = trip.endTs))
    return { deviceId: v.deviceId, policyId: v.policyId, device: 'vehicle', messages: toMessages(v.deviceId, readings), faults: emptyFaultReport() }
  })
  return { registry: fleet.map((v) => registryEntry(v.deviceId, v.policyId, 'vehicle')), devices }
}

export interface FleetOptions {
  mqttUrl: string
  /** Brokers to reconnect to when mqttUrl's connection is lost (runSimulation's). */
  otherUrls?: readonly string[]
  fleet: readonly SimVehicle[]
  /** Simulated time of each vehicle's first sample, ms since the epoch. */
  startTs: number
  /** Simulated seconds per real second; Infinity sends as fast as the broker acknowledges. */
  speedup: number
  /** Samples per vehicle; omitted, the fleet drives until stopped. */
  samples?: number
  /** MQTT passwords by device id, for a broker with per-device credentials (username = device id). */
  passwords?: ReadonlyMap<string, string>
  /** The MQTT version the vehicles speak (runSimulation's; default 5). */
  protocolVersion?: 4 | 5
}

/** An endless run parks 2 simulated minutes after each trip. */
const PARK_S = 120

/**
 * The lengths of an endless run's trips for vehicle `v`, s (1 Hz samples): 3 to 20 minutes, drawn
 * for the vehicle. Every trip was 10 minutes once, and the policyholder's page said "10 min" for all.
 */
export function* tripLengths(v: SimVehicle): Generator<number> {
  const rand = seededRandom(deriveSeed(v.seed, 23))
  for (;;) yield Math.round(between(rand, 180, 1200))
}

/** Connects every vehicle and starts driving. */
export function runFleet(opts: FleetOptions): Promise<SimulationRun> {
  function* readings(v: SimVehicle): Generator<SensorReading> {
    let n = 0
    let parked = 0 // samples left standing with the ignition off
    const lengths = tripLengths(v)
    let tripEnd = lengths.next().value // the sample count at which the current trip ends
    yield { kind: 'status', ts: opts.startTs, body: { ignition_on: true } }
    for (const { ts, ...body } of driveObd(personas[v.persona], v.seed, opts.startTs)) {
      if (parked > 0 && --parked === 0) yield { kind: 'status', ts, body: { ignition_on: true } }
      if (parked > 0) continue
      yield { kind: 'obd', ts, body }
      // The run's trip ends with its last sample; a run without an end stops after each of its
      // trip lengths for PARK_S, so that trips end, and scores come, while it runs.
      if (++n === opts.samples) {
        yield { kind: 'status', ts, body: { ignition_on: false } }
        return
      }
      if (opts.samples === undefined && n === tripEnd) {
        yield { kind: 'status', ts, body: { ignition_on: false } }
        parked = PARK_S
        tripEnd += lengths.next().value
      }
    }
  }
  return runSimulation({
    mqttUrl: opts.mqttUrl,
    ...(opts.otherUrls ? { otherUrls: opts.otherUrls } : {}),
    devices: opts.fleet.map((v) => ({ deviceId: v.deviceId, messages: toMessages(v.deviceId, readings(v)) })),
    startTs: opts.startTs,
    speedup: opts.speedup,
    ...(opts.passwords ? { passwords: opts.passwords } : {}),
    ...(opts.protocolVersion ? { protocolVersion: opts.protocolVersion } : {}),
  })
}
