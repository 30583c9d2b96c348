/**
 * bench:soak's load, in a process of its own so that its work is not counted as the pipeline's.
 *
 * `ACTIVE` slots each hold one policy at a time: its devices connect (each as itself, with its
 * own credentials), publish the policy's simulated day `speedup` times faster than real time
 * (edge-sim's streams with device faults, and now and then a #20 attack in place of a message),
 * and disconnect; the slot then takes the next policy of the pool. So the active set stays the
 * same size while policies and devices come and go: over a run many more pass through than are
 * active at once. The slots' first policies start part-way into their days, evenly spread, so
 * the set is full from the start and policies leave evenly. Half the policyholders follow their feed (a websocket) while their policy is
 * active, some reconnecting once with ?since=; a REST client asks for scores, and sends the #20
 * queries with times InfluxDB cannot take.
 *
 * Protocol (process messages): {type:'start', ...LoadConfig} → {type:'started'};
 * {type:'stats'} → {type:'stats', ...LoadStats}; {type:'stop'} → {type:'stopped', ...LoadStats}.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import mqtt, { type MqttClient } from 'mqtt'
import WebSocket from 'ws'
import { tokenAuthority, type FeedMessage, type FeedNotice } from '../dashboards/index.ts'
import type { DeviceMessage, FaultName } from '../edge-sim/index.ts'
import { TIME_REUSE_WINDOW } from '../ingest/index.ts'
import { DAY_MS, dayOf } from '../scoring/index.ts'
import { ATTACKS, attackPayload, sessionDevices, soakCity, soakFaults, soakPool, type Attack, type PoolPolicy } from './soak-fleet.ts'

export interface LoadConfig {
  brokerUrl: string
  /** MQTT password of each device (its username is its device id). */
  passwords: [string, string][]
  dashboardsUrl: string
  tokenSecret: string
  pool: number
  active: number
  /** Real seconds a policy's simulated day takes. */
  sessionS: number
  /** Chance that a message is replaced by a #20 attack. */
  attackRate: number
  /** Share of policyholders that follow their feed while their policy is active. */
  feedShare: number
}

export interface LoadStats {
  activePolicies: number
  activeDevices: number
  policiesSeen: number
  devicesSeen: number
  sessionsDone: number
  sent: number
  acknowledged: number
  /** Refused by the broker: another device's topic (the ACL). */
  refused: number
  /** How far the most delayed active device is behind its schedule now, and at worst, ms. */
  behindMs: number
  maxBehindMs: number
  attacks: Partial<Record<Attack, number>>
  /** duplicate_time attacks reusing a time from further back than ingest's window. */
  reusedBeyondWindow: number
  /** Messages sent with each device fault (a message may carry several), and devices whose clock was off. */
  faults: Partial<Record<FaultName, number>> & { clockSkewedDevices: number }
  feed: { open: number; connects: number; reconnects: number; messages: number; gaps: number; closes: Record<string, number>; errors: number }
  rest: Record<string, number>
}

interface LiveDevice {
  deviceId: string
  client?: MqttClient
  messages: Iterator<DeviceMessage>
  next?: DeviceMessage
  inFlight: number
  /** Whether a message with a clock fault was sent: the device's clock is off. */
  skewed: boolean
  /** Each stream's last payload sent, and the device's messages sent before it: what a duplicate_time attack sends again. */
  last: Map<string, { payload: string; at: number }>
  sent: number
  lastSeq: number
}

interface Session {
  policyId: string
  simStart: number
  /** The simulated time sent at `realStart`: a slot's first policy starts part-way into its day. */
  simZero: number
  realStart?: number
  devices: LiveDevice[]
  feed?: WebSocket
  feedSeq?: number
  reconnectAt?: number
}

const cfgPromise = new Promise<LoadConfig>((resolve) => process.once('message', (m: { type: string } & LoadConfig) => resolve(m)))
process.on('disconnect', () => process.exit(0))
const cfg = await cfgPromise
const city = soakCity()
const pool: PoolPolicy[] = soakPool(city, cfg.pool)
const passwords = new Map(cfg.passwords)
const faults = soakFaults([...passwords.keys()])
const auth = tokenAuthority(cfg.tokenSecret)
const analyst = auth.issue({ role: 'analyst' }, 7 * DAY_MS)
const SPEEDUP = DAY_MS / (cfg.sessionS * 1000)
const MAX_IN_FLIGHT = 200 // per device: beyond, it waits (and falls behind its schedule)
/**
 * A policy's n-th day in the pool starts at noon, this many days ago, plus n: in the past, so never
 * ahead of the server, and within the shortest retention (raw IMU, 7 days: older readings are
 * scored but not stored, which would leave most of the load's writes out). Six days of room: a pool
 * of 5,000 at the default churn is used once in about 3.5 hours.
 */
