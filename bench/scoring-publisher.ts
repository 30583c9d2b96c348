/**
 * A benchmark publisher process for bench/scoring.ts:
 * `node --import tsx bench/scoring-publisher.ts URL PREFIX POLICIES START_TS RATE SECONDS`
 * publishes the vehicles of POLICIES simulated policies (edge-sim's `makePolicies` with PREFIX, one
 * day from START_TS) in send order at RATE messages a second, QoS 1, for SECONDS at most. It prints
 * `start` when it begins, and for each ignition-off status (the reading that closes a trip)
 * `policyId ts publishedAtMs`; at the end `done sent behindMs` (behindMs: how far it fell behind
 * the fixed rate at worst).
 */
import mqtt from 'mqtt'
import { makeCity, makePolicies, policyDevices, type DeviceMessage } from '../edge-sim/index.ts'

const [url, prefix] = [process.argv[2]!, process.argv[3]!]
const [policyCount, startTs, rate, seconds] = process.argv.slice(4, 8).map(Number) as [number, number, number, number]
const city = makeCity()
const traffic: { msg: DeviceMessage; policyId: string }[] = []
for (const policy of makePolicies(city, policyCount, { devices: ['vehicle'], prefix })) {
  for (const device of policyDevices(city, policy, { startTs, days: 1 })) {
    for (const msg of device.messages) traffic.push({ msg, policyId: policy.policyId })
  }
}
// All vehicles' messages in the order they send them (a stable sort keeps each device's order).
traffic.sort((a, b) => a.msg.sendAt - b.msg.sendAt)
traffic.length = Math.min(traffic.length, rate * seconds)

const client = await mqtt.connectAsync(url, { clientId: `bench-scoring-pub-${prefix}`, clean: true })
let inFlight = 0
let behindMs = 0
process.stdout.write('start\n')
const t0 = Date.now()
for (let k = 0; k < traffic.length;) {
  const due = t0 + (k * 1000) / rate
  const now = Date.now()
  if (due > now || inFlight >= 5000) {
    await new Promise((r) => setTimeout(r, Math.max(1, due - now)))
    continue
  }
  behindMs = Math.max(behindMs, now - due)
  const { msg, policyId } = traffic[k++]!
  if (msg.kind === 'status' && msg.payload.includes('"ignition_on":false')) process.stdout.write(`${policyId} ${msg.ts} ${Date.now()}\n`)
  inFlight++
  client.publish(msg.topic, msg.payload, { qos: 1 }, () => inFlight--)
}
while (inFlight > 0) await new Promise((r) => setTimeout(r, 5))
await client.endAsync()
process.stdout.write(`done ${traffic.length} ${behindMs}\n`)
