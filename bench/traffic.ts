/**
 * Realistic mixed traffic for benchmarks: per device one stream, in the mix a fleet sends it —
 * OBD at 1 Hz, GPS at 1 Hz, 50 Hz IMU batches of a second, heart rate, home climate.
 */
import { toLine, topics, type DeviceEntry } from '../ingest/index.ts'

const MIX = ['obd', 'obd', 'obd', 'gps', 'gps', 'imu', 'hr', 'hr', 'climate', 'obd'] as const

/** The stream device number `i` sends. */
export const kindOf = (i: number) => MIX[i % MIX.length]!
export const deviceId = (i: number) => `bench-${i}`

/** Registry entries for devices 0..n-1. */
export function benchRegistry(n: number): DeviceEntry[] {
  return Array.from({ length: n }, (_, i) => ({ deviceId: deviceId(i), policyId: `bp-${i}`, kinds: [kindOf(i)] }))
}

/** Message number `seq` of device `i`, at device time `ts`: its topic and payload. */
export function message(i: number, seq: number, ts: number): [string, string] {
  const kind = kindOf(i)
  const x = (seq * 7919 + i * 104729) % 1000 / 1000
  let body: Record<string, unknown>
  switch (kind) {
    case 'obd': body = { speed_kmh: 40 + 60 * x, engine_rpm: 1500 + 2000 * x, throttle_pct: 30 * x }; break
    // Northwards at 80 km/h (0.0002° a second), one lane per device: fixes that ingest's teleport check accepts.
    case 'gps': body = { lat_deg: 52 + (seq % 10_000) * 0.0002, lon_deg: 4 + i / 1000, accuracy_m: 5, speed_kmh: 80, heading_deg: 0 }; break
    case 'imu': body = { rate_hz: 50, samples: Array.from({ length: 50 }, (_, k) => [x, -x, 0.1, k / 500, 0, x / 10]) }; break
    case 'hr': body = { hr_bpm: 60 + 40 * x }; break
    case 'climate': body = { temp_c: 15 + 10 * x, humidity_pct: 40 + 20 * x }; break
  }
  return [topics.device(deviceId(i), kind), JSON.stringify({ seq, ts, ...body })]
}

/** InfluxDB points a message of device `i` becomes. */
export const pointsOf = (i: number) => (kindOf(i) === 'imu' ? 50 : 1)

/** A message of device `i` as InfluxDB line protocol, as a minimal consumer writes it (the raw references). */
export function linesOf(i: number, payload: string): string[] {
  const { seq, ts, samples, ...fields } = JSON.parse(payload) as Record<string, number> & { seq: number; ts: number; samples?: number[][] }
  const tags = { device_id: deviceId(i) }
  if (!samples) return [toLine(kindOf(i), tags, { ...fields, seq }, ts, ['seq'])]
  return samples.map((row, k) => toLine(kindOf(i), tags, { ax_ms2: row[0]!, ay_ms2: row[1]!, az_ms2: row[2]!, gx_rads: row[3]!, gy_rads: row[4]!, gz_rads: row[5]!, seq, i: k }, ts + k * 20, ['seq', 'i']))
}
