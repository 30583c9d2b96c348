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
 */
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import { join } from 'node:path'

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

/** Opens the journal in `dir`, recovering what an earlier run left there. */
export function openJournal(dir: string, segmentLines = 10_000): Journal {
  mkdirSync(dir, { recursive: true })
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
    // A crash mid-append can leave a partial last line: it was never acknowledged, so it is dropped.
    const text = readFileSync(path, 'utf8')
    const lines = text.split('\n').slice(0, -1)
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
        segments.set(current, { path, pending: 0, fd: openSync(path, 'a') })
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
        const known = where.get(line)
        if (known === undefined) continue
        let entry: Entry
        if (!Array.isArray(known)) {
          entry = known
          where.delete(line)
        } else {
          entry = known.shift()!
          if (known.length === 1) where.set(line, known[0]!)
        }
        if (--entry.left === 0 && entry.at !== undefined) waited.push(now - entry.at)
        pending--
        const s = segments.get(entry.segment)!
        // The current segment is kept while in use; any other is done when all its lines are.
        if (--s.pending === 0 && entry.segment !== current) forget(entry.segment)
      }
      for (let i = waiters.length - 1; i >= 0; i--) {
        if (pending <= waiters[i]!.lines) waiters.splice(i, 1)[0]!.fn()
      }
      return waited
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
