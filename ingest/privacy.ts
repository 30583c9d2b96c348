/**
 * Privacy mode (#21 item 2): the policyholder pauses location, or all telemetry, for a while: from
 * their page or REST (their own policy's token; an analyst reads), or from one of the policy's
 * devices (`ubiq/v1/dev/{deviceId}/privacy`). A reading whose device time falls in a pause of its
 * stream is rejected with `privacy_mode`, never stored and never scored; the rest of the policy's
 * streams go on. Trips driven in a location pause are priced on what remains (pricing/plan.ts
 * `privacy`, README "Privacy mode").
 *
 * A pause is bounded (MAX_PAUSE_MS, starts at most MAX_LEAD_MS ahead, never in the past beyond
 * clock tolerance: what is stored stays stored) and may be ended early. Pauses of a policy do not
 * overlap. Times are the server's. Every pause and every early end is recorded in the audit chain
 * before it takes effect, and the store is rebuilt from those records at start, as consent is.
 */
import { Type, type Static } from '@sinclair/typebox'
import { payloadSchema } from './contract.ts'
import { consentCategory } from './consent.ts'
import type { DeviceRegistry } from './registry.ts'
import { sensorsByKind } from './sensors/index.ts'
import { codes } from './errors.ts'

/** What a pause stops: positions (every stream of the location category), or every stream of the policy. */
export const PAUSE_SCOPES = ['location', 'all'] as const
export type PauseScope = (typeof PAUSE_SCOPES)[number]

/** The longest pause: privacy mode is for a while, not a withdrawal (that is consent's). */
export const MAX_PAUSE_MS = 24 * 3600_000
/** How far ahead a pause may start. */
export const MAX_LEAD_MS = 7 * 86_400_000
/** How far in the past a pause may start: clocks and a slow request, no more (what is stored stays stored). */
export const PAST_TOLERANCE_MS = 5 * 60_000

/** The topic segment a device pauses and resumes under: `ubiq/v1/dev/{deviceId}/privacy`. */
export const PRIVACY_STREAM = 'privacy'

const pauseFields = {
  scope: Type.String({ enum: [...PAUSE_SCOPES], description: 'location: positions are not stored; all: no stream of the policy is stored' }),
  from: Type.Optional(Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T', maxLength: 40, description: 'ISO 8601; default now (server time). At most 5 min in the past, at most 7 days ahead' })),
  to: Type.Optional(Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}T', maxLength: 40, description: 'ISO 8601, after `from`, at most 24 h after it; give `to` or `minutes`' })),
  minutes: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAUSE_MS / 60_000, description: 'how long, from `from`; give `to` or `minutes`' })),
}

/** The body of `POST /api/v1/policies/{policy}/privacy`: a pause. */
export const PauseRequest = Type.Object(pauseFields, { additionalProperties: false })
export type PauseRequest = Static<typeof PauseRequest>

/** A device's message on `ubiq/v1/dev/{deviceId}/privacy`: a pause (`scope` and `to` or `minutes`), or `end` with a pause's id. */
export const privacyMessage = payloadSchema({
  ...pauseFields,
  scope: Type.Optional(pauseFields.scope),
  end: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$', description: "ends the pause with this id now (its id is on ubiq/v1/privacy/{deviceId}); alone, without the pause's fields" })),
})

/** Who paused or ended a pause: a policyholder's token on REST, or a device on its topic. */
export const PrivacyActor = Type.Union([
  Type.Object({ role: Type.Literal('policyholder'), tokenId: Type.Optional(Type.String({ description: "the token's id (jti)" })) }, { additionalProperties: false }),
  Type.Object({ role: Type.Literal('device'), deviceId: Type.String() }, { additionalProperties: false }),
])
export type PrivacyActor = Static<typeof PrivacyActor>

/** A pause or an early end, as recorded in the audit chain: who, when, what, which window. */
export interface PrivacyChange {
  policyId: string
  action: 'pause' | 'end'
  scope: PauseScope
  /** The pause's window, ISO 8601 (server time). */
  from: string
  to: string
  /** An end: the id of the pause it ends. */
  pause?: string
  by: PrivacyActor
  /** When ubiq took it, ISO 8601 (server time): an end's `at` is when the pause ended. */
  at: string
  seq?: number
  deviceTs?: number
}

export type RecordedPrivacyChange = PrivacyChange & { hash: string }

/** A pause as it stands. Its id is the audit hash of the record that made it. */
export const Pause = Type.Object({
  id: Type.String({ description: 'the audit hash of the record that made it' }),
  policyId: Type.String(),
  scope: Type.Union(PAUSE_SCOPES.map((p) => Type.Literal(p))),
  from: Type.String({ description: 'ISO 8601' }),
  to: Type.String({ description: 'ISO 8601' }),
  by: PrivacyActor,
  at: Type.String({ description: 'when ubiq took it, ISO 8601 (server time)' }),
  endedAt: Type.Optional(Type.String({ description: 'When it was ended early, if it was (ISO 8601)' })),
}, { additionalProperties: false })
export type Pause = Static<typeof Pause>

