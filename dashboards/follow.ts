/**
 * The dashboards in a process of their own (#25, `ubiq start --dashboards`): scores, events and
 * premiums followed on the broker, where scoring and pricing already publish every one
 * (ingest/contract.ts `topics`), so the main process does no work a feed message.
 *
 * Each message's payload text is kept with the parsed object (feed.ts `keepJson`): the feed sends
 * that text inside its own envelope instead of serialising the object again. The parse stays: the
 * feed's standing needs a score's subject, REST answers from objects, and a payload that is not
 * its topic's policy's JSON must not reach that policyholder.
 *
 * QoS 0: at QoS 1 the broker keeps at most a few messages in flight to a subscriber (Mosquitto's
 * max_inflight_messages, 20) until it acknowledges each, and mqtt.js acknowledges one at a time:
 * in bench:feed at 10,000 scores a second that held delivery back by seconds (p99 2.2 s with
 * nothing else running, README "Benchmarks"). So what is published while this process is away
 * from the broker does not reach its live feeds; a client that connects is given the standing
 * from InfluxDB, where every score and premium is stored. MQTT 3.1.1, so that nats-server's MQTT
 * listener takes it too. Retained premiums are not news and are skipped.
 */
import mqtt from 'mqtt'
import type { Logger } from 'pino'
import { Subject as RxSubject, type Observable } from 'rxjs'
import { topics } from '../ingest/index.ts'
import type { PremiumAdjustment } from '../pricing/index.ts'
import type { PolicyEvent, Score } from '../scoring/index.ts'
import { keepJson } from './feed.ts'

export interface Followed {
  scores$: Observable<Score>
  events$: Observable<PolicyEvent>
  premiums$: Observable<PremiumAdjustment>
  /** Whether the broker connection is up (/healthz). */
  connected(): boolean
  /** Messages dropped for not being their topic's policy's JSON. */
  dropped(): number
  close(): Promise<void>
}

/** The wildcard each kind is followed on, and the segment that names it. */
const kinds = { scores: `${topics.prefix}/scores/+`, events: `${topics.prefix}/events/+`, premiums: `${topics.prefix}/premiums/+/+` } as const

/** Subscribes to what scoring and pricing publish; resolves once the broker has granted the subscriptions. */
export async function followBroker(opts: { url: string; clientId: string; logger: Logger }): Promise<Followed> {
  const out = { scores: new RxSubject<Score>(), events: new RxSubject<PolicyEvent>(), premiums: new RxSubject<PremiumAdjustment>() }
  let dropped = 0
  const client = await mqtt.connectAsync(opts.url, { clientId: opts.clientId, clean: true, protocolVersion: 4, reconnectPeriod: 1000 })
  client.on('message', (topic, payload, packet) => {
    // Retained premiums come again at every subscription, every policy's: not news. A client's
    // standing is read from InfluxDB (feed.ts), where each was stored when it was made.
    if (packet.retain) return
    // ubiq/v1/{kind}/{policyId}[/{subject}]
    const parts = topic.split('/')
    const kind = parts[2] as keyof typeof out
    const json = payload.toString()
    let value: { policyId?: unknown } | null = null
    try {
      value = JSON.parse(json) as { policyId?: unknown } | null
    } catch { /* dropped below */ }
    if (!out[kind] || typeof value !== 'object' || value?.policyId !== parts[3]) {
      dropped++
      return void opts.logger.warn({ topic }, 'dashboards: a message that is not its policy\'s JSON was dropped')
    }
    ;(out[kind] as RxSubject<object>).next(keepJson(value!, json))
  })
  client.on('error', (err) => opts.logger.warn({ err: err.message }, 'dashboards: broker connection error; mqtt.js reconnects'))
  // Subscribed again by mqtt.js at each reconnect (resubscribe), the session being clean.
  await client.subscribeAsync(Object.values(kinds), { qos: 0 })
  return {
    scores$: out.scores.asObservable(),
    events$: out.events.asObservable(),
    premiums$: out.premiums.asObservable(),
    connected: () => client.connected,
    dropped: () => dropped,
    async close() {
      await client.endAsync()
      for (const s of Object.values(out)) s.complete()
    },
  }
}
