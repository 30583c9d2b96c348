/**
 * A fleet of simulated vehicles, each its own MQTT client publishing the contract's `obd` stream
 * at QoS 1, paced against a simulated clock that may run faster than real time until it reaches
 * the present (a backlog upload, then live), and never sends a sample from the future.
 */
import mqtt from 'mqtt'
import { topics, type DeviceEntry } from '../ingest/index.ts'
import { publishPaced, type SimMessage } from './publish.ts'
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
  return fleet.map((v) => ({ deviceId: v.deviceId, policyId: v.policyId, kinds: ['obd'] }))
}

export interface FleetOptions {
  mqttUrl: string
  fleet: readonly SimVehicle[]
  /** Simulated time of each vehicle's first sample, ms since the epoch. */
  startTs: number
  /** Simulated seconds per real second; Infinity sends as fast as the broker acknowledges. */
  speedup: number
  /** Samples per vehicle; omitted, the fleet drives until stopped. */
  samples?: number
  /** MQTT passwords by device id, for a broker with per-device credentials (username = device id). */
  passwords?: ReadonlyMap<string, string>
}

export interface FleetRun {
  /** Messages acknowledged by the broker so far. */
  readonly acknowledged: number
  /** Resolves when every vehicle has sent its samples (or the run was stopped) and disconnected. */
  done: Promise<void>
  /** Stops publishing and disconnects every vehicle. */
  stop(): Promise<void>
}

/** Connects every vehicle and starts driving. */
export async function runFleet(opts: FleetOptions): Promise<FleetRun> {
  const abort = new AbortController()
  const realStart = Date.now()
  let acknowledged = 0
  const clients = await Promise.all(opts.fleet.map((v) =>
    mqtt.connectAsync(opts.mqttUrl, {
      clientId: `sim-${v.deviceId}`, clean: true, reconnectPeriod: 1000,
      ...(opts.passwords ? { username: v.deviceId, password: opts.passwords.get(v.deviceId) } : {}),
    })))

  function* messages(v: SimVehicle): Generator<SimMessage> {
    const topic = topics.device(v.deviceId, 'obd')
    let seq = 0
    for (const sample of driveObd(personas[v.persona], v.seed, opts.startTs)) {
      if (opts.samples !== undefined && seq >= opts.samples) return
      yield { topic, ts: sample.ts, payload: JSON.stringify({ seq: seq++, ...sample }) }
    }
  }
  const pace = { startTs: opts.startTs, realStart, speedup: opts.speedup, signal: abort.signal }
  const drive = (v: SimVehicle, i: number) => publishPaced(clients[i]!, messages(v), pace, () => acknowledged++)

  // A vehicle that has sent all its samples disconnects, as a device does after uploading.
  const done = Promise.all(opts.fleet.map((v, i) => drive(v, i).finally(() => clients[i]!.endAsync()))).then(() => {})
  return {
    get acknowledged() {
      return acknowledged
    },
    done,
    async stop() {
      abort.abort()
      await done.catch(() => {})
    },
  }
}
