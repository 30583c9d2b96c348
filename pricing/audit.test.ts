import t from 'tap'
import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { from, lastValueFrom, map, tap, toArray } from 'rxjs'
import { adjustmentHash, auditRecords, examplePlans, loadPlans, openAuditLog, openPolicyKeys, priceScores, pricingStateFromAudit, reveal, verifyAudit, type ConsentRecord, type ErasureRecord, type PremiumAdjustment, type RatingPlan } from './index.ts'
import type { Score } from '../scoring/index.ts'

/** The example plan, in effect from 1970 so that scores at small timestamps are priced. */
const plans: RatingPlan[] = [{ ...loadPlans(examplePlans)[0]!, effectiveFrom: '1970-01-01T00:00:00Z' }]

const score = (policyId: string, value: number, to: number): Score => ({
  policyId, subject: 'driving', value, model: 'driving-frequency@1', reasons: [], window: { from: 0, to },
  exposure: { days: 30, distance_km: 1000 }, features: {},
})

/** Prices `scores` into the audit log at `path` as the service does: the chain continues from the log. */
async function price(path: string, scores: Score[]): Promise<PremiumAdjustment[]> {
  const log = openAuditLog(path)
  try {
    return await lastValueFrom(from(scores).pipe(priceScores(plans, pricingStateFromAudit(auditRecords(path))), tap((p) => log.append(p)), toArray()))
  } finally {
    log.close()
  }
}

/** A fresh log of five real adjustments: its path, its lines and the adjustments. */
async function fiveRecords() {
  const path = join(mkdtempSync(join(tmpdir(), 'ubiq-audit-')), 'audit.jsonl')
  const out = await price(path, [score('a', 40, 1), score('b', 60, 1), score('a', 45, 2), score('c', 52, 2), score('b', 58, 3)])
  const lines = readFileSync(path, 'utf8').split('\n').slice(0, -1)
  return { path, out, lines }
}

const rewrite = (path: string, lines: string[]) => writeFileSync(path, lines.map((l) => `${l}\n`).join(''))

t.test('a chain of real adjustments verifies; each line is the whole adjustment', async (t) => {
  const { path, out, lines } = await fiveRecords()
  t.equal(out.length, 5)
  t.same(lines.map((l) => JSON.parse(l)), out, 'one adjustment a line, in order')
  t.same(verifyAudit(path), { ok: true, records: 5, lastHash: out[4]!.hash })
})

t.test('verify names the first bad record and what is wrong with it', async (t) => {
  const cases: [string, (lines: string[]) => string[], { line: number; problem: string; reason: RegExp }][] = [
    ['a field of a middle record altered', (l) => l.map((x, i) => (i === 2 ? x.replace(/"factor":[\d.]+/, '"factor":0.5') : x)),
      { line: 3, problem: 'altered', reason: /^altered: its hash does not match its contents$/ }],
    ['a middle record removed', (l) => l.filter((_, i) => i !== 2),
      { line: 3, problem: 'removed or reordered', reason: /its prevHash is not the hash of line 2/ }],
    ['the first record removed', (l) => l.slice(1),
      { line: 1, problem: 'removed or reordered', reason: /its prevHash should be empty/ }],
    ['two records swapped', (l) => [l[0]!, l[2]!, l[1]!, l[3]!, l[4]!],
      { line: 2, problem: 'removed or reordered', reason: /its prevHash is not the hash of line 1/ }],
    ['a line that is not JSON', (l) => l.map((x, i) => (i === 1 ? '{"policyId":' : x)),
      { line: 2, problem: 'unparseable', reason: /^unparseable: not JSON/ }],
    ['a line that is not an adjustment', (l) => l.map((x, i) => (i === 1 ? '{}' : x)),
      { line: 2, problem: 'unparseable', reason: /no hash and prevHash/ }],
    // Re-hashing the altered record does not hide it: the break moves to the record after it.
    ['an altered record re-hashed', (l) => l.map((x, i) => {
      if (i !== 2) return x
      const { hash: _, ...body } = { ...(JSON.parse(x) as PremiumAdjustment), factor: 0.5 }
      return JSON.stringify({ ...body, hash: adjustmentHash(body) })
    }), { line: 4, problem: 'removed or reordered', reason: /its prevHash is not the hash of line 3/ }],
  ]
  for (const [name, tamper, want] of cases) {
    const { path, lines } = await fiveRecords()
    rewrite(path, tamper(lines))
    t.match(verifyAudit(path), { ok: false, ...want }, name)
  }
})

