/**
 * The ingest service: MQTT subscribe → decode/validate → dedupe → InfluxDB write → readings.
 */
import mqtt from 'mqtt'
import type { Logger } from 'pino'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { Subject as RxSubject, defer, filter, map, share, type Observable, type OperatorFunction } from 'rxjs'
import { TIME_REUSE_WINDOW, topics, type Reading } from './contract.ts'
import { decodeAck, decodeConsent, decodeMessage, decodePrivacy, isRejection, type DecodeConfig, type Rejection } from './decode.ts'
import { CONSENT_STREAM, type ConsentStore } from './consent.ts'
import { PRIVACY_STREAM, type PrivacyStore } from './privacy.ts'
import { ACK_STREAM, type AckStatus, type CommandStore } from './commands.ts'
import { rejectJumps } from './plausibility.ts'
import { idleMap } from './idle-map.ts'
import { clockTracker, type ClockTracker, type DeviceClock } from './clock.ts'
import { sensorsByKind } from './sensors/index.ts'
import { escapeKey, linePrefix, toLine, type Influx, type Series } from './influx.ts'
import type { Journal } from './journal.ts'
import { within } from './within.ts'
import { codes } from './errors.ts'

export interface IngestDeps {
  /** The broker; ingest keeps its own connection there, with a persistent session. */
  mqttUrl: string
  /** The persistent session's client id: one ingest per id (several need shared subscriptions). */
  clientId?: string
  influx: Influx
  /** Where accepted lines wait for InfluxDB's confirmation; `influx` must confirm into it. */
  journal: Journal
  /** Unconfirmed lines at which ingest stops acknowledging messages, and resumes. */
  backpressure: { stopAt: number; resumeAt: number }
  /** With `consents` (`privacy`), ingest also takes the devices' consent changes (pauses) on `ubiq/v1/dev/{deviceId}/consent` (`/privacy`). */
  decode: DecodeConfig
  logger: Logger
  metrics: Registry
  /** GPS fixes implying more than this since the last good one are rejected (default 1000 km/h). */
  maxGpsSpeedKmh?: number
  /** How many recent seqs per device are remembered to drop redeliveries. */
  dedupeWindow?: number
  /**
   * How long a policy's dedupe windows outlive its last reading, ms of receive time: longer than
   * anything downstream keeps the policy's readings counted in memory (`dropDuplicates`).
   */
  dedupeIdleMs: number
}

export interface Ingest {
  /** Every stored reading, once, in arrival order. */
  readings$: Observable<Reading>
  /** A device's clock skew estimate (clock.ts), undefined for a device not heard from. */
  clock(deviceId: string): DeviceClock | undefined
  /**
   * Forgets erased devices' clocks (#21 item 5). Their dedupe and time-reuse windows (seqs and
   * times, no readings) go once they have been silent for their idle times, as a silent device's do.
   */
  forget(deviceIds: readonly string[]): void
  /** True while connected to the broker. */
  readonly connected: boolean
  /** Connects and subscribes; call once everything downstream is listening. */
  connect(): Promise<void>
  /** Hand it what InfluxDB confirmed (InfluxHooks.onWritten): the journal forgets those lines. */
  confirm(lines: readonly string[]): void
  /** Disconnects (ingest owns its MQTT connection) and completes readings$. */
  stop(): Promise<void>
}

/**
 * Calls `done` at once until a turn of the event loop has lasted `turnMs`, then once the loop has
 * gone round (setImmediate: after the I/O and timers already waiting).
 * A backlog (a persistent session's queue after an outage) arrives megabytes at a time, and
 * mqtt.js handles the packets of a read one after another without going back to the event loop:
 * in bench:feed's queue drain a turn took 0.6-0.9 s, with REST, the feed, health checks and
 * InfluxDB's answers waiting. Deferring a message's `done` holds the next one back until then.
 */