/** A pause's effective window, ms: [from, until) where until is `to` or the early end. */
export const pauseWindow = (p: Pause) => {
  const from = Date.parse(p.from)
  return { from, until: Math.max(from, Math.min(Date.parse(p.to), p.endedAt ? Date.parse(p.endedAt) : Infinity)) }
}

export interface PrivacyStore {
  /** The pause that stops `kind` of the policy anywhere in device time [fromMs, toMs], if any: ingest asks for every reading. */
  paused(policyId: string, kind: string, fromMs: number, toMs: number): Pause | undefined
  /**
   * How much of [fromMs, toMs) the policy had `scope` paused, ms: for `location` by any pause (`all`
   * pauses positions too), for `all` by pauses of all telemetry only.
   */
  pausedMs(policyId: string, scope: PauseScope, fromMs: number, toMs: number): number
  /** Forgets an erased policy (#21 item 5): its pauses, and its devices' last seqs. */
  forget(policyId: string, deviceIds: readonly string[]): void
  /** The policy's pauses, oldest first; undefined for a policy the registry does not know. */
  of(policyId: string): Pause[] | undefined
  /** Records a pause and puts it in effect; throws UBIQ_PRIVACY_INVALID for one that is not valid. Undefined: a device's message no newer than its last (by seq). */
  pause(policyId: string, request: PauseRequest, by: PrivacyActor, device?: { seq: number; ts: number }): Pause | undefined
  /** Ends a pause now (a scheduled one never starts); throws UBIQ_PRIVACY_INVALID for an unknown or finished one. */
  end(policyId: string, id: string, by: PrivacyActor, device?: { seq: number; ts: number }): Pause | undefined
}

export interface PrivacyStoreOptions {
  registry: DeviceRegistry
  /** Changes recorded before, oldest first (the audit chain's privacy records). */
  history?: Iterable<RecordedPrivacyChange>
  /** Writes a change to the record and returns its hash; a throw leaves the pauses unchanged. */
  record(change: PrivacyChange): string
  /** Told of every change once it is in effect (ubiq tells the policy's devices). */
  onChange?(change: RecordedPrivacyChange, pauses: Pause[]): void
  now?: () => number
}

/** Whether a pause of `scope` stops stream `kind`. */
export const pauseStops = (scope: PauseScope, kind: string) => {
  const sensor = sensorsByKind.get(kind)
  return scope === 'all' || (sensor !== undefined && consentCategory(sensor) === 'location')
}

