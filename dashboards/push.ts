/**
 * Alerts to the policyholder's installed app by web push (#23): urgent events (crash, leak, smoke,
 * carbon monoxide, health alerts) and premium changes, sent to every push subscription the
 * policyholder registered, encrypted for it (RFC 8291, aes128gcm) and signed with the service's
 * VAPID key (RFC 8292). web-push makes each request; node's fetch sends it.
 *
 * The VAPID key pair is made on first start and kept in the state folder, private to ubiq's user:
 * a browser's subscription is bound to the public key, so a new key would silence every
 * subscription. Subscriptions are kept there too; the push service's 404 or 410 (the subscription
 * is gone) removes one, and an erasure removes a policy's.
 *
 * A subscription names a URL the service will POST to: it must be a push service's (PUSH_HOSTS,
 * by host name; https), or the server could be made to call anything it can reach.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import webPush from 'web-push'
import { codes, ID_PATTERN, writePrivate } from '../ingest/index.ts'
import type { PremiumAdjustment } from '../pricing/index.ts'
import type { PolicyEvent } from '../scoring/index.ts'
import { mustSee, type Verified } from './auth.ts'
import { errors, strict } from './schemas.ts'
import type { App } from './tables.ts'

/** The push services of the browsers that install web apps (Chrome, Firefox, Safari, Edge), by host name suffix. */
export const PUSH_HOSTS = ['fcm.googleapis.com', 'push.services.mozilla.com', 'push.apple.com', 'notify.windows.com'] as const

const base64url = (bytes: number) => Type.String({ pattern: `^[A-Za-z0-9_-]{${Math.ceil((bytes * 4) / 3)}}={0,2}$`, description: `${bytes} bytes, base64url` })
/** A browser's PushSubscription as its toJSON() gives it. */
export const PushSubscription = Type.Object({
  endpoint: Type.String({ format: 'uri', maxLength: 2048, description: "the push service's URL for this subscription (https)" }),
  expirationTime: Type.Optional(Type.Union([Type.Number(), Type.Null()])),
  keys: Type.Object({ p256dh: base64url(65), auth: base64url(16) }, { additionalProperties: false }),
}, { additionalProperties: false })
export type PushSubscription = Static<typeof PushSubscription>

/** What the app shows: a notification's title and text, a tag (one of a kind replaces the last), and the page to open. */
export interface PushMessage { title: string; body: string; tag: string; url: string }

export interface PushOptions {
  /** The state folder (UBIQ_DATA_DIR): vapid.json and push-subscriptions.json, both 0600. */
  dir: string
  /** Who runs the service, for the push services (VAPID `sub`): a mailto: or https: URL. */
  subject?: string
  /** Host names (or their suffixes) a subscription's endpoint may have; default PUSH_HOSTS. Loopback hosts may use http. */
  hosts?: readonly string[]
  logger: Logger
  metrics: Registry
}

export interface PushAlerts {
  /** The VAPID public key, base64url: the app subscribes with it (applicationServerKey). */
  publicKey: string
  /** Adds (or renews) a subscription of the policy; throws UBIQ_PUSH_SUBSCRIPTION_INVALID when its endpoint is not a push service's. */
  subscribe(policyId: string, sub: PushSubscription): void
  /** Removes the subscription with this endpoint; whether there was one. */
  unsubscribe(policyId: string, endpoint: string): boolean
  /** Removes every subscription of the policy (erasure). */
  forget(policyId: string): void
  /** Sends `msg` to each of the policy's subscriptions; resolves once each push service answered. */
  send(policyId: string, msg: PushMessage, urgency: 'normal' | 'high'): Promise<void>
}

/** A subscription refused: its reason is the client's to mend. */

/** A policy keeps at most this many subscriptions (its phones and browsers); a new one beyond replaces the oldest. */
const MAX_PER_POLICY = 10
/** How long a push service keeps an alert for a phone that is off, s. */
const TTL_S = 24 * 3600
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]'])