export function turnLimiter(turnMs: number, now: () => number = () => performance.now()): (done: () => void) => void {
  let turnStart: number | undefined
  return (done) => {
    const t = now()
    if (turnStart === undefined) {
      turnStart = t
      setImmediate(() => (turnStart = undefined))
    }
    if (t - turnStart < turnMs) done()
    else setImmediate(done)
  }
}

/** How long stop() waits for the broker to close ingest's connection cleanly, ms (README "Durability"). */
const STOP_WAIT_MS = 5000

/** Sets ingest up; nothing flows before `connect()`. readings$ is hot and shared. */
export function startIngest(deps: IngestDeps): Ingest {
  const log = deps.logger.child({ stage: 'ingest' })
  // Not connected yet: a persistent session's queued messages arrive right after CONNACK, and
  // must find the handler below in place, or mqtt.js would acknowledge them unseen.
  const client = mqtt.connect(deps.mqttUrl, { clientId: deps.clientId ?? 'ubiq-ingest', clean: false, manualConnect: true, reconnectPeriod: 1000 })
  const clocks = clockTracker()
  const counters = { ...messageCounters(deps.metrics, clocks), ...journalCounters(deps.metrics, deps.journal) }
  // A line InfluxDB refuses for good would otherwise stay unconfirmed for ever, and with enough of
  // them backpressure would stop ingest for good (issue #20): it is quarantined instead. Every
  // stage's refused lines come here, so that all of them reach the dead-letter folder.
  deps.influx.onRefused((refused) => {
    deps.journal.quarantine(refused)
    for (const r of refused) counters.quarantined.inc({ reason: r.kind })
    // The kinds, not InfluxDB's message: it quotes the line, position and health values included.
    log.error({ lines: refused.length, kinds: [...new Set(refused.map((r) => r.kind))] }, 'InfluxDB refused lines: quarantined in the dead-letter folder')
  })
  const messages = new RxSubject<DeviceMessage>()
  const next = turnLimiter(10)
  /** Messages whose PUBACK waits for InfluxDB to catch up (backpressure). */
  let held = 0
  // Every message goes through the whole synchronous chain below (decode, dedupe, journal) before
  // its PUBACK: once acknowledged, it is in the journal or was rejected (journal.ts).
  client.handleMessage = (packet, done) => {
    messages.next({ topic: packet.topic, payload: Buffer.from(packet.payload), receivedAt: Date.now() })
    if (deps.journal.pending <= deps.backpressure.stopAt) return next(done)
    // InfluxDB is behind: stop acknowledging, so the broker holds the rest and memory stays bounded.
    counters.backpressure.set(1)
    counters.pauses.inc()
    held++
    deps.journal.whenPendingAtMost(deps.backpressure.resumeAt, () => {
      held--
      counters.backpressure.set(0)
      done()
    })
  }
  const readings$ = messages.pipe(
    takeMessages({
      ...deps,
      log,
      counters,
      clocks,
      pending: (lines) => deps.journal.append(lines),
      reject: (r) => client.publish(topics.rejected(r.deviceId), JSON.stringify(r), { qos: 1 }),
    }),
    share(),
  )
  // Storage must not depend on someone downstream listening.
  const storing = readings$.subscribe()
  // What an earlier run acknowledged but InfluxDB never confirmed is written again.
  if (deps.journal.recovered.length > 0) {
    log.warn({ lines: deps.journal.recovered.length }, 'writing journaled lines an earlier run left unconfirmed')
    deps.influx.write([...deps.journal.recovered])
  }

  return {
    readings$,
    clock: (deviceId) => clocks.get(deviceId),
    forget: (deviceIds) => deviceIds.forEach((d) => clocks.forget(d)),
    get connected() {
      return client.connected
    },
    async connect() {
      await new Promise<void>((resolve, reject) => {
        client.once('connect', () => resolve())
        client.once('error', reject)
        client.connect()
      })
      const filters = [topics.allDevices, ...deps.decode.adapters.map((a) => a.filter)]
      await client.subscribeAsync(filters, { qos: 1 })
      log.info({ filters }, 'ingest subscribed')
    },
    confirm(lines) {
      for (const ms of deps.journal.confirm(lines)) counters.storeLatency.observe(ms / 1000)
    },
    async stop() {
      // End the connection first, so nothing is acknowledged after this; the subscription stays in
      // the broker's persistent session and what arrives meanwhile waits there for the restart.
      // A clean end waits for the broker to acknowledge ubiq's own publishes and to close the
      // socket. While a message's PUBACK is held (backpressure), mqtt.js reads nothing more from
      // the socket, so neither ever comes and a SIGTERM hung (issue #20): then, and after
      // STOP_WAIT_MS in any state, the connection is dropped instead. Nothing is lost: the broker
      // redelivers what was not acknowledged, and the journal holds what was.
      const ended = client.endAsync(held > 0).catch((err: Error) => log.warn({ err }, 'closing the MQTT session failed'))
      await within(STOP_WAIT_MS, ended)
      client.stream?.destroy()
      messages.complete()
      storing.unsubscribe()
    },
  }
}

