/**
 * The policyholder's privacy on REST (#21): consent per stream and purpose, read and changed while
 * ubiq runs (ingest/consent.ts), privacy mode's pauses (ingest/privacy.ts), and the analyst's
 * revocation of tokens (auth.ts).
 */
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { codes, ConsentRequest, ID_PATTERN, Pause, PauseRequest, pauseWindow, PolicyConsent, RecordedChange, type ConsentStore, type PrivacyStore } from '../ingest/index.ts'
import { mustBeAnalyst, mustSee, type Revocation, type TokenAuthority, type Verified } from './auth.ts'
import { errors, strict } from './schemas.ts'
import type { App } from './tables.ts'

const Params = Type.Object({ policy: Type.String({ pattern: ID_PATTERN, description: 'policy id' }) })

/** The body of `POST /api/v1/tokens/revocations`: one of its three properties. */
const RevocationBody = Type.Object({
  policy: Type.Optional(Type.String({ pattern: ID_PATTERN, description: "every token of this policy issued until now (and in the same second: iat has whole seconds)" })),
  analysts: Type.Optional(Type.Literal(true, { description: 'every analyst token issued until now' })),
  tokenId: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: "one token, by its id (the token's jti claim)" })),
}, { additionalProperties: false, minProperties: 1, maxProperties: 1 })

/** What the routes answer (#22 item 2): the consent store's and privacy store's own schemas, and the revocation. */
const ConsentAnswer = strict({ change: RecordedChange, consent: PolicyConsent })
const ShownPause = strict({
  ...Pause.properties,
  until: Type.String({ description: 'its end, or when it was ended early (ISO 8601)' }),
  state: Type.Union([Type.Literal('scheduled'), Type.Literal('in force'), Type.Literal('over')]),
})
const PausesAnswer = strict({ policyId: Type.String(), pauses: Type.Array(ShownPause, { description: 'oldest first' }) })
const PauseAnswer = strict({ pause: ShownPause, pauses: Type.Array(ShownPause, { description: "the policy's pauses now, oldest first" }) })
const RevocationAnswer = strict({ revoked: RevocationBody, revokedAt: Type.String({ description: 'ISO 8601: tokens issued until then are revoked' }) })

/** The consent routes: a policyholder reads and changes its own policy's, an analyst any policy's. */
export function registerConsents(app: App, consents: ConsentStore, who: (req: FastifyRequest) => Verified): void {
  app.get<{ Params: Static<typeof Params> }>('/api/v1/policies/:policy/consents', {
    schema: { description: "The policy's consent per stream and purpose as it stands (`purposes`: those granted; none, and the stream is rejected with no_consent), each stream's category (location and health are consented to apart), and every change recorded: who, when, what, and its audit hash", params: Params, response: { 200: PolicyConsent, ...errors } },
  }, (req) => {
    mustSee(who(req), req.params.policy)
    const consent = consents.of(req.params.policy)
    if (!consent) throw new codes.UBIQ_UNKNOWN_POLICY(req.params.policy)
    return consent
  })
  app.post<{ Params: Static<typeof Params>; Body: ConsentRequest }>('/api/v1/policies/:policy/consents', {
    schema: {
      description: 'Grants or withdraws purposes for streams, in effect for the next message ingest takes, and recorded in the audit chain first. A grant names streams of one category (location, health or other); a withdrawal any. Answers with the change as recorded and the consent as it now stands',
      params: Params, body: ConsentRequest, response: { 200: ConsentAnswer, ...errors },
    },
  }, (req) => {
    const principal = who(req)
    mustSee(principal, req.params.policy)
    if (!consents.of(req.params.policy)) throw new codes.UBIQ_UNKNOWN_POLICY(req.params.policy)
    const change = consents.change(req.params.policy, req.body, { role: principal.role, ...(principal.tokenId ? { tokenId: principal.tokenId } : {}) })
    return { change, consent: consents.of(req.params.policy) }
  })
}

const PauseParams = Type.Object({ policy: Params.properties.policy, id: Type.String({ pattern: '^[0-9a-f]{64}$', description: "the pause's id (its audit hash)" }) })

/** A pause as the routes show it: its window as it stands (`until`: its end, or its early end) and whether it is scheduled, in force or over. */
const shown = (p: Pause, now: number) => {
  const w = pauseWindow(p)
  return { ...p, until: new Date(w.until).toISOString(), state: p.endedAt !== undefined || w.until <= now ? 'over' : w.from > now ? 'scheduled' : 'in force' }
}

/**
 * Privacy mode's routes: a policyholder pauses and ends pauses of its own policy; an analyst reads
 * any policy's (pausing is the policyholder's choice alone: the device's topic is theirs too).
 */
