/**
 * bench:soak's policies and what they send: the pool of simulated policies (its device registry),
 * each policy's simulated day as its devices publish it, with edge-sim's device faults, and the
 * #20 attacks, each in place of one of a device's messages (its seq kept, as a device would).
 */
import { makeCity, makePolicies, policyDevices, policyRegistry, type City, type DeviceMessage, type FaultConfig, type SimDevice, type SimPolicy } from '../edge-sim/index.ts'
import type { DeviceEntry } from '../ingest/index.ts'

/** The kinds of policyholder in the pool, in turn: what devices they have. */
const GROUPS = [
  { prefix: 'all-', devices: ['vehicle', 'wearable', 'home'] },
  { prefix: 'car-', devices: ['vehicle'] },
  { prefix: 'phone-', devices: ['vehicle'], phone: { yaw_deg: 30, pitch_deg: -60, roll_deg: 5 } },
  { prefix: 'wear-', devices: ['wearable'] },
  { prefix: 'home-', devices: ['home'] },
] as const

export interface PoolPolicy {
  policy: SimPolicy
  /** Vehicles of this policy are phones in this mount. */
  phone?: { yaw_deg: number; pitch_deg: number; roll_deg: number }
}

/** `n` policies, the groups in turn (so any stretch of the pool mixes them): deterministic. */
export function soakPool(city: City, n: number): PoolPolicy[] {
  const per = GROUPS.map((g, k) => makePolicies(city, Math.ceil((n - k) / GROUPS.length), { devices: g.devices, prefix: g.prefix, seed: 20 + k }))
  return Array.from({ length: n }, (_, i) => {
    const g = GROUPS[i % GROUPS.length]!
    return { policy: per[i % GROUPS.length]![Math.floor(i / GROUPS.length)]!, ...('phone' in g ? { phone: g.phone } : {}) }
  })
}

/** The pool's device registry. */
export const poolRegistry = (pool: readonly PoolPolicy[]): DeviceEntry[] => policyRegistry(pool.map((p) => p.policy))

/** The simulated city the pool lives in (edge-sim's default). */
export const soakCity = () => makeCity()

/** Device faults at low rates (edge-sim/faults.ts); another device's topic is the broker ACL's to refuse. */
export function soakFaults(deviceIds: readonly string[]): FaultConfig {
  return {
    clock: { rate: 0.05, skew_ms: [-120_000, 120_000], drift_ppm: [-50, 50] },
    outOfRange: 0.0005,
    malformed: 0.0005,
    foreignTopic: { rate: 0.0002, deviceIds },
    offline: { rate: 0.0001, duration_s: [30, 600] },
    reorder: { rate: 0.002, maxLater: 5 },
    duplicate: 0.002,
  }
}

/**
 * The devices of one policy for one simulated day from `startTs`, their seqs continuing from
 * `firstSeq` (a device in the pool again on a later day keeps counting, as the contract asks).
 */
export function sessionDevices(city: City, p: PoolPolicy, startTs: number, faults: FaultConfig, firstSeq: (deviceId: string) => number): SimDevice[] {
  return policyDevices(city, p.policy, { startTs, days: 1, faults, ...(p.phone ? { phone: p.phone } : {}) }).map((d) => {
    const offset = firstSeq(d.deviceId)
    return offset === 0 ? d : { ...d, messages: renumber(d.messages, offset) }
  })
}

function* renumber(messages: Iterable<DeviceMessage>, offset: number): Generator<DeviceMessage> {
  // toMessages puts seq first, and every fault keeps it there (a cut payload keeps at least a fifth).
  for (const m of messages) yield { ...m, seq: m.seq + offset, payload: m.payload.replace(/^\{"seq":\d+/, `{"seq":${m.seq + offset}`) }
}

/** The #20 attacks, refused or harmless since: each sent in place of a device message. */
export const ATTACKS = ['rate_1e-300', 'rate_0.001', 'forward_4m50s', 'seq_2^53-1', 'duplicate_time', 'malformed_json', 'oversized_70KiB'] as const
export type Attack = typeof ATTACKS[number]

const isBatch = (kind: string) => kind === 'imu' || kind === 'imu_device'

/**
 * The payload of `attack` in place of message `m` (same topic and seq), or undefined when the
 * attack does not fit the message: a batch's rate only in a batch, a reading dated ahead only
 * in a vehicle's speed or position (#20 item 4, the trip tracker's), a reused time only after an
 * earlier message of the stream (`previous`). `now`: the server's clock, for the reading dated ahead.
 */
export function attackPayload(attack: Attack, m: DeviceMessage, previous: string | undefined, now: number): string | undefined {
  const body = () => JSON.parse(m.payload) as Record<string, unknown>
  try {
    switch (attack) {
      case 'rate_1e-300': return isBatch(m.kind) ? JSON.stringify({ ...body(), rate_hz: 1e-300 }) : undefined
      case 'rate_0.001': return isBatch(m.kind) ? JSON.stringify({ ...body(), rate_hz: 0.001 }) : undefined
      case 'forward_4m50s': return m.kind === 'obd' || m.kind === 'gps' ? JSON.stringify({ ...body(), ts: now + 290_000 }) : undefined
      case 'seq_2^53-1': return JSON.stringify({ ...body(), seq: Number.MAX_SAFE_INTEGER })
      // The stream's previous reading again, its time and values, under this message's new seq.
      case 'duplicate_time': return previous === undefined ? undefined : JSON.stringify({ ...(JSON.parse(previous) as object), seq: m.seq })
      case 'malformed_json': return `{"seq":${m.seq},"ts":${m.ts},"speed_kmh":}`
      case 'oversized_70KiB': return JSON.stringify({ seq: m.seq, ts: m.ts, padding: 'x'.repeat(70 * 1024) })
    }
  } catch {
    return undefined // a message a device fault already spoiled
  }
}