export function pushAlerts(opts: PushOptions): PushAlerts {
  const keys = vapidKeys(join(opts.dir, 'vapid.json'))
  const file = join(opts.dir, 'push-subscriptions.json')
  const subs: Record<string, PushSubscription[]> = existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : {}
  const save = () => writePrivate(file, JSON.stringify(subs))
  const hosts = opts.hosts ?? PUSH_HOSTS
  const subject = opts.subject ?? 'mailto:operator@localhost'
  const sent = new Counter({ name: 'ubiq_push_sent_total', help: 'Web push messages by outcome: delivered (the push service took it), gone (the subscription expired: removed), failed', labelNames: ['outcome'], registers: [opts.metrics] })
  const log = opts.logger.child({ stage: 'push' })

  const remove = (policyId: string, endpoint: string) => {
    const mine = subs[policyId] ?? []
    const kept = mine.filter((s) => s.endpoint !== endpoint)
    if (kept.length === mine.length) return false
    if (kept.length) subs[policyId] = kept
    else delete subs[policyId]
    save()
    return true
  }
  return {
    publicKey: keys.publicKey,
    subscribe(policyId, sub) {
      const url = new URL(sub.endpoint)
      const known = hosts.some((h) => url.hostname === h || url.hostname.endsWith(`.${h}`))
      if (!known) throw new codes.UBIQ_PUSH_SUBSCRIPTION_INVALID(`${url.hostname} is not a push service this server sends to`)
      if (url.protocol !== 'https:' && !(url.protocol === 'http:' && LOOPBACK.has(url.hostname))) throw new codes.UBIQ_PUSH_SUBSCRIPTION_INVALID('a push endpoint is https')
      const others = (subs[policyId] ?? []).filter((s) => s.endpoint !== sub.endpoint)
      subs[policyId] = [...others, { endpoint: sub.endpoint, keys: sub.keys }].slice(-MAX_PER_POLICY)
      save()
    },
    unsubscribe: remove,
    forget(policyId) {
      if (!(policyId in subs)) return
      delete subs[policyId]
      save()
    },
    async send(policyId, msg, urgency) {
      await Promise.all((subs[policyId] ?? []).map(async (sub) => {
        const req = webPush.generateRequestDetails(sub, JSON.stringify(msg), { vapidDetails: { subject, ...keys }, TTL: TTL_S, urgency, topic: msg.tag, contentEncoding: 'aes128gcm' })
        try {
          const res = await fetch(req.endpoint, { method: req.method, headers: req.headers, body: req.body && new Uint8Array(req.body) })
          await res.body?.cancel()
          if (res.status === 404 || res.status === 410) {
            sent.inc({ outcome: 'gone' })
            remove(policyId, sub.endpoint)
          } else if (!res.ok) {
            sent.inc({ outcome: 'failed' })
            log.warn({ status: res.status }, 'push: the push service refused a message')
          } else sent.inc({ outcome: 'delivered' })
        } catch (err) {
          // The push service did not answer: the alert is lost for this subscription (it is in the feed and the history).
          sent.inc({ outcome: 'failed' })
          log.warn({ err: (err as Error).message }, 'push: the push service could not be reached')
        }
      }))
    },
  }
}

/** The service's VAPID key pair, made once into `file` (0600). */
export function vapidKeys(file: string): { publicKey: string; privateKey: string } {
  if (!existsSync(file)) writePrivate(file, JSON.stringify(webPush.generateVAPIDKeys()))
  const { publicKey, privateKey } = JSON.parse(readFileSync(file, 'utf8')) as { publicKey: string; privateKey: string }
  return { publicKey, privateKey }
}