/** One device message as its engine delivered it (MQTT here, a JetStream partition in worker.ts). */
export interface DeviceMessage {
  topic: string
  payload: Buffer
  /** When the engine received it, ms (ubiq's clock for MQTT, the stream's for JetStream). */
  receivedAt: number
}

/** What `takeMessages` needs: the decoding, the stage's logger and counters, and where lines and rejections go. */
export interface TakeDeps extends Pick<IngestDeps, 'decode' | 'maxGpsSpeedKmh' | 'dedupeWindow' | 'dedupeIdleMs'> {
  log: Logger
  counters: MessageCounters
  clocks: ClockTracker
  /** An accepted reading's lines, in one call, as they go to InfluxDB: where they wait for its confirmation. */
  pending(lines: string[]): void
  influx: Pick<Influx, 'oldestKept' | 'write'>
  /** A rejection, for its device (`ubiq/v1/rejected/{deviceId}`). */
  reject(r: Rejection): void
}

/**
 * The steps every device message takes, whichever engine brought it: decode and validate (the
 * contract), a device's consent, pause and command acknowledgement taken in order with its
 * readings, implausible jumps and reused times rejected, redeliveries dropped by (device, seq),
 * and each reading's lines stored. Synchronous from a message to its lines' `pending`: a caller that
 * acknowledges after the push knows what the message became.
 */
