/**
 * Runs simulated devices against a broker: each device its own MQTT client (as itself, when the
 * broker has per-device credentials), or, for fleets larger than a process may hold sockets for,
 * devices sharing a bounded number of clients (device i on client i mod n). Messages go at QoS 1
 * in `sendAt` order across the whole fleet, paced by a simulated clock that runs `speedup` times
 * faster than real time and never sends from the future.
 */
import mqtt, { type MqttClient } from 'mqtt'
import { setTimeout as sleep } from 'node:timers/promises'
import type { DeviceMessage, SimDevice } from './device-streams.ts'

export interface SimulationOptions {
  mqttUrl: string
  /** Brokers to reconnect to, in turn with mqttUrl's, when a connection is lost: a cluster's other nodes. */
  otherUrls?: readonly string[]
  /** Each device's messages, in the order it sends them (`sendAt` never decreasing). */
  devices: readonly Pick<SimDevice, 'deviceId' | 'messages'>[]
  /** Simulated time that maps to the start of the run. */
  startTs: number
  /** Simulated seconds per real second. */
  speedup: number
  /** MQTT passwords by device id, for a broker with per-device credentials (username = device id). */
  passwords?: ReadonlyMap<string, string>
  /** MQTT clients, at most; devices beyond share them (anonymous brokers only). Default: one per device. */
  connections?: number
  /** QoS 1 messages awaiting their PUBACK across the fleet, at most (default 2,000). */
  maxInFlight?: number
  /** The MQTT version devices speak: 5 (default), or 3.1.1 (4), the one nats-server's MQTT listener takes. */
  protocolVersion?: 4 | 5
}

export interface SimulationRun {
  /** Devices connected so far. */
  readonly connected: number
  /** MQTT clients open. */
  readonly clients: number
  /** Messages published, acknowledged by the broker, and refused by it (e.g. another device's topic). */
  readonly sent: number
  readonly acknowledged: number
  readonly refused: number
  /** How far the publisher is behind the simulated schedule right now, ms (0: keeping up). */
  readonly behindMs: number
  /** The most it fell behind, ms. */
  readonly maxBehindMs: number
  /** The simulated time reached: the last published message's send time. */
  readonly simulatedTs: number
  /** Resolves when every device has sent everything (or the run was stopped) and disconnected. */
  done: Promise<void>
  stop(): Promise<void>
}

