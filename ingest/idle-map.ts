/**
 * A map of per-device (or per-policy) state that forgets keys gone quiet, so memory follows the
 * keys that are active, not every key ever seen (#20 item 5). Time is the caller's (receive time,
 * or an injected clock), so tests and replays decide it. Idle entries are swept at most once per
 * `idleMs / 4` of that time: O(1) amortised per access.
 */
export interface IdleMap<V> {
  get(key: string): V | undefined
  /** Sets the entry and marks it active at `now`. */
  set(key: string, value: V, now: number): void
  /**
   * The entry, marked active at `now` (a read that counts as activity); undefined when there is
   * none, or it had been idle for `idleMs` (whether or not a sweep has removed it yet): a caller
   * starts afresh exactly after `idleMs`, and never works on an entry the sweep is dropping.
   */
  touch(key: string, now: number): V | undefined
  keys(): IterableIterator<string>
  /** Forgets the entry now (an erasure, #21 item 5), idle or not. */
  delete(key: string): void
  readonly size: number
}

/**
 * Entries not set or touched for `idleMs` are gone by the next sweep, unless `inUse` says one is
 * held by something other than time (the feed's open websockets): such an entry stays, and its
 * idle time counts from its next touch.
 */
export function idleMap<V>(idleMs: number, inUse: (value: V) => boolean = () => false): IdleMap<V> {
  const entries = new Map<string, { value: V; at: number }>()
  let swept = -Infinity
  const sweep = (now: number) => {
    if (now - swept < idleMs / 4) return
    swept = now
    for (const [key, e] of entries) if (now - e.at >= idleMs && !inUse(e.value)) entries.delete(key)
  }
  return {
    get: (key) => entries.get(key)?.value,
    set(key, value, now) {
      sweep(now)
      entries.set(key, { value, at: now })
    },
    touch(key, now) {
      sweep(now)
      const e = entries.get(key)
      if (!e) return undefined
      if (now - e.at >= idleMs && !inUse(e.value)) {
        entries.delete(key)
        return undefined
      }
      e.at = now
      return e.value
    },
    keys: () => entries.keys(),
    delete: (key) => void entries.delete(key),
    get size() {
      return entries.size
    },
  }
}