/** The privacy store: in memory, rebuilt from the record of changes. */
export function privacyStore(opts: PrivacyStoreOptions): PrivacyStore {
  const now = opts.now ?? Date.now
  const policies = new Set([...opts.registry.values()].map((d) => d.policyId))
  const pauses = new Map<string, Pause[]>()
  const deviceSeqs = new Map<string, number>()

  const apply = (c: RecordedPrivacyChange) => {
    if (!pauses.has(c.policyId)) pauses.set(c.policyId, [])
    const list = pauses.get(c.policyId)!
    if (c.action === 'pause') list.push({ id: c.hash, policyId: c.policyId, scope: c.scope, from: c.from, to: c.to, by: c.by, at: c.at })
    else {
      const p = list.find((x) => x.id === c.pause)
      if (p) p.endedAt = c.at
    }
    if (c.by.role === 'device' && c.seq !== undefined) deviceSeqs.set(c.by.deviceId, c.seq)
  }
  for (const c of opts.history ?? []) apply(c)

  const stale = (by: PrivacyActor, device?: { seq: number }) => by.role === 'device' && device !== undefined && device.seq <= (deviceSeqs.get(by.deviceId) ?? -1)
  const take = (change: PrivacyChange) => {
    // On the record before it takes effect: a change that cannot be recorded does not happen.
    const recorded = { ...change, hash: opts.record(change) }
    apply(recorded)
    opts.onChange?.(recorded, [...pauses.get(change.policyId)!])
    return recorded
  }
  const known = (policyId: string) => {
    if (!policies.has(policyId)) throw new codes.UBIQ_PRIVACY_INVALID(`no policy ${policyId} in the device registry`)
  }
  const deviceFields = (device?: { seq: number; ts: number }) => (device ? { seq: device.seq, deviceTs: device.ts } : {})

  /** The pause's window in ms, or what is wrong with the request. */
  const windowOf = (policyId: string, r: PauseRequest, t: number): { from: number; to: number } | string => {
    if (!(PAUSE_SCOPES as readonly string[]).includes(r.scope)) return `/scope: no scope "${r.scope}" (scopes: ${PAUSE_SCOPES.join(', ')})`
    if ((r.to === undefined) === (r.minutes === undefined)) return 'give how long the pause lasts: `to` or `minutes`, one of them'
    const from = r.from === undefined ? t : Date.parse(r.from)
    if (Number.isNaN(from)) return `/from: not a date: ${r.from}`
    const to = r.to === undefined ? from + r.minutes! * 60_000 : Date.parse(r.to)
    if (Number.isNaN(to)) return `/to: not a date: ${r.to}`
    if (from < t - PAST_TOLERANCE_MS) return `/from: a pause cannot start in the past (${new Date(from).toISOString()}): what is stored stays stored (erasure is asked for apart)`
    if (from > t + MAX_LEAD_MS) return `/from: a pause starts at most ${MAX_LEAD_MS / 86_400_000} days ahead`
    if (to <= from) return '/to: the pause must end after it starts'
    if (to - from > MAX_PAUSE_MS) return `a pause lasts at most ${MAX_PAUSE_MS / 3600_000} h (asked: ${Math.round((to - from) / 60_000)} min): pause again when it ends`
    for (const p of pauses.get(policyId) ?? []) {
      const w = pauseWindow(p)
      if (from < w.until && to > w.from) return `the policy's pause ${p.id} (${p.scope}, ${p.from} to ${new Date(w.until).toISOString()}) overlaps it: end that one first, or start after it`
    }
    return { from, to }
  }

  return {
    paused(policyId, kind, fromMs, toMs) {
      return pauses.get(policyId)?.find((p) => {
        const w = pauseWindow(p)
        return fromMs < w.until && toMs >= w.from && pauseStops(p.scope, kind)
      })
    },
    pausedMs: (policyId, scope, fromMs, toMs) => (pauses.get(policyId) ?? []).reduce((ms, p) => {
      if (scope === 'all' && p.scope !== 'all') return ms
      const w = pauseWindow(p)
      return ms + Math.max(0, Math.min(toMs, w.until) - Math.max(fromMs, w.from))
    }, 0),
    forget(policyId, deviceIds) {
      policies.delete(policyId)
      pauses.delete(policyId)
      for (const d of deviceIds) deviceSeqs.delete(d)
    },
    of: (policyId) => (policies.has(policyId) ? [...(pauses.get(policyId) ?? [])] : undefined),
    pause(policyId, request, by, device) {
      known(policyId)
      const t = now()
      const w = windowOf(policyId, request, t)
      if (typeof w === 'string') throw new codes.UBIQ_PRIVACY_INVALID(w)
      if (stale(by, device)) return undefined
      const change: PrivacyChange = {
        policyId, action: 'pause', scope: request.scope as PauseScope, from: new Date(w.from).toISOString(), to: new Date(w.to).toISOString(), by, at: new Date(t).toISOString(), ...deviceFields(device),
      }
      const recorded = take(change)
      return pauses.get(policyId)!.find((p) => p.id === recorded.hash)
    },
    end(policyId, id, by, device) {
      known(policyId)
      const t = now()
      const p = pauses.get(policyId)?.find((x) => x.id === id)
      if (!p) throw new codes.UBIQ_PRIVACY_INVALID(`no pause ${id} of policy ${policyId}`)
      const w = pauseWindow(p)
      if (p.endedAt !== undefined || w.until <= t) throw new codes.UBIQ_PRIVACY_INVALID(`pause ${id} is over already (${p.endedAt ? `ended at ${p.endedAt}` : `it ran to ${p.to}`})`)
      if (stale(by, device)) return undefined
      take({ policyId, action: 'end', scope: p.scope, from: p.from, to: p.to, pause: id, by, at: new Date(t).toISOString(), ...deviceFields(device) })
      return p
    },
  }
}

/**
 * What a device is told on `ubiq/v1/privacy/{deviceId}` (retained) after every change to its
 * policy's pauses: the change (with the device's seq when it sent it: its acknowledgement), its
 * audit hash, and the pauses not yet over, so that it can stop sending what would be refused.
 */
export function privacyNotice(change: RecordedPrivacyChange, pauses: readonly Pause[], deviceId: string, nowMs: number) {
  return {
    at: change.at,
    hash: change.hash,
    by: change.by.role,
    ...(change.by.role === 'device' && change.by.deviceId === deviceId ? { seq: change.seq } : {}),
    change: { action: change.action, id: change.pause ?? change.hash, scope: change.scope, from: change.from, to: change.to },
    pauses: pauses.filter((p) => pauseWindow(p).until > nowMs).map((p) => ({ id: p.id, scope: p.scope, from: p.from, to: new Date(pauseWindow(p).until).toISOString() })),
  }
}