export function takeMessages(deps: TakeDeps): OperatorFunction<DeviceMessage, Reading> {
  const { log, counters, clocks } = deps
  /**
   * A device's consent change, taken in the same synchronous step as the messages around it: what
   * the device sent after it is decoded under it. Its acknowledgement is the policy's consent on
   * `ubiq/v1/consent/{deviceId}` (published by whoever the store tells); a change that cannot be
   * recorded gets none, and the device sends it again.
   */
  const takeConsent = (consents: ConsentStore, deviceId: string, m: DeviceMessage): Rejection | null => {
    const c = decodeConsent(deps.decode, deviceId, m.payload, m.receivedAt)
    if ('reason' in c) return c
    try {
      consents.change(c.policyId, c.request, { role: 'device', deviceId }, { seq: c.seq, ts: c.ts })
    } catch (err) {
      if (err instanceof codes.UBIQ_CONSENT_INVALID) return { deviceId, kind: CONSENT_STREAM, reason: 'invalid_payload', detail: err.message, seq: c.seq, receivedAt: m.receivedAt }
      log.error({ err, deviceId }, 'a device\'s consent change could not be recorded: not taken')
    }
    return null
  }
  /** A device's pause or early end (privacy.ts), taken as a consent change is: in order with the device's readings. */
  const takePrivacy = (privacy: PrivacyStore, deviceId: string, m: DeviceMessage): Rejection | null => {
    const c = decodePrivacy(deps.decode, deviceId, m.payload, m.receivedAt)
    if ('reason' in c) return c
    const { end, scope, ...window } = c.request
    const by = { role: 'device' as const, deviceId }
    try {
      if (end !== undefined && (scope !== undefined || Object.keys(window).length > 0)) throw new codes.UBIQ_PRIVACY_INVALID('`end` comes alone: a message ends a pause or starts one, not both')
      if (end === undefined && scope === undefined) throw new codes.UBIQ_PRIVACY_INVALID("/scope: a pause needs its scope (location or all); to end one, send `end` with the pause's id")
      if (end !== undefined) privacy.end(c.policyId, end, by, c)
      else privacy.pause(c.policyId, { scope: scope!, ...window }, by, c)
    } catch (err) {
      if (err instanceof codes.UBIQ_PRIVACY_INVALID) return { deviceId, kind: PRIVACY_STREAM, reason: 'invalid_payload', detail: err.message, seq: c.seq, receivedAt: m.receivedAt }
      log.error({ err, deviceId }, 'a device\'s pause could not be recorded: not taken')
    }
    return null
  }
  /** A device's acknowledgement of a command (commands.ts), recorded in the audit chain; one of a command it was not sent is rejected. */
  const takeAck = (commands: CommandStore, deviceId: string, m: DeviceMessage): Rejection | null => {
    const c = decodeAck(deps.decode, deviceId, m.payload, m.receivedAt)
    if ('reason' in c) return c
    try {
      commands.ack(deviceId, { ...c.request, status: c.request.status as AckStatus }, c) // the store checks the status
    } catch (err) {
      if (err instanceof codes.UBIQ_ACK_INVALID) return { deviceId, kind: ACK_STREAM, reason: 'invalid_payload', detail: err.message, seq: c.seq, receivedAt: m.receivedAt }
      log.error({ err, deviceId }, 'a device\'s acknowledgement could not be recorded: not taken')
    }
    return null
  }
  const control = [CONSENT_STREAM, PRIVACY_STREAM, ACK_STREAM].map((s) => `/${s}`)
  return (messages) => messages.pipe(
    map((m) => {
      counters.received.inc()
      // Settings messages and acknowledgements, not readings: split the topic only for those.
      const route = control.some((s) => m.topic.endsWith(s)) ? topics.parseDevice(m.topic) : undefined
      if (route?.kind === CONSENT_STREAM && deps.decode.consents) return takeConsent(deps.decode.consents, route.deviceId, m)
      if (route?.kind === PRIVACY_STREAM && deps.decode.privacy) return takePrivacy(deps.decode.privacy, route.deviceId, m)
      if (route?.kind === ACK_STREAM && deps.decode.commands) return takeAck(deps.decode.commands, route.deviceId, m)
      const r = decodeMessage(deps.decode, m.topic, m.payload, m.receivedAt)
      if (r && !isRejection(r)) {
        counters.lag.observe(Math.max(0, m.receivedAt - r.ts) / 1000)
        clocks.observe(r.deviceId, r.ts, m.receivedAt)
      }
      return r
    }),
    filter((r): r is Reading | Rejection => r !== null), // null: it configured an adapter, nothing to store
    rejectJumps(deps.maxGpsSpeedKmh ?? 1000),
    rejectTimeReuse(TIME_REUSE_WINDOW),
    filter((r): r is Reading => {
      if (!isRejection(r)) return true
      counters.rejected.inc({ reason: r.reason })
      log.debug({ deviceId: r.deviceId, kind: r.kind, reason: r.reason }, 'message rejected')
      deps.reject(r)
      return false
    }),
    dropDuplicates(deps.dedupeWindow ?? 1024, deps.dedupeIdleMs, () => counters.duplicates.inc()),
    storeReadings((lines) => {
      deps.pending(lines)
      deps.influx.write(lines)
      counters.stored.inc()
    }, {
      oldestKept: (kind) => deps.influx.oldestKept(kind),
      onExpired: (r) => counters.expired.inc({ kind: r.kind }),
    }),
  )
}

