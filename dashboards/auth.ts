/**
 * Who may see what on the dashboards server (issue #7): signed, expiring bearer tokens.
 * A policyholder's token names one policy and opens only that policy's feed and routes; an
 * analyst's opens every policy and the portfolio. Tokens are HS256 JWTs (fast-jwt) signed with
 * the service's secret, so `ubiq token` and `ubiq start` agree without a user database; the token
 * carries nothing but the role, the policy id, an id, its issuer, when it was issued and the expiry.
 *
 * Tokens can be revoked (#21 item 7): every token of a policy (or every analyst token) issued until
 * a moment, or one token by its id (`jti`). The revocations are kept in a file private to ubiq's
 * user, so they hold across restarts. A token without an issuer, or issued in the future, is refused.
 */
import { createHmac, randomBytes, randomUUID } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { createSigner, createVerifier, TokenError } from 'fast-jwt'
import { codes, ID_PATTERN, writePrivate } from '../ingest/index.ts'

export type Principal = { role: 'policyholder'; policyId: string } | { role: 'analyst' }

/** A token's principal as verified: until when it holds, and its id (tokens issued before #21 have none). */
export type Verified = Principal & { expiresAt: number; tokenId?: string }

/** What to revoke: every token of a policy, or every analyst token, issued until now; or one token by its id. */
export type Revocation = { policy: string } | { analysts: true } | { tokenId: string }

export interface TokenAuthority {
  /** A token for `who`, valid for `ttlMs` from now. */
  issue(who: Principal, ttlMs: number): string
  /** Who the token is for, until when (ms) and its id; throws UBIQ_AUTH_… when it is missing, forged, expired or revoked. */
  verify(token: string | undefined): Verified
  /** Revokes tokens from now on, and keeps the revocation (in the revocations file, when there is one). */
  revoke(what: Revocation): { revokedAt: string }
  /**
   * Reads the revocations file again if another process (the main one and the dashboards process
   * share it, #25) has written it since; whether it had. Throws UBIQ_REVOCATIONS_INVALID as at start.
   */
  reread(): boolean
}

export interface TokenOptions {
  /** Where revocations are kept (0600); none: in memory only (the `ubiq token` command, which only issues). */
  revocationsFile?: string
  /** How far ahead of this clock a token's issue time may be, ms (default 60 s): the issuer's clock may be a little ahead. */
  maxClockSkewMs?: number
  now?: () => number
}

const ISSUER = 'ubiq'

/**
 * Revocations as kept: per policy or for analysts (`analysts`), the moment until which tokens
 * issued are revoked; and token ids. A policy is named by an HMAC of its id under the token secret
 * (`policy#…`), never by its id: an erased policy's tokens stay revoked and the file does not name
 * it (#21 item 5). `policy:ID`, as kept before, is still honoured, and replaced at the policy's next revocation.
 */
interface Revoked {
  until: Record<string, number>
  tokens: Record<string, number>
}

