/**
 * Signed webhooks with retries (#24 item 2): how ubiq tells an outside system (the insurer's
 * claims system; later the policyholder alerts of #23) that something happened. One generic
 * sender: `deliver(url, secret, type, body)`.
 *
 * - **Signed**, as Stripe and GitHub sign theirs: `X-Ubiq-Signature: t=<unix s>,v1=<hex>`, where
 *   v1 = HMAC-SHA256(secret, `${t}.${raw body}`). The receiver recomputes it over the raw bytes,
 *   compares in constant time and refuses a `t` too far from its clock (a replay). `verifySignature`
 *   is that check, for receivers written in TypeScript and for the tests.
 * - **Idempotent**: every attempt carries the same `Idempotency-Key` (the delivery's id: a claim's
 *   id), so a receiver that took an attempt whose answer was lost does not take it twice.
 * - **Retried** with exponential back-off (`baseDelayMs` · 2^(attempt−1), at most `maxDelayMs`) on
 *   anything but a 2xx, for at most `maxAttempts` attempts; then the delivery is **dead-lettered**:
 *   its file moves to `dead/`, with every attempt's outcome, for an operator to resend.
 * - **Durable**: a delivery is a file in `pending/` (0600, fsynced by writePrivate) before the first
 *   attempt, removed when a 2xx comes. A restart resumes every pending one, so none is lost; one
 *   may be sent twice around a crash, which the idempotency key covers.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { writePrivate } from '../ingest/index.ts'

/** The header that carries the signature. */
export const SIGNATURE_HEADER = 'x-ubiq-signature'

/** One delivery as its file keeps it. */
export interface Delivery {
  id: string
  url: string
  /** Kept with the delivery, in a file only ubiq's user reads, so a restart can sign what it resumes. */
  secret: string
  type: string
  body: string
  /** Whose it is (a policy id): an erasure removes that owner's pending and dead deliveries. */
  owner?: string
  createdAt: string
  attempts: { at: string; outcome: string }[]
}

export interface WebhookOptions {
  /** The folder of `pending/` and `dead/` (in UBIQ_DATA_DIR). */
  dir: string
  logger: Logger
  metrics: Registry
  /** Attempts before a delivery is dead-lettered (default 8: with the default delays, about 4 min). */
  maxAttempts?: number
  baseDelayMs?: number
  maxDelayMs?: number
  /** One attempt's bound: a receiver that takes the connection and never answers is a failed attempt, ms. */
  attemptTimeoutMs?: number
  /** Told when a delivery ends: delivered (a 2xx) or dead (attempts exhausted). */
  onDone?(d: Delivery, outcome: 'delivered' | 'dead'): void
}

export interface WebhookSender {
  /** Persists the delivery, then sends it in the background; returns its id (`opts.id`, else a hash of the body). */
  deliver(url: string, secret: string, type: string, body: unknown, opts?: { id?: string; owner?: string }): string
  /** Whether a delivery of that id is still pending. */
  pending(id: string): boolean
  /** Removes an owner's pending and dead-lettered deliveries (erasure); returns how many. */
  forget(owner: string): number
  /** Stops retrying (pending files stay for the next start). */
  close(): void
}

/** `X-Ubiq-Signature` for `body` at `t` (unix seconds). */
export const signature = (secret: string, t: number, body: string) => `t=${t},v1=${createHmac('sha256', secret).update(`${t}.${body}`).digest('hex')}`

/**
 * A receiver's check: the header's v1 is the HMAC of `t.body` under `secret`, and `t` is within
 * `toleranceS` of `nowS` (Stripe's default tolerance: 5 minutes).
 */
export function verifySignature(secret: string, header: string | undefined, body: string, nowS = Date.now() / 1000, toleranceS = 300): boolean {
  const parts = Object.fromEntries((header ?? '').split(',').map((p) => p.split('=', 2) as [string, string]))
  const t = Number(parts.t)
  if (!Number.isInteger(t) || Math.abs(nowS - t) > toleranceS || typeof parts.v1 !== 'string') return false
  const expected = Buffer.from(signature(secret, t, body).split('v1=')[1]!, 'hex')
  const given = Buffer.from(parts.v1, 'hex')
  return given.length === expected.length && timingSafeEqual(given, expected)
}