/**
 * Drops a reading whose (deviceId, seq) was seen among the device's last `window` seqs: QoS 1
 * redeliveries and device resends after a reconnect are stored and scored once. Per device, a
 * bitmap of the window below the highest seq: ~window/8 bytes.
 *
 * A seq `window` or more away from the highest, ahead or behind, is a jump: a counter that
 * restarted (a device reset) or one stray seq. The window moves there only when the next seq
 * outside it agrees (within `window` of the jump), as `rejectJumps` does for GPS fixes: before
 * #20 one seq of 2^53−1 moved the window for good, and dedupe was off for the device's real seqs.
 *
 * Memory follows the active policies (#20 item 5): a policy's windows go once none of its devices
 * has sent anything for `idleMs` of receive time. A redelivery after that passes. Stored again, it
 * lands on itself (InfluxDB keeps one point per series and time). Scoring counts it once if each of
 * its states that counted the first copy has left memory meanwhile: a state that comes back is
 * rebuilt from InfluxDB, where the first copy is, up to the reading that brings it back, which then
 * counts as new (health and home days replay the stored readings before it; driving days the
 * trips before the trip it makes). So `idleMs` must be longer than scoring keeps a policy after its
 * last reading (the pipeline passes scoring's idle times plus an hour), and the windows are kept
 * per policy, not per device: a policy's state stays in memory while any of its devices sends, so
 * a device silent for hours beside an active one is still remembered. A redelivery later than
 * that is what one after a restart always was: a trip made of part of a stored trip's readings
 * (60 s and 200 m of them at least) counts twice in the policy's days.
 */
export function dropDuplicates(window: number, idleMs: number, onDuplicate: () => void = () => {}): OperatorFunction<Reading, Reading> {
  return (source) => defer(() => {
    // A policy's devices (one to a few) in a list: a Map each costs more than a device's window.
    const policies = idleMap<{ deviceId: string; max: number; bits: Uint8Array; jump?: number }[]>(idleMs)
    const bit = (seq: number) => [Math.floor((seq % window) / 8), 1 << (seq % 8)] as const
    /** Moves the device's window to `max`, holding `seqs` only. */
    const windowAt = (dev: { max: number; bits: Uint8Array; jump?: number }, max: number, ...seqs: number[]) => {
      dev.max = max
      dev.bits.fill(0)
      dev.jump = undefined
      for (const seq of seqs) {
        const [i, mask] = bit(seq)
        dev.bits[i]! |= mask
      }
    }
    return source.pipe(filter((r) => {
      const devices = policies.touch(r.policyId, r.receivedAt)
      const dev = devices?.find((d) => d.deviceId === r.deviceId)
      if (!dev) {
        const fresh = { deviceId: r.deviceId, max: r.seq, bits: new Uint8Array(Math.ceil(window / 8)), jump: undefined }
        windowAt(fresh, r.seq, r.seq)
        if (devices) devices.push(fresh)
        else policies.set(r.policyId, [fresh], r.receivedAt)
        return true
      }
      if (Math.abs(r.seq - dev.max) >= window) {
        if (dev.jump === r.seq) {
          onDuplicate() // the jump's own redelivery
          return false
        }
        if (dev.jump !== undefined && Math.abs(r.seq - dev.jump) < window) {
          windowAt(dev, Math.max(r.seq, dev.jump), r.seq, dev.jump)
          return true
        }
        dev.jump = r.seq
        return true // cannot tell yet: InfluxDB keeps one point per device time
      }
      if (r.seq > dev.max) {
        // Forget the seqs that leave the window as the highest seq moves up.
        for (let s = Math.max(dev.max + 1, r.seq - window + 1); s <= r.seq; s++) {
          const [i, mask] = bit(s)
          dev.bits[i]! &= ~mask
        }
        dev.max = r.seq
      }
      const [i, mask] = bit(r.seq)
      if (dev.bits[i]! & mask) {
        onDuplicate()
        return false
      }
      dev.bits[i]! |= mask
      return true
    }))
  })
}