export function registerPrivacyMode(app: App, privacy: PrivacyStore, who: (req: FastifyRequest) => Verified): void {
  /** The policyholder of `policy`; anyone else is answered with UBIQ_AUTH_FORBIDDEN. */
  const holder = (req: FastifyRequest<{ Params: { policy: string } }>) => {
    const principal = who(req)
    mustSee(principal, req.params.policy)
    if (principal.role !== 'policyholder') throw new codes.UBIQ_AUTH_FORBIDDEN("privacy mode is the policyholder's to pause and end: an analyst token reads it")
    return { role: 'policyholder' as const, ...(principal.tokenId ? { tokenId: principal.tokenId } : {}) }
  }
  /** The policy's pauses, after `act` (a refused one throws UBIQ_PRIVACY_INVALID, a 400). */
  const answer = (policy: string, act: () => Pause | undefined) => {
    if (!privacy.of(policy)) throw new codes.UBIQ_UNKNOWN_POLICY(policy)
    const pause = act()!
    return { pause: shown(pause, Date.now()), pauses: privacy.of(policy)!.map((p) => shown(p, Date.now())) }
  }
  app.get<{ Params: Static<typeof Params> }>('/api/v1/policies/:policy/privacy', {
    schema: { description: "The policy's privacy mode pauses, oldest first: scope (location or all), window, who paused, `until` (its end, or when it was ended early) and `state` (scheduled, in force, over); `id` is the pause's audit hash", params: Params, response: { 200: PausesAnswer, ...errors } },
  }, (req) => {
    mustSee(who(req), req.params.policy)
    const pauses = privacy.of(req.params.policy)
    if (!pauses) throw new codes.UBIQ_UNKNOWN_POLICY(req.params.policy)
    return { policyId: req.params.policy, pauses: pauses.map((p) => shown(p, Date.now())) }
  })
  app.post<{ Params: Static<typeof Params>; Body: PauseRequest }>('/api/v1/policies/:policy/privacy', {
    schema: {
      description: 'Pauses location (`scope` location: positions are not stored) or all telemetry (`all`) of the policy (policyholder token), from `from` (default now) for `minutes` or to `to`: at most 24 h, starting at most 7 days ahead and not in the past; pauses do not overlap. Recorded in the audit chain first. Readings whose device time falls in the pause are rejected with privacy_mode; trips in it are priced as the rating plan says',
      params: Params, body: PauseRequest, response: { 200: PauseAnswer, ...errors },
    },
  }, (req) => {
    const by = holder(req)
    return answer(req.params.policy, () => privacy.pause(req.params.policy, req.body, by))
  })
  app.post<{ Params: Static<typeof PauseParams> }>('/api/v1/policies/:policy/privacy/:id/end', {
    schema: { description: 'Ends a pause now (policyholder token); a scheduled one never starts. Recorded in the audit chain first', params: PauseParams, response: { 200: PauseAnswer, ...errors } },
  }, (req) => {
    const by = holder(req)
    return answer(req.params.policy, () => privacy.end(req.params.policy, req.params.id, by))
  })
}

/** The analyst's revocation route; `revoked` is told after each, to close what the revoked tokens opened. */
export function registerRevocations(app: App, auth: TokenAuthority, who: (req: FastifyRequest) => Verified, revoked: () => void): void {
  app.post<{ Body: Static<typeof RevocationBody> }>('/api/v1/tokens/revocations', {
    schema: {
      description: 'Revokes tokens (analyst token): {"policy": ID} every token of a policy issued until now, {"analysts": true} every analyst token issued until now, or {"tokenId": JTI} one token. Kept across restarts; feeds opened with a revoked token are closed (4401)',
      body: RevocationBody, response: { 200: RevocationAnswer, ...errors },
    },
  }, (req) => {
    mustBeAnalyst(who(req))
    const answer = auth.revoke(req.body as Revocation)
    revoked()
    return { revoked: req.body, ...answer }
  })
}

/** What an erasure did (bin/erase.ts), as the erasure route answers it. */
export const Erasure = strict({
  policyId: Type.String(),
  pseudonym: Type.String({ description: "The policy's pseudonym in the audit chain" }),
  auditHash: Type.String({ description: "The hash of the erasure's own record in the audit chain" }),
  at: Type.String({ description: 'ISO 8601' }),
  devices: Type.Integer({ minimum: 0, description: 'The devices the policy had' }),
  removed: Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()]), { description: 'What was removed, store by store, in words or counts' }),
  kept: Type.Array(Type.String(), { description: 'What stays, and why' }),
})
export type Erasure = Static<typeof Erasure>

/** Erases a policy everywhere ubiq keeps it; undefined for a policy the device registry does not know. */
export type Erase = (policyId: string, by: { role: 'analyst'; tokenId?: string }) => Promise<Erasure | undefined>

/**
 * The analyst's erasure route (#21 item 5). The policy's tokens are revoked once its data is gone,
 * and `erased` is told, to forget the feed and close what the policy's tokens opened.
 */
export function registerErasure(app: App, erase: Erase, auth: TokenAuthority, who: (req: FastifyRequest) => Verified, erased: (policyId: string) => void): void {
  app.post<{ Params: Static<typeof Params> }>('/api/v1/policies/:policy/erasure', {
    schema: {
      description: 'Erases the policy (analyst token): its devices leave the device registry, its readings and everything derived leave InfluxDB (every retention policy), the journals, the dead-letter files and the broker\'s retained messages, its consent, its tokens are revoked; its audit records stay, pseudonymous, and its key is destroyed, so nothing in them leads back to it. The erasure is recorded in the audit chain. Answers what was removed and what stays',
      params: Params, response: { 200: Erasure, ...errors },
    },
  }, async (req) => {
    const principal = who(req)
    mustBeAnalyst(principal)
    const done = await erase(req.params.policy, { role: 'analyst', ...(principal.tokenId ? { tokenId: principal.tokenId } : {}) })
    if (!done) throw new codes.UBIQ_UNKNOWN_POLICY(req.params.policy)
    auth.revoke({ policy: req.params.policy })
    erased(req.params.policy)
    return done
  })
}
