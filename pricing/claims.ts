/**
 * First notice of loss (#24 item 2): an urgent event that is a loss opens a claim, with the
 * readings around it as evidence, and the claim goes to the insurer's claims system as a signed
 * webhook (webhooks.ts). The triggers, one line each in `CLAIM_TRIGGERS`:
 *
 * - **crash**: the readings from 10 s before to 20 s after the impact (IMU, OBD speed, GNSS), then
 *   the check phone SDKs make after the impact (`afterImpact`): a car that stops is a likely crash;
 *   one driving on normally was a dropped phone or a pothole, and opens no claim;
 * - **leak** that kept running: no valve reported closed within `close_valve`'s life (15 min);
 * - **smoke** (fire) and **co_alarm**.
 *
 * The claim waits for its post-event window to be stored in InfluxDB (a reading of the device at
 * or after its end), at most that window plus `graceMs` of server time; then it is assembled with
 * what exists, and `evidence.complete` says whether the window was whole. Positions follow the
 * privacy rules: full precision only where the policy consented to its position stream for
 * `claims`, else the geohash cell of 6 characters (about 1.2 × 0.6 km) that trips keep (README
 * "Positions"); readings in a privacy-mode pause were never stored. Nothing here logs a reading.
 *
 * A claim's steps (opened, delivered, failed) are records of the audit chain, pseudonymised like
 * the others; the claims list is rebuilt from them at start, and an erasure forgets its policy's.
 */
import { createHash } from 'node:crypto'
import { Type, type Static } from '@sinclair/typebox'
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import { COMMANDS, geohash, POSITION_FIELDS, qualified, quoteString, seriesRows, type ConsentStore, type Influx, type RegisteredDevice, type Series } from '../ingest/index.ts'
import type { EventType, PolicyEvent } from '../scoring/index.ts'

/** What opens a claim, and the window of readings it carries: before and after the event, s. */
interface ClaimTrigger {
  pre_s: number
  post_s: number
  /** The event's device's streams read into the evidence. */
  kinds: readonly string[]
  /**
   * A device that reports such events itself (registered for the `report` stream) uploads its
   * recorder's window after one (ingest/sensors/crash.ts: "the IMU window follows on imu"): its
   * window is stored once a series of `kinds` at `minHz` or more holds the post-event seconds,
   * whichever report (its own, or scoring's IMU pulse) came first.
   */
  recorder?: { report: string; kinds: readonly string[]; minHz: number }
}

/**
 * The events that open a claim. A crash gets 10 s before and 20 s after the pulse (#24; an EDR
 * keeps 5 s before, 49 CFR 563.7; eCall's minimum set of data is sent within seconds). A leak waits
 * the life of the valve command that should stop it; fire and CO carry 5 minutes each side.
 */
export const CLAIM_TRIGGERS: Partial<Record<EventType, ClaimTrigger>> = {
  // A recorder's rate is one that sees a crash pulse: 50 Hz or more (scoring/crash.ts).
  crash: { pre_s: 10, post_s: 20, kinds: ['imu', 'imu_device', 'obd', 'gps', 'crash'], recorder: { report: 'crash', kinds: ['imu', 'imu_device'], minHz: 50 } },
  leak: { pre_s: 600, post_s: COMMANDS.close_valve.ttlMs / 1000, kinds: ['leak', 'valve', 'climate'] },
  smoke: { pre_s: 300, post_s: 300, kinds: ['smoke', 'climate'] },
  co_alarm: { pre_s: 300, post_s: 300, kinds: ['smoke', 'climate'] },
}

/**
 * The check after an impact, as phone crash detection does it (and published figures for it):
 * - a vehicle that crashed halts within a few metres of the impact (Sentiance's high-impact crash
 *   model: "not in a driveable state after the impact, halts within a few meters"): a speed at or
 *   below `stopped_kmh` within `stopWithin_s` confirms it;
 * - one that goes on at speed was not in a crash ("if the speed was 50 km/h and still is 5 s
 *   later, the collision did not happen", T. Repčík, Car accident detection with a smartphone,
 *   2022): from `settle_s` after the impact to `watch_s`, at least half the speed readings at or
 *   above `movingOn_kmh` is driving on, and no claim is opened;
 * - anything between (rolling slowly, no speed at all: a phone with no GNSS) opens a claim of low
 *   confidence: a missed crash costs more than an adjuster's call.
 * The impact itself is scoring's (scoring/crash.ts): a pulse of ≥ 4 g whose Δv is ≥ 8 km/h, the
 * EDR trigger threshold of 49 CFR 563.5 (8 km/h within 150 ms).
 */