/**
 * Rejects (`duplicate_time`) a reading whose stream and device time the device sent under another
 * seq among its last `slots` readings: InfluxDB keeps one point per series and time, so it would
 * silently replace a stored, acknowledged reading (#20). A batch's series includes its rate (a
 * crash recorder's window is stored beside the regular batches of the same seconds), and its
 * device times are all its samples': a batch that shares one with an earlier batch at the same
 * rate would replace that batch's samples (the fuzz harness sent two 200 Hz batches 10 ms apart,
 * and five of the first one's seven samples were gone). The same seq again is a redelivery, left to
 * `dropDuplicates`. Per device, a ring of `slots` (stream, first and last time, seq): 32·slots
 * bytes and the streams' strings, about 3 KiB a device in bench:soak, forgotten once the device is
 * silent for `idleMs` of receive time (memory follows the active devices, #20 item 5; half an hour,
 * not one: the rings were the heap's second largest growth in the soak's hour).
 */
export function rejectTimeReuse(slots: number, idleMs = 30 * 60_000): OperatorFunction<Reading | Rejection, Reading | Rejection> {
  const devices = idleMap<{ series: string[]; ts: Float64Array; last: Float64Array; seqs: Float64Array; next: number }>(idleMs)
  return map((r) => {
    if ('reason' in r) return r
    const series = r.samples ? `${r.kind}@${r.fields.rate_hz}` : r.kind
    const step = r.samples ? 1000 / Number(r.fields.rate_hz) : 0
    const last = sampleTime(r.ts, step, (r.samples?.length ?? 1) - 1)
    let dev = devices.touch(r.deviceId, r.receivedAt)
    if (!dev) devices.set(r.deviceId, (dev = { series: new Array<string>(slots), ts: new Float64Array(slots), last: new Float64Array(slots), seqs: new Float64Array(slots), next: 0 }), r.receivedAt)
    for (let i = 0; i < slots; i++) {
      if (dev.series[i] !== series || !sharesTime(dev.ts[i]!, dev.last[i]!, r.ts, last, step)) continue
      // A redelivery (same seq) is already in the ring: recording it again would push out another reading.
      if (dev.seqs[i] === r.seq) return r
      return { deviceId: r.deviceId, kind: r.kind, reason: 'duplicate_time', detail: step ? `a sample time of this batch (from ts ${r.ts}) was stored from seq ${dev.seqs[i]} at the same rate` : `ts ${r.ts} of this stream was stored from seq ${dev.seqs[i]}`, seq: r.seq, receivedAt: r.receivedAt }
    }
    const i = dev.next
    dev.next = (i + 1) % slots
    dev.series[i] = series
    dev.ts[i] = r.ts
    dev.last[i] = last
    dev.seqs[i] = r.seq
    return r
  })
}

/** The stored time of sample `i` of a batch from `ts` with `stepMs` between samples (storeReadings'). */
const sampleTime = (ts: number, stepMs: number, i: number) => Math.round(ts + i * stepMs)

/**
 * Whether two readings of one series, from `a` to `aLast` and from `b` to `bLast` with `stepMs`
 * between samples (0: single readings), have a stored time in common. Same rate, so the samples of
 * `b` within `a`'s span are each checked against `a`'s nearest: O(overlap) and only on overlap.
 */
function sharesTime(a: number, aLast: number, b: number, bLast: number, stepMs: number): boolean {
  if (b > aLast || a > bLast) return false
  if (stepMs === 0) return a === b
  for (let j = Math.max(0, Math.floor((a - b) / stepMs)); sampleTime(b, stepMs, j) <= Math.min(aLast, bLast); j++) {
    const t = sampleTime(b, stepMs, j)
    const k = Math.round((t - a) / stepMs)
    if ([k - 1, k, k + 1].some((n) => n >= 0 && sampleTime(a, stepMs, n) === t)) return true
  }
  return false
}

/** Which readings are too old to store, and who hears of them (storeReadings). */
export interface Expiry {
  /** The oldest device time a reading of `kind` is stored from, ms (Influx.oldestKept). */
  oldestKept(kind: string): number
  /** A reading older than that: passed on, not stored. */
  onExpired?(r: Reading): void
}

