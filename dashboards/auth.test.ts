/**
 * Tokens (#21 item 7): a token without an issuer, or issued in the future, is refused; tokens are
 * revoked per policy, for analysts, or one by one, and stay revoked across restarts.
 */
import t from 'tap'
import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSigner } from 'fast-jwt'
import { tokenAuthority } from './index.ts'

const SECRET = 'a test secret of at least thirty-two bytes'
const sign = (claims: Record<string, unknown>, opts: { iss?: string; noTimestamp?: boolean } = { iss: 'ubiq' }) =>
  createSigner({ key: SECRET, algorithm: 'HS256', expiresIn: 3600_000, ...opts })(claims)
const inSeconds = (ms: number) => Math.floor(ms / 1000)

t.test('a token without an issuer, without an issue time, or issued in the future is refused, each with its reason', async (t) => {
  const auth = tokenAuthority(SECRET)
  const now = Date.now()
  const cases: [string, string, RegExp][] = [
    ['no issuer', sign({ role: 'analyst' }, {}), /names no issuer/],
    ['another issuer', sign({ role: 'analyst' }, { iss: 'elsewhere' }), /not valid/],
    ['no issue time', sign({ role: 'analyst' }, { iss: 'ubiq', noTimestamp: true }), /no issue time \(iat\)/],
    ['issued an hour ahead', sign({ role: 'analyst', iat: inSeconds(now) + 3600 }), /issued in the future \(iat\)/],
    ['issued two minutes ahead', sign({ role: 'policyholder', sub: 'pol-1', iat: inSeconds(now) + 120 }), /issued in the future/],
  ]
  for (const [name, token, message] of cases) t.throws(() => auth.verify(token), { code: 'UBIQ_AUTH_INVALID_TOKEN', rest: { status: 401, error: 'invalid_token' }, message }, name)
  t.match(auth.verify(sign({ role: 'analyst', iat: inSeconds(now) + 30 })), { role: 'analyst' }, 'a clock 30 s ahead is within the skew allowed')
})

t.test('tokens carry an id and their issue time', async (t) => {
  const auth = tokenAuthority(SECRET)
  const a = auth.verify(auth.issue({ role: 'policyholder', policyId: 'pol-1' }, 60_000))
  const b = auth.verify(auth.issue({ role: 'policyholder', policyId: 'pol-1' }, 60_000))
  t.match(a, { role: 'policyholder', policyId: 'pol-1', tokenId: /^[0-9a-f-]{36}$/ })
  t.not(a.tokenId, b.tokenId, 'one id a token')
})

t.test('revoked tokens are refused, and stay revoked after a restart; the file is private', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'ubiq-tokens-')), 'data', 'token-revocations.json')
  let clock = Date.now() // fast-jwt checks expiry by the real clock
  const authority = () => tokenAuthority(SECRET, { revocationsFile: file, now: () => clock })
  const auth = authority()
  const p1 = auth.issue({ role: 'policyholder', policyId: 'pol-1' }, 3600_000)
  const p1b = auth.issue({ role: 'policyholder', policyId: 'pol-1' }, 3600_000)
  const p2 = auth.issue({ role: 'policyholder', policyId: 'pol-2' }, 3600_000)
  const analyst = auth.issue({ role: 'analyst' }, 3600_000)
  const other = auth.issue({ role: 'analyst' }, 3600_000)
  clock += 1500
  t.same(auth.revoke({ policy: 'pol-1' }), { revokedAt: new Date(clock).toISOString() })
  auth.revoke({ tokenId: auth.verify(analyst).tokenId! })
  const revoked = { code: 'UBIQ_AUTH_REVOKED_TOKEN', rest: { status: 401, error: 'revoked_token' }, message: /has been revoked/ }
  t.throws(() => auth.verify(p1), revoked, "a policy's token issued before the revocation")
  t.throws(() => auth.verify(p1b), revoked, 'every one of them')
  t.throws(() => auth.verify(analyst), revoked, 'a token revoked by id')
  t.match(auth.verify(p2), { policyId: 'pol-2' }, "another policy's token holds")
  t.match(auth.verify(other), { role: 'analyst' }, 'another analyst token holds')
  clock += 1000
  const after = auth.issue({ role: 'policyholder', policyId: 'pol-1' }, 3600_000)
  t.match(auth.verify(after), { policyId: 'pol-1' }, 'a token issued after the revocation holds')
  t.equal(statSync(file).mode & 0o777, 0o600, 'the revocations file is readable by its owner only')

  const restarted = authority()
  t.throws(() => restarted.verify(p1), revoked, 'after a restart, still revoked')
  t.throws(() => restarted.verify(analyst), revoked)
  t.match(restarted.verify(after), { policyId: 'pol-1' })
  restarted.revoke({ analysts: true })
  t.throws(() => restarted.verify(other), revoked, 'every analyst token issued until now')
  t.match(restarted.verify(p2), { policyId: 'pol-2' }, 'policyholders\' tokens are not analysts\'')
  t.notMatch(readFileSync(file, 'utf8'), /pol-1/, 'the file names no policy: an erased one\'s tokens stay revoked without it (#21 item 5)')

  // A file kept before names a policy by its id (`policy:ID`): still honoured, replaced at its next revocation.
  const kept = JSON.parse(readFileSync(file, 'utf8')) as { until: Record<string, number> }
  writeFileSync(file, JSON.stringify({ ...kept, until: { ...kept.until, 'policy:pol-2': clock } }))
  const legacy = authority()
  t.throws(() => legacy.verify(p2), revoked, 'a revocation kept by id')
  legacy.revoke({ policy: 'pol-2' })
  t.notMatch(readFileSync(file, 'utf8'), /pol-2/, 'and no longer by id once revoked again')
  t.throws(() => authority().verify(p2), revoked)
})
