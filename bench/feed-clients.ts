/**
 * bench:feed's websocket clients, in a process of their own so that their work is not counted as
 * the server's: opens the feed URLs it is sent, and measures each score's delivery, from the
 * moment the benchmark handed it to the server (the score's `window.to`, a high-resolution wall
 * time) to the moment it was parsed here.
 *
 * Protocol (process messages): {type:'open', urls} → {type:'ready'}; {type:'start'} → {type:'started'},
 * recording; {type:'stop'} → {type:'report', latencies, cutOff}; {type:'close'} closes all.
 */
import WebSocket from 'ws'
import type { FeedMessage } from '../dashboards/index.ts'

type Command = { type: 'open'; urls: string[] } | { type: 'start' } | { type: 'stop' } | { type: 'close' }
const now = () => performance.timeOrigin + performance.now()
const reply = (msg: unknown) => process.send!(msg)
let sockets: WebSocket[] = []
let latencies: number[] = []
let recording = false
/** Sockets the server closed while the benchmark ran, by close code. */
let closes: Record<number, number> = {}

// Ends with the benchmark, however that ends.
process.on('disconnect', () => process.exit(0))
process.on('message', async (cmd: Command) => {
  if (cmd.type === 'open') {
    closes = {}
    sockets = await Promise.all(cmd.urls.map((url) => new Promise<WebSocket>((resolve, reject) => {
      const ws = new WebSocket(url)
      ws.on('message', (data) => {
        const msg = JSON.parse(String(data)) as FeedMessage
        if (recording && msg.type === 'score') latencies.push(now() - msg.score.window.to)
      })
      ws.once('open', () => resolve(ws))
      ws.once('error', reject)
      ws.on('close', (code) => (closes[code] = (closes[code] ?? 0) + 1))
    })))
    reply({ type: 'ready' })
  } else if (cmd.type === 'start') {
    latencies = []
    recording = true
    reply({ type: 'started' })
  } else if (cmd.type === 'stop') {
    recording = false
    reply({ type: 'report', latencies, closes })
  } else {
    await Promise.all(sockets.map((ws) => new Promise((resolve) => {
      if (ws.readyState === ws.CLOSED) return resolve(undefined)
      ws.once('close', resolve)
      ws.close()
    })))
    reply({ type: 'closed' })
  }
})
