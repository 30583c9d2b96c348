/**
 * Who may see what on the dashboards server (issue #7): signed, expiring bearer tokens.
 * A policyholder's token names one policy and opens only that policy's feed and routes; an
 * analyst's opens every policy and the portfolio. Tokens are HS256 JWTs (fast-jwt) signed with
 * the service's secret, so `ubiq token` and `ubiq start` agree without a user database; the token
 * carries nothing but the role, the policy id and the expiry.
 */
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { createSigner, createVerifier, TokenError } from 'fast-jwt'
import { ID_PATTERN } from '../ingest/index.ts'

export type Principal = { role: 'policyholder'; policyId: string } | { role: 'analyst' }

/** Why a request or socket was turned away: HTTP status and websocket close code go with it. */
export class AuthError extends Error {
  readonly status: 401 | 403
  readonly closeCode: 4401 | 4403
  constructor(readonly reason: 'missing_token' | 'invalid_token' | 'expired_token' | 'forbidden', message: string) {
    super(message)
    this.name = 'AuthError'
    this.status = reason === 'forbidden' ? 403 : 401
    this.closeCode = reason === 'forbidden' ? 4403 : 4401
  }
}

export interface TokenAuthority {
  /** A token for `who`, valid for `ttlMs` from now. */
  issue(who: Principal, ttlMs: number): string
  /** Who the token is for, and until when (ms); throws an AuthError when it is missing, forged or expired. */
  verify(token: string | undefined): Principal & { expiresAt: number }
}

const ISSUER = 'ubiq'

export function tokenAuthority(secret: string): TokenAuthority {
  if (Buffer.byteLength(secret) < 32) throw new Error('the token secret must be at least 32 bytes')
  const verifier = createVerifier({ key: secret, algorithms: ['HS256'], allowedIss: ISSUER })
  return {
    issue(who, ttlMs) {
      const sign = createSigner({ key: secret, algorithm: 'HS256', iss: ISSUER, expiresIn: ttlMs })
      return sign(who.role === 'analyst' ? { role: 'analyst' } : { role: 'policyholder', sub: who.policyId })
    },
    verify(token) {
      if (!token) throw new AuthError('missing_token', 'a token is needed (ubiq token issues one)')
      let claims: { role?: unknown; sub?: unknown; exp?: unknown }
      try {
        claims = verifier(token)
      } catch (err) {
        if (err instanceof TokenError && err.code === TokenError.codes.expired) throw new AuthError('expired_token', 'the token has expired')
        throw new AuthError('invalid_token', 'the token is not valid')
      }
      const expiresAt = typeof claims.exp === 'number' ? claims.exp * 1000 : NaN
      if (!Number.isFinite(expiresAt)) throw new AuthError('invalid_token', 'the token has no expiry')
      if (claims.role === 'analyst') return { role: 'analyst', expiresAt }
      if (claims.role === 'policyholder' && typeof claims.sub === 'string' && new RegExp(ID_PATTERN).test(claims.sub)) return { role: 'policyholder', policyId: claims.sub, expiresAt }
      throw new AuthError('invalid_token', 'the token names no role ubiq knows')
    },
  }
}

/** Whether `who` may see policy `policyId`; throws the AuthError to answer with when not. */
export function mustSee(who: Principal, policyId: string): void {
  if (who.role === 'policyholder' && who.policyId !== policyId) throw new AuthError('forbidden', 'this token is for another policy')
}

/** Whether `who` is an analyst; throws the AuthError to answer with when not. */
export function mustBeAnalyst(who: Principal): void {
  if (who.role !== 'analyst') throw new AuthError('forbidden', 'an analyst token is needed')
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
