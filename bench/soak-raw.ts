/**
 * bench:soak's raw reference, a process of its own: mqtt.js subscribed to every device stream at
 * QoS 1 doing only JSON.parse, fed the same traffic as ubiq. Its memory and event-loop delay are
 * sampled as the pipeline's are (soak-sampler.ts), at the same moments.
 *
 * Protocol (process messages): {type:'start', url, username, password} → {type:'started'};
 * {type:'sample'} → {type:'sample', ...Sample, received, unparsed}.
 */
import mqtt from 'mqtt'
import { loopSampler } from './soak-sampler.ts'

process.on('disconnect', () => process.exit(0))
const sampler = loopSampler()
let received = 0
let unparsed = 0

process.on('message', async (m: { type: string; url?: string; username?: string; password?: string }) => {
  if (m.type === 'start') {
    const client = await mqtt.connectAsync(m.url!, { clientId: m.username, username: m.username, password: m.password, clean: true })
    client.on('message', (_topic, payload) => {
      received++
      try {
        JSON.parse(payload.toString())
      } catch {
        unparsed++
      }
    })
    await client.subscribeAsync('ubiq/v1/dev/#', { qos: 1 })
    process.send!({ type: 'started' })
  } else if (m.type === 'sample') process.send!({ type: 'sample', ...sampler.sample(), received, unparsed })
})
