/**
 * The policyholder's feed (issue #7): per policy, its scores, events and premium changes in the
 * order they were made, each with `seq`, its place in the feed. A client that reconnects with the
 * last `seq` it saw gets what it missed, then the live messages, with nothing lost or repeated.
 *
 * The journal keeps the last `keep` messages of each policy in memory: enough for a reconnect
 * after a network blip. When a client asks from further back than that, or from before this
 * process started, the feed cannot prove it has everything: it says so (`gap`) and then sends the
 * policy's standing (latest score and premium per subject) and what it has.
 *
 * `seq` is the time the message entered its policy's feed, in ms, bumped by one where two of the
 * policy's messages share a millisecond: increasing within a process and, with a clock that does
 * not step back, across restarts, so an old cursor is always recognised as old. It is kept per
 * policy, not across the feed: thousands of messages a second in total would otherwise bump it
 * ahead of the clock.
 */
import type { PremiumAdjustment } from '../pricing/index.ts'
import type { PolicyEvent, Score } from '../scoring/index.ts'

type Body = { type: 'score'; score: Score } | { type: 'event'; event: PolicyEvent } | { type: 'premium'; premium: PremiumAdjustment }
export type FeedMessage = Body & { seq: number }

/** What the feed says about itself, outside the stream of messages. */
export type FeedNotice =
  | { type: 'gap'; since: number; oldest: number; reason: string }
  | { type: 'error'; reason: string }

interface PolicyFeed {
  messages: FeedMessage[]
  /** The seq of the policy's latest message. */
  last: number
  /** Messages up to this seq are not all here (trimmed, or before the process started). */
  horizon: number
  /** The latest score and premium per subject: the standing a client starts from. */
  standing: Map<string, FeedMessage>
}

export interface FeedJournal {
  /** Adds a message to its policy's feed and hands it to the listeners. */
  append(policyId: string, body: Body): FeedMessage
  /**
   * What a client should get when it (re)connects: from `since` (exclusive) everything kept, or,
   * without `since`, the policy's standing. `gap` when messages after `since` may be missing.
   */
  replay(policyId: string, since?: number): { gap?: FeedNotice; messages: FeedMessage[] }
  /** Hands the policy's new messages to `listener` until the returned function is called. */
  subscribe(policyId: string, listener: (msg: FeedMessage) => void): () => void
  policies(): string[]
}

export function feedJournal(keep = 64, now: () => number = Date.now): FeedJournal {
  const started = now()
  const feeds = new Map<string, PolicyFeed>()
  // Per policy: a message is handed only to its policy's listeners, however many clients follow others.
  const listeners = new Map<string, Set<(msg: FeedMessage) => void>>()
  const standingKey = (m: FeedMessage) => (m.type === 'score' ? `score/${m.score.subject}` : m.type === 'premium' ? `premium/${m.premium.subject}` : undefined)

  return {
    append(policyId, body) {
      let feed = feeds.get(policyId)
      if (!feed) feeds.set(policyId, (feed = { messages: [], last: started - 1, horizon: started - 1, standing: new Map() }))
      feed.last = Math.max(feed.last + 1, now())
      const msg: FeedMessage = { ...body, seq: feed.last }
      feed.messages.push(msg)
      if (feed.messages.length > keep) feed.horizon = feed.messages.shift()!.seq
      const key = standingKey(msg)
      if (key) feed.standing.set(key, msg)
      listeners.get(policyId)?.forEach((l) => l(msg))
      return msg
    },
    replay(policyId, since) {
      const feed = feeds.get(policyId)
      const bySeq = (a: FeedMessage, b: FeedMessage) => a.seq - b.seq
      if (since === undefined) return { messages: [...(feed?.standing.values() ?? [])].sort(bySeq) }
      const horizon = feed?.horizon ?? started - 1
      const kept = (feed?.messages ?? []).filter((m) => m.seq > since)
      if (since >= horizon) return { messages: kept }
      // Missing messages cannot be replayed: start the client from the standing, then what is kept.
      const older = [...(feed?.standing.values() ?? [])].filter((m) => m.seq <= horizon && m.seq > since)
      const reason = since < started ? 'the service restarted since then' : 'more has happened since then than the feed keeps'
      return { gap: { type: 'gap', since, oldest: horizon + 1, reason }, messages: [...older, ...kept].sort(bySeq) }
    },
    subscribe(policyId, listener) {
      let set = listeners.get(policyId)
      if (!set) listeners.set(policyId, (set = new Set()))
      set.add(listener)
      return () => {
        set.delete(listener)
        if (set.size === 0) listeners.delete(policyId)
      }
    },
    policies: () => [...feeds.keys()].sort(),
  }
}
