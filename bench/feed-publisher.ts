/**
 * bench:feed's stand-in for scoring when the feed follows the broker: publishes the scores to
 * Mosquitto as scoring does (JSON, QoS 1, `ubiq/v1/scores/{policy}`), at the benchmark's rate, in
 * a process of its own. Scoring publishes every score whether or not a feed follows, so this work
 * is not the feed's; Mosquitto's forwarding to the dashboards process is, and shares the machine.
 *
 * Argument: the broker URL. Protocol: → {type:'ready'}; {type:'start'} → {type:'started'};
 * {type:'stop'} → {type:'stopped', sent}.
 */
import mqtt from 'mqtt'
import { topics } from '../ingest/index.ts'
import { emitter } from './feed-scores.ts'

const client = await mqtt.connectAsync(process.argv[2]!, { clientId: `bench-scores-${process.pid}`, clean: true })
let running: { stop(): number } | undefined
process.on('disconnect', () => process.exit(0))
process.on('message', (cmd: { type: 'start' | 'stop' }) => {
  if (cmd.type === 'start') {
    running = emitter((s) => client.publish(topics.scores(s.policyId), JSON.stringify(s), { qos: 1 }))
    process.send!({ type: 'started' })
  } else if (running) process.send!({ type: 'stopped', sent: running.stop() })
})
process.send!({ type: 'ready' })