const FIRST_DAY = (dayOf(Date.now()) - 6) * DAY_MS + 12 * 3600_000

const stats: LoadStats = {
  activePolicies: 0, activeDevices: 0, policiesSeen: 0, devicesSeen: 0, sessionsDone: 0, sent: 0, acknowledged: 0, refused: 0, behindMs: 0, maxBehindMs: 0,
  attacks: {}, reusedBeyondWindow: 0, faults: { clockSkewedDevices: 0 },
  feed: { open: 0, connects: 0, reconnects: 0, messages: 0, gaps: 0, closes: {}, errors: 0 },
  rest: {},
}
const policiesSeen = new Set<string>()
const devicesSeen = new Set<string>()
/** Times each pool policy was used, and each device's last seq: a policy back again continues. */
const uses = new Map<string, number>()
const lastSeqs = new Map<string, number>()
let nextPolicy = 0
let attackTurn = 0
let stopping = false
const sessions = new Set<Session>()

/** Starts the next policy of the pool, `skip` of the way into its day. */
function startSession(skip = 0): Session {
  const p = pool[nextPolicy++ % pool.length]!
  const n = uses.get(p.policy.policyId) ?? 0
  uses.set(p.policy.policyId, n + 1)
  const simStart = FIRST_DAY + n * DAY_MS
  const s: Session = {
    policyId: p.policy.policyId,
    simStart,
    simZero: simStart + skip * DAY_MS,
    devices: sessionDevices(city, p, simStart, faults, (id) => (lastSeqs.get(id) ?? -1) + 1).map((d) => ({
      deviceId: d.deviceId, messages: d.messages, inFlight: 0, skewed: false, last: new Map(), sent: 0, lastSeq: -1,
    })),
  }
  sessions.add(s)
  policiesSeen.add(s.policyId)
  void Promise.all(s.devices.map(async (d) => {
    d.client = await mqtt.connectAsync(cfg.brokerUrl, {
      clientId: d.deviceId, username: d.deviceId, password: passwords.get(d.deviceId), clean: true, reconnectPeriod: 1000, protocolVersion: 5,
    })
    do d.next = d.messages.next().value as DeviceMessage | undefined
    while (d.next && d.next.sendAt < s.simZero)
  })).then(() => {
    s.realStart = Date.now()
    if (Math.random() < cfg.feedShare) {
      openFeed(s)
      if (Math.random() < 0.3) s.reconnectAt = s.realStart + Math.random() * cfg.sessionS * 1000
    }
  })
  return s
}

function openFeed(s: Session) {
  const token = auth.issue({ role: 'policyholder', policyId: s.policyId }, DAY_MS)
  const ws = new WebSocket(`${cfg.dashboardsUrl.replace('http', 'ws')}/feed?token=${token}${s.feedSeq !== undefined ? `&since=${s.feedSeq}` : ''}`)
  s.feed = ws
  stats.feed.connects++
  let opened = false
  ws.on('open', () => {
    opened = true
    stats.feed.open++
  })
  ws.on('message', (data) => {
    const msg = JSON.parse(String(data)) as FeedMessage | FeedNotice
    if (msg.type === 'gap') stats.feed.gaps++
    else if ('seq' in msg) {
      stats.feed.messages++
      s.feedSeq = msg.seq
    }
  })
  ws.on('error', () => stats.feed.errors++)
  ws.on('close', (code) => {
    if (opened) stats.feed.open--
    // Closes the client did not ask for: the server's (cut off 1013, token 4401) or a broken connection (1006).
    if (s.feed === ws) stats.feed.closes[code] = (stats.feed.closes[code] ?? 0) + 1
  })
}

function closeFeed(s: Session) {
  const ws = s.feed
  if (!ws) return
  s.feed = undefined
  if (ws.readyState === ws.CONNECTING) ws.removeAllListeners('error').on('error', () => {}) // closed before it opened: no fault of the server's
  ws.close(1000)
}

async function endSession(s: Session) {
  sessions.delete(s)
  closeFeed(s)
  for (const d of s.devices) if (d.lastSeq >= 0) lastSeqs.set(d.deviceId, d.lastSeq)
  stats.sessionsDone++
  await Promise.all(s.devices.map((d) => d.client?.endAsync()))
}