/** Connects every device, then publishes until all streams end or `stop()`. */
export async function runSimulation(opts: SimulationOptions, onConnected: (n: number) => void = () => {}): Promise<SimulationRun> {
  const abort = new AbortController()
  const maxInFlight = opts.maxInFlight ?? 2000
  const clientCount = Math.min(opts.connections ?? Infinity, opts.devices.length)
  const shared = clientCount < opts.devices.length
  if (shared && opts.passwords) throw new Error('devices with their own credentials cannot share connections')
  const stats = { connected: 0, sent: 0, acknowledged: 0, refused: 0, behindMs: 0, maxBehindMs: 0, simulatedTs: opts.startTs }
  const clients: MqttClient[] = []
  // mqtt.js connects to servers[0] and, at each reconnect, to the next.
  const servers = opts.otherUrls && [opts.mqttUrl, ...opts.otherUrls].map((u) => ({ host: new URL(u).hostname, port: Number(new URL(u).port) }))
  // Connect in waves: ten thousand simultaneous CONNECTs would only queue in the broker.
  for (let i = 0; i < clientCount; i += 200) {
    clients.push(...await Promise.all(opts.devices.slice(i, Math.min(i + 200, clientCount)).map((d, j) => mqtt.connectAsync(opts.mqttUrl, {
      clientId: shared ? `sim-shared-${i + j}` : `sim-${d.deviceId}`, clean: true, reconnectPeriod: 1000, protocolVersion: opts.protocolVersion ?? 5,
      ...(servers ? { servers } : {}),
      ...(opts.passwords ? { username: d.deviceId, password: opts.passwords.get(d.deviceId) } : {}),
    }))))
    // A device is connected once its client is: all of them when the last client is.
    stats.connected = clients.length < clientCount ? clients.length : opts.devices.length
    onConnected(stats.connected)
  }

  // The next message of every device, earliest first.
  const queue = new MinHeap<{ msg: DeviceMessage; device: number }>((a, b) => a.msg.sendAt - b.msg.sendAt)
  opts.devices.forEach((d, device) => {
    const first = d.messages.next()
    if (!first.done) queue.push({ msg: first.value, device })
  })
  const realStart = Date.now()
  let inFlight = 0
  let drained: (() => void) | undefined

  async function publishAll(): Promise<void> {
    let sinceYield = 0
    while (queue.size > 0 && !abort.signal.aborted) {
      const { msg, device } = queue.peek()!
      // Due on the simulated clock, and never before the real clock reaches the message's time.
      const due = Math.max(msg.sendAt, realStart + (msg.sendAt - opts.startTs) / opts.speedup)
      const now = Date.now()
      if (due > now) {
        stats.behindMs = 0
        await sleep(Math.min(due - now, 1000), undefined, { signal: abort.signal }).catch(() => {})
        continue
      }
      stats.behindMs = now - due
      stats.maxBehindMs = Math.max(stats.maxBehindMs, stats.behindMs)
      if (inFlight >= maxInFlight) {
        await new Promise<void>((resolve) => (drained = resolve))
        continue
      }
      queue.pop()
      inFlight++
      stats.sent++
      stats.simulatedTs = msg.sendAt
      clients[device % clientCount]!.publish(msg.topic, msg.payload, { qos: 1 }, (err) => {
        inFlight--
        if (err) stats.refused++
        else stats.acknowledged++
        if (drained && inFlight < maxInFlight / 2) {
          drained()
          drained = undefined
        }
      })
      const next = opts.devices[device]!.messages.next()
      if (!next.done) queue.push({ msg: next.value, device })
      // Let sockets, acknowledgements and progress run while catching up.
      if (++sinceYield === 500) {
        sinceYield = 0
        await new Promise((r) => setImmediate(r))
      }
    }
    while (inFlight > 0 && !abort.signal.aborted) await new Promise<void>((resolve) => (drained = resolve))
  }

  const done = publishAll().finally(() => Promise.all(clients.map((c) => c.endAsync()))).then(() => {})
  return {
    get connected() { return stats.connected },
    get clients() { return clients.length },
    get sent() { return stats.sent },
    get acknowledged() { return stats.acknowledged },
    get refused() { return stats.refused },
    get behindMs() { return stats.behindMs },
    get maxBehindMs() { return stats.maxBehindMs },
    get simulatedTs() { return stats.simulatedTs },
    done,
    async stop() {
      abort.abort()
      drained?.()
      await done.catch(() => {})
    },
  }
}

/** A binary min-heap. */
class MinHeap<T> {
  private items: T[] = []
  constructor(private readonly less: (a: T, b: T) => number) {}
  get size() {
    return this.items.length
  }
  peek(): T | undefined {
    return this.items[0]
  }
  push(item: T): void {
    const a = this.items
    a.push(item)
    for (let i = a.length - 1, p = (i - 1) >> 1; i > 0 && this.less(a[i]!, a[p]!) < 0; i = p, p = (i - 1) >> 1) [a[i], a[p]] = [a[p]!, a[i]!]
  }
  pop(): T | undefined {
    const a = this.items
    const top = a[0]
    const last = a.pop()
    if (a.length > 0 && last !== undefined) {
      a[0] = last
      for (let i = 0; ;) {
        const l = 2 * i + 1
        const r = l + 1
        let m = i
        if (l < a.length && this.less(a[l]!, a[m]!) < 0) m = l
        if (r < a.length && this.less(a[r]!, a[m]!) < 0) m = r
        if (m === i) break
        ;[a[i], a[m]] = [a[m]!, a[i]!]
        i = m
      }
    }
    return top
  }
}