/**
 * Turns each reading into its InfluxDB lines: measurement = kind, tag = device id, fields = values
 * + seq; a batched reading gives one line per sample, at its own time, with its index `i` (and the
 * first with the rate). `readingsFromSeries` turns them back.
 *
 * With `expiry`, a reading older than its kind's retention (a late upload, #21) is passed on to
 * scoring, which computes its trip and features, but not stored: InfluxDB would refuse its lines,
 * one refusal each, and what is past its retention is kept nowhere, the journal included.
 */
export function storeReadings(store: (lines: string[]) => void, expiry?: Expiry): OperatorFunction<Reading, Reading> {
  return map((r) => {
    if (expiry && r.ts < expiry.oldestKept(r.kind)) {
      expiry.onExpired?.(r)
      return r
    }
    // Telemetry is tagged by device only: the device → policy link lives in the registry, not
    // beside positions and health values (privacy by design).
    const tags = { device_id: r.deviceId }
    if (r.samples) {
      // Up to hundreds of rows a message, ingest's hottest loop: plain concatenation, the shared
      // part of each line built once, the column names once per kind. Tagged with the rate too:
      // a crash window (the device's ring buffer resent at full rate) covers seconds already sent
      // in regular batches, and in a series of its own it is stored beside them, not over them.
      const prefix = linePrefix(r.kind, { ...tags, hz: String(r.fields.rate_hz) })
      const names = columnKeys.get(r.kind)!
      const stepMs = 1000 / Number(r.fields.rate_hz)
      // The first sample also keeps the rate: with it the rows turn back into the reading.
      const rate = `,rate_hz=${r.fields.rate_hz}`
      const lines = new Array<string>(r.samples.length)
      for (let i = 0; i < r.samples.length; i++) {
        const row = r.samples[i]!
        let line = prefix
        for (let j = 0; j < row.length; j++) line += names[j]! + row[j]!
        lines[i] = `${line},seq=${r.seq}i,i=${i}i${i === 0 ? rate : ''} ${sampleTime(r.ts, stepMs, i)}`
      }
      store(lines)
    } else {
      store([toLine(r.kind, tags, { ...r.fields, seq: r.seq }, r.ts, ['seq'])])
    }
    return r
  })
}

/**
 * Readings back from their stored lines (`storeReadings` in reverse): `series` answers
 * `SELECT * FROM <kinds> WHERE device_id = …` with epoch ms times. In device-time order; as the
 * store keeps no policy and no arrival time, the reading gets `policyId` and its own time.
 */
export function readingsFromSeries(series: readonly Series[], policyId: string): Reading[] {
  const out: Reading[] = []
  for (const s of series) {
    const sensor = sensorsByKind.get(s.name)
    if (!sensor) continue
    const at = (name: string) => s.columns.indexOf(name)
    const [time, device, seq, index] = [at('time'), at('device_id'), at('seq'), at('i')]
    const reading = (row: unknown[]): Reading => ({
      deviceId: String(row[device]), policyId, kind: sensor.kind, subject: sensor.subject, seq: Number(row[seq]), ts: Number(row[time]), receivedAt: Number(row[time]), fields: {},
    })
    if (sensor.batch) {
      const columns = sensor.batch.columns.map((c) => at(c.name))
      const byMessage = new Map<string, Reading>() // (device, seq) identifies a message
      for (const row of [...s.values].sort((a, b) => Number(a[index]) - Number(b[index]))) {
        const key = `${row[device]}/${row[seq]}`
        let r = byMessage.get(key)
        if (!r) byMessage.set(key, (r = { ...reading(row), samples: [] }))
        if (row[index] === 0) Object.assign(r, { ts: Number(row[time]), receivedAt: Number(row[time]), fields: { rate_hz: Number(row[at('rate_hz')]) } })
        r.samples!.push(columns.map((j) => Number(row[j])))
      }
      // A batch cut by the query's time range lacks its first row, and with it its time and rate.
      for (const r of byMessage.values()) if ('rate_hz' in r.fields) out.push(r)
    } else {
      for (const row of s.values) {
        const r = reading(row)
        s.columns.forEach((c, j) => {
          if (j !== time && j !== device && j !== seq && (typeof row[j] === 'number' || typeof row[j] === 'boolean')) r.fields[c] = row[j] as number | boolean
        })
        out.push(r)
      }
    }
  }
  return out.sort((a, b) => a.ts - b.ts || a.seq - b.seq)
}

