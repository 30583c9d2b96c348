/**
 * The audit log of premium adjustments (#6), consent changes, privacy pauses and erasures (#21), commands to devices, household premiums and claims (#24): append-only JSON lines, one
 * whole record a line, each linked to the one before by its `prevHash`. Altering a record breaks its own hash; removing
 * or reordering records breaks the next record's `prevHash`. `verifyAudit` names the first record
 * that does either.
 *
 * There is no sequence number: a record's place is its line, and the chain already orders the
 * records. Like any hash chain without an outside anchor, it cannot show that records were cut
 * from the end, or that everything from some record on was rewritten and re-hashed; the last hash
 * is therefore also published with each premium (MQTT, InfluxDB) to compare against.
 */
import { closeSync, existsSync, fchmodSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'
import { codes, type CommandChange, type ConsentChange, type PrivacyChange } from '../ingest/device-contract.ts'
import { adjustmentHash, type PremiumAdjustment } from './pricing.ts'
import type { HouseholdPremium } from './household.ts'
import { pseudonymise, type PolicyKeys } from './pseudonyms.ts'
import type { ClaimChange } from './claims.ts'

/** A consent change (ingest/consent.ts) in the chain: who, when, what (#21). */
export type ConsentRecord = ConsentChange & { record: 'consent'; prevHash: string; hash: string }

/** A pause of privacy mode, or its early end (ingest/privacy.ts), in the chain: who, when, what, which window (#21). */
export type PrivacyRecord = PrivacyChange & { record: 'privacy'; prevHash: string; hash: string }

/** A command to a device, its acknowledgement or its confirmation by the device's report (ingest/commands.ts) in the chain (#24). */
export type CommandRecord = CommandChange & { record: 'command'; prevHash: string; hash: string }

/** A policy's household premium (#24) in the chain, after the adjustment that changed it: its covers' premiums and the plan's bundle rule on their total. */
export type HouseholdRecord = HouseholdPremium & { record: 'household'; prevHash: string; hash: string }
/** A claim's step (claims.ts): opened, delivered to the claims system, or failed (#24). */
export type ClaimRecord = ClaimChange & { record: 'claim'; prevHash: string; hash: string }

/**
 * A policy's erasure (#21 item 5) in the chain: when, who asked, and the policy's pseudonym as its
 * other records have it, written as its key is destroyed: accountable, and identifying no one.
 */
export interface ErasureRecord {
  record: 'erasure'
  /** The erased policy's pseudonym (pseudonyms.ts). */
  policyId: string
  /** How many devices it had. */
  devices: number
  /** Who asked: the analyst's token id. */
  by: { role: 'analyst'; tokenId?: string }
  /** When ubiq took the erasure, ISO 8601. */
  at: string
  prevHash: string
  hash: string
}

/**
 * A record of the chain: a premium adjustment (no `record` field: so were all records before #21),
 * a consent change, a privacy pause, a command, a household premium, a claim's step or an erasure. Readers of premiums skip the others.
 */
export type AuditRecord = (PremiumAdjustment & { record?: undefined }) | ConsentRecord | PrivacyRecord | CommandRecord | HouseholdRecord | ClaimRecord | ErasureRecord

/** An open audit log, for one writer. */
export interface AuditLog {
  /** The last record's hash ('' while the log is empty): the next adjustment's prevHash. */
  readonly lastHash: string
  /** Bytes of a partial last line, a write cut short by a crash, dropped on open; usually 0. */
  readonly dropped: number
  /** Appends a record that continues the chain; it is on disk (fsynced) when this returns. */
  append(record: AuditRecord): void
  /**
   * Appends `body` as the chain's next record, linked to the last one written (whoever wrote it:
   * pricing and consent share the chain), and returns it with its link and hash. With keys, the
   * record is written pseudonymised (pseudonyms.ts) and its hash is that of the record as written;
   * what is returned keeps the policy's and devices' ids, for publishing.
   */
  link<R extends AuditRecord>(body: Omit<R, 'prevHash' | 'hash'>): R
  close(): void
}

/** What `verifyAudit` found: the whole chain holds, or the first record that breaks it. */
export type AuditVerdict =
  | { ok: true; records: number; lastHash: string }
  | { ok: false; line: number; problem: AuditProblem; reason: string }

export type AuditProblem = 'altered' | 'removed or reordered' | 'unparseable' | 'truncated'

/**
 * Opens (or creates) the audit log at `path` and reads its last record, so that the chain
 * continues across restarts. A partial last line is dropped: `append` writes before an adjustment
 * is published, so a write that was cut short was never published.
 */
export function openAuditLog(path: string, keys?: PolicyKeys): AuditLog {
  // Private to ubiq's user (#20 item 10): it names every policy and its premiums.
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 })
  // 'a+': created if missing, readable for the last record, and every write goes to the end.
  const fd = openSync(path, 'a+', 0o600)
  fchmodSync(fd, 0o600) // a log written by an earlier version was readable by all
  let lastHash = ''
  let dropped = 0
  try {
    const size = fstatSync(fd).size
    let last = lastLine(fd, size)
    if (last && !last.ended) {
      ftruncateSync(fd, last.start)
      dropped = size - last.start
      last = lastLine(fd, last.start)
    }
    if (last) {
      const record = parseRecord(last.text)
      if (typeof record === 'string') throw new codes.UBIQ_AUDIT_INVALID(`audit log ${path}: its last record is ${record}; run ubiq audit verify --file ${path}`)
      lastHash = record.hash
    }
  } catch (err) {
    closeSync(fd)
    throw err
  }
  return {
    get lastHash() {
      return lastHash
    },
    dropped,
    append(record) {
      // A second chain writing into the same log would break it for good: refuse before writing.
      if (record.prevHash !== lastHash) {
        throw new codes.UBIQ_AUDIT_CHAIN(path, record.hash, lastHash || 'none')
      }
      // One write per record, so a crash can leave only the last line partial (dropped on open).
      const line = Buffer.from(`${JSON.stringify(record)}\n`)
      if (writeSync(fd, line) !== line.length) throw new codes.UBIQ_AUDIT_WRITE(path)
      // fsync every record: a published premium must be in the log even after a power cut, not
      // only a crash of the process. Adjustments are rare (one per trip or day per policy), so
      // this costs little, unlike the ingest journal's per-message appends, which are not fsynced.
      fsyncSync(fd)
      lastHash = record.hash
    },
    link<R extends AuditRecord>(body: Omit<R, 'prevHash' | 'hash'>) {
      const linked = { ...body, prevHash: lastHash } as unknown as Omit<R, 'hash'>
      const written = keys ? pseudonymise(linked as R, keys) : linked
      const hash = adjustmentHash(written)
      this.append({ ...written, hash } as R)
      return { ...linked, hash } as R
    },
    close() {
      closeSync(fd)
    },
  }
}

