import type { MqttClient } from 'mqtt'
import { setTimeout as sleep } from 'node:timers/promises'

/** A device message ready to send; `ts` is its device time, ms. */
export interface SimMessage {
  topic: string
  payload: string
  ts: number
}

/** The simulated clock: `startTs` maps to `realStart`, and runs `speedup` times faster than real time. */
export interface Pace {
  startTs: number
  realStart: number
  /** Simulated seconds per real second; Infinity sends as fast as the broker acknowledges. */
  speedup: number
  signal: AbortSignal
}

/**
 * Publishes each message at QoS 1 when the simulated clock reaches its device time, never before
 * the real clock does (a device does not send from the future): a backlog upload, then live.
 * Returns when all are acknowledged or the run is aborted.
 */
export async function publishPaced(client: MqttClient, messages: Iterable<SimMessage>, pace: Pace, onAck: () => void): Promise<void> {
  for (const m of messages) {
    if (pace.signal.aborted) return
    const due = Math.max(m.ts, pace.realStart + (m.ts - pace.startTs) / pace.speedup)
    const wait = due - Date.now()
    if (wait > 0) await sleep(wait, undefined, { signal: pace.signal }).catch(() => {})
    if (pace.signal.aborted) return
    await client.publishAsync(m.topic, m.payload, { qos: 1 })
    onAck()
  }
}