/** Sends what is due of every active device; a device whose stream has ended waits for its acknowledgements. */
function pump(now: number) {
  let behind = 0
  for (const s of sessions) {
    if (s.realStart === undefined) continue
    if (s.reconnectAt !== undefined && now >= s.reconnectAt) {
      s.reconnectAt = undefined
      closeFeed(s)
      stats.feed.reconnects++
      openFeed(s)
    }
    let done = true
    for (const d of s.devices) {
      while (d.next && d.inFlight < MAX_IN_FLIGHT) {
        const due = s.realStart + (d.next.sendAt - s.simZero) / SPEEDUP
        if (due > now) break
        behind = Math.max(behind, now - due)
        publish(d, d.next, now)
        d.next = d.messages.next().value as DeviceMessage | undefined
      }
      if (d.next || d.inFlight > 0) done = false
    }
    if (done) {
      void endSession(s)
      if (!stopping) startSession()
    }
  }
  stats.behindMs = behind
  stats.maxBehindMs = Math.max(stats.maxBehindMs, behind)
}

function publish(d: LiveDevice, m: DeviceMessage, now: number) {
  let payload = m.payload
  if (Math.random() < cfg.attackRate) {
    // The attacks in turn; one that does not fit this message waits for one it fits.
    const attack = ATTACKS[attackTurn % ATTACKS.length]!
    const previous = d.last.get(m.topic)
    const forged = attackPayload(attack, m, previous?.payload, now)
    if (forged !== undefined) {
      payload = forged
      attackTurn++
      stats.attacks[attack] = (stats.attacks[attack] ?? 0) + 1
      // Ingest looks for a reused time among the device's last TIME_REUSE_WINDOW readings (the contract's promise).
      if (attack === 'duplicate_time' && d.sent - previous!.at > TIME_REUSE_WINDOW) stats.reusedBeyondWindow++
    }
  }
  for (const fault of m.faults ?? []) {
    if (fault !== 'clock') stats.faults[fault] = (stats.faults[fault] ?? 0) + 1
    else if (!d.skewed) (d.skewed = true), stats.faults.clockSkewedDevices++
  }
  if (payload === m.payload && !m.faults) d.last.set(m.topic, { payload, at: d.sent })
  d.sent++
  d.lastSeq = Math.max(d.lastSeq, m.seq)
  devicesSeen.add(d.deviceId)
  d.inFlight++
  stats.sent++
  d.client!.publish(m.topic, payload, { qos: 1 }, (err) => {
    d.inFlight--
    if (err) stats.refused++
    else stats.acknowledged++
  })
}

/** A policyholder's scores now and then, and the #20 queries: times InfluxDB cannot take, answered 400. */
async function restLoop() {
  const attacks = [
    (p: string) => [`/api/v1/policies/${p}/scores?from=2016-12-31T23:59:60Z`, 'leap_second'],
    (p: string) => [`/api/v1/policies/${p}/scores?to=2262-04-12T00:00:00Z`, 'year_2262'],
    () => ['/api/v1/portfolio/events?from=1677-09-21T00:00:00Z', 'year_1677'],
  ] as const
  for (let i = 0; !stopping; i++) {
    await sleep(2000)
    const active = [...sessions]
    const s = active[Math.floor(Math.random() * active.length)]
    if (!s) continue
    const [path, name] = i % 5 === 4 ? attacks[(i / 5) % attacks.length | 0]!(s.policyId) : [`/api/v1/policies/${s.policyId}/scores?limit=10`, 'scores']
    const token = name === 'year_1677' ? analyst : auth.issue({ role: 'policyholder', policyId: s.policyId }, 60_000)
    const res = await fetch(`${cfg.dashboardsUrl}${path}`, { headers: { authorization: `Bearer ${token}` } }).catch(() => undefined)
    await res?.body?.cancel()
    const key = `${name} ${res?.status ?? 'failed'}`
    stats.rest[key] = (stats.rest[key] ?? 0) + 1
  }
}

function snapshot(): LoadStats {
  stats.activePolicies = sessions.size
  stats.activeDevices = [...sessions].reduce((n, s) => n + s.devices.length, 0)
  stats.policiesSeen = policiesSeen.size
  stats.devicesSeen = devicesSeen.size
  return structuredClone(stats)
}

process.on('message', async (m: { type: string }) => {
  if (m.type === 'stats') process.send!({ type: 'stats', ...snapshot() })
  else if (m.type === 'stop') {
    stopping = true
    await Promise.all([...sessions].map((s) => endSession(s)))
    process.send!({ type: 'stopped', ...snapshot() })
  }
})

// Every slot starts at once, the i-th policy i/active of the way into its day: from the start the
// active set is full and policies leave evenly, one every sessionS / active seconds.
for (let i = 0; i < cfg.active; i++) startSession(i / cfg.active)
void restLoop()
process.send!({ type: 'started' })
while (!stopping) {
  pump(Date.now())
  await sleep(10)
}