export const afterImpactConfig = { stopped_kmh: 5, stopWithin_s: 10, settle_s: 5, watch_s: 20, movingOn_kmh: 20 }

/** What the speeds after an impact say. */
export interface Movement {
  verdict: 'stopped' | 'moved_on' | 'slow' | 'unknown'
  /** Seconds from the impact to the first speed at or below `stopped_kmh`. */
  stopped_s?: number
  /** Share of the speeds from settle_s to watch_s at or above `movingOn_kmh`. */
  moving_share?: number
  speeds: number
}

/** Judges the speeds (device time ms, km/h) after an impact at `impactMs`. */
export function afterImpact(speeds: readonly { ts: number; kmh: number }[], impactMs: number, cfg = afterImpactConfig): Movement {
  const within = (from_s: number, to_s: number) => speeds.filter((s) => s.ts >= impactMs + from_s * 1000 && s.ts <= impactMs + to_s * 1000)
  const watched = within(cfg.settle_s, cfg.watch_s)
  const stop = within(0, cfg.stopWithin_s).find((s) => s.kmh <= cfg.stopped_kmh)
  const share = watched.length ? watched.filter((s) => s.kmh >= cfg.movingOn_kmh).length / watched.length : undefined
  const n = within(0, cfg.watch_s).length
  const round = (x: number) => Math.round(x * 100) / 100
  if (share !== undefined && share >= 0.5) return { verdict: 'moved_on', moving_share: round(share), speeds: n }
  if (stop) return { verdict: 'stopped', stopped_s: round((stop.ts - impactMs) / 1000), ...(share === undefined ? {} : { moving_share: round(share) }), speeds: n }
  return { verdict: n ? 'slow' : 'unknown', ...(share === undefined ? {} : { moving_share: round(share) }), speeds: n }
}

export const ClaimStatus = Type.Union([Type.Literal('open'), Type.Literal('delivered'), Type.Literal('failed')], { description: 'open: not yet delivered (or no claims system configured); delivered: the claims system answered 2xx; failed: every attempt failed (dead-lettered)' })

/** A claim as the analyst's list shows it. */
export const Claim = Type.Object({
  id: Type.String({ description: "The claim's id: the webhook's idempotency key" }),
  policyId: Type.String(),
  deviceId: Type.String(),
  type: Type.String({ description: 'The event that opened it (crash, leak, smoke, co_alarm)' }),
  eventAt: Type.String({ description: "The event's device time, ISO 8601" }),
  openedAt: Type.String({ description: 'When ubiq opened it, ISO 8601' }),
  confidence: Type.Union([Type.Literal('high'), Type.Literal('low')], { description: 'high: the event confirmed (the car stopped after the impact); low: not confirmed either way' }),
  complete: Type.Boolean({ description: 'Whether the evidence window was stored whole when the claim was assembled' }),
  status: ClaimStatus,
  settledAt: Type.Optional(Type.String({ description: 'When it was delivered or failed, ISO 8601' })),
}, { additionalProperties: false })
export type Claim = Static<typeof Claim>

/** A claim's step, as the audit chain records it. */
export interface ClaimChange {
  policyId: string
  deviceId: string
  claimId: string
  action: 'opened' | 'delivered' | 'failed'
  at: string
  /** opened: the event, when, how sure, whether the window was whole, and a hash of the payload sent. */
  type?: string
  eventAt?: string
  confidence?: Claim['confidence']
  complete?: boolean
  payloadHash?: string
}

/** The claims, rebuilt from their recorded steps. */
export function claimList(history: Iterable<ClaimChange> = []) {
  const byId = new Map<string, Claim>()
  const apply = (c: ClaimChange) => {
    if (c.action === 'opened') {
      byId.set(c.claimId, { id: c.claimId, policyId: c.policyId, deviceId: c.deviceId, type: c.type ?? '', eventAt: c.eventAt ?? c.at, openedAt: c.at, confidence: c.confidence ?? 'low', complete: c.complete ?? false, status: 'open' })
      return
    }
    const claim = byId.get(c.claimId)
    if (claim) Object.assign(claim, { status: c.action, settledAt: c.at })
  }
  for (const c of history) apply(c)
  return {
    apply,
    get: (id: string) => byId.get(id),
    /** Newest first. */
    list: () => [...byId.values()].sort((a, b) => b.openedAt.localeCompare(a.openedAt)),
    forget(policyId: string) {
      for (const [id, c] of byId) if (c.policyId === policyId) byId.delete(id)
    },
  }
}