/** Per batched kind, `name=` of each sample column, with the separating comma from the second on. */
const columnKeys = new Map([...sensorsByKind.values()].filter((s) => s.batch).map((s) =>
  [s.kind, s.batch!.columns.map((c, j) => `${j === 0 ? '' : ','}${escapeKey(c.name)}=`)]))

/** The counters of `takeMessages`, whichever engine brings the messages (README "Metrics"). */
export type MessageCounters = ReturnType<typeof messageCounters>

/** Registers `takeMessages`' counters, and the quarantine's, in `registry`. */
export function messageCounters(registry: Registry, clocks: ClockTracker) {
  const registers = [registry]
  return {
    received: new Counter({ name: 'ubiq_ingest_messages_received_total', help: 'Device messages received', registers }),
    stored: new Counter({ name: 'ubiq_ingest_messages_stored_total', help: 'Device messages journaled and queued for InfluxDB', registers }),
    duplicates: new Counter({ name: 'ubiq_ingest_duplicates_total', help: 'Device messages dropped as redeliveries of a seen (device, seq)', registers }),
    rejected: new Counter({ name: 'ubiq_ingest_messages_rejected_total', help: 'Device messages rejected, by reason', labelNames: ['reason'], registers }),
    expired: new Counter({ name: 'ubiq_ingest_readings_expired_total', help: "Device messages older than their kind's retention (late uploads): scored, not stored", labelNames: ['kind'], registers }),
    quarantined: new Counter({ name: 'ubiq_ingest_lines_quarantined_total', help: 'Lines InfluxDB refused for good, moved to the dead-letter folder, by kind of refusal', labelNames: ['reason'], registers }),
    skewed: new Gauge({
      name: 'ubiq_ingest_devices_clock_skewed', help: 'Devices whose clock is off by more than 30 s (GET /api/v1/devices/ID/clock for one)', registers,
      collect() {
        this.set(clocks.countSkewedOver(30_000))
      },
    }),
    lag: new Histogram({
      name: 'ubiq_ingest_device_lag_seconds', help: 'Receive time minus device time (network delay, buffering, clock skew)', registers,
      // Fine enough for a quantile of the last minutes (rate() in Prometheus, the ingest page's and
      // the alert rules' windows) to be read within its bucket: between 300 s and 3600 s, the
      // median of a demo's catch-up read as 29.5 min.
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 10_800, 14_400, 21_600, 43_200, 86_400],
    }),
  }
}

/** The MQTT path's own counters: its journal and backpressure. */
function journalCounters(registry: Registry, journal: Journal) {
  const registers = [registry]
  return {
    backpressure: new Gauge({ name: 'ubiq_ingest_backpressure', help: '1 while ingest holds acknowledgements because InfluxDB is behind', registers }),
    pauses: new Counter({ name: 'ubiq_ingest_backpressure_pauses_total', help: 'Times ingest held an acknowledgement for InfluxDB to catch up', registers }),
    pending: new Gauge({
      name: 'ubiq_ingest_journal_pending_lines', help: 'Accepted lines not yet confirmed by InfluxDB', registers,
      collect() {
        this.set(journal.pending)
      },
    }),
    storeLatency: new Histogram({
      name: 'ubiq_ingest_store_latency_seconds', help: 'From receiving a message to InfluxDB confirming its last line', registers,
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2.5, 5, 10, 30, 60],
    }),
  }
}