t.test('verify detects a last line cut short', async (t) => {
  const { path, lines } = await fiveRecords()
  writeFileSync(path, `${lines.slice(0, 4).map((l) => `${l}\n`).join('')}${lines[4]!.slice(0, 40)}`)
  t.match(verifyAudit(path), { ok: false, line: 5, problem: 'truncated', reason: /the last line has no newline/ })
  writeFileSync(path, `${lines.map((l) => `${l}\n`).join('')}`.slice(0, -1))
  t.match(verifyAudit(path), { ok: false, line: 5, problem: 'truncated' }, 'even when only its newline is missing')
})

t.test('the chain continues across a restart, and the log holds every adjustment once', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'ubiq-audit-')), 'audit.jsonl')
  const first = await price(path, [score('a', 40, 1), score('b', 60, 1)])
  const second = await price(path, [score('a', 45, 2), score('b', 58, 2)])
  t.equal(second[0]!.prevHash, first[1]!.hash, 'the first adjustment after the restart links to the last before it')
  t.same(verifyAudit(path), { ok: true, records: 4, lastHash: second[1]!.hash })
  t.same(await price(path, [score('a', 45, 2), score('b', 50, 1)]), [], 'after the restart, scores already priced are not priced again')
  t.equal(second[0]!.previousFactor, first[0]!.factor, 'and a policy goes on from the factor it had')
  const fresh = await lastValueFrom(from([score('a', 45, 2)]).pipe(priceScores(plans), toArray()))
  t.equal(fresh[0]!.prevHash, '', 'without a log, a chain starts empty')
})

t.test('opening drops a partial last line (a write cut short, never published) and goes on', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'ubiq-audit-')), 'audit.jsonl')
  const first = await price(path, [score('a', 40, 1)])
  appendFileSync(path, '{"policyId":"a","fac')
  t.match(verifyAudit(path), { ok: false, line: 2, problem: 'truncated' })
  const log = openAuditLog(path)
  t.equal(log.dropped, 20)
  t.equal(log.lastHash, first[0]!.hash)
  log.close()
  await price(path, [score('a', 45, 2)])
  t.match(verifyAudit(path), { ok: true, records: 2 })
})

t.test('records longer than a read chunk open and verify', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'ubiq-audit-')), 'audit.jsonl')
  // 400 KiB of reasons a record: longer than the 64 KiB chunks the last record is read back in,
  // and three of them cross the 1 MiB chunks that verify reads.
  const long = (s: Score): Score => ({ ...s, reasons: [{ code: 'x', text: 'x'.repeat(400 * 1024), label: 'x'.repeat(400 * 1024), unit: '', value: 1, baseline: 2, impact: 1 }] })
  const first = await price(path, [long(score('a', 40, 1)), long(score('b', 60, 1))])
  const second = await price(path, [long(score('a', 45, 2))])
  t.equal(second[0]!.prevHash, first[1]!.hash)
  t.same(verifyAudit(path), { ok: true, records: 3, lastHash: second[0]!.hash })
})

t.test('the log refuses what would break it', async (t) => {
  const { path, out, lines } = await fiveRecords()
  const log = openAuditLog(path)
  t.throws(() => log.append(out[2]!), { code: 'UBIQ_AUDIT_CHAIN' }, 'an adjustment that does not follow the last record')
  log.close()
  t.equal(readFileSync(path, 'utf8').split('\n').length - 1, 5, 'and it was not written')
  rewrite(path, [...lines.slice(0, 4), 'garbage'])
  t.throws(() => openAuditLog(path), { code: 'UBIQ_AUDIT_INVALID', message: /its last record is not JSON/ }, 'a log whose last record is unreadable does not open')
})

t.test('an empty log verifies, and its chain starts empty', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'ubiq-audit-')), 'sub', 'audit.jsonl')
  const log = openAuditLog(path)
  t.equal(log.lastHash, '')
  log.close()
  t.same(verifyAudit(path), { ok: true, records: 0, lastHash: '' })
})