/** Opens the sender on `dir` and resumes the deliveries pending there. */
export function webhookSender(opts: WebhookOptions): WebhookSender {
  const log = opts.logger.child({ stage: 'webhooks' })
  const [pendingDir, deadDir] = [join(opts.dir, 'pending'), join(opts.dir, 'dead')]
  for (const d of [pendingDir, deadDir]) mkdirSync(d, { recursive: true, mode: 0o700 })
  const maxAttempts = opts.maxAttempts ?? 8
  const baseDelayMs = opts.baseDelayMs ?? 1000
  const maxDelayMs = opts.maxDelayMs ?? 120_000
  const attemptTimeoutMs = opts.attemptTimeoutMs ?? 10_000
  const outcomes = new Counter({ name: 'ubiq_webhook_attempts_total', help: 'Webhook delivery attempts, by event type and outcome (delivered, retry, dead)', labelNames: ['type', 'outcome'], registers: [opts.metrics] })
  const waiting = new Gauge({ name: 'ubiq_webhook_pending', help: 'Webhook deliveries not yet delivered or dead-lettered', registers: [opts.metrics] })
  const latency = new Histogram({ name: 'ubiq_webhook_delivery_seconds', help: 'From a delivery\'s creation to its 2xx, s', labelNames: ['type'], buckets: [0.1, 0.5, 1, 5, 30, 120, 600, 3600], registers: [opts.metrics] })
  const timers = new Map<string, NodeJS.Timeout>()
  let closed = false
  // A file per delivery, named by a hash of its id: ids are the caller's and need not be file names.
  const fileOf = (dir: string, id: string) => join(dir, `${createHash('sha256').update(id).digest('hex').slice(0, 32)}.json`)
  const save = (d: Delivery) => writePrivate(fileOf(pendingDir, d.id), JSON.stringify(d))

  async function attempt(d: Delivery): Promise<void> {
    timers.delete(d.id)
    if (closed || !existsSync(fileOf(pendingDir, d.id))) return // forgotten (erased) meanwhile
    const t = Math.floor(Date.now() / 1000)
    const outcome = await fetch(d.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': d.id, 'x-ubiq-event': d.type, [SIGNATURE_HEADER]: signature(d.secret, t, d.body), 'x-ubiq-attempt': String(d.attempts.length + 1) },
      body: d.body,
      signal: AbortSignal.timeout(attemptTimeoutMs),
    }).then(
      async (res) => (await res.body?.cancel(), res.ok ? 'delivered' : `HTTP ${res.status}`),
      (err: Error & { cause?: { code?: string } }) => err.cause?.code ?? (err.name === 'TimeoutError' ? `no answer in ${attemptTimeoutMs} ms` : err.message),
    )
    if (closed) return
    d.attempts.push({ at: new Date().toISOString(), outcome })
    if (outcome === 'delivered') {
      rmSync(fileOf(pendingDir, d.id), { force: true })
      outcomes.inc({ type: d.type, outcome: 'delivered' })
      latency.observe({ type: d.type }, (Date.now() - Date.parse(d.createdAt)) / 1000)
      waiting.dec()
      log.info({ id: d.id, type: d.type, attempts: d.attempts.length }, 'webhook delivered')
      return opts.onDone?.(d, 'delivered')
    }
    if (d.attempts.length >= maxAttempts) {
      // The dead letter keeps everything needed to resend it by hand.
      writePrivate(fileOf(deadDir, d.id), JSON.stringify(d))
      rmSync(fileOf(pendingDir, d.id), { force: true })
      outcomes.inc({ type: d.type, outcome: 'dead' })
      waiting.dec()
      log.error({ id: d.id, type: d.type, attempts: d.attempts.length, last: outcome }, 'webhook dead-lettered: attempts exhausted')
      return opts.onDone?.(d, 'dead')
    }
    save(d)
    outcomes.inc({ type: d.type, outcome: 'retry' })
    log.warn({ id: d.id, type: d.type, attempt: d.attempts.length, outcome }, 'webhook attempt failed; retrying')
    schedule(d)
  }
  function schedule(d: Delivery) {
    const delay = d.attempts.length === 0 ? 0 : Math.min(maxDelayMs, baseDelayMs * 2 ** (d.attempts.length - 1))
    timers.set(d.id, setTimeout(() => void attempt(d), delay))
  }

  for (const name of readdirSync(pendingDir)) {
    const d = JSON.parse(readFileSync(join(pendingDir, name), 'utf8')) as Delivery
    waiting.inc()
    schedule(d)
  }

  return {
    deliver(url, secret, type, body, o = {}) {
      const text = JSON.stringify(body)
      const id = o.id ?? createHash('sha256').update(text).digest('hex')
      if (timers.has(id) || existsSync(fileOf(pendingDir, id))) return id // already on its way
      const d: Delivery = { id, url, secret, type, body: text, ...(o.owner === undefined ? {} : { owner: o.owner }), createdAt: new Date().toISOString(), attempts: [] }
      save(d)
      waiting.inc()
      schedule(d)
      return id
    },
    pending: (id) => existsSync(fileOf(pendingDir, id)),
    forget(owner) {
      let n = 0
      for (const dir of [pendingDir, deadDir]) {
        for (const name of readdirSync(dir)) {
          const d = JSON.parse(readFileSync(join(dir, name), 'utf8')) as Delivery
          if (d.owner !== owner) continue
          clearTimeout(timers.get(d.id))
          timers.delete(d.id)
          rmSync(join(dir, name), { force: true })
          if (dir === pendingDir) waiting.dec()
          n++
        }
      }
      return n
    },
    close() {
      closed = true
      for (const t of timers.values()) clearTimeout(t)
      timers.clear()
    },
  }
}

/** The dead-lettered deliveries in `dir` (an operator resends one by moving its file back to `pending/` and restarting ubiq). */
export const deadLetters = (dir: string): Delivery[] =>
  existsSync(join(dir, 'dead')) ? readdirSync(join(dir, 'dead')).map((n) => JSON.parse(readFileSync(join(dir, 'dead', n), 'utf8')) as Delivery) : []

