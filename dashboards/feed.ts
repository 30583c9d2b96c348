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
 * Memory follows the policies that are active (#20 item 5: 64 messages per policy for ever were
 * about 5 GB at 100k policies): a policy's feed with no message and no client for `idleMs` is
 * forgotten. What a client starts from does not depend on that: a policy whose standing the feed
 * does not hold (forgotten, or not heard from since the service started) gets its latest stored
 * score and premium per subject (`stored`, InfluxDB) before a client starts from it.
 *
 * `seq` is the time the message entered its policy's feed, in ms, bumped by one where two of the
 * policy's messages share a millisecond: increasing within a process and, with a clock that does
 * not step back, across restarts, so an old cursor is always recognised as old. It is kept per
 * policy, not across the feed: thousands of messages a second in total would otherwise bump it
 * ahead of the clock.
 */
import { Type, type Static } from '@sinclair/typebox'
import { ID_PATTERN, idleMap } from '../ingest/index.ts'
import { PremiumAdjustment } from '../pricing/index.ts'
import { PolicyEvent, Score } from '../scoring/index.ts'

/** The feed's query: who asks, which policy, and from where. */
export const FeedQuery = Type.Object({
  token: Type.Optional(Type.String({ maxLength: 2048, description: 'the bearer token (browsers cannot set headers on a websocket)' })),
  policy: Type.Optional(Type.String({ pattern: ID_PATTERN, description: "the policy to follow; a policyholder's token implies its own" })),
  since: Type.Optional(Type.Integer({ minimum: 0, description: 'the last seq the client saw: the feed replays what came after it' })),
}, { additionalProperties: false })

const Seq = Type.Integer({ minimum: 0, description: "The message's place in its policy's feed: reconnect with ?since= the last one seen" })
/** What the feed sends of a policy: a score, an event or a premium change, each with its seq. */
export const FeedMessage = Type.Union([
  Type.Object({ type: Type.Literal('score'), seq: Seq, score: Score }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('event'), seq: Seq, event: PolicyEvent }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('premium'), seq: Seq, premium: PremiumAdjustment }, { additionalProperties: false }),
])
export type FeedMessage = Static<typeof FeedMessage>
export type FeedBody = FeedMessage extends infer M ? M extends FeedMessage ? Omit<M, 'seq'> : never : never

/** What the feed says about itself, outside the stream of messages. */
export const FeedNotice = Type.Union([
  Type.Object({
    type: Type.Literal('gap'),
    since: Type.Integer({ description: 'The seq the client asked from' }),
    oldest: Type.Integer({ description: 'The oldest seq the feed holds: what came between may be missing; the standing follows' }),
    reason: Type.String(),
  }, { additionalProperties: false }),
  Type.Object({ type: Type.Literal('error'), reason: Type.String() }, { additionalProperties: false }),
])
export type FeedNotice = Static<typeof FeedNotice>

/** The JSON text an object came in as (follow.ts): sent as it is, not serialised again. */
const asPublished = new WeakMap<object, string>()
/** Records that `value` was published as `json`; returns `value`. */
export function keepJson<T extends object>(value: T, json: string): T {
  asPublished.set(value, json)
  return value
}

const texts = new WeakMap<FeedMessage, string>()
/**
 * A message's text on the websocket, made once however many clients it goes to: the score, event
 * or premium as it was published (keepJson) in the feed's envelope, or serialised when it was not.
 */
export function feedText(msg: FeedMessage): string {
  let text = texts.get(msg)
  if (text === undefined) {
    const body: object = msg.type === 'score' ? msg.score : msg.type === 'event' ? msg.event : msg.premium
    text = `{"type":"${msg.type}","seq":${msg.seq},"${msg.type}":${asPublished.get(body) ?? JSON.stringify(body)}}`
    texts.set(msg, text)
  }
  return text
}

interface PolicyFeed {
  messages: FeedMessage[]
  /** The seq of the policy's latest message. */
  last: number
  /** Messages up to this seq are not all here (trimmed, forgotten with an idle feed, or before the process started). */
  horizon: number
  /** The horizon this feed started with: messages up to it went with an earlier, forgotten feed of the policy. */
  forgotten: number
  /** The latest score and premium per subject: the standing a client starts from. */
  standing: Map<string, FeedMessage>
  listeners: Set<(msg: FeedMessage) => void>
  /** The stored standing, read (or being read) into `standing` once a client needed it. */
  loaded?: Promise<void>
  /** While it is read, nothing is trimmed: the clients waiting for it get every message since they came. */
  reading?: boolean
}

export interface FeedOptions {
  /** Messages kept per policy (default 64). */
  keep?: number
  /** A policy's feed with no message and no client for this long is forgotten, ms (default half an hour: the feeds were the heap's largest growth in bench:soak's hour). */
  idleMs?: number
  now?: () => number
  /** The policy's latest stored score and premium per subject (InfluxDB); default none. */
  stored?: (policyId: string) => Promise<FeedBody[]>
}