export interface ClaimsDeps {
  influx: Influx
  consents: Pick<ConsentStore, 'allows'>
  device(deviceId: string): RegisteredDevice | undefined
  /** The policy's devices (a leak's valve may be another device of the home). */
  devicesOf(policyId: string): readonly string[]
  /** Writes a step to the audit chain (fsynced) and returns nothing; a throw means it did not happen. */
  record(change: ClaimChange): void
  /** The claims system's webhook; without one, claims are opened and listed, not sent. */
  send?(claimId: string, policyId: string, payload: unknown): void
  history?: Iterable<ClaimChange>
  logger: Logger
  metrics: Registry
  /** Server time a claim waits beyond its post-event window for the window to be stored, ms (default 60 s). */
  graceMs?: number
  /** How often it looks, ms (default 1 s). */
  pollMs?: number
}

/** Readings of one stream in the window: its columns and rows (time first, ms). */
type Rows = { columns: string[]; rows: unknown[][] }

/** The claims stage: subscribe `take` to the events; `list` for the analyst; `settled` from the webhook sender. */
export function claimsStage(deps: ClaimsDeps) {
  const log = deps.logger.child({ stage: 'claims' })
  const claims = claimList(deps.history)
  const graceMs = deps.graceMs ?? 60_000
  const pollMs = deps.pollMs ?? 1000
  const counted = new Counter({ name: 'ubiq_claims_total', help: 'Urgent events judged for a claim: opened, or dismissed (a crash the car drove on from; a leak the valve stopped)', labelNames: ['type', 'outcome'], registers: [deps.metrics] })
  const inFlight = new Set<Promise<void>>()
  let closed = false

  const read = async (policyId: string, kinds: readonly string[], deviceIds: readonly string[], fromMs: number, toMs: number): Promise<Series[]> => {
    if (kinds.length === 0 || deviceIds.length === 0) return []
    const devices = deviceIds.map((d) => `device_id = ${quoteString(d)}`).join(' OR ')
    return deps.influx.of(policyId).query(`SELECT * FROM ${kinds.map(qualified).join(', ')} WHERE (${devices}) AND time >= ${Math.round(fromMs)}ms AND time <= ${Math.round(toMs)}ms ORDER BY time ASC`)
  }

  /**
   * Waits until the post-event window is stored: a reading of the device at or after its end (or,
   * when the device's recorder uploads one, that recorder's samples through it), or until
   * `deadline` (server time) passes; true when stored.
   */
  async function untilStored(policyId: string, kinds: readonly string[], deviceId: string, fromMs: number, endMs: number, recorder: ClaimTrigger['recorder'], deadline: number): Promise<boolean> {
    const device = `device_id = ${quoteString(deviceId)}`
    const stored = recorder
      // Its samples after the event, per rate: all but the last second's at the rate (a window ends on a second).
      ? async () => (await deps.influx.of(policyId).query(`SELECT count(seq) FROM ${recorder.kinds.map(qualified).join(', ')} WHERE ${device} AND time >= ${Math.round(fromMs)}ms AND time <= ${Math.round(endMs)}ms GROUP BY hz`))
        .some((s) => Number(s.tags?.hz) >= recorder.minHz && Number(s.values[0]?.[1]) >= Number(s.tags?.hz) * ((endMs - fromMs) / 1000 - 1))
      : async () => (await deps.influx.of(policyId).query(`SELECT seq FROM ${kinds.map(qualified).join(', ')} WHERE ${device} AND time >= ${Math.round(endMs)}ms LIMIT 1`)).some((s) => s.values.length > 0)
    for (;;) {
      if (await stored()) return true
      if (closed || Date.now() >= deadline) return false
      await new Promise((r) => setTimeout(r, pollMs))
    }
  }

  async function judge(e: PolicyEvent, trigger: ClaimTrigger, arrivedAt: number): Promise<void> {
    const device = deps.device(e.deviceId)
    const id = claimId(e)
    if (!device || claims.get(id)) return // unknown, or the same event again (a redelivery after a restart)
    const kinds = trigger.kinds.filter((k) => device.kinds.includes(k))
    const [fromMs, toMs] = [e.from - trigger.pre_s * 1000, e.to + trigger.post_s * 1000]
    const recorder = trigger.recorder && device.kinds.includes(trigger.recorder.report) && device.kinds.some((k) => trigger.recorder!.kinds.includes(k)) ? trigger.recorder : undefined
    const complete = kinds.length > 0 && (await untilStored(e.policyId, kinds, e.deviceId, e.to, toMs, recorder, arrivedAt + trigger.post_s * 1000 + graceMs))
    if (closed) return
    const readings: Record<string, Rows> = {}
    for (const s of await read(e.policyId, kinds, [e.deviceId], fromMs, toMs)) {
      const rows = readings[s.name] ?? { columns: s.columns.filter((c) => c !== 'device_id'), rows: [] }
      const keep = rows.columns.map((c) => s.columns.indexOf(c))
      rows.rows.push(...s.values.map((v) => keep.map((i) => v[i])))
      readings[s.name] = rows
    }
    let movement: Movement | undefined
    if (e.type === 'crash') {
      const speeds = ['obd', 'gps'].flatMap((k) => speedsOf(readings[k]))
      movement = afterImpact(speeds.sort((a, b) => a.ts - b.ts), e.from)
      if (movement.verdict === 'moved_on') {
        counted.inc({ type: e.type, outcome: 'dismissed' })
        log.info({ policyId: e.policyId, deviceId: e.deviceId, movement }, 'crash dismissed: the vehicle drove on after the impact')
        return
      }
    }
    if (e.type === 'leak') {
      const valves = deps.devicesOf(e.policyId).filter((d) => deps.device(d)?.kinds.includes('valve'))
      const closedValve = seriesRows(await read(e.policyId, ['valve'], valves, e.from, toMs)).some((r) => r.valve_open === false)
      if (closedValve) {
        counted.inc({ type: e.type, outcome: 'dismissed' })
        log.info({ policyId: e.policyId, deviceId: e.deviceId }, 'leak stopped by the valve in time: no claim')
        return
      }
    }
    const position = positionOf(readings, e, deps.consents.allows(e.policyId, 'gps', 'claims'))
    if (!deps.consents.allows(e.policyId, 'gps', 'claims') && readings.gps) readings.gps = withoutPositions(readings.gps)
    const confidence: Claim['confidence'] = movement === undefined || movement.verdict === 'stopped' ? 'high' : 'low'
    const openedAt = new Date().toISOString()
    const payload = {
      claimId: id, policyId: e.policyId, openedAt, confidence,
      event: { type: e.type, deviceId: e.deviceId, from: new Date(e.from).toISOString(), to: new Date(e.to).toISOString(), evidence: e.evidence },
      ...(movement ? { movement } : {}),
      device: { id: device.deviceId, streams: device.kinds, ...(device.registeredAt ? { registeredAt: device.registeredAt } : {}) },
      position,
      evidence: {
        from: new Date(fromMs).toISOString(), to: new Date(toMs).toISOString(), complete,
        ...(complete ? {} : { note: `readings after ${new Date(latest(readings, fromMs)).toISOString()} were not stored within ${Math.round((trigger.post_s * 1000 + graceMs) / 1000)} s: assembled with what exists` }),
        readings,
      },
    }
    const opened: ClaimChange = { policyId: e.policyId, deviceId: e.deviceId, claimId: id, action: 'opened', at: openedAt, type: e.type, eventAt: new Date(e.from).toISOString(), confidence, complete }
    // On the record (with a hash of what is sent) before it is sent: a claim that cannot be recorded is not sent.
    deps.record({ ...opened, payloadHash: createHash('sha256').update(JSON.stringify(payload)).digest('hex') })
    claims.apply(opened)
    counted.inc({ type: e.type, outcome: 'opened' })
    log.info({ policyId: e.policyId, deviceId: e.deviceId, claimId: id, type: e.type, confidence, complete }, 'claim opened')
    deps.send?.(id, e.policyId, payload)
  }

  /** The events being judged: one loss reported twice (the device's report, then its recorder's window after a restart) is one claim. */
  const judging = new Set<PolicyEvent>()
  const sameLoss = (a: { deviceId: string; type: string; from: number }, b: PolicyEvent) =>
    a.deviceId === b.deviceId && a.type === b.type && Math.abs(a.from - b.from) <= SAME_LOSS_MS

  /** An event: a trigger's starts its claim's assembly in the background. */
  function take(e: PolicyEvent) {
    const trigger = CLAIM_TRIGGERS[e.type]
    if (!trigger || !e.urgent || closed) return
    if ([...judging].some((j) => sameLoss(j, e)) || claims.list().some((c) => sameLoss({ ...c, from: Date.parse(c.eventAt) }, e))) return
    judging.add(e)
    const run = judge(e, trigger, Date.now()).catch((err: unknown) => log.error({ err, policyId: e.policyId, type: e.type }, 'a claim could not be assembled'))
    inFlight.add(run)
    void run.finally(() => (inFlight.delete(run), judging.delete(e)))
  }

  return {
    take,
    /**
     * At start: the trigger events stored in the last `lookbackMs` (device time) that have no claim
     * are judged again, so that a claim still waiting for its window when ubiq stopped is not lost.
     * A dismissed one is dismissed again.
     */
    async resume(lookbackMs = 3600_000) {
      const types = Object.keys(CLAIM_TRIGGERS).map((type) => `type = ${quoteString(type)}`).join(' OR ')
      const rows = seriesRows(await deps.influx.query(`SELECT * FROM ${qualified('event')} WHERE urgent = true AND (${types}) AND time >= ${Date.now() - lookbackMs}ms`))
      for (const r of rows) {
        const evidence = Object.fromEntries(Object.entries(r).filter(([k, v]) => typeof v === 'number' && !['time', 'end_ms'].includes(k)))
        const e = { policyId: String(r.policy_id), deviceId: String(r.device_id), subject: r.subject, type: r.type, urgent: true, from: Number(r.time), to: Number(r.end_ms ?? r.time),
          evidence: { ...evidence, source: String(r.source), unit: String(r.unit ?? '') } } as PolicyEvent
        if (!claims.get(claimId(e))) take(e)
      }
    },
    /** The webhook's end for a claim: recorded, and shown in the list. */
    settled(claimId: string, outcome: 'delivered' | 'dead') {
      const claim = claims.get(claimId)
      if (!claim) return // erased meanwhile
      const change: ClaimChange = { policyId: claim.policyId, deviceId: claim.deviceId, claimId, action: outcome === 'dead' ? 'failed' : 'delivered', at: new Date().toISOString() }
      deps.record(change)
      claims.apply(change)
    },
    list: claims.list,
    forget: claims.forget,
    /** Stops waiting: claims still being assembled are dropped (their events are in InfluxDB). */
    async close() {
      closed = true
      await Promise.all(inFlight)
    },
  }
}
export type ClaimsStage = ReturnType<typeof claimsStage>

