/**
 * The dashboards server (issue #7): the policyholder's live feed over websocket, the REST API with
 * its OpenAPI document, the pages, health and Prometheus metrics.
 *
 * Every data route and the feed need a bearer token (auth.ts): a policyholder's opens only that
 * policy, an analyst's everything. The pages themselves hold no data and are public; they take the
 * token from the URL fragment, which browsers never send to the server. Requests are rate limited
 * per client address, and nothing a route logs names a policy's values.
 */
import { readFileSync } from 'node:fs'
import rateLimit from '@fastify/rate-limit'
import swagger from '@fastify/swagger'
import websocket from '@fastify/websocket'
import { Type, type Static, type TArray, type TSchema, type TString } from '@sinclair/typebox'
import Fastify, { type FastifyReply, type FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { Counter, Gauge, type Registry } from 'prom-client'
import type { Observable, Subscription } from 'rxjs'
import type { WebSocket } from 'ws'
import { codes, ID_PATTERN, Subject, subjects, units, UbiqError, within, type RestAnswer, type ConsentStore, type DeviceClock, type Influx, type PrivacyStore } from '../ingest/index.ts'
import { Claim, HouseholdPremium, PremiumAdjustment, WhatIf, type BacktestSummary } from '../pricing/index.ts'
import { eventTypes, Score, type PolicyEvent } from '../scoring/index.ts'
import { mustBeAnalyst, mustSee, type TokenAuthority, type Verified } from './auth.ts'
import { registerConsents, registerErasure, registerPrivacyMode, registerRevocations, type Erase } from './privacy.ts'
import { feedJournal, FeedQuery, feedText, type FeedMessage, type FeedNotice } from './feed.ts'
import { eventHistory, historyTables, premiumHistory, scoreHistory, storedPolicies, storedStanding, StoredEvent, StoredPremium, StoredScore, StoredTrip, tripHistory, type Columns } from './history.ts'
import { errors, strict } from './schemas.ts'
import { Format, sendCsv, Time, TIME_PATTERN, type Cell } from './tables.ts'
import { registerPortfolio } from './portfolio.ts'
import { registerDrilldown, type PolicyDevice } from './drilldown.ts'
import { registerBacktest } from './backtest-page.ts'
import { registerMonitoring, sampleMetrics } from './monitoring.ts'
import { alertRules, defaultAlertThresholds, registerAlerts, type AlertThresholds } from './alerts.ts'
import { registerExport, storeConsents } from './export.ts'
import { summarizer, Summary } from './coaching.ts'
import { tripRoute, TripRoute } from './route.ts'
import { eventAlert, premiumAlert, registerPush, type PushAlerts, type PushMessage } from './push.ts'

export interface DashboardsDeps {
  scores$: Observable<Score>
  events$: Observable<PolicyEvent>
  premiums$: Observable<PremiumAdjustment>
  influx: Influx
  auth: TokenAuthority
  metrics: Registry
  /**
   * A device's clock skew estimate, for operators. Ingest's own figures (this route, the ingest
   * health page and the alert rules over ingest's metrics) are served only beside ingest: not by
   * the dashboards process (`ubiq start --dashboards`), which is given none.
   */
  deviceClock?(deviceId: string): DeviceClock | undefined
  /** The premium simulator: `score` (the policy's latest of its subject) with changed features, priced; undefined without a model for it. Without it (the dashboards process: pricing's state is the main process's) there is no what-if route. */
  whatIf?(score: Score, changes: unknown): Promise<WhatIf | undefined>
  /** The policy's household (#24): its covers' latest premiums and the plan's bundle rule, as pricing audits it; without it there is no household route. */
  household?(policyId: string): HouseholdPremium | undefined
  /** Whether the service works, and the checks behind the answer: booleans are checks (false fails), numbers are information. */
  health(): { ok: boolean; checks: Record<string, boolean | number> }
  logger: Logger
  host: string
  port: number
  /** Requests a client address may make a minute (websocket connections included). */
  rateLimitPerMinute?: number
  /** The devices registered to a policy (the device registry), for the analyst's drill-down into raw readings and the export. */
  devicesOf?(policyId: string): readonly PolicyDevice[]
  /** The rating plan and champion models backtested over the reference portfolio, for the analyst's backtest page. */
  backtest?(): Promise<BacktestSummary>
  /** A feed client with more than this many bytes not yet taken off the socket is cut off (default 1 MiB). */
  feedMaxBufferedBytes?: number
  /**
   * Consent as it stands (ingest/consent.ts): its routes, and the routes whose answer depends on it
   * (the drill-down, the export, a trip's route). Without it (the dashboards process: consent lives
   * in the main process, rebuilt from the audit chain) those routes are not served.
   */
  consents?: ConsentStore
  /** Privacy mode's pauses (ingest/privacy.ts), for the privacy routes; without it there are none. */
  privacy?: PrivacyStore
  /**
   * Whether the device registry knows the policy: every route of a policy it does not know (an
   * erased one) answers 404 `unknown_policy`, and its feed closes with 4404. Default: every policy.
   */
  enrolled?(policyId: string): boolean
  /** The claims opened (first notice of loss, #24), newest first, for the analyst; without it the list is empty. */
  claims?(): Claim[]
  /** Erases a policy (#21 item 5, bin/erase.ts); without it there is no erasure route. */
  erase?: Erase
  /** Web push to the policyholders' installed apps (push.ts); without it, no push routes and no alerts. */
  push?: PushAlerts
  /** The analyst alert rules' thresholds (default defaultAlertThresholds). */
  alertThresholds?: AlertThresholds
  /** Map tiles drawn under a trip's route (MAP_TILES_URL, an XYZ template; MAP_TILES_ATTRIBUTION); without them, the route alone and no tile request. */
  mapTiles?: { url: string; attribution?: string }
}

/** How often the token revocations file is looked at for another process's changes, ms. */
const REVOCATIONS_REREAD_MS = 1000
/** How long shutdown waits for feed clients to answer the close frame, ms. */
const FEED_CLOSE_WAIT_MS = 2000
/** A refused feed's close code: 4000 + the HTTP status REST answers the same refusal with (4401, 4403, 4404). */
const closeCode = (rest: RestAnswer) => 4000 + rest.status

const page = readFileSync(new URL('./public/feed.html', import.meta.url), 'utf8')
/** The pages' and the app's icon: a gauge, as the policyholder's scores are drawn. */
const ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#1f5fa0"/><path d="M6 22a10 10 0 0 1 20 0" fill="none" stroke="#fff" stroke-width="4"/><path d="M16 22l6-8" stroke="#f4b400" stroke-width="3" stroke-linecap="round"/></svg>'
/** The installed app's icon where the phone cuts it to its own shape: full bleed, the gauge within the middle 80%. */
const MASKABLE_ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 40 40"><rect width="40" height="40" fill="#1f5fa0"/><path d="M12 25a8 8 0 0 1 16 0" fill="none" stroke="#fff" stroke-width="3.2"/><path d="M20 25l4.8-6.4" stroke="#f4b400" stroke-width="2.4" stroke-linecap="round"/></svg>'
/** The installable app (#23): its manifest and service worker, beside the page. */
const manifest = readFileSync(new URL('./public/manifest.webmanifest', import.meta.url), 'utf8')
const serviceWorker = readFileSync(new URL('./public/sw.js', import.meta.url), 'utf8')
/** The words and formats of every page (the policyholder's and the analyst's). */
const wordsJs = readFileSync(new URL('./public/words.js', import.meta.url), 'utf8')
/** The catalogues the pages read (#22): the subjects, event types' words, the contract's units. */
const catalogueJs = [
  `export const subjects = ${JSON.stringify(subjects)}`,
  `export const eventWords = ${JSON.stringify(Object.fromEntries(Object.entries(eventTypes).map(([type, e]) => [type, e.words])))}`,
  `export const units = ${JSON.stringify(units)}`,
].join('\n')
const PolicyId = Type.String({ pattern: ID_PATTERN, description: 'policy id' })
const PolicyParams = Type.Object({ policy: PolicyId })
const RangeQuery = {
  from: Type.Optional({ ...Time, description: 'from this time (inclusive), ISO 8601' }),
  to: Type.Optional({ ...Time, description: 'until this time (exclusive), ISO 8601' }),
  limit: Type.Integer({ minimum: 1, maximum: 1000, default: 100, description: 'at most this many, newest first' }),
}
const HistoryQuery = Type.Object({ ...RangeQuery, subject: Type.Optional(Subject), format: Format }, { additionalProperties: false })
const EventsQuery = Type.Object({ ...RangeQuery, subject: Type.Optional(Subject), type: Type.Optional(Type.String({ pattern: '^[a-z_]{1,40}$' })), format: Format }, { additionalProperties: false })
const TripsQuery = Type.Object({ ...RangeQuery, format: Format }, { additionalProperties: false })
const Health = strict({ status: Type.Union([Type.Literal('ok'), Type.Literal('degraded')]), failing: Type.Optional(Type.Array(Type.String(), { description: 'the checks that fail' })), checks: Type.Record(Type.String(), Type.Union([Type.Boolean(), Type.Number()])) })
const Standing = strict({ policyId: Type.String(), scores: Type.Partial(Type.Record(Subject, Score)), premiums: Type.Partial(Type.Record(Subject, PremiumAdjustment)) })
/** A policy's history of one kind: `{policyId, [key]: items}`. */
const History = <K extends string, S extends TSchema>(key: K, item: S) => strict({ policyId: Type.String(), [key]: Type.Array(item) } as { policyId: TString } & Record<K, TArray<S>>)
const range = (q: { from?: string; to?: string; limit: number }) => ({ from: q.from ? Date.parse(q.from) : undefined, to: q.to ? Date.parse(q.to) : undefined, limit: q.limit })

/** Starts the server; resolves once it listens. */
export async function startDashboards(deps: DashboardsDeps): Promise<{ url: string; close(): Promise<void> }> {
  // At warn: fastify logs every request at info, and request URLs name policies (and the feed's carry tokens).
  const app = Fastify({ loggerInstance: deps.logger.child({ stage: 'dashboards' }, { level: 'warn' }), ajv: { customOptions: { removeAdditional: false } } })
  await app.register(swagger, {
    openapi: {
      info: { title: 'ubiq', version: '1', description: "Scores, events, trips and premiums of usage-based insurance policies. Send `Authorization: Bearer <token>` (ubiq token issues them): a policyholder's token opens its own policy, an analyst's every policy." },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
      security: [{ bearer: [] }],
    },
  })
  await app.register(rateLimit, { max: deps.rateLimitPerMinute ?? 600, timeWindow: 60_000 })
  await app.register(websocket, {
    options: { maxPayload: 1024 },
    // At shutdown each feed is told why (1001, going away: reconnect later with ?since=; the
    // plugin's own close sent no code, 1005), and a client that does not answer the close frame is
    // cut off after FEED_CLOSE_WAIT_MS, not ws's 30 s: shutdown ends in a stated time (#20).
    async preClose() {
      const feeds = [...app.websocketServer.clients]
      const closed = feeds.map((ws) => new Promise((resolve) => (ws.readyState === ws.CLOSED ? resolve(undefined) : ws.once('close', resolve))))
      for (const ws of feeds) ws.close(1001, 'the service is shutting down: reconnect with ?since=')
      if (await within(FEED_CLOSE_WAIT_MS, Promise.all(closed)) === 'timeout') {
        for (const ws of feeds) ws.terminate()
        await Promise.all(closed) // a terminated socket closes at once, on a later tick
      }
      app.websocketServer.close()
    },
    // A client breaking the protocol (a message over maxPayload, a bad frame) has been told with a
    // close code: not the service's error, and anyone could fill the error log with them.
    errorHandler(err: Error & { code?: string }, socket) {
      // ws is already closing those with their code (and destroys the socket if the client never answers).
      if (err.code?.startsWith('WS_ERR_')) return deps.logger.debug({ code: err.code }, 'dashboards: a feed client broke the websocket protocol')
      deps.logger.error({ err }, 'dashboards: feed connection failed')
      socket.terminate()
    },
  })

  const journal = feedJournal({ stored: (policyId) => storedStanding(deps.influx, policyId) })
  const feedClients = new Gauge({ name: 'ubiq_feed_clients', help: 'Feed websockets open', registers: [deps.metrics] })
  const feedSent = new Counter({ name: 'ubiq_feed_messages_sent_total', help: 'Messages sent to feed clients (replays included)', registers: [deps.metrics] })
  const feedCutOff = new Counter({ name: 'ubiq_feed_clients_cut_off_total', help: 'Feed clients closed (1013) for not taking their messages off the socket', registers: [deps.metrics] })
  const maxBuffered = deps.feedMaxBufferedBytes ?? 1024 * 1024
  const subs: Subscription[] = [
    deps.scores$.subscribe((score) => journal.append(score.policyId, { type: 'score', score })),
    deps.events$.subscribe((event) => journal.append(event.policyId, { type: 'event', event })),
    deps.premiums$.subscribe((premium) => journal.append(premium.policyId, { type: 'premium', premium })),
  ]
  // Urgent events and premium changes reach the installed app even when no page is open (#23).
  const { push } = deps
  if (push) {
    const alert = (policyId: string, msg: PushMessage | undefined, urgency: 'normal' | 'high') => void (msg && push.send(policyId, msg, urgency))
    subs.push(deps.events$.subscribe((e) => alert(e.policyId, eventAlert(e), 'high')), deps.premiums$.subscribe((p) => alert(p.policyId, premiumAlert(p), 'normal')))
  }

  const bearer = (req: FastifyRequest) => req.headers.authorization?.match(/^Bearer\s+(\S+)$/i)?.[1]
  // Verified once a request, by the hook below; routes ask `who` for it.
  const principals = new WeakMap<FastifyRequest, Verified>()
  const who = (req: FastifyRequest): Verified => principals.get(req) ?? deps.auth.verify(bearer(req))
  /** Each open feed's token and policy: a revocation closes the feeds its tokens opened (#21 item 7), an erasure those of its policy. */
  const feedTokens = new Map<WebSocket, { token: string; policyId: string }>()
  const enrolled = (policyId: string) => deps.enrolled?.(policyId) ?? true
  // Who asks is settled before what is asked is read: without a valid token a request gets a 401,
  // never a 400 (or 413, 415) that describes the route, so before the body is parsed. Public: the
  // routes hidden from the OpenAPI document (pages, assets, and the feed, which @fastify/websocket
  // hides and which answers with close codes) and those declared without security (health).
  app.addHook('preParsing', (req, _reply, payload, done) => {
    const schema = req.routeOptions.schema as { hide?: boolean; security?: unknown[] } | undefined
    try {
      if (req.routeOptions.url !== undefined && !schema?.hide && schema?.security?.length !== 0) principals.set(req, deps.auth.verify(bearer(req)))
      done(null, payload)
    } catch (err) {
      done(err as Error)
    }
  })
  // ajv coerces a query's `Infinity` (or `1e400`) to a number, and leaves the bounds of a number
  // that is not finite unchecked: ?limit=Infinity passed "an integer from 1 to 1000" and reached
  // InfluxDB as LIMIT Infinity, a 500 (#20, found by the fuzz harness). JSON.parse turns a body's
  // 1e400 into Infinity too. So no route gets a non-finite number in its params, query or body:
  // a 400 that says which (the feed, which answers with close codes, gets it as its validation error).
  app.addHook('preHandler', (req, _reply, done) => {
    const inputs = { params: req.params, querystring: req.query, body: req.body }
    const bad = Object.entries(inputs).flatMap(([context, value]) => nonFinite(value).map((path) => ({ context, path })))
    if (bad.length === 0) return done()
    const err = Object.assign(new Error('not a finite number'), {
      statusCode: 400, validationContext: bad[0]!.context, validation: bad.filter((b) => b.context === bad[0]!.context).map((b) => ({ instancePath: b.path, message: 'must be a finite number' })),
    })
    if (!req.routeOptions.attachValidation) return done(err)
    ;(req as { validationError?: Error }).validationError = err
    done()
  })
  app.setErrorHandler((err: Error & { statusCode?: number; validation?: unknown }, _req, reply) => {
    // The catalogue's errors that reach REST say how they are answered (ingest/errors.ts).
    if (err instanceof UbiqError && err.rest) {
      if (err.rest.status === 401) reply.header('www-authenticate', 'Bearer error="invalid_token"')
      return reply.code(err.rest.status).send({ error: err.rest.error, message: err.message, code: err.code })
    }
    if (err.validation) return reply.code(400).send({ error: 'bad_request', message: validationMessage(err as Error & { validation: Problem[]; validationContext?: string }) })
    if (err.statusCode === 429) return reply.code(429).send({ error: 'rate_limited', message: err.message })
    // What fastify refuses before a handler runs (a body that is not JSON, too large, of another type) is the client's to mend.
    if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) return reply.code(err.statusCode).send({ error: 'bad_request', message: err.message })
    deps.logger.error({ err }, 'dashboards: request failed')
    return reply.code(err.statusCode ?? 500).send({ error: 'internal', message: 'the request failed; see the service log' })
  })
  // A policy the registry does not know (erased) is not found, on every route that names one; a
  // token that may not see the policy is refused first (a 403 must not tell which policies exist).
  app.addHook('preHandler', async (req) => {
    const policyId = (req.params as { policy?: unknown } | undefined)?.policy
    if (typeof policyId !== 'string' || enrolled(policyId) || !principals.has(req)) return
    mustSee(principals.get(req)!, policyId)
    throw new codes.UBIQ_UNKNOWN_POLICY(policyId)
  })
  /** A data route: the caller must be allowed to see the policy in the path (or, without one, be an analyst). */
  const policyRoute = <Q extends TSchema, R extends TSchema>(path: string, description: string, querystring: Q | undefined, response: R, handler: (policyId: string, q: Static<Q>, req: FastifyRequest, reply: FastifyReply) => Promise<Static<R> | FastifyReply>) =>
    app.get<{ Params: Static<typeof PolicyParams>; Querystring: Static<Q> }>(path, { schema: { description, params: PolicyParams, ...(querystring ? { querystring } : {}), response: { 200: response, ...errors } } }, async (req, reply) => {
      mustSee(who(req), req.params.policy)
      return handler(req.params.policy, req.query, req, reply)
    })
  const notFound = (reply: FastifyReply, error: string, message: string) => reply.code(404).send({ error, message })
  /** A policy's claims, newest first: its route's and its export's. */
  const claimsOf = (policyId: string) => (deps.claims?.() ?? []).filter((c) => c.policyId === policyId)

  app.get('/', { schema: { hide: true } }, (_req, reply) => reply.type('text/html; charset=utf-8').send(page))
  // Browsers ask for /favicon.ico on every page: an icon, not a 404 in every log and console.
  for (const [path, svg] of [['/favicon.ico', ICON], ['/icon.svg', ICON], ['/icon-maskable.svg', MASKABLE_ICON]]) {
    app.get(path!, { schema: { hide: true } }, (_req, reply) => reply.type('image/svg+xml').header('cache-control', 'public, max-age=86400').send(svg))
  }
  app.get('/manifest.webmanifest', { schema: { hide: true } }, (_req, reply) => reply.type('application/manifest+json').send(manifest))
  // Not cached by the browser's HTTP cache: a new version of the worker is found at the next visit.
  app.get('/sw.js', { schema: { hide: true } }, (_req, reply) => reply.type('text/javascript; charset=utf-8').header('cache-control', 'no-cache').send(serviceWorker))
  app.get('/assets/words.js', { schema: { hide: true } }, (_req, reply) => reply.type('text/javascript; charset=utf-8').send(wordsJs))
  app.get('/assets/catalogue.js', { schema: { hide: true } }, (_req, reply) => reply.type('text/javascript; charset=utf-8').send(catalogueJs))
  app.get('/healthz', { schema: { description: 'Liveness of each stage: no token needed, no data in it. 503 names the failing checks', security: [], response: { 200: Health, 503: Health } } }, (_req, reply) => {
    const { ok, checks } = deps.health()
    // The checks are the booleans; a 503 says which failed, so an operator need not read them all.
    const failing = Object.keys(checks).filter((k) => checks[k] === false)
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', ...(ok ? {} : { failing }), checks })
  })
  app.get('/metrics', { schema: { description: 'Prometheus metrics (analyst token)' } }, async (req, reply) => {
    mustBeAnalyst(who(req))
    return reply.type(deps.metrics.contentType).send(await deps.metrics.metrics())
  })
  app.get('/api/v1/openapi.json', { schema: { hide: true } }, () => app.swagger())
  app.get('/api/v1/policies', { schema: { description: 'Every policy with a score or premium (analyst token)', response: { 200: strict({ policies: Type.Array(Type.String()) }), ...errors } } }, async (req) => {
    mustBeAnalyst(who(req))
    // Stored ones, and those whose first lines are still on their way to InfluxDB.
    return { policies: [...new Set([...(await storedPolicies(deps.influx)), ...journal.policies()])].sort() }
  })
  app.get('/api/v1/claims', { schema: { description: 'Every claim opened (first notice of loss: crash, leak that kept running, fire, CO), newest first, with its delivery status (analyst token)', response: { 200: strict({ claims: Type.Array(Claim) }), ...errors } } }, async (req) => {
    mustBeAnalyst(who(req))
    return { claims: deps.claims?.() ?? [] }
  })
  policyRoute('/api/v1/policies/:policy/claims', "The policy's claims (first notice of loss) and their status, newest first", undefined, strict({ claims: Type.Array(Claim) }), async (policyId) => ({ claims: claimsOf(policyId) }))
  registerPortfolio(app, deps.influx, who)
  registerBacktest(app, deps.backtest, who)
  // Ingest's health and its alert rules where ingest runs (a dashboards process of its own has no
  // ingest metrics); the models' drift and shadow pages read InfluxDB only, so they are everywhere.
  let samples: ReturnType<typeof sampleMetrics> | undefined
  if (deps.deviceClock) {
    // One sampler of the metrics for the ingest page's rates and recent figures and for the alert rules.
    const alerts = alertRules({ influx: deps.influx, metrics: deps.metrics, thresholds: deps.alertThresholds ?? defaultAlertThresholds, log: app.log })
    samples = sampleMetrics(app, deps.metrics, alerts.evaluate)
    registerAlerts(app, alerts.alerts, who)
  }
  registerMonitoring(app, { influx: deps.influx, metrics: deps.metrics, samples }, who)
  const { consents } = deps
  if (consents) {
    registerConsents(app, consents, who)
    registerDrilldown(app, { ...deps, consents }, who)
    registerExport(app, {
      influx: deps.influx, devicesOf: deps.devicesOf, logger: deps.logger,
      consentsOf: (policyId) => storeConsents(consents, policyId, deps.devicesOf?.(policyId) ?? []),
      claimsOf: (policyId) => claimsOf(policyId),
    }, who)
  }
  if (deps.privacy) registerPrivacyMode(app, deps.privacy, who)
  const closeRevokedFeeds = () => {
    for (const [ws, { token }] of feedTokens) {
      try {
        deps.auth.verify(token)
      } catch (err) {
        if (err instanceof UbiqError && err.rest) ws.close(closeCode(err.rest), err.message)
      }
    }
  }
  registerRevocations(app, deps.auth, who, closeRevokedFeeds)
  // The main process and the dashboards process (`ubiq start --dashboards`) share the revocations
  // file: what one revokes closes the other's feeds within a second.
  const rereading = setInterval(() => {
    try {
      if (deps.auth.reread()) closeRevokedFeeds()
    } catch (err) {
      deps.logger.error({ err }, 'dashboards: the token revocations file cannot be read again; the revocations read before stand')
    }
  }, REVOCATIONS_REREAD_MS)
  if (push) registerPush(app, push, who)
  if (deps.erase) {
    registerErasure(app, deps.erase, deps.auth, who, (policyId) => {
      journal.forget(policyId)
      push?.forget(policyId)
      closeRevokedFeeds()
      for (const [ws, feed] of feedTokens) if (feed.policyId === policyId) ws.close(4404, 'the policy has been erased')
    })
  }
  policyRoute('/api/v1/policies/:policy', "The policy's latest score and premium per subject", undefined, Standing, async (policyId, _q, _req, reply) => {
    // The feed's standing: it reads from InfluxDB what it does not hold.
    const { messages } = await journal.replay(policyId)
    if (messages.length === 0) return notFound(reply, 'unknown_policy', `no score yet for policy ${policyId}`)
    const scores: Partial<Record<Subject, Score>> = {}
    const premiums: Partial<Record<Subject, PremiumAdjustment>> = {}
    for (const m of messages) {
      if (m.type === 'score') scores[m.score.subject] = m.score
      if (m.type === 'premium') premiums[m.premium.subject] = m.premium
    }
    return { policyId, scores, premiums }
  })
  policyRoute('/api/v1/policies/:policy/household', "The policy's covers together: each cover's latest premium, the rating plan's bundle rule on their total, and the reasons in words", undefined, HouseholdPremium, async (policyId, _q, _req, reply) =>
    deps.household?.(policyId) ?? notFound(reply, 'no_household', `no premium yet for policy ${policyId}, or the rating plan has no household rule`))
  /** A history route's answer: JSON, or with ?format=csv its table (the export's file of the same name, newest first). */
  const history = <K extends keyof typeof historyTables, T>(reply: FastifyReply, policyId: string, format: string | undefined, kind: K, rows: T[]) => {
    const table = historyTables[kind] as { columns: Columns; cells(r: T): Cell[] }
    if (format !== 'csv') return { policyId, [kind]: rows } as { policyId: string } & Record<K, T[]>
    return sendCsv(reply, `${kind}-${policyId}`, { columns: table.columns.map(([c]) => c), rows: rows.map((r) => table.cells(r)) })
  }
  policyRoute('/api/v1/policies/:policy/scores', 'Scores with their reasons, newest first (?format=csv: as CSV)', HistoryQuery, History('scores', StoredScore), async (policyId, q, _req, reply) => history(reply, policyId, q.format, 'scores', await scoreHistory(deps.influx, policyId, q.subject, range(q))))
  policyRoute('/api/v1/policies/:policy/premiums', 'Premium changes with their reasons, newest first (?format=csv: as CSV)', HistoryQuery, History('premiums', StoredPremium), async (policyId, q, _req, reply) => history(reply, policyId, q.format, 'premiums', await premiumHistory(deps.influx, policyId, q.subject, range(q))))
  policyRoute('/api/v1/policies/:policy/events', 'Events of every subject with their evidence, newest first (?format=csv: as CSV)', EventsQuery, History('events', StoredEvent), async (policyId, q, _req, reply) => history(reply, policyId, q.format, 'events', await eventHistory(deps.influx, policyId, { subject: q.subject, type: q.type }, range(q))))
  policyRoute('/api/v1/policies/:policy/trips', 'Trips with the events in them (evidence included), newest first (?format=csv: as CSV, with the number of events)', TripsQuery, History('trips', StoredTrip), async (policyId, q, _req, reply) => history(reply, policyId, q.format, 'trips', await tripHistory(deps.influx, policyId, range(q))))
  if (consents) {
    app.get<{ Params: { policy: string; from: string } }>('/api/v1/policies/:policy/trips/:from/route', {
      schema: {
        description: "A trip's route and its events on it, for the policyholder's own token only (an analyst's gets 403: positions never reach analysts): the trip's fixes while positions are kept, at most 500; after that, none and why",
        params: Type.Object({ policy: PolicyId, from: Time }),
        response: { 200: TripRoute, ...errors },
      },
    }, async (req, reply) => {
      const principal = who(req)
      if (principal.role !== 'policyholder') throw new codes.UBIQ_AUTH_FORBIDDEN("a trip's route is for its policyholder's own token: positions never reach analysts")
      mustSee(principal, req.params.policy)
      const route = await tripRoute(deps.influx, req.params.policy, Date.parse(req.params.from), consents.stored(req.params.policy, 'gps'))
      if (!route) return notFound(reply, 'unknown_trip', `no trip of policy ${req.params.policy} started at ${req.params.from}`)
      return { ...route, ...(deps.mapTiles ? { tiles: deps.mapTiles } : {}) }
    })
  }
  const { whatIf } = deps
  if (whatIf) {
    app.post<{ Params: { policy: string; subject: Subject } }>('/api/v1/policies/:policy/what-if/:subject', {
      schema: {
        description: "The premium the policy's latest score would get with changed features: body {\"scale\": {feature: factor}, \"set\": {feature: value}}",
        params: Type.Object({ policy: PolicyId, subject: Subject }),
        response: { 200: WhatIf, ...errors },
      },
    }, async (req, reply) => {
      mustSee(who(req), req.params.policy)
      const { messages } = await journal.replay(req.params.policy)
      const score = messages.flatMap((m) => (m.type === 'score' && m.score.subject === req.params.subject ? [m.score] : [])).at(-1)
      // The body is checked by the simulator, which names what is wrong with it.
      const answer = score && (await whatIf(score, req.body))
      return answer ?? notFound(reply, 'unknown_policy', `no ${req.params.subject} score yet for policy ${req.params.policy}`)
    })
  }
  const summaryOf = summarizer(deps.influx, whatIf ?? (async () => undefined))
  policyRoute('/api/v1/policies/:policy/summary', "The policyholder's summary per subject: the score's weekly trend, where the policy stands in the portfolio, the premium outlook and coaching tips, in words", undefined, Summary, async (policyId) => {
    const { messages } = await journal.replay(policyId)
    const latest = new Map(messages.flatMap((m) => (m.type === 'score' ? [[m.score.subject, m.score] as const] : [])))
    return summaryOf(policyId, [...latest.values()])
  })
  const { deviceClock } = deps
  if (deviceClock) {
    app.get<{ Params: { device: string } }>('/api/v1/devices/:device/clock', {
      schema: { description: "A device's clock skew estimate (analyst token)", params: Type.Object({ device: Type.String({ pattern: ID_PATTERN }) }), response: { 200: strict({ deviceId: Type.String(), skewMs: Type.Number({ description: 'receive time minus device time at the least-delayed message: positive, the device clock is behind' }), samples: Type.Integer(), lastSeen: Type.Number({ description: "the device's last message, ms since the Unix epoch" }) }), ...errors } },
    }, (req, reply) => {
      mustBeAnalyst(who(req))
      const clock = deviceClock(req.params.device)
      return clock ? { deviceId: req.params.device, ...clock } : notFound(reply, 'unknown_device', `no message yet from device ${req.params.device}`)
    })
  }

  app.get<{ Querystring: Static<typeof FeedQuery> }>('/feed', {
    websocket: true,
    // Who asks is settled before what is asked is read, as on REST (#20: a bad query without a
    // token got a 400 that described the schema): a query that fails validation reaches the
    // handler, which checks the token first and only then says what is wrong with the query.
    attachValidation: true,
    schema: { description: 'The live feed (websocket): the policy\'s scores, events and premium changes, each with seq; ?since=SEQ replays what came after. Close codes: 4401 no, bad or expired token; 4403 another policy; 4404 a policy the registry does not know (erased, also while open); 4400 a bad query (after the token)', querystring: FeedQuery },
  }, (socket, req) => {
    let unsubscribe = () => {}
    const send = (msg: FeedMessage | FeedNotice) => {
      // A client that does not read (a stalled phone, a slow link) would otherwise hold every
      // message since in server memory: cut it off; it comes back with ?since= and replays.
      if (socket.bufferedAmount > maxBuffered) {
        if (socket.readyState !== socket.OPEN) return
        unsubscribe()
        feedCutOff.inc()
        return socket.close(1013, 'the client is not keeping up: reconnect with ?since=')
      }
      socket.send(msg.type === 'gap' || msg.type === 'error' ? JSON.stringify(msg) : feedText(msg))
      feedSent.inc()
    }
    let policyId: string, expiresAt: number
    try {
      // Unvalidated when the query failed its schema: a token given twice is an array, i.e. no token.
      const principal = deps.auth.verify(typeof req.query.token === 'string' ? req.query.token : undefined)
      // A close reason is at most 123 bytes: ASCII only (the query's own names may be anything), cut short.
      if (req.validationError) return socket.close(4400, validationMessage(req.validationError as unknown as { validation: Problem[]; validationContext?: string }).replace(/[^\x20-\x7e]/g, '?').slice(0, 123))
      expiresAt = principal.expiresAt
      policyId = req.query.policy ?? (principal.role === 'policyholder' ? principal.policyId : '')
      if (!policyId) throw new codes.UBIQ_AUTH_FORBIDDEN('an analyst names the policy to follow: ?policy=ID')
      mustSee(principal, policyId)
      if (!enrolled(policyId)) throw new codes.UBIQ_UNKNOWN_POLICY(policyId)
    } catch (err) {
      if (err instanceof UbiqError && err.rest) return socket.close(closeCode(err.rest), err.message)
      throw err
    }
    feedTokens.set(socket, { token: req.query.token!, policyId })
    feedClients.inc()
    // A token that expires closes the feed it opened (timers hold at most 2^31 - 1 ms).
    const expiry = setTimeout(() => socket.close(4401, 'the token has expired'), Math.min(Math.max(0, expiresAt - Date.now()), 2 ** 31 - 1))
    let closed = false
    socket.on('message', () => send({ type: 'error', reason: 'the feed is read-only: clients send nothing' }))
    socket.on('close', () => {
      closed = true
      feedTokens.delete(socket)
      clearTimeout(expiry)
      unsubscribe()
      feedClients.dec()
    })
    // The standing of a policy the feed does not hold is read from InfluxDB first; the messages
    // that come meanwhile are sent after it.
    journal.replay(policyId, req.query.since).then(({ gap, messages }) => {
      if (closed) return
      if (gap) send(gap)
      messages.forEach(send)
      // Replay and subscription in one synchronous step: no message can fall between them.
      unsubscribe = journal.subscribe(policyId, send)
    }).catch((err: Error) => {
      // InfluxDB did not answer: the client comes back, as from any network trouble.
      deps.logger.warn({ err }, 'dashboards: a feed could not start (its standing could not be read); its client is told to come back')
      socket.close(1013, 'the standing cannot be read now: reconnect')
    })
  })

  const address = await app.listen({ host: deps.host, port: deps.port })
  return {
    url: address,
    async close() {
      clearInterval(rereading)
      subs.forEach((s) => s.unsubscribe())
      await app.close()
    },
  }
}

