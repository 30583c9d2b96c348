/**
 * Simulated devices' readings exactly as ingest hands them to scoring, without a broker: each
 * edge-sim message is decoded by ingest's own decoder (for tests of scoring stages on known truth).
 */
import { createAdapters, decodeMessage, deviceRegistry, isRejection, type Reading } from '../ingest/index.ts'
import { policyDevices, policyRegistry, type City, type SimPolicy, type StreamOptions } from '../edge-sim/index.ts'

/** Every reading of the policies' devices, per device in the order the device sends them. */
export function simReadings(city: City, policies: readonly SimPolicy[], opts: StreamOptions): Reading[] {
  const cfg = { registry: deviceRegistry(policyRegistry(policies)), maxPayloadBytes: 1 << 20, maxFutureSkewMs: 60_000, adapters: createAdapters() }
  const out: Reading[] = []
  for (const policy of policies) {
    for (const device of policyDevices(city, policy, opts)) {
      for (const m of device.messages) {
        const r = decodeMessage(cfg, m.topic, Buffer.from(m.payload), m.sendAt)
        if (!r || isRejection(r)) throw new Error(`simulated message rejected: ${JSON.stringify(r)}`)
        out.push(r)
      }
    }
  }
  return out
}
