/**
 * Consent that lives (#21 item 1): per policy, per stream and per purpose, granted and withdrawn
 * while ubiq runs, by the policyholder or an analyst (REST) or by one of the policy's devices (its
 * `consent` topic). A change takes effect for the next message ingest decodes: a stream with no
 * purpose left is rejected with `no_consent` from then on.
 *
 * Purposes (README "Privacy"): any one of them lets a stream be stored; `pricing` also lets its
 * readings reach scoring, and so scores and premiums. `coaching` and `claims` have no reader in ubiq
 * yet beyond storage: they are recorded and honoured as consent to keep the data, nothing more.
 *
 * Where nothing was recorded, a stream that one of the policy's devices is registered for in the
 * device registry has the consent given at enrolment: pricing, and only pricing. Every change is
 * recorded before it takes effect (`record`: the audit chain, pricing/audit.ts), and the store is
 * rebuilt from those records at start, so the consent in force and its record cannot disagree.
 *
 * Location and health data (GDPR Art. 9, EDPB guidelines 01/2020) are consented to separately: a
 * grant names streams of one category only, so a grant of a position or health stream is never
 * bundled with anything else. Withdrawing may name any streams at once (withdrawing must be as easy
 * as giving, GDPR Art. 7(3)).
 */
import { Type, type Static, type TObject } from '@sinclair/typebox'
import { payloadSchema, Subject, type Reading, type SensorKind } from './contract.ts'
import type { DeviceRegistry } from './registry.ts'
import { sensors, sensorsByKind } from './sensors/index.ts'
import { codes } from './errors.ts'

/** What consent to a stream is for. */
export const PURPOSES = ['pricing', 'coaching', 'claims'] as const
export type Purpose = (typeof PURPOSES)[number]

/** A stream's kind of personal data: location and health streams are consented to apart from the rest. */
export type ConsentCategory = StreamConsent['category']

/** A stream's category, read off the sensor catalogue: a stream with positions is location data, one of subject health is health data. */
export function consentCategory(sensor: SensorKind): ConsentCategory {
  if ('lat_deg' in (sensor.schema.properties as Record<string, unknown>)) return 'location'
  return sensor.subject === 'health' ? 'health' : 'other'
}

/** The topic segment a device sends its consent changes under: `ubiq/v1/dev/{deviceId}/consent`. */
export const CONSENT_STREAM = 'consent'

/** A consent change's fields, declared once for the REST body and the device's message. */
const changeFields = {
  streams: Type.Array(Type.String({ enum: sensors.map((s) => s.kind) }), { minItems: 1, maxItems: sensors.length, uniqueItems: true, description: 'The streams the change is about' }),
  purposes: Type.Array(Type.String({ enum: [...PURPOSES] }), { minItems: 1, maxItems: PURPOSES.length, uniqueItems: true, description: 'pricing: the stream feeds scores and premiums; coaching, claims: kept for those (no reader in ubiq yet); any one lets the stream be stored' }),
  granted: Type.Boolean({ description: 'true grants the purposes, false withdraws them' }),
}

/** The body of `POST /api/v1/policies/{policy}/consents`. */
export const ConsentRequest = Type.Object(changeFields, { additionalProperties: false })
export type ConsentRequest = Static<typeof ConsentRequest>

/** A device's consent message on `ubiq/v1/dev/{deviceId}/consent`: the envelope and a change. */
export const consentMessage = payloadSchema(changeFields)

/** Who changed consent: the token's role (and id) on REST, or the device on its topic. */
export const ConsentActor = Type.Union([
  Type.Object({ role: Type.Union([Type.Literal('policyholder'), Type.Literal('analyst')]), tokenId: Type.Optional(Type.String({ description: "the token's id (jti)" })) }, { additionalProperties: false }),
  Type.Object({ role: Type.Literal('device'), deviceId: Type.String() }, { additionalProperties: false }),
])
export type ConsentActor = Static<typeof ConsentActor>

const Purpose = Type.Union(PURPOSES.map((p) => Type.Literal(p)))

/** A change as recorded: who, when, what. */
const consentChangeFields = {
  policyId: Type.String(),
  streams: Type.Array(Type.String()),
  purposes: Type.Array(Purpose),
  granted: Type.Boolean(),
  by: ConsentActor,
  at: Type.String({ description: 'When ubiq took the change, ISO 8601 (server time)' }),
  seq: Type.Optional(Type.Integer({ description: "A device's change: its message's seq" })),
  deviceTs: Type.Optional(Type.Number({ description: "A device's change: its message's device time, ms" })),
}
export type ConsentChange = Static<TObject<typeof consentChangeFields>>

/** A recorded change and its place in the audit chain. */
export const RecordedChange = Type.Object({ ...consentChangeFields, hash: Type.String({ description: 'its audit hash' }) }, { additionalProperties: false })
export type RecordedChange = Static<typeof RecordedChange>

