/** Simulated policies as devices publish them: the envelope, the real validator, determinism. */
import t from 'tap'
import { createHash } from 'node:crypto'
import { createAdapters, decodeMessage, deviceRegistry, isRejection, sensors, topics, type Reading } from '../ingest/index.ts'
import { deviceKinds, makePolicies, policyDevices, policyRegistry, type DeviceMessage, type StreamOptions } from './device-streams.ts'
import { drivingPersonas, healthPersonas, homePersonas } from './personas.ts'
import { makeCity } from './roads.ts'

const city = makeCity({ seed: 2 })
const start = Date.UTC(2026, 0, 13) // a Tuesday
const DAY = 86_400_000

t.test('policies: personas balanced, ids unique, registry consents to each device\'s streams', async (t) => {
  const policies = makePolicies(city, 48, { seed: 4 })
  const count = (xs: string[]) => Object.values(xs.reduce<Record<string, number>>((c, x) => ((c[x] = (c[x] ?? 0) + 1), c), {}))
  t.same(count(policies.map((p) => p.vehicle!.persona)), Array(6).fill(8), 'every driving persona 8 times')
  t.same(count(policies.map((p) => p.wearable!.persona)), Array(4).fill(12), 'every health persona 12 times')
  t.same(count(policies.map((p) => p.home!.persona)), Array(4).fill(12), 'every home persona 12 times')
  t.ok(count(policies.map((p) => `${p.wearable!.persona}/${p.home!.persona}`)).length >= 12, 'health and home personas are not tied together')
  const entries = policyRegistry(policies)
  t.equal(new Set(entries.map((e) => e.deviceId)).size, 48 * 3, 'a device id each')
  t.same(entries.find((e) => e.deviceId === policies[0]!.vehicle!.deviceId)!.kinds, deviceKinds.vehicle, 'a vehicle consents to the vehicle kinds edge-sim simulates')
  t.same(makePolicies(city, 48, { seed: 4 }), policies, 'deterministic')
  t.ok(makePolicies(city, 2, { devices: ['home'], prefix: 'x-' }).every((p) => !p.vehicle && !p.wearable && p.home!.deviceId.startsWith('x-home-')))
  t.ok(Object.keys(drivingPersonas).length === 6 && Object.keys(healthPersonas).length === 4 && Object.keys(homePersonas).length === 4)
})

t.test('every generated message is accepted by ingest\'s validator, numbered 0, 1, 2… per device across its streams', async (t) => {
  const policies = makePolicies(city, 12, { seed: 5 })
  const cfg = { registry: deviceRegistry(policyRegistry(policies)), maxPayloadBytes: 65536, maxFutureSkewMs: 300_000, adapters: createAdapters() }
  // Noon to noon: the evening commute, a night's sleep, the morning commute.
  const noon = start + DAY / 2
  const scenarios: StreamOptions['scenarios'] = { crashOnTrip: 0, leakAt: noon + 9 * 3_600_000, smokeAt: noon + 20 * 3_600_000, healthAnomaly: { fromTs: noon, days: 1 } }
  const kinds = new Map<string, number>()
  let messages = 0, largest = 0
  const problems: string[] = []
  for (const [i, policy] of policies.entries()) {
    // The first policy lives through every scenario, with its IMU at 100 Hz; the second drives with a phone.
    const opts: StreamOptions = i === 0 ? { startTs: noon, days: 1, imuHz: 100, scenarios } : { startTs: noon, days: 1, imuHz: 10, ...(i === 1 ? { phone: { yaw_deg: 30, pitch_deg: 10, roll_deg: 0 } } : {}) }
    for (const device of policyDevices(city, policy, opts)) {
      let expectSeq = 0, lastSend = -Infinity
      for (const m of device.messages) {
        messages++
        largest = Math.max(largest, m.payload.length)
        kinds.set(m.kind, (kinds.get(m.kind) ?? 0) + 1)
        const r = decodeMessage(cfg, m.topic, Buffer.from(m.payload), m.sendAt)
        if (!r || isRejection(r)) {
          problems.push(`${m.topic}: ${JSON.stringify(r)}`)
          continue
        }
        const reading = r as Reading
        if (reading.seq !== expectSeq++ || reading.ts !== m.ts || reading.policyId !== policy.policyId || reading.kind !== m.kind) problems.push(`${m.topic} seq ${m.seq}: envelope`)
        if (m.topic !== topics.device(device.deviceId, m.kind) || m.deviceId !== device.deviceId) problems.push(`${m.topic}: not its own topic`)
        if (m.sendAt < lastSend || m.sendAt < m.ts) problems.push(`${m.topic} seq ${m.seq}: sent out of order or before it was taken`)
        lastSend = m.sendAt
      }
    }
  }
  t.same(problems.slice(0, 5), [], `${messages} messages, none rejected`)
  // Every kind of the contract's catalogue is sent by some simulated device (#22: a kind added to ingest/sensors without a simulation fails here).
  t.same([...kinds.keys()].sort(), sensors.map((s) => s.kind).sort(), `all ${sensors.length} kinds of the contract`)
  t.ok(largest < 65536, `largest payload ${largest} bytes`)
})

t.test('the same seed gives a byte-identical stream; another seed a different one', async (t) => {
  const faults = { duplicate: 0.01, reorder: { rate: 0.01 }, malformed: 0.01, offline: { rate: 0.001, duration_s: [60, 600] as [number, number] } }
  const digest = (seed: number) => {
    const hash = createHash('sha256')
    for (const policy of makePolicies(city, 3, { seed })) {
      for (const device of policyDevices(city, policy, { startTs: start, days: 1, imuHz: 25, faults })) {
        for (const m of device.messages) hash.update(`${m.topic}\n${m.sendAt}\n${m.payload}\n`)
      }
    }
    return hash.digest('hex')
  }
  t.equal(digest(6), digest(6))
  t.not(digest(6), digest(7))
})

t.test('faults injected per device are reported per device', async (t) => {
  const [policy] = makePolicies(city, 1, { seed: 8 })
  const devices = policyDevices(city, policy!, { startTs: start, days: 2, imuHz: 10, faults: { duplicate: 0.05 } })
  const out: Record<string, DeviceMessage[]> = {}
  for (const d of devices) out[d.deviceId] = [...d.messages]
  for (const d of devices) {
    t.equal(d.faults.delivered, out[d.deviceId]!.length, `${d.device}: every message counted`)
    t.equal(d.faults.delivered - d.faults.messages, d.faults.duplicate, `${d.device}: ${d.faults.duplicate} duplicates of ${d.faults.messages}`)
    t.ok(d.faults.duplicate > 0)
  }
  t.ok(devices.every((d) => out[d.deviceId]!.every((m) => m.ts < start + 2 * DAY + 3_600_000)), 'nothing beyond the run')
})
