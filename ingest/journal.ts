/**
 * The ingest journal, so that an acknowledged message is never lost.
 *
 * mqtt.js sends a message's PUBACK when `handleMessage` calls back, one message at a time
 * (DESIGN.md), so waiting for InfluxDB before each PUBACK would cap ingest at one message per
 * write. Instead each accepted reading's line is appended to a local journal segment before the
 * PUBACK, and forgotten once InfluxDB confirms the line (the client's `writeSuccess`). A segment
 * is deleted when every line in it is confirmed. After a crash, the segments left behind are
 * written again: InfluxDB identifies a point by measurement, tags and time, so a line written
 * twice is stored once. Appends are not fsynced: the journal survives the process (kill -9), not
 * the machine, like the broker's own periodic persistence.
 *
 * A line InfluxDB refuses for good is quarantined (DESIGN.md: "a refused write is quarantined,
 * never retried for ever"; issue #20): it leaves the journal, the dead-letter folder records what
 * it was and InfluxDB's reason (not its values), and a tombstone in its segment keeps a later
 * start from writing it again.
 * Before, one refused line kept its segment, and the whole backpressure budget, for good.
 */
import { appendFileSync, chmodSync, closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { lineShape } from './influx.ts'

export interface Journal {
  /** Appends lines (synchronously, in one write: they are in the file when this returns). */
  append(lines: readonly string[]): void
  /**
   * InfluxDB confirmed these lines; returns how long each append (a message's lines) whose last
   * line this confirmed waited, ms.
   */
  confirm(lines: readonly string[]): number[]
  /** Lines appended or recovered and not yet confirmed. */
  readonly pending: number
  /** Lines a previous run left unconfirmed, to write again; read once at open. */
  readonly recovered: readonly string[]
  /**
   * InfluxDB refused these lines for good: each is recorded with its reason in the dead-letter
   * folder (a JSON line a refusal, in a file a UTC day, private to ubiq's user) and, if the
   * journal holds it, forgotten there as if confirmed, for this run and the next. The record holds
   * what an operator diagnoses it by, never its values (influx.ts lineShape: measurement, device,
   * time, size, field names): they may be positions or health values (#21). A refused reading
   * is lost, as a message rejected at ingest is.
   */
  quarantine(refused: readonly { line: string; reason: string; kind?: string }[]): void
  /**
   * Erases every line of the policy and its devices (#21 item 5): unconfirmed ones are forgotten,
   * never written, and the segments and dead-letter files are rewritten without them (a segment
   * keeps its confirmed lines until all of them are). Returns the lines erased.
   */
  erase(policyId: string, deviceIds: readonly string[]): number
  /** Calls `fn` once `pending` is at most `lines`. */
  whenPendingAtMost(lines: number, fn: () => void): void
  close(): void
}

interface Segment {
  path: string
  pending: number
  fd?: number
}

/** One append: the lines of one message, in one segment. */
interface Entry {
  segment: number
  /** When it was appended; undefined for lines recovered from an earlier run. */
  at?: number
  /** Its lines not yet confirmed. */
  left: number
}

/** Marks a quarantined line in its segment; not line protocol (a `#` line is a comment there). */
const TOMBSTONE = '#refused '

/**
 * Opens the journal in `dir`, recovering what an earlier run left there; refused lines go to
 * `deadLetterDir` (default: `dead-letter` beside `dir`, so UBIQ_DATA_DIR/dead-letter/).
 */
export function openJournal(dir: string, segmentLines = 10_000, deadLetterDir = join(dirname(dir), 'dead-letter')): Journal {
  // Segments hold positions and heart rates: ubiq's user's only (#20 item 10), a folder made by
  // an earlier version included.
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  chmodSync(dir, 0o700)
  const segments = new Map<number, Segment>()
  // The append each unconfirmed line belongs to: one object per message, not per line, as this is
  // ingest's hottest bookkeeping. A line can be pending twice (a resend after recovery): then a list.
  const where = new Map<string, Entry | Entry[]>()
  const waiters: { lines: number; fn: () => void }[] = []
  let pending = 0
  let current: number | undefined
  let currentLines = 0

  const recovered: string[] = []
  const ids = readdirSync(dir).map((f) => /^segment-(\d+)\.lp$/.exec(f)).filter((m) => m !== null).map((m) => Number(m[1])).sort((a, b) => a - b)
  for (const id of ids) {
    const path = join(dir, `segment-${id}.lp`)
    // A crash mid-append can leave a partial last line: it was never acknowledged, so it is dropped,
    // and cut from the file, as a tombstone appended after it would complete it.
    chmodSync(path, 0o600)
    const text = readFileSync(path, 'utf8')
    const all = text.split('\n').slice(0, -1)
    const torn = text.slice(text.lastIndexOf('\n') + 1)
    if (torn) truncateSync(path, Buffer.byteLength(text) - Buffer.byteLength(torn))
    // A line quarantined in an earlier run is not written again, once per tombstone.
    const dead = new Map<string, number>()
    for (const l of all) if (l.startsWith(TOMBSTONE)) dead.set(l.slice(TOMBSTONE.length), (dead.get(l.slice(TOMBSTONE.length)) ?? 0) + 1)
    const lines = all.filter((l) => {
      if (l.startsWith(TOMBSTONE)) return false
      const n = dead.get(l)
      if (n === undefined) return true
      if (n === 1) dead.delete(l)
      else dead.set(l, n - 1)
      return false
    })
    segments.set(id, { path, pending: 0 })
    const entry: Entry = { segment: id, left: lines.length }
    for (const line of lines) track(line, entry)
    recovered.push(...lines)
    if (lines.length === 0) forget(id)
  }
  let nextId = (ids.at(-1) ?? 0) + 1

  function track(line: string, entry: Entry) {
    const known = where.get(line)
    if (known === undefined) where.set(line, entry)
    else if (Array.isArray(known)) known.push(entry)
    else where.set(line, [known, entry])
    segments.get(entry.segment)!.pending++
    pending++
  }

  /** Takes one pending copy of `line` off the journal; its entry, or undefined for a line it does not hold. */
  function release(line: string): Entry | undefined {
    const known = where.get(line)
    if (known === undefined) return undefined
    let entry: Entry
    if (!Array.isArray(known)) {
      entry = known
      where.delete(line)
    } else {
      entry = known.shift()!
      if (known.length === 1) where.set(line, known[0]!)
    }
    entry.left--
    pending--
    const s = segments.get(entry.segment)!
    // The current segment is kept while in use; any other is done when all its lines are.
    if (--s.pending === 0 && entry.segment !== current) forget(entry.segment)
    return entry
  }

  function wake() {
    for (let i = waiters.length - 1; i >= 0; i--) {
      if (pending <= waiters[i]!.lines) waiters.splice(i, 1)[0]!.fn()
    }
  }

  function forget(id: number) {
    const s = segments.get(id)!
    if (s.fd !== undefined) closeSync(s.fd)
    unlinkSync(s.path)
    segments.delete(id)
    if (current === id) current = undefined
  }

  return {
    append(lines) {
      if (lines.length === 0) return
      if (current === undefined || currentLines >= segmentLines) {
        if (current !== undefined) {
          const s = segments.get(current)!
          closeSync(s.fd!)
          s.fd = undefined
          if (s.pending === 0) forget(current)
        }
        current = nextId++
        currentLines = 0
        const path = join(dir, `segment-${current}.lp`)
        segments.set(current, { path, pending: 0, fd: openSync(path, 'a', 0o600) })
      }
      writeSync(segments.get(current)!.fd!, `${lines.join('\n')}\n`)
      currentLines += lines.length
      const entry: Entry = { segment: current, at: Date.now(), left: lines.length }
      for (const line of lines) track(line, entry)
    },
    confirm(lines) {
      const now = Date.now()
      const waited: number[] = []
      for (const line of lines) {
        const entry = release(line)
        if (entry && entry.left === 0 && entry.at !== undefined) waited.push(now - entry.at)
      }
      wake()
      return waited
    },
    quarantine(refused) {
      if (refused.length === 0) return
      mkdirSync(deadLetterDir, { recursive: true, mode: 0o700 })
      const at = new Date().toISOString()
      const record = (r: (typeof refused)[number]) => ({ at, ...(r.kind ? { kind: r.kind } : {}), ...lineShape(r.line, r.reason) })
      appendFileSync(join(deadLetterDir, `refused-${at.slice(0, 10)}.jsonl`), refused.map((r) => `${JSON.stringify(record(r))}\n`).join(''), { mode: 0o600 })
      for (const { line } of refused) {
        const entry = release(line)
        const s = entry && segments.get(entry.segment)
        // A segment still in use keeps the line: the tombstone tells the next start to skip it.
        if (s) appendFileSync(s.path, `${TOMBSTONE}${line}\n`)
      }
      wake()
    },
    erase(policyId, deviceIds) {
      // A line names them in its tags, a dead-letter record (influx.ts lineShape) its device. Ids
      // are letters, digits, _ and - (ID_PATTERN): nothing in them means anything to a RegExp.
      const ids = deviceIds.join('|')
      const pattern = new RegExp(`[, ](?:policy_id=${policyId}|device_id=(?:${ids}))[, ]|"device":"(?:${ids})"`)
      let erased = 0
      for (const line of [...where.keys()].filter((l) => pattern.test(l))) {
        while (release(line)) erased++
      }
      /** Rewrites `path` without the lines `pattern` finds (a whole new file, renamed over the old). */
      const rewrite = (path: string) => {
        const lines = readFileSync(path, 'utf8').split('\n').slice(0, -1)
        const kept = lines.filter((l) => !pattern.test(l))
        if (kept.length === lines.length) return
        writeFileSync(`${path}.next`, kept.map((l) => `${l}\n`).join(''), { mode: 0o600 })
        renameSync(`${path}.next`, path)
      }
      for (const s of segments.values()) {
        if (s.fd !== undefined) closeSync(s.fd)
        rewrite(s.path)
        if (s.fd !== undefined) s.fd = openSync(s.path, 'a', 0o600)
      }
      if (existsSync(deadLetterDir)) for (const f of readdirSync(deadLetterDir).filter((f) => f.endsWith('.jsonl'))) rewrite(join(deadLetterDir, f))
      wake()
      return erased
    },
    get pending() {
      return pending
    },
    recovered,
    whenPendingAtMost(lines, fn) {
      if (pending <= lines) fn()
      else waiters.push({ lines, fn })
    },
    close() {
      if (current !== undefined && segments.get(current)!.pending === 0) forget(current)
      for (const s of segments.values()) if (s.fd !== undefined) closeSync(s.fd)
    },
  }
}