/** What each urgent event says on the phone: a title and what to do. */
const URGENT: Partial<Record<PolicyEvent['type'], [title: string, body: string]>> = {
  crash: ['Possible crash', 'Your car\'s sensors detected a crash. Are you OK? Call the emergency services if anyone is hurt.'],
  leak: ['Water leak at home', 'A leak sensor detected water. Where a shut-off valve is fitted, it is being closed.'],
  smoke: ['Smoke alarm at home', 'A smoke alarm went off at home. Call the fire brigade if there is a fire.'],
  co_alarm: ['Carbon monoxide at home', 'Carbon monoxide detected: open windows, leave the home and call the emergency services.'],
  freeze_warning: ['Pipes may freeze', 'Your home is near freezing: turn the heating up to protect the pipes.'],
  low_spo2: ['Low blood oxygen', 'Your wearable measured low blood oxygen. If you feel unwell, call a doctor.'],
  resting_hr_rise: ['Resting heart rate up', 'Your resting heart rate has risen. Rest, and see a doctor if it keeps rising.'],
}

/** An urgent event as a push message; none for an event that is not urgent. */
export function eventAlert(e: PolicyEvent): PushMessage | undefined {
  if (!e.urgent) return undefined
  const [title, body] = URGENT[e.type] ?? [`Alert: ${e.type.replace(/_/g, ' ')}`, 'Open the app for details.']
  return { title, body, tag: `event-${e.type}`, url: '/' }
}

/** A premium change as a push message; none when the factor did not move. */
export function premiumAlert(p: PremiumAdjustment): PushMessage | undefined {
  if (p.factor === p.previousFactor) return undefined
  const pct = Math.round((p.factor / p.previousFactor - 1) * 1000) / 10
  return { title: `Your ${p.subject} premium ${pct > 0 ? 'went up' : 'went down'}`, body: `Now ${p.premium.toFixed(2)} ${p.currency} a year (${pct > 0 ? '+' : ''}${pct}%). Open the app to see why.`, tag: `premium-${p.subject}`, url: '/' }
}

const Params = Type.Object({ policy: Type.String({ pattern: ID_PATTERN }) })
const Unsubscribe = Type.Object({ endpoint: Type.String({ maxLength: 2048 }) }, { additionalProperties: false })

/** The push routes: the public key for subscribing, and the policyholder's own subscriptions. */
export function registerPush(app: App, push: PushAlerts, who: (req: FastifyRequest) => Verified): void {
  /** The policyholder of `policy`: an analyst does not subscribe anyone's phone. */
  const holder = (req: FastifyRequest<{ Params: Static<typeof Params> }>) => {
    const principal = who(req)
    mustSee(principal, req.params.policy)
    if (principal.role !== 'policyholder') throw new codes.UBIQ_AUTH_FORBIDDEN("push subscriptions are the policyholder's own: a policyholder token is needed")
  }
  app.get('/api/v1/push/key', {
    schema: { description: "The service's VAPID public key (base64url), the applicationServerKey an app subscribes with: no token needed, nothing private in it", security: [], response: { 200: strict({ publicKey: Type.String() }) } },
  }, () => ({ publicKey: push.publicKey }))
  app.post<{ Params: Static<typeof Params>; Body: PushSubscription }>('/api/v1/policies/:policy/push-subscriptions', {
    schema: { description: "Registers a browser's push subscription (its PushSubscription.toJSON(); policyholder token): urgent events and premium changes of the policy are sent to it. The endpoint must be a known push service's", params: Params, body: PushSubscription, response: { 200: strict({ subscribed: Type.Boolean() }), ...errors } },
  }, (req, reply) => {
    holder(req)
    try {
      push.subscribe(req.params.policy, req.body)
    } catch (err) {
      // A URL that does not parse (TypeError) is the same mistake as one that is not a push service's.
      if (err instanceof TypeError) throw new codes.UBIQ_PUSH_SUBSCRIPTION_INVALID(err.message)
      throw err
    }
    return { subscribed: true }
  })
  app.delete<{ Params: Static<typeof Params>; Body: Static<typeof Unsubscribe> }>('/api/v1/policies/:policy/push-subscriptions', {
    schema: { description: 'Removes the push subscription with this endpoint (policyholder token)', params: Params, body: Unsubscribe, response: { 200: strict({ removed: Type.Boolean() }), ...errors } },
  }, (req) => {
    holder(req)
    return { removed: push.unsubscribe(req.params.policy, req.body.endpoint) }
  })
}
