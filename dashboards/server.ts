/**
 * The dashboards server: a policyholder's live feed over websocket, a page that shows it, a small
 * REST API, health and Prometheus metrics. Policyholder auth (signed per-policy tokens) and the
 * analyst pages are the dashboards issue's; until then it binds to loopback by default.
 */
import { readFileSync } from 'node:fs'
import websocket from '@fastify/websocket'
import Fastify from 'fastify'
import type { Logger } from 'pino'
import type { Registry } from 'prom-client'
import type { Observable, Subscription } from 'rxjs'
import { ID_PATTERN, type DeviceClock, type Subject } from '../ingest/index.ts'
import { WhatIfError, type PremiumAdjustment, type WhatIf } from '../pricing/index.ts'
import type { Score } from '../scoring/index.ts'

export interface DashboardsDeps {
  scores$: Observable<Score>
  premiums$: Observable<PremiumAdjustment>
  metrics: Registry
  /** A device's clock skew estimate, for operators. */
  deviceClock(deviceId: string): DeviceClock | undefined
  /** The premium simulator: the policy's latest score of `subject` with changed features, priced; undefined without a score. */
  whatIf(policyId: string, subject: Subject, changes: unknown): Promise<WhatIf | undefined>
  /** Whether the service works, and the checks behind the answer. */
  health(): { ok: boolean; checks: Record<string, boolean | number> }
  logger: Logger
  host: string
  port: number
}

/** What the feed sends: every message names its type. */
export type FeedMessage =
  | { type: 'score'; score: Score }
  | { type: 'premium'; premium: PremiumAdjustment }
  | { type: 'error'; reason: string }

const page = readFileSync(new URL('./public/feed.html', import.meta.url), 'utf8')
const policyParams = {
  type: 'object',
  required: ['policy'],
  properties: { policy: { type: 'string', pattern: ID_PATTERN } },
} as const

/** Starts the server; resolves once it listens. */
export async function startDashboards(deps: DashboardsDeps): Promise<{ url: string; close(): Promise<void> }> {
  // At warn: fastify logs every request at info, and request URLs name policies.
  const app = Fastify({ loggerInstance: deps.logger.child({ stage: 'dashboards' }, { level: 'warn' }) })
  await app.register(websocket, { options: { maxPayload: 4096 } })

  // The latest score and premium per policy, so a new client sees where things stand at once.
  const latest = new Map<string, { score?: Score; premium?: PremiumAdjustment }>()
  const listeners = new Set<(policyId: string, msg: FeedMessage) => void>()
  const broadcast = (policyId: string, msg: FeedMessage) => listeners.forEach((l) => l(policyId, msg))
  const subs: Subscription[] = [
    deps.scores$.subscribe((score) => {
      latest.set(score.policyId, { ...latest.get(score.policyId), score })
      broadcast(score.policyId, { type: 'score', score })
    }),
    deps.premiums$.subscribe((premium) => {
      latest.set(premium.policyId, { ...latest.get(premium.policyId), premium })
      broadcast(premium.policyId, { type: 'premium', premium })
    }),
  ]

  app.get('/', (_req, reply) => reply.type('text/html; charset=utf-8').send(page))
  app.get('/healthz', (_req, reply) => {
    const { ok, checks } = deps.health()
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', checks })
  })
  app.get('/metrics', async (_req, reply) => reply.type(deps.metrics.contentType).send(await deps.metrics.metrics()))
  app.get('/api/v1/policies', () => ({ policies: [...latest.keys()].sort() }))
  app.get<{ Params: { policy: string } }>('/api/v1/policies/:policy', { schema: { params: policyParams } }, (req, reply) => {
    const state = latest.get(req.params.policy)
    if (!state) return reply.code(404).send({ error: 'unknown_policy', message: `no score yet for policy ${req.params.policy}` })
    return { policyId: req.params.policy, ...state }
  })
  const whatIfParams = { type: 'object', required: ['policy', 'subject'], properties: { ...policyParams.properties, subject: { type: 'string', enum: ['driving', 'health', 'home'] } } } as const
  app.post<{ Params: { policy: string; subject: Subject } }>('/api/v1/policies/:policy/what-if/:subject', { schema: { params: whatIfParams } }, async (req, reply) => {
    // The body is checked by the simulator, not fastify, whose default drops unknown fields silently.
    try {
      const answer = await deps.whatIf(req.params.policy, req.params.subject, req.body)
      if (!answer) return reply.code(404).send({ error: 'unknown_policy', message: `no ${req.params.subject} score yet for policy ${req.params.policy}` })
      return answer
    } catch (err) {
      if (err instanceof WhatIfError) return reply.code(400).send({ error: 'bad_request', message: err.message })
      throw err
    }
  })
  const deviceParams = { type: 'object', required: ['device'], properties: { device: { type: 'string', pattern: ID_PATTERN } } } as const
  app.get<{ Params: { device: string } }>('/api/v1/devices/:device/clock', { schema: { params: deviceParams } }, (req, reply) => {
    const clock = deps.deviceClock(req.params.device)
    if (!clock) return reply.code(404).send({ error: 'unknown_device', message: `no message yet from device ${req.params.device}` })
    return { deviceId: req.params.device, ...clock }
  })
  app.get<{ Querystring: { policy: string } }>('/feed', { websocket: true, schema: { querystring: policyParams } }, (socket, req) => {
    const policyId = req.query.policy
    const send = (msg: FeedMessage) => socket.send(JSON.stringify(msg))
    const listener = (id: string, msg: FeedMessage) => {
      if (id === policyId) send(msg)
    }
    const state = latest.get(policyId)
    if (state?.score) send({ type: 'score', score: state.score })
    if (state?.premium) send({ type: 'premium', premium: state.premium })
    listeners.add(listener)
    socket.on('message', () => send({ type: 'error', reason: 'the feed is read-only: clients send nothing' }))
    socket.on('close', () => listeners.delete(listener))
  })

  const address = await app.listen({ host: deps.host, port: deps.port })
  return {
    url: address,
    async close() {
      subs.forEach((s) => s.unsubscribe())
      await app.close()
    },
  }
}