/**
 * Walks the audit log at `path` from the start and checks every record's hash and link. Reports
 * the first bad record by line number (from 1), or the number of records and the last hash.
 */
export function verifyAudit(path: string): AuditVerdict {
  return verifyChain(lines(path))
}

/**
 * Checks a chain's records, in order, as `verifyAudit` checks a log's lines: a file's, or a
 * worker partition's chain on JetStream (#25), each message one record.
 */
export function verifyChain(records: Iterable<{ text: string; ended: boolean }>): AuditVerdict {
  let line = 0
  let prevHash = ''
  for (const { text, ended } of records) {
    line++
    const bad = (problem: AuditProblem, why: string): AuditVerdict => ({ ok: false, line, problem, reason: `${problem}: ${why}` })
    if (!ended) return bad('truncated', 'the last line has no newline: its write was cut short')
    const record = parseRecord(text)
    if (typeof record === 'string') return bad('unparseable', record)
    const { hash, ...body } = record
    if (adjustmentHash(body) !== hash) return bad('altered', 'its hash does not match its contents')
    if (record.prevHash !== prevHash) {
      return bad('removed or reordered', line === 1 ? 'its prevHash should be empty, as the first record\'s' : `its prevHash is not the hash of line ${line - 1}`)
    }
    prevHash = hash
  }
  return { ok: true, records: line, lastHash: prevHash }
}

/**
 * The log's records, in order, for rebuilding pricing's state and consent after a restart. Check
 * the log with `verifyAudit` first; a partial last line (dropped on open) is skipped here.
 */
export function* auditRecords(path: string): Generator<AuditRecord> {
  if (!existsSync(path)) return
  let line = 0
  for (const { text, ended } of lines(path)) {
    line++
    if (!ended) return
    const record = parseRecord(text)
    if (typeof record === 'string') throw new codes.UBIQ_AUDIT_INVALID(`audit log ${path}, line ${line}: ${record}; run ubiq audit verify --file ${path}`)
    yield record
  }
}

/** A line's record, or what is wrong with it. */
function parseRecord(text: string): AuditRecord | string {
  let record: unknown
  try {
    record = JSON.parse(text)
  } catch (err) {
    return `not JSON (${(err as Error).message})`
  }
  const r = record as Partial<AuditRecord> | null
  if (typeof r?.hash !== 'string' || typeof r.prevHash !== 'string') return 'not an audit record (no hash and prevHash)'
  return r as AuditRecord
}

/** The line that ends at byte `end`, read backwards so that opening a long log stays quick. */
function lastLine(fd: number, end: number): { start: number; text: string; ended: boolean } | undefined {
  if (end === 0) return undefined
  let tail = Buffer.alloc(0)
  let pos = end
  let newline = -1
  while (pos > 0 && newline < 0) {
    const chunk = Buffer.alloc(Math.min(64 * 1024, pos))
    pos -= chunk.length
    readSync(fd, chunk, 0, chunk.length, pos)
    tail = Buffer.concat([chunk, tail])
    // The newline that ends the last line is not the one before it (a negative offset would count from the end).
    newline = tail.length < 2 ? -1 : tail.lastIndexOf(10, tail.length - 2)
  }
  const ended = tail[tail.length - 1] === 10
  return { start: pos + newline + 1, text: tail.toString('utf8', newline + 1, tail.length - (ended ? 1 : 0)), ended }
}

/** The file's lines, read in chunks (a log can outgrow memory); `ended`: a newline ends it. */
function* lines(path: string): Generator<{ text: string; ended: boolean }> {
  const fd = openSync(path, 'r')
  try {
    const chunk = Buffer.alloc(1 << 20)
    let rest = Buffer.alloc(0)
    for (let n = readSync(fd, chunk); n > 0; n = readSync(fd, chunk)) {
      // concat copies, so `rest` never points into the reused chunk.
      const buf = Buffer.concat([rest, chunk.subarray(0, n)])
      let start = 0
      for (let nl = buf.indexOf(10); nl >= 0; nl = buf.indexOf(10, start)) {
        yield { text: buf.toString('utf8', start, nl), ended: true }
        start = nl + 1
      }
      rest = buf.subarray(start)
    }
    if (rest.length > 0) yield { text: rest.toString('utf8'), ended: false }
  } finally {
    closeSync(fd)
  }
}
