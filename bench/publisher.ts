/**
 * A benchmark publisher process: `node --import tsx bench/publisher.ts URL FROM TO PER_DEVICE`
 * publishes PER_DEVICE messages for each device FROM..TO-1 at QoS 1, as fast as the broker
 * acknowledges (a window of 500 in flight), then prints the count and exits.
 */
import mqtt from 'mqtt'
import { message } from './traffic.ts'

const [url, from, to, perDevice] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])]
const client = await mqtt.connectAsync(url, { clientId: `bench-pub-${from}`, clean: true })
const start = Date.now() - perDevice * 1000
let inFlight = 0
let sent = 0
const window = () => new Promise<void>((resolve) => {
  const check = () => (inFlight < 500 ? resolve() : setImmediate(check))
  check()
})
for (let seq = 0; seq < perDevice; seq++) {
  for (let i = from; i < to; i++) {
    await window()
    const [topic, payload] = message(i, seq, start + seq * 1000)
    inFlight++
    client.publish(topic, payload, { qos: 1 }, () => {
      inFlight--
      sent++
    })
  }
}
while (inFlight > 0) await new Promise((r) => setTimeout(r, 5))
await client.endAsync()
process.stdout.write(`${sent}\n`)