export interface FeedJournal {
  /** Adds a message to its policy's feed and hands it to the listeners. */
  append(policyId: string, body: FeedBody): FeedMessage
  /**
   * What a client should get when it (re)connects: from `since` (exclusive) everything kept, or,
   * without `since`, the policy's standing and whatever comes after this call. `gap` when messages
   * after `since` may be missing. Resolves once what the feed does not hold of the standing has
   * been read (`stored`, once per feed, when the client needs the standing); subscribe as it
   * resolves, in the same step, and no message falls between. Rejects when that read fails (the
   * next call reads again).
   */
  replay(policyId: string, since?: number): Promise<{ gap?: FeedNotice; messages: FeedMessage[] }>
  /** Hands the policy's new messages to `listener` until the returned function is called. */
  subscribe(policyId: string, listener: (msg: FeedMessage) => void): () => void
  /** The policies whose feed holds a message or a standing. */
  policies(): string[]
  /** Forgets the policy's feed now, messages and standing (an erasure, #21 item 5). */
  forget(policyId: string): void
}

export function feedJournal({ keep = 64, idleMs = 30 * 60_000, now = Date.now, stored = async () => [] }: FeedOptions = {}): FeedJournal {
  const started = now()
  // A feed with a client stays however quiet it is; its idle time counts from when the last one left.
  const feeds = idleMap<PolicyFeed>(idleMs, (feed) => feed.listeners.size > 0)
  const standingKey = (m: FeedMessage) => (m.type === 'score' ? `score/${m.score.subject}` : m.type === 'premium' ? `premium/${m.premium.subject}` : undefined)

  /** The policy's feed, marked active now; a new one if the policy has none. */
  const feedOf = (policyId: string) => {
    const at = now()
    const feed = feeds.touch(policyId, at)
    if (feed) return feed
    // An earlier feed of the policy was forgotten only after idleMs without a message, so all its
    // messages are at or before `at - idleMs`: a cursor from then on has missed nothing.
    const horizon = Math.max(started, at - idleMs)
    const fresh: PolicyFeed = { messages: [], last: horizon, horizon, forgotten: horizon, standing: new Map(), listeners: new Set() }
    feeds.set(policyId, fresh, at)
    return fresh
  }

  return {
    append(policyId, body) {
      const feed = feedOf(policyId)
      feed.last = Math.max(feed.last + 1, now())
      const msg: FeedMessage = { ...body, seq: feed.last }
      feed.messages.push(msg)
      while (feed.messages.length > keep && !feed.reading) feed.horizon = feed.messages.shift()!.seq
      const key = standingKey(msg)
      if (key) feed.standing.set(key, msg)
      feed.listeners.forEach((l) => l(msg))
      return msg
    },
    replay(policyId, since) {
      const feed = feedOf(policyId)
      // Without a cursor, the client starts from the standing as it is now and gets what comes after.
      const connected = feed.last
      // A cursor the feed can serve from what it holds needs no standing (a reconnect after a blip).
      if (!feed.loaded && (since === undefined || since < feed.horizon)) {
        feed.reading = true
        feed.loaded = stored(policyId).then((bodies) => {
          for (const body of bodies) {
            // Stored messages stand for what the feed no longer holds: their seq is the horizon, so
            // a client that has them and comes back with it is told of no gap. A subject that came
            // live meanwhile is newer than what was stored: it stays.
            const msg: FeedMessage = { ...body, seq: feed.horizon }
            const key = standingKey(msg)
            if (key && !feed.standing.has(key)) feed.standing.set(key, msg)
          }
        }, (err: unknown) => {
          feed.loaded = undefined
          throw err
        }).finally(() => (feed.reading = false))
      }
      const bySeq = (a: FeedMessage, b: FeedMessage) => a.seq - b.seq
      return (feed.loaded ?? Promise.resolve()).then(() => {
        if (since === undefined) {
          return { messages: [...[...feed.standing.values()].filter((m) => m.seq <= connected).sort(bySeq), ...feed.messages.filter((m) => m.seq > connected)] }
        }
        const kept = feed.messages.filter((m) => m.seq > since)
        if (since >= feed.horizon) return { messages: kept }
        // Missing messages cannot be replayed: start the client from the standing, then what is kept.
        const older = [...feed.standing.values()].filter((m) => m.seq <= feed.horizon && m.seq > since)
        // Seqs are times (ms): 0 names no message ever sent, so it says nothing of a restart.
        const reason = since === 0 ? 'since=0 asks for everything: the feed keeps the standing and the latest messages only'
          : since < started ? 'the service restarted since then'
          : since < feed.forgotten ? `the feed forgot this policy after ${Math.round(idleMs / 60_000)} min with no message and no client`
            : 'more has happened since then than the feed keeps'
        return { gap: { type: 'gap', since, oldest: feed.horizon + 1, reason }, messages: [...older, ...kept].sort(bySeq) }
      })
    },
    subscribe(policyId, listener) {
      const feed = feedOf(policyId)
      feed.listeners.add(listener)
      return () => {
        // Touched while still in use: its idle time starts now.
        feeds.touch(policyId, now())
        feed.listeners.delete(listener)
      }
    },
    forget: (policyId) => feeds.delete(policyId),
    policies: () => [...feeds.keys()].filter((p) => {
      const feed = feeds.get(p)!
      return feed.messages.length > 0 || feed.standing.size > 0
    }).sort(),
  }
}