/** One stream's consent as it stands. */
export const StreamConsent = Type.Object({
  stream: Type.String(),
  subject: Subject,
  category: Type.Union([Type.Literal('location'), Type.Literal('health'), Type.Literal('other')]),
  purposes: Type.Array(Purpose, { description: 'The purposes granted: none, and the stream is rejected with no_consent' }),
}, { additionalProperties: false })
export type StreamConsent = Static<typeof StreamConsent>

/** A policy's consent as it stands, and every change recorded for it. */
export const PolicyConsent = Type.Object({ policyId: Type.String(), streams: Type.Array(StreamConsent), changes: Type.Array(RecordedChange) }, { additionalProperties: false })
export type PolicyConsent = Static<typeof PolicyConsent>

/**
 * A stream whose pricing consent was withdrawn within a score's window: its readings from before
 * then still count in the score, those after do not (#21: scores that depended on it say so).
 */
export const ConsentNote = Type.Object({
  stream: Type.String(),
  withdrawnAt: Type.String({ description: 'ISO 8601' }),
  grantedAgainAt: Type.Optional(Type.String({ description: 'When pricing was granted again, if it was (ISO 8601)' })),
  text: Type.String(),
}, { additionalProperties: false })
export type ConsentNote = Static<typeof ConsentNote>

export interface ConsentStore {
  /** Whether the policy's stream may be stored: some purpose is granted. Ingest asks for every message. */
  stored(policyId: string, stream: string): boolean
  /** Whether the policy's stream is granted for `purpose`. */
  allows(policyId: string, stream: string, purpose: Purpose): boolean
  /** The policy's consent, or undefined for a policy the registry does not know. */
  of(policyId: string): PolicyConsent | undefined
  /**
   * Records a change and puts it in effect, in that order; throws UBIQ_CONSENT_INVALID for a change
   * that is not valid (nothing recorded). Undefined: a device's change no newer than the last one
   * taken from it (by seq: a redelivery, or an older decision arriving after a newer one), dropped.
   */
  change(policyId: string, request: ConsentRequest, by: ConsentActor, device?: { seq: number; ts: number }): RecordedChange | undefined
  /** Forgets the policy and its devices (an erasure, #21 item 5): as if it had never enrolled. */
  forget(policyId: string, deviceIds: readonly string[]): void
  /** The policy's streams of `subject` whose pricing consent was withdrawn after `fromMs`. */
  notes(policyId: string, subject: Subject, fromMs: number): ConsentNote[]
}

export interface ConsentStoreOptions {
  registry: DeviceRegistry
  /** Changes recorded before, oldest first (the audit chain's consent records). */
  history?: Iterable<RecordedChange>
  /** Writes a change to the record and returns its hash; a throw leaves consent unchanged. */
  record(change: ConsentChange): string
  /** Told of every change once it is in effect (ubiq tells the policy's devices). */
  onChange?(change: RecordedChange, consent: PolicyConsent): void
  now?: () => number
}

