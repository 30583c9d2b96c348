/**
 * bench:feed's raw reference, in a process of its own as ubiq's feed is: a bare `ws` server (no
 * auth, journal or framework) sending each policy's scores to its client, made at the same rate.
 *
 * Protocol (process messages): → {type:'listening', urls}; {type:'start'} → {type:'started'},
 * sending; {type:'stop'} → {type:'stopped', sent, cpuMicros}.
 */
import { WebSocketServer, type WebSocket } from 'ws'
import { emitter, policies } from './feed-scores.ts'

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
await new Promise((r) => wss.once('listening', r))
const byPolicy = new Map<string, WebSocket>()
wss.on('connection', (ws, req) => byPolicy.set(new URL(req.url!, 'http://x').searchParams.get('policy')!, ws))
let seq = 0
let running: { stop(): number; cpu0: NodeJS.CpuUsage } | undefined
// Ends with the benchmark, however that ends.
process.on('disconnect', () => process.exit(0))
process.on('message', (cmd: { type: 'start' | 'stop' }) => {
  if (cmd.type === 'start') {
    running = { cpu0: process.cpuUsage(), ...emitter((score) => byPolicy.get(score.policyId)?.send(JSON.stringify({ type: 'score', score, seq: ++seq }))) }
    process.send!({ type: 'started' })
  } else if (running) {
    const sent = running.stop()
    // The last ones in flight.
    setTimeout(() => {
      const cpu = process.cpuUsage(running!.cpu0)
      process.send!({ type: 'stopped', sent, cpuMicros: cpu.user + cpu.system })
    }, 500)
  }
})
const { port } = wss.address() as { port: number }
process.send!({ type: 'listening', urls: policies.map((p) => `ws://127.0.0.1:${port}/?policy=${p}`) })