/** Events of one device and type this close are one loss, ms (a crash's reports within a minute). */
const SAME_LOSS_MS = 60_000

/** The claim of an event: one id per device, type and start, so the same event never opens two. */
export const claimId = (e: Pick<PolicyEvent, 'policyId' | 'deviceId' | 'type' | 'from'>) =>
  `clm_${createHash('sha256').update(`${e.policyId}/${e.deviceId}/${e.type}/${e.from}`).digest('hex').slice(0, 32)}`

const column = (r: Rows | undefined, name: string) => r?.columns.indexOf(name) ?? -1
const speedsOf = (r: Rows | undefined) => {
  const [t, v] = [column(r, 'time'), column(r, 'speed_kmh')]
  return v < 0 ? [] : r!.rows.filter((row) => typeof row[v] === 'number').map((row) => ({ ts: Number(row[t]), kmh: Number(row[v]) }))
}
/** The time of the last reading, or `none` when there is none. */
const latest = (readings: Record<string, Rows>, none: number) => Math.max(none, ...Object.values(readings).flatMap((r) => r.rows.map((row) => Number(row[0]))))

/** The gps rows without their position columns: the claim gets only the cell. */
function withoutPositions(r: Rows): Rows {
  const keep = r.columns.map((c, i) => [c, i] as const).filter(([c]) => !POSITION_FIELDS.has(c))
  return { columns: keep.map(([c]) => c), rows: r.rows.map((row) => keep.map(([, i]) => row[i])) }
}

/**
 * The last fix at or before the event: full precision with the policy's consent for claims, else
 * its geohash cell of 6 characters; null when there is none (no GNSS, or location paused).
 */
function positionOf(readings: Record<string, Rows>, e: PolicyEvent, full: boolean) {
  const gps = readings.gps
  const [t, lat, lon, acc] = ['time', 'lat_deg', 'lon_deg', 'accuracy_m'].map((c) => column(gps, c)) as [number, number, number, number]
  const fix = gps?.rows.filter((row) => Number(row[t]) <= e.to && typeof row[lat] === 'number').at(-1)
  if (!fix) return null
  const at = new Date(Number(fix[t])).toISOString()
  if (full) return { precision: 'full' as const, at, lat_deg: fix[lat] as number, lon_deg: fix[lon] as number, ...(typeof fix[acc] === 'number' ? { accuracy_m: fix[acc] } : {}) }
  return { precision: 'cell' as const, at, geohash: geohash(fix[lat] as number, fix[lon] as number, 6) }
}