t.test('consent changes share the chain (#21): verify covers them, premium readers skip them, pricing goes on after them', async (t) => {
  const path = join(mkdtempSync(join(tmpdir(), 'ubiq-audit-')), 'audit.jsonl')
  const first = await price(path, [score('a', 40, 1), score('b', 60, 1)])
  const log = openAuditLog(path)
  const change = { policyId: 'a', streams: ['gps'], purposes: ['pricing' as const], granted: false, by: { role: 'device' as const, deviceId: 'car-a' }, at: '2026-12-01T12:00:00.000Z', seq: 7, deviceTs: 1796126400000 }
  const consent = log.link<ConsentRecord>({ record: 'consent', ...change })
  log.close()
  t.same(consent, { record: 'consent', ...change, prevHash: first[1]!.hash, hash: consent.hash }, 'linked to the last adjustment, who, when and what in it')
  t.same(verifyAudit(path), { ok: true, records: 3, lastHash: consent.hash }, 'verify counts it')
  const state = pricingStateFromAudit(auditRecords(path))
  t.same([...state.standings.keys()], ['a/driving', 'b/driving'], 'premium readers skip it')
  t.equal(state.lastHash, consent.hash, "but the chain's end is the consent record")
  const next = await price(path, [score('a', 45, 2)])
  t.equal(next[0]!.prevHash, consent.hash, 'the next adjustment links to it')
  t.equal(next[0]!.previousFactor, first[0]!.factor, 'from where the policy stood')
  t.same(verifyAudit(path), { ok: true, records: 4, lastHash: next[0]!.hash })
  const lines = readFileSync(path, 'utf8').split('\n').slice(0, -1)
  rewrite(path, lines.map((x, i) => (i === 2 ? x.replace('"granted":false', '"granted":true') : x)))
  t.match(verifyAudit(path), { ok: false, line: 3, problem: 'altered' }, 'a consent record altered is found like any other')
})

t.test('with per-policy keys the chain holds pseudonyms; destroying a key erases the policy from it, and it still verifies (#21 item 5)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-audit-'))
  const path = join(dir, 'audit.jsonl')
  const keys = openPolicyKeys(join(dir, 'audit-keys.json'))
  const log = openAuditLog(path, keys)
  const priced = await lastValueFrom(from([score('pol-a', 40, 1), score('pol-b', 60, 1), score('pol-a', 45, 2)]).pipe(
    priceScores(plans), map(({ prevHash: _, hash: __, ...body }) => log.link<PremiumAdjustment>(body)), toArray()))
  const change = { policyId: 'pol-a', streams: ['gps'], purposes: ['pricing' as const], granted: false, by: { role: 'device' as const, deviceId: 'car-a' }, at: '2026-12-01T12:00:00.000Z', seq: 7, deviceTs: 1 }
  const consent = log.link<ConsentRecord>({ record: 'consent', ...change })
  t.same(priced.map((p) => p.policyId), ['pol-a', 'pol-b', 'pol-a'], 'what pricing publishes keeps the ids')
  t.same(consent.by, change.by)
  const text = () => readFileSync(path, 'utf8')
  t.notMatch(text(), /pol-a|pol-b|car-a/, 'the chain names no policy and no device')
  t.same([...auditRecords(path)].map((r) => r.hash), [...priced, consent].map((r) => r.hash), "each record's hash is the one published")
  const state = pricingStateFromAudit(auditRecords(path), keys)
  t.same([...state.standings.keys()].sort(), ['pol-a/driving', 'pol-b/driving'], 'pricing reads its standings back by the keys')
  t.same(reveal([...auditRecords(path)][3]!, keys), { ...consent }, "a consent change comes back whole, the device's id unsealed")

  const erasure = log.link<ErasureRecord>({ record: 'erasure', policyId: keys.pseudonym('pol-a'), devices: 1, by: { role: 'analyst', tokenId: 'jti-1' }, at: '2026-12-02T00:00:00.000Z' })
  t.ok(keys.shred('pol-a'), 'the key is destroyed')
  log.close()
  t.notMatch(readFileSync(join(dir, 'audit-keys.json'), 'utf8'), /pol-a/, 'the keys file no longer names the policy')
  t.same(verifyAudit(path), { ok: true, records: 5, lastHash: erasure.hash }, 'the chain verifies, the erasure in it')
  const again = openPolicyKeys(join(dir, 'audit-keys.json'))
  const after = pricingStateFromAudit(auditRecords(path), again)
  t.same([...after.standings.keys()], ['pol-b/driving'], 'after a restart only the other policy has a standing')
  t.equal(after.lastHash, erasure.hash, 'and the chain goes on from the erasure')
  t.same([...auditRecords(path)].map((r) => reveal(r, again)?.policyId), [undefined, 'pol-b', undefined, undefined, undefined], 'nothing reads back as the erased policy')
})