/** The paths (`/a/0`) of the numbers in `x` that are not finite; without recursion (a body may be nested deeper than the stack). */
function nonFinite(x: unknown): string[] {
  const found: string[] = []
  const todo: [unknown, string][] = [[x, '']]
  for (let next = todo.pop(); next; next = todo.pop()) {
    const [v, path] = next
    if (typeof v === 'number' && !Number.isFinite(v)) found.push(path)
    else if (v !== null && typeof v === 'object') for (const [k, c] of Object.entries(v)) todo.push([c, `${path}/${k}`])
  }
  return found
}

type Problem = { instancePath: string; keyword?: string; message?: string; params?: { additionalProperty?: string; pattern?: string; allowedValue?: unknown; allowedValues?: unknown[] } }
/**
 * What was wrong, by name: ajv's own message leaves out which property was not expected, a time's
 * pattern says nothing to a person, and a choice (an enum, or a union of constants: one error a
 * constant, then "must match a schema in anyOf") is said once, with the values allowed (#23).
 */
const validationMessage = (err: { validation: Problem[]; validationContext?: string }) => {
  const allowed = new Map<string, unknown[]>()
  for (const v of err.validation) {
    if (v.keyword === 'enum') allowed.set(v.instancePath, v.params?.allowedValues ?? [])
    if (v.keyword === 'const') allowed.set(v.instancePath, [...(allowed.get(v.instancePath) ?? []), v.params?.allowedValue])
  }
  const where = (v: Problem) => `${err.validationContext ?? 'request'}${v.instancePath}`
  const said = new Set<string>()
  return err.validation.flatMap((v) => {
    const choice = allowed.get(v.instancePath)
    if (choice) {
      if (said.has(v.instancePath)) return []
      said.add(v.instancePath)
      return [`${where(v)} must be equal to one of the allowed values: ${choice.join(', ')}`]
    }
    return [`${where(v)} ${v.params?.pattern === TIME_PATTERN ? 'must be an ISO 8601 time from 1970 to 2261, seconds 00–59' : v.message ?? 'is not valid'}${v.params?.additionalProperty ? ` (${v.params.additionalProperty})` : ''}`]
  }).join('; ')
}

export type { FeedMessage, FeedNotice }