export function tokenAuthority(secret: string, opts: TokenOptions = {}): TokenAuthority {
  if (Buffer.byteLength(secret) < 32) throw new Error('the token secret must be at least 32 bytes')
  const now = opts.now ?? Date.now
  const maxSkewMs = opts.maxClockSkewMs ?? 60_000
  const verifier = createVerifier({ key: secret, algorithms: ['HS256'], allowedIss: ISSUER })
  let revoked = readRevocations(opts.revocationsFile)
  let version = versionOf(opts.revocationsFile)
  const reread = () => {
    const now = versionOf(opts.revocationsFile)
    if (now === version) return false
    revoked = readRevocations(opts.revocationsFile)
    version = now
    return true
  }
  const policyKey = (policyId: string) => `policy#${createHmac('sha256', secret).update(policyId).digest('hex')}`
  const until = (p: Principal) => (p.role === 'analyst' ? revoked.until.analysts : Math.max(revoked.until[policyKey(p.policyId)] ?? -Infinity, revoked.until[`policy:${p.policyId}`] ?? -Infinity)) ?? -Infinity
  return {
    issue(who, ttlMs) {
      const sign = createSigner({ key: secret, algorithm: 'HS256', iss: ISSUER, expiresIn: ttlMs, jti: randomUUID(), clockTimestamp: now() })
      return sign(who.role === 'analyst' ? { role: 'analyst' } : { role: 'policyholder', sub: who.policyId })
    },
    verify(token) {
      if (!token) throw new codes.UBIQ_AUTH_MISSING_TOKEN()
      let claims: { role?: unknown; sub?: unknown; exp?: unknown; iat?: unknown; iss?: unknown; jti?: unknown }
      try {
        claims = verifier(token)
      } catch (err) {
        if (err instanceof TokenError && err.code === TokenError.codes.expired) throw new codes.UBIQ_AUTH_EXPIRED_TOKEN()
        throw new codes.UBIQ_AUTH_INVALID_TOKEN('the token is not valid')
      }
      const expiresAt = typeof claims.exp === 'number' ? claims.exp * 1000 : NaN
      if (!Number.isFinite(expiresAt)) throw new codes.UBIQ_AUTH_INVALID_TOKEN('the token has no expiry')
      // fast-jwt checks the issuer only when the token names one.
      if (claims.iss !== ISSUER) throw new codes.UBIQ_AUTH_INVALID_TOKEN('the token names no issuer')
      if (typeof claims.iat !== 'number') throw new codes.UBIQ_AUTH_INVALID_TOKEN('the token has no issue time (iat)')
      const issuedAt = claims.iat * 1000
      if (issuedAt > now() + maxSkewMs) throw new codes.UBIQ_AUTH_INVALID_TOKEN('the token was issued in the future (iat): check the issuer\'s clock')
      const tokenId = typeof claims.jti === 'string' ? claims.jti : undefined
      let who: Principal
      if (claims.role === 'analyst') who = { role: 'analyst' }
      else if (claims.role === 'policyholder' && typeof claims.sub === 'string' && new RegExp(ID_PATTERN).test(claims.sub)) who = { role: 'policyholder', policyId: claims.sub }
      else throw new codes.UBIQ_AUTH_INVALID_TOKEN('the token names no role ubiq knows')
      // iat has whole seconds: a token issued in the second of a revocation is revoked with it.
      if ((tokenId !== undefined && tokenId in revoked.tokens) || issuedAt <= until(who)) throw new codes.UBIQ_AUTH_REVOKED_TOKEN()
      return { ...who, expiresAt, ...(tokenId ? { tokenId } : {}) }
    },
    reread,
    revoke(what) {
      // What the other process revoked stays revoked: this write starts from the file as it is.
      reread()
      const at = now()
      if ('tokenId' in what) revoked.tokens[what.tokenId] = at
      else if ('policy' in what) {
        delete revoked.until[`policy:${what.policy}`]
        revoked.until[policyKey(what.policy)] = at
      } else revoked.until.analysts = at
      if (opts.revocationsFile) {
        writePrivate(opts.revocationsFile, JSON.stringify(revoked))
        version = versionOf(opts.revocationsFile)
      }
      return { revokedAt: new Date(at).toISOString() }
    },
  }
}

/** Which version of the file is there: it is replaced whole (writePrivate renames), so its inode changes. */
const versionOf = (file: string | undefined) => {
  const st = file ? statSync(file, { throwIfNoEntry: false }) : undefined
  return st ? `${st.ino}/${st.mtimeMs}/${st.size}` : ''
}

/** The revocations kept in `file` (none yet: empty). A file that cannot be read is a startup error: tokens revoked must stay so. */
function readRevocations(file: string | undefined): Revoked {
  if (!file || !existsSync(file)) return { until: {}, tokens: {} }
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as Revoked
    if (typeof r.until !== 'object' || typeof r.tokens !== 'object' || !r.until || !r.tokens) throw new Error('not { until, tokens }')
    return r
  } catch (err) {
    throw new codes.UBIQ_REVOCATIONS_INVALID(file, (err as Error).message)
  }
}

/** Whether `who` may see policy `policyId`; throws UBIQ_AUTH_FORBIDDEN when not. */
export function mustSee(who: Principal, policyId: string): void {
  if (who.role === 'policyholder' && who.policyId !== policyId) throw new codes.UBIQ_AUTH_FORBIDDEN('this token is for another policy')
}

/** Whether `who` is an analyst; throws UBIQ_AUTH_FORBIDDEN when not. */
export function mustBeAnalyst(who: Principal): void {
  if (who.role !== 'analyst') throw new codes.UBIQ_AUTH_FORBIDDEN('an analyst token is needed')
}

/**
 * The secret: TOKEN_SECRET when set, else the one in `file`, made once with 32 random bytes
 * (readable by its owner only), so a single machine needs no setup.
 */
export function tokenSecret(configured: string | undefined, file: string): string {
  if (configured) return configured
  if (!existsSync(file)) {
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' })
  }
  return readFileSync(file, 'utf8').trim()
}
