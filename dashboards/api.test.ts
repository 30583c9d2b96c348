/**
 * The dashboards' API and feed against the real pipeline fed by edge-sim (issue #7): who may see
 * what (tokens on every route and socket, close codes), the feed resuming after a reconnect with
 * exactly what was missed, the history routes giving back what scoring and pricing produced, the
 * OpenAPI document, rate limits and the websocket's payload limit.
 */
import t from 'tap'
import { createSigner } from 'fast-jwt'
import WebSocket from 'ws'
import { makeFleet, runFleet } from '../edge-sim/index.ts'
import { examplePlans, loadPlans } from '../pricing/index.ts'
import type { Trip } from '../scoring/index.ts'
import { tokenAuthority, type FeedMessage, type FeedNotice } from './index.ts'
import { startServices, startTestPipeline } from '../test/harness.ts'

const SECRET = 'a test secret of at least thirty-two bytes'
type Got = (FeedMessage | FeedNotice)[]

/** A feed client: what it received, and how it was closed. */
function feed(url: string, query: Record<string, string | number>) {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/feed?${new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]))}`)
  const got: Got = []
  ws.on('message', (data) => got.push(JSON.parse(String(data)) as FeedMessage))
  const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })))
  ws.on('error', () => {})
  return { ws, got, closed, opened: new Promise((resolve) => ws.once('open', resolve)) }
}
const until = async (ok: () => boolean) => {
  while (!ok()) await new Promise((r) => setTimeout(r, 20))
}
const seqs = (got: Got) => got.flatMap((m) => ('seq' in m ? [m.seq] : []))

t.test('dashboards: tokens, the feed resuming, history, OpenAPI, limits', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(2, 5)
  const [a, b] = fleet as [typeof fleet[0], typeof fleet[0]]
  // Premiums from the first trip: no minimum distance.
  const [plan] = loadPlans(examplePlans)
  const driving = { ...plan!.subjects.driving!, credibility: { exposure: 'distance_km' as const, full: 1000, minimum: 0 } }
  const pipeline = await startTestPipeline(t, services, fleet, 'ubiq_api', { plans: [{ ...plan!, subjects: { driving } }], tokenSecret: SECRET, rateLimitPerMinute: 200 })
  const url = pipeline.url
  const token = (policyId: string) => pipeline.auth.issue({ role: 'policyholder', policyId }, 3600_000)
  const get = (path: string, tok?: string) => fetch(`${url}${path}`, tok ? { headers: { authorization: `Bearer ${tok}` } } : {})
  const trips: Trip[] = []
  pipeline.trips$.subscribe((trip) => trip.policyId === a.policyId && trips.push(trip))

  await t.test('a socket without a token that opens its policy is closed with a code, and gets nothing', async (t) => {
    const expired = createSigner({ key: SECRET, algorithm: 'HS256', iss: 'ubiq' })({ role: 'policyholder', sub: a.policyId, exp: Math.floor(Date.now() / 1000) - 60 })
    const cases: [string, Record<string, string>, number, RegExp][] = [
      ['no token', { policy: a.policyId }, 4401, /a token is needed/],
      ['a forged token', { token: tokenAuthority('another secret, also thirty-two bytes long').issue({ role: 'policyholder', policyId: a.policyId }, 60_000) }, 4401, /not valid/],
      ['an expired token', { token: expired }, 4401, /expired/],
      ["another policy's token", { token: token(b.policyId), policy: a.policyId }, 4403, /another policy/],
    ]
    for (const [name, query, code, reason] of cases) {
      const f = feed(url, query)
      const closed = await f.closed
      t.equal(closed.code, code, `${name}: close code ${code}`)
      t.match(closed.reason, reason, name)
      t.same(f.got, [], `${name}: not one message`)
    }
  })

  await t.test('every data route needs a token that opens it', async (t) => {
    const routes = [`/api/v1/policies/${a.policyId}`, `/api/v1/policies/${a.policyId}/scores`, `/api/v1/policies/${a.policyId}/trips`, `/api/v1/policies/${a.policyId}/premiums`, `/api/v1/policies/${a.policyId}/events`, '/api/v1/policies', '/metrics']
    for (const route of routes) {
      const res = await get(route)
      t.equal(res.status, 401, `${route} without a token: 401`)
      t.match(res.headers.get('www-authenticate'), /^Bearer/)
      t.equal((await get(route, token(b.policyId))).status, 403, `${route} with another policy's token: 403`)
    }
    t.equal((await get(`/api/v1/policies/${a.policyId}`, 'not.a.token')).status, 401, 'a malformed token: 401')
    const what = await fetch(`${url}/api/v1/policies/${a.policyId}/what-if/driving`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token(b.policyId)}` }, body: '{"set":{"night_share":0}}' })
    t.equal(what.status, 403, "the simulator on another policy's score: 403")
    t.equal((await get('/healthz')).status, 200, 'health has no data and needs no token')
    const badQuery = `/api/v1/policies/${a.policyId}/scores?limit=0`
    t.equal((await get(badQuery)).status, 401, 'a bad query without a token: 401, not a 400 that describes the route')
    t.equal((await get('/api/v1/portfolio/scores?nonsense=1')).status, 401, 'the same on an analyst route')
    t.equal((await get(badQuery, token(a.policyId))).status, 400, 'with a token that opens it: 400')
    const badBody = await fetch(`${url}/api/v1/policies/${a.policyId}/what-if/driving`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{not json' })
    t.equal(badBody.status, 401, 'a body that is not JSON, without a token: 401, before the body is read')
    const badJson = await fetch(`${url}/api/v1/policies/${a.policyId}/what-if/driving`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${token(a.policyId)}` }, body: '{not json' })
    t.equal(badJson.status, 400, 'with a token: 400')
    t.match(await badJson.json(), { error: 'bad_request', message: /JSON/ }, 'saying what is wrong with it')
    t.equal((await get('/analyst')).status, 200, 'the pages hold no data and need no token')
    t.equal((await get('/no/such/page')).status, 404, 'a path that is not there: 404, token or not')
  })

  // Two policies drive trip after trip: a score, maybe events, and a premium after each.
  const reference = feed(url, { token: token(a.policyId) })
  const other = feed(url, { token: token(b.policyId) })
  const leaving = feed(url, { token: token(a.policyId) })
  await Promise.all([reference.opened, other.opened, leaving.opened])
  // At 600× a trip takes a second: a reconnect misses a few messages, not more than the journal
  // keeps (at full speed a loaded machine missed more than 64 and rightly got a gap).
  const run = await runFleet({ mqttUrl: services.mqttUrl, fleet, startTs: Date.now() - 24 * 3600_000, speedup: 600 })
  t.teardown(() => run.stop())

  await t.test('a feed that reconnects with the last seq it saw gets exactly what it missed', async (t) => {
    await until(() => leaving.got.length >= 2)
    leaving.ws.close()
    await leaving.closed
    const last = Math.max(...seqs(leaving.got))
    await until(() => seqs(reference.got).filter((s) => s > last).length >= 4) // missed: two trips' worth
    const back = feed(url, { token: token(a.policyId), since: last })
    await until(() => seqs(reference.got).filter((s) => s > last).length >= 8) // and live again
    await run.stop()
    await until(() => seqs(back.got).at(-1)! >= seqs(reference.got).at(-1)!)
    back.ws.close()
    t.notOk(back.got.some((m) => m.type === 'gap'), 'no gap: the feed kept what was missed')
    const all = [...leaving.got, ...back.got]
    t.same(all, reference.got.slice(0, all.length), 'before and after the reconnect, the same messages in the same order as a feed that never left')
    t.same(seqs(all), [...new Set(seqs(all))], 'nothing twice')
    t.ok(reference.got.some((m) => m.type === 'score') && reference.got.some((m) => m.type === 'premium'), 'scores and premiums both')
    t.same(new Set(other.got.map((m) => (m.type === 'score' ? m.score.policyId : m.type === 'premium' ? m.premium.policyId : m.type === 'event' ? m.event.policyId : '?'))), new Set([b.policyId]), "the other policy's feed saw only its own")
    const ancient = feed(url, { token: token(a.policyId), since: 1 })
    await until(() => ancient.got.length > 0)
    t.match(ancient.got[0], { type: 'gap', since: 1, reason: /restarted/ }, 'a cursor from before the service started: the feed says it cannot replay it all')
    ancient.ws.close()
  })

  await t.test('the history routes give back what scoring and pricing produced', async (t) => {
    const scores = reference.got.flatMap((m) => (m.type === 'score' ? [m.score] : []))
    const premiums = reference.got.flatMap((m) => (m.type === 'premium' ? [m.premium] : []))
    const tok = token(a.policyId)
    type Body = { scores: { value: number; reasons: unknown[]; window: { to: string } }[]; premiums: { factor: number; reasons: unknown[]; hash: string }[]; trips: { distance_km: number; events: { type: string; evidence: Record<string, unknown> }[] }[] }
    const json = async (path: string) => (await (await get(path, tok)).json()) as Body
    // InfluxDB receives in batches: ask again (gently: the rate limit counts) until the last one is there.
    const poll = async (path: string, enough: (b: Body) => boolean) => {
      for (let b = await json(path); ; b = await json(path)) {
        if (enough(b)) return b
        await new Promise((r) => setTimeout(r, 300))
      }
    }
    const stored = await poll(`/api/v1/policies/${a.policyId}/scores?subject=driving&limit=1000`, (b) => b.scores.length >= scores.length)
    t.same(stored.scores.map((s) => [s.value, s.reasons, s.window.to]).reverse(), scores.map((s) => [s.value, s.reasons, new Date(s.window.to).toISOString()]), 'every score, with its reasons, newest first')
    const priced = await poll(`/api/v1/policies/${a.policyId}/premiums?limit=1000`, (b) => b.premiums.length >= premiums.length)
    t.same(priced.premiums.map((p) => [p.factor, p.reasons, p.hash]).reverse(), premiums.map((p) => [p.factor, p.reasons, p.hash]), 'every premium change, with its reasons and audit hash')
    const driven = await poll(`/api/v1/policies/${a.policyId}/trips?limit=1000`, (b) => b.trips.length >= trips.length)
    t.same(driven.trips.map((x) => x.distance_km).reverse(), trips.map((x) => x.distance_km), 'every trip, newest first')
    const counts = (events: { type: string }[]) => events.reduce<Record<string, number>>((c, e) => ((c[e.type] = (c[e.type] ?? 0) + 1), c), {})
    t.same(driven.trips.map((x) => counts(x.events)).reverse(), trips.map((x) => x.events), "each with the events detected in it, as the trip counted them")
    // A policy scored before this service started (a line a previous run left in InfluxDB).
    await fetch(`${services.influxUrl}/write?db=ubiq_api&precision=ms`, { method: 'POST', body: `score,policy_id=pol-earlier,subject=home,model=home-frequency@1 value=71 ${Date.now() - 86_400_000}` })
    const analyst = pipeline.auth.issue({ role: 'analyst' }, 60_000)
    const { policies } = (await (await get('/api/v1/policies', analyst)).json()) as { policies: string[] }
    t.same(policies, [...fleet.map((v) => v.policyId), 'pol-earlier'].sort(), "the analyst's list: every policy scored, also before this service started")
    const limited = await json(`/api/v1/policies/${a.policyId}/scores?limit=2`)
    t.equal(limited.scores.length, 2, 'limit')
    const bad = await get(`/api/v1/policies/${a.policyId}/scores?limit=0&colour=red`, tok)
    t.equal(bad.status, 400, 'a bad query: 400')
    t.match(await bad.json(), { error: 'bad_request', message: /querystring must NOT have additional properties \(colour\)|querystring\/limit must be >= 1/ })
    // Valid ISO 8601 that InfluxDB or Date.parse cannot take: a 400 that says so, not a 500 (#20).
    const analystToken = pipeline.auth.issue({ role: 'analyst' }, 60_000)
    for (const [path, token] of [[`/api/v1/policies/${a.policyId}/scores?from=2016-12-31T23:59:60Z`, tok], [`/api/v1/policies/${a.policyId}/scores?to=2262-04-12T00:00:00Z`, tok], ['/api/v1/portfolio/events?from=1677-09-21T00:00:00Z', analystToken]] as const) {
      const res = await get(path, token)
      t.equal(res.status, 400, path)
      t.match(await res.json(), { error: 'bad_request', message: /must be an ISO 8601 time from 1970 to 2261, seconds 00–59/ })
    }
  })

  await t.test('the OpenAPI document describes every route, with bearer auth', async (t) => {
    const doc = (await (await get('/api/v1/openapi.json')).json()) as { openapi: string; paths: Record<string, unknown>; components: { securitySchemes: Record<string, unknown> } }
    t.match(doc.openapi, /^3\./)
    for (const path of ['/api/v1/policies/{policy}/scores', '/api/v1/policies/{policy}/trips', '/api/v1/policies/{policy}/premiums', '/api/v1/policies/{policy}/events', '/api/v1/policies/{policy}/what-if/{subject}']) t.ok(doc.paths[path], path)
    t.match(doc.components.securitySchemes, { bearer: { type: 'http', scheme: 'bearer' } })
  })

  await t.test('a client that sends more than the feed takes is cut off; one that asks too often is refused', async (t) => {
    const f = feed(url, { token: token(a.policyId) })
    await f.opened
    f.ws.send('x'.repeat(4096))
    t.equal((await f.closed).code, 1009, 'a message over the 1 KiB maxPayload: closed, 1009 message too big')
    let status = 200
    for (let i = 0; i < 250 && status !== 429; i++) status = (await get(`/api/v1/policies/${a.policyId}`, token(a.policyId))).status
    t.equal(status, 429, 'past the rate limit: 429')
  })
  reference.ws.close()
  other.ws.close()
})