/** The consent store: in memory, rebuilt from the record of changes. */
export function consentStore(opts: ConsentStoreOptions): ConsentStore {
  const now = opts.now ?? Date.now
  /** Per policy, the streams its devices are registered for: the consent given at enrolment, for pricing. */
  const enrolled = new Map<string, Set<string>>()
  for (const d of opts.registry.values()) {
    if (!enrolled.has(d.policyId)) enrolled.set(d.policyId, new Set())
    for (const k of d.kinds) enrolled.get(d.policyId)!.add(k)
  }
  /** Per policy, stream and purpose: what was recorded last. */
  const decisions = new Map<string, Map<string, Map<Purpose, boolean>>>()
  const changes = new Map<string, RecordedChange[]>()
  const deviceSeqs = new Map<string, number>()

  const allows = (policyId: string, stream: string, purpose: Purpose) =>
    decisions.get(policyId)?.get(stream)?.get(purpose) ?? (purpose === 'pricing' && enrolled.get(policyId)?.has(stream) === true)

  const apply = (c: RecordedChange) => {
    if (!decisions.has(c.policyId)) decisions.set(c.policyId, new Map())
    const streams = decisions.get(c.policyId)!
    for (const s of c.streams) {
      if (!streams.has(s)) streams.set(s, new Map())
      for (const p of c.purposes) streams.get(s)!.set(p, c.granted)
    }
    if (!changes.has(c.policyId)) changes.set(c.policyId, [])
    changes.get(c.policyId)!.push(c)
    if (c.by.role === 'device' && c.seq !== undefined) deviceSeqs.set(c.by.deviceId, c.seq)
  }
  for (const c of opts.history ?? []) apply(c)

  const of = (policyId: string): PolicyConsent | undefined => {
    const kinds = enrolled.get(policyId)
    if (!kinds) return undefined
    const named = new Set([...kinds, ...(decisions.get(policyId)?.keys() ?? [])])
    return {
      policyId,
      streams: sensors.filter((s) => named.has(s.kind)).map((s) => ({
        stream: s.kind, subject: s.subject, category: consentCategory(s), purposes: PURPOSES.filter((p) => allows(policyId, s.kind, p)),
      })),
      changes: [...(changes.get(policyId) ?? [])],
    }
  }

  /** What is wrong with a change, in words; undefined when nothing is. */
  const problem = (policyId: string, request: ConsentRequest, by: ConsentActor): string | undefined => {
    const kinds = enrolled.get(policyId)
    if (!kinds) return `no policy ${policyId} in the device registry`
    for (const [i, s] of request.streams.entries()) {
      if (!sensorsByKind.has(s)) return `/streams/${i}: no stream "${s}" in contract v1`
      if (!kinds.has(s)) return `/streams/${i}: no device of policy ${policyId} is registered for stream "${s}"`
      if (by.role === 'device' && !opts.registry.get(by.deviceId)?.kinds.includes(s)) {
        return `/streams/${i}: device ${by.deviceId} is not registered for stream "${s}": a device changes consent for its own streams (the REST API for the others)`
      }
    }
    for (const [i, p] of request.purposes.entries()) if (!(PURPOSES as readonly string[]).includes(p)) return `/purposes/${i}: no purpose "${p}" (purposes: ${PURPOSES.join(', ')})`
    if (request.granted) {
      const byCategory = new Map<ConsentCategory, string[]>()
      for (const s of request.streams) {
        const c = consentCategory(sensorsByKind.get(s)!)
        byCategory.set(c, [...(byCategory.get(c) ?? []), s])
      }
      if (byCategory.size > 1) {
        return `/streams: location and health data are consented to separately: grant ${[...byCategory].map(([c, s]) => `${c} (${s.join(', ')})`).join(', ')} in changes of their own`
      }
    }
    return undefined
  }

  return {
    stored: (policyId, stream) => PURPOSES.some((p) => allows(policyId, stream, p)),
    allows,
    of,
    change(policyId, request, by, device) {
      const wrong = problem(policyId, request, by)
      if (wrong) throw new codes.UBIQ_CONSENT_INVALID(wrong)
      if (by.role === 'device' && device && device.seq <= (deviceSeqs.get(by.deviceId) ?? -1)) return undefined
      const change: ConsentChange = {
        policyId, streams: [...request.streams], purposes: [...request.purposes] as Purpose[], granted: request.granted, by, at: new Date(now()).toISOString(),
        ...(device ? { seq: device.seq, deviceTs: device.ts } : {}),
      }
      // On the record before it takes effect: a change that cannot be recorded does not happen.
      const recorded = { ...change, hash: opts.record(change) }
      apply(recorded)
      opts.onChange?.(recorded, of(policyId)!)
      return recorded
    },
    forget(policyId, deviceIds) {
      for (const m of [enrolled, decisions, changes]) m.delete(policyId)
      for (const d of deviceIds) deviceSeqs.delete(d)
    },
    notes(policyId, subject, fromMs) {
      // The policy's pricing consent replayed from enrolment through its changes.
      const pricing = new Map<string, boolean>()
      const notes: Omit<ConsentNote, 'text'>[] = []
      const open = new Map<string, Omit<ConsentNote, 'text'>>()
      for (const c of changes.get(policyId) ?? []) {
        if (!c.purposes.includes('pricing')) continue
        for (const s of c.streams.filter((k) => sensorsByKind.get(k)?.subject === subject)) {
          const before = pricing.get(s) ?? enrolled.get(policyId)?.has(s) === true
          pricing.set(s, c.granted)
          if (before && !c.granted && Date.parse(c.at) > fromMs) {
            open.set(s, { stream: s, withdrawnAt: c.at })
            notes.push(open.get(s)!)
          } else if (!before && c.granted && open.has(s)) {
            open.get(s)!.grantedAgainAt = c.at
            open.delete(s)
          }
        }
      }
      return notes.map((n) => ({
        ...n,
        text: `${n.stream}: consent for pricing withdrawn at ${n.withdrawnAt}; its readings from before then still count in this score, none since${n.grantedAgainAt ? ` until it was granted again at ${n.grantedAgainAt}` : ''}`,
      }))
    },
  }
}

/**
 * What a device is told on `ubiq/v1/consent/{deviceId}` (retained) after a change to its policy's
 * consent: the change (with the device's seq when it sent it: its acknowledgement), its audit hash,
 * and the consent of the device's own streams as it now stands.
 */
export function consentNotice(change: RecordedChange, consent: PolicyConsent, device: { deviceId: string; kinds: readonly string[] }) {
  return {
    at: change.at,
    hash: change.hash,
    by: change.by.role,
    ...(change.by.role === 'device' && change.by.deviceId === device.deviceId ? { seq: change.seq } : {}),
    change: { streams: change.streams, purposes: change.purposes, granted: change.granted },
    consents: Object.fromEntries(consent.streams.filter((s) => device.kinds.includes(s.stream)).map((s) => [s.stream, s.purposes])),
  }
}

/**
 * Whether the policy has granted the reading's stream for `purpose`, as it stands now. The one rule
 * for what scoring sees (`pricing`): the live readings, and those it reads back from InfluxDB to
 * rebuild a policy's state, which may have been stored for another purpose after pricing was withdrawn.
 */
export const consentedFor = (store: Pick<ConsentStore, 'allows'>, purpose: Purpose) =>
  (r: Reading): boolean => store.allows(r.policyId, r.kind, purpose)
