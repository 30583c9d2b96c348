/**
 * The feed's journal and its sockets under load (issue #7): `seq` stays with the clock however
 * many policies share a millisecond, replays are exact or say they are not, and a client that
 * stops reading is cut off (1013) instead of piling its messages up in the server, while a client
 * that reads on gets everything. Memory follows the active policies (#20 item 5): a quiet policy
 * is forgotten, and comes back with its standing from InfluxDB.
 */
import t, { type Test } from 'tap'
import pino from 'pino'
import { Registry } from 'prom-client'
import { NEVER, Subject } from 'rxjs'
import WebSocket from 'ws'
import { connectInflux, consentStore, deviceRegistry } from '../ingest/index.ts'
import { premiumLine, type PremiumAdjustment } from '../pricing/index.ts'
import { scoreLine, type Score } from '../scoring/index.ts'
import { feedJournal, type FeedMessage } from './feed.ts'
import { storedStanding } from './history.ts'
import { startDashboards, tokenAuthority, type TokenAuthority } from './index.ts'
import { keepForever, startServices } from '../test/harness.ts'

const score = (policyId: string, value: number, padding = 0): Score => ({
  policyId, subject: 'driving', value, model: 'test@1',
  reasons: [{ code: 'pad', text: 'x'.repeat(padding), label: 'pad', unit: '', value: 0, baseline: 0, impact: 0 }],
  window: { from: 0, to: 1 }, exposure: { days: 1 }, features: {},
})

t.test('the journal: seq per policy stays with the clock, replays are exact or report a gap', async (t) => {
  let clock = 1_000_000
  const journal = feedJournal({ keep: 4, now: () => clock })
  clock++
  // Ten thousand messages in one millisecond, over a thousand policies: ten each.
  for (let i = 0; i < 10_000; i++) journal.append(`p${i % 1000}`, { type: 'score', score: score(`p${i % 1000}`, i % 100) })
  const seqs = (await journal.replay('p7', 0)).messages.map((m) => m.seq)
  t.same(seqs, [clock + 6, clock + 7, clock + 8, clock + 9], 'a policy\'s seq runs ten past the clock, not ten thousand; the last 4 kept')
  t.same(journal.policies().length, 1000, 'every policy has its feed')

  const got: FeedMessage[] = []
  const stop = journal.subscribe('p1', (m) => got.push(m))
  journal.append('p2', { type: 'score', score: score('p2', 1) })
  journal.append('p1', { type: 'score', score: score('p1', 2) })
  stop()
  journal.append('p1', { type: 'score', score: score('p1', 3) })
  t.same(got.map((m) => m.type === 'score' && m.score.value), [2], "a listener gets only its policy's messages, until it stops")

  const kept = await journal.replay('p1', clock + 9)
  t.equal(kept.gap, undefined, 'from a seq still kept: no gap')
  t.same(kept.messages.map((m) => m.type === 'score' && m.score.value), [2, 3], 'exactly what came after')
  const trimmed = await journal.replay('p1', clock + 1)
  t.match(trimmed.gap, { type: 'gap', since: clock + 1, reason: /more has happened/ }, 'from a seq trimmed away: a gap')
  t.match((await journal.replay('p1', 5)).gap, { reason: /restarted/ }, 'from before the start: a gap that says why')
  t.match((await journal.replay('p1', 0)).gap, { reason: /^since=0 asks for everything/ }, 'since=0: no claim of a restart (#23)')
  t.same((await journal.replay('p1')).messages.map((m) => m.type === 'score' && m.score.value), [3], 'without since: the standing')
})

const H = 3600_000

t.test('memory follows the active policies: a policy with no message and no client for idleMs is forgotten (#20 item 5)', async (t) => {
  let clock = 1_000_000
  const journal = feedJournal({ keep: 4, idleMs: H, now: () => clock })
  const started = clock
  clock++
  for (let i = 0; i < 10_000; i++) journal.append(`p${i}`, { type: 'score', score: score(`p${i}`, i % 100) })
  const cursor = (await journal.replay('p1', started)).messages.at(-1)!.seq
  const stop = journal.subscribe('watched', () => {})
  journal.append('watched', { type: 'score', score: score('watched', 1) })
  t.equal(journal.policies().length, 10_001)

  clock += H
  journal.append('late', { type: 'score', score: score('late', 1) })
  t.same(journal.policies(), ['late', 'watched'], 'an hour later the quiet policies are gone; the one a client follows stays')
  stop()
  clock += H / 2
  journal.append('late', { type: 'score', score: score('late', 2) })
  t.same(journal.policies(), ['late', 'watched'], 'its idle time starts when its last client leaves')
  clock += H / 2
  journal.append('late', { type: 'score', score: score('late', 3) })
  t.same(journal.policies(), ['late'], 'and it goes an hour after')

  // p1 comes back: a cursor from its forgotten feed may have missed messages, and is told why.
  clock += 1
  const back = journal.append('p1', { type: 'score', score: score('p1', 42) })
  const replay = await journal.replay('p1', cursor)
  t.match(replay.gap, { type: 'gap', since: cursor, reason: 'the feed forgot this policy after 60 min with no message and no client' }, 'a gap that says the feed forgot, not that the service restarted')
  t.same(replay.messages, [back], 'then what it holds')
  t.same(await journal.replay('p1', back.seq), { messages: [] }, 'a cursor from the new feed: no gap')
  t.match((await journal.replay('p1', started - 1)).gap, { reason: /restarted/ }, 'one from before the start: the restart')
})

const T = Date.UTC(2026, 0, 10, 12)
const stored = (policyId: string, subject: Score['subject'], value: number, to: number): Score => ({
  policyId, subject, value, model: `${subject}-frequency@3`,
  reasons: [{ code: 'harsh_braking_per_hour', text: 'harsh braking 4.1 an hour (typical 2): \u22126 points', label: 'harsh braking', unit: 'an hour', value: 4.1, baseline: 2, impact: -6.25 }],
  window: { from: to - 30 * 86_400_000, to }, exposure: { days: 30, distance_km: 812.4, moving_s: 61_234, night_s: 3_600 }, features: { harsh_braking_per_hour: 4.1, night_share: 0.0588 },
})
const premium = (policyId: string, factor: number, at: number): PremiumAdjustment => ({
  policyId, subject: 'driving', factor, premium: 612.35, currency: 'EUR', previousFactor: 1.02, period: { from: new Date(at - 86_400_000).toISOString(), factor: 1 },
  reasons: [{ code: 'harsh_braking_per_hour', text: 'harsh braking 4.1 an hour (typical 2.0): +6%', value: 4.1, baseline: 2, effect: 0.06 }],
  models: ['driving-frequency@3'], ruleset: 'example@2026-01-01', effectiveFrom: new Date(at).toISOString(),
  inputsHash: 'a'.repeat(64), prevHash: 'b'.repeat(64), hash: 'c'.repeat(64), credibility: 0.8, limited: { by: 'change', bound: 'cap' },
})
/** A policy's scores and premiums as scoring and pricing store them: its latest driving and health score and driving premium, and older ones. */
async function storeHistory(influxUrl: string, database: string, policyId: string) {
  const influx = await connectInflux({ api: 'v1', url: influxUrl, database, retentionDays: keepForever })
  const latest = { driving: stored(policyId, 'driving', 61.5, T), health: stored(policyId, 'health', 72.25, T - 3600_000), premium: premium(policyId, 1.041, T + 1) }
  influx.write([scoreLine(stored(policyId, 'driving', 58, T - 86_400_000)), scoreLine(latest.driving), scoreLine(latest.health), premiumLine(premium(policyId, 1.02, T - 86_400_000)), premiumLine(latest.premium)])
  await influx.flush()
  return { influx, latest }
}

t.test('a policy the feed does not hold starts from its stored standing: the latest score and premium per subject, as they were sent', async (t) => {
  const services = await startServices(t)
  const { influx, latest } = await storeHistory(services.influxUrl, 'ubiq_feed_standing', 'pol-1')
  t.teardown(() => influx.close())
  let reads = 0, failing = false
  const clock = 5_000_000
  const journal = feedJournal({ keep: 4, now: () => clock, stored: (policyId) => (reads++, failing ? Promise.reject(new Error('InfluxDB down')) : storedStanding(influx, policyId)) })
  const liveScore = stored('pol-1', 'health', 80, T + 7200_000)
  const live = journal.append('pol-1', { type: 'score', score: liveScore })

  const { messages } = await journal.replay('pol-1')
  t.same(messages.map(({ seq, ...body }) => body), [{ type: 'score', score: latest.driving }, { type: 'premium', premium: latest.premium }, { type: 'score', score: liveScore }],
    'the stored driving score and premium exactly as scored and priced; the health score that came live meanwhile, not the stored one')
  t.same(messages.map((m) => m.seq), [clock, clock, live.seq], 'stored ones at the horizon, before what the feed holds')
  t.same(await journal.replay('pol-1', clock), { messages: [live] }, 'a client that has them and reconnects from their seq: no gap')
  t.equal(reads, 1, 'read once')

  // Messages that come while the standing is read are sent after it, however many (none is
  // trimmed meanwhile): a client is live from its call.
  const replay = journal.replay('pol-3')
  const meanwhile = Array.from({ length: 10 }, () => journal.append('pol-3', { type: 'event', event: { policyId: 'pol-3', deviceId: 'car-3', subject: 'driving', type: 'harsh_braking', urgent: false, from: T, to: T + 1500, evidence: { source: 'imu', peak: 4.2, threshold: 3.5, unit: 'm/s²', duration_s: 1.5 } } }))
  t.same((await replay).messages, meanwhile, 'the ten messages that came during the read, with 4 kept')
  journal.append('pol-3', { type: 'score', score: stored('pol-3', 'driving', 50, T) })
  t.equal((await journal.replay('pol-3', 0)).messages.length, 4, 'then trimmed to 4 again')

  const blip = journal.append('pol-4', { type: 'score', score: stored('pol-4', 'driving', 50, T) })
  failing = true
  t.same(await journal.replay('pol-4', blip.seq - 1), { messages: [blip] }, 'a reconnect the feed can serve from what it holds reads nothing, and needs no InfluxDB')
  await t.rejects(journal.replay('pol-2'), /InfluxDB down/, 'a read that fails is the caller\'s to report')
  failing = false
  t.same(await journal.replay('pol-2'), { messages: [] }, 'a policy with nothing stored: nothing')
  t.equal(reads, 4, 'read again after a failure; none for pol-4')
})

t.test('after a restart (or once the feed has forgotten a policy) its client, its REST standing and its what-if start from InfluxDB', async (t) => {
  const services = await startServices(t)
  const { influx, latest } = await storeHistory(services.influxUrl, 'ubiq_feed_restart', 'pol-1')
  t.teardown(() => influx.close())
  const auth = tokenAuthority('a test secret of at least thirty-two bytes')
  const simulated: Score[] = []
  const server = await startDashboards({
    consents: consentStore({ registry: deviceRegistry([]), record: () => '' }),
    scores$: NEVER, events$: NEVER, premiums$: NEVER, influx, auth, metrics: new Registry(), deviceClock: () => undefined,
    whatIf: async (s) => (simulated.push(s), undefined), health: () => ({ ok: true, checks: {} }), logger: pino({ level: 'silent' }), host: '127.0.0.1', port: 0,
  })
  t.teardown(() => server.close())
  const token = auth.issue({ role: 'policyholder', policyId: 'pol-1' }, 600_000)
  const ws = new WebSocket(`${server.url.replace('http', 'ws')}/feed?token=${token}`)
  const got: FeedMessage[] = []
  ws.on('message', (data) => got.push(JSON.parse(String(data))))
  while (got.length < 3) await new Promise((r) => setTimeout(r, 10))
  ws.close()
  t.same(got.map(({ seq, ...body }) => body), [{ type: 'score', score: latest.health }, { type: 'score', score: latest.driving }, { type: 'premium', premium: latest.premium }], 'the feed starts from the stored standing, in the order it was made')

  const res = await fetch(`${server.url}/api/v1/policies/pol-1`, { headers: { authorization: `Bearer ${token}` } })
  t.same(await res.json(), { policyId: 'pol-1', scores: { driving: latest.driving, health: latest.health }, premiums: { driving: latest.premium } }, 'so does the REST standing')
  await fetch(`${server.url}/api/v1/policies/pol-1/what-if/driving`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"set":{"night_share":0}}' })
  t.same(simulated, [latest.driving], 'and the premium simulator re-prices the stored latest score')
})

t.test('a client that stops reading is cut off with 1013; one that reads gets everything; one that sends too much, 1009', async (t) => {
  const services = await startServices(t)
  const logged: { level: number; msg: string; code?: string }[] = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logged.push(JSON.parse(line)) })
  const scores$ = new Subject<Score>()
  const metrics = new Registry()
  const auth = tokenAuthority('a test secret of at least thirty-two bytes')
  const server = await startDashboards({
    consents: consentStore({ registry: deviceRegistry([]), record: () => '' }),
    scores$, events$: NEVER, premiums$: NEVER,
    influx: await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_feed' }),
    auth, metrics, deviceClock: () => undefined, whatIf: async () => undefined, health: () => ({ ok: true, checks: {} }),
    logger, host: '127.0.0.1', port: 0, feedMaxBufferedBytes: 64 * 1024,
  })
  t.teardown(() => server.close())
  const connect = (policyId: string) => {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/feed?token=${auth.issue({ role: 'policyholder', policyId }, 600_000)}`)
    const got: number[] = []
    ws.on('message', (data) => got.push((JSON.parse(String(data)) as { score: Score }).score.value))
    return { ws, got, opened: new Promise((r) => ws.once('open', r)), closed: new Promise<{ code: number; reason: string }>((r) => ws.on('close', (code, reason) => r({ code, reason: String(reason) }))) }
  }
  const slow = connect('slow')
  const reader = connect('reader')
  await Promise.all([slow.opened, reader.opened])
  // The slow client's phone stops taking data off its socket.
  ;(slow.ws as unknown as { _socket: { pause(): void } })._socket.pause()
  const cutOff = async () => Number((await metrics.getSingleMetricAsString('ubiq_feed_clients_cut_off_total')).trim().split(' ').at(-1))

  // 4 KiB scores until the server gives up on the slow client (the kernel's socket buffers take
  // some MB first); the reader gets one after each of its own.
  let sent = 0
  while ((await cutOff()) === 0 && sent < 20_000) {
    for (let i = 0; i < 100; i++, sent++) {
      scores$.next(score('slow', sent % 100, 4096))
      if (i % 10 === 0) scores$.next(score('reader', sent % 100))
    }
    await new Promise((r) => setImmediate(r))
  }
  t.equal(await cutOff(), 1, `cut off after ${sent} scores`)
  ;(slow.ws as unknown as { _socket: { resume(): void } })._socket.resume()
  const closed = await slow.closed
  t.equal(closed.code, 1013, 'closed with 1013 (try again later)')
  t.match(closed.reason, /not keeping up: reconnect with \?since=/, 'the reason tells the client what to do')
  t.ok(slow.got.length < sent, `it got ${slow.got.length} of ${sent}: the rest it replays on reconnecting`)

  const readerSent = Math.ceil(sent / 10)
  while (reader.got.length < readerSent) await new Promise((r) => setTimeout(r, 10))
  t.equal(reader.got.length, readerSent, 'the reading client got every one of its scores')
  t.equal(reader.ws.readyState, WebSocket.OPEN, 'and stays connected')

  // A client sends more than the 1 KiB maxPayload: its fault, told with a close code, logged at debug.
  reader.ws.send('x'.repeat(5000))
  t.equal((await reader.closed).code, 1009, 'a message over 1 KiB: closed with 1009 (message too big)')
  t.match(logged.filter((l) => l.level === 20), [{ msg: /broke the websocket protocol/, code: 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' }], 'logged at debug, with the reason code')
  t.same(logged.filter((l) => l.level >= 50), [], 'and not as an error of the service')
})

/** The dashboards alone, on a real InfluxDB with nothing in it. */
async function bareDashboards(t: Test, auth: TokenAuthority) {
  const services = await startServices(t)
  const server = await startDashboards({
    consents: consentStore({ registry: deviceRegistry([]), record: () => '' }),
    scores$: NEVER, events$: NEVER, premiums$: NEVER,
    influx: await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_feed_auth' }),
    auth, metrics: new Registry(), deviceClock: () => undefined, whatIf: async () => undefined, health: () => ({ ok: true, checks: {} }),
    logger: pino({ level: 'silent' }), host: '127.0.0.1', port: 0,
  })
  t.teardown(() => server.close())
  return server
}

t.test('the token before the query: a bad query without a valid token is a 4401, with one a 4400 (#20)', async (t) => {
  const auth = tokenAuthority('a test secret of at least thirty-two bytes')
  const server = await bareDashboards(t, auth)
  /** How the server answered: a close code and reason after the upgrade, or an HTTP status instead of it. */
  const answer = (query: string) => new Promise<{ code?: number; reason?: string; status?: number; body?: string }>((resolve) => {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/feed?${query}`)
    // A feed that opens says something first (since=0 is before the start: a gap); then it is closed here, with 1000.
    ws.on('message', () => ws.close(1000))
    ws.on('close', (code, reason) => resolve({ code, reason: String(reason) }))
    ws.on('unexpected-response', (_req, res) => {
      let body = ''
      res.on('data', (d: Buffer) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode, body }))
    })
  })
  const token = auth.issue({ role: 'policyholder', policyId: 'pol-1' }, 600_000)
  const cases: [string, string][] = [
    ['no token, a negative since', 'since=-1'],
    ['no token, a bad policy and since', 'policy=../etc&since=abc'],
    ['no token, an unknown parameter', 'unknown=1'],
    ['a token given twice', `token=${token}&token=${token}&since=x`],
    ['a forged token', 'token=forged&since=-1'],
  ]
  for (const [name, query] of cases) {
    const got = await answer(query)
    t.match(got, { code: 4401 }, `${name}: 4401, nothing about the query`)
    t.notMatch(JSON.stringify(got), /since|policy|unknown|must/, 'and the schema is not described')
  }
  t.match(await answer(`token=${token}&since=-1`), { code: 4400, reason: /since must be >= 0/ }, 'with a valid token, the query\'s fault is named')
  t.match(await answer(`token=${token}&since=0`), { code: 1000 }, 'a good query still opens the feed')
  t.match(await answer('since=Infinity'), { code: 4401 }, 'a since of Infinity without a token: 4401')
  t.match(await answer(`token=${token}&since=Infinity`), { code: 4400, reason: /querystring\/since must be a finite number/ }, 'with one: 4400, not a feed from Infinity')
})

t.test('no route takes a number that is not finite: Infinity and 1e400 in a query or a body are a 400, not a 500 (#20)', async (t) => {
  const auth = tokenAuthority('a test secret of at least thirty-two bytes')
  const server = await bareDashboards(t, auth)
  const headers = { authorization: `Bearer ${auth.issue({ role: 'policyholder', policyId: 'pol-1' }, 600_000)}`, 'content-type': 'application/json' }
  // ajv turned these into ±Infinity and let them past `integer, 1–1000`: InfluxDB got LIMIT Infinity.
  for (const limit of ['Infinity', '-Infinity', '1e400']) {
    const res = await fetch(`${server.url}/api/v1/policies/pol-1/scores?limit=${limit}`, { headers })
    t.equal(res.status, 400, `limit=${limit}`)
    t.same(await res.json(), { error: 'bad_request', message: 'querystring/limit must be a finite number' })
  }
  const res = await fetch(`${server.url}/api/v1/policies/pol-1/what-if/driving`, { method: 'POST', headers, body: '{"scale":{"km_per_year":1e400}}' })
  t.equal(res.status, 400, 'a body with 1e400 (JSON.parse: Infinity)')
  t.same(await res.json(), { error: 'bad_request', message: 'body/scale/km_per_year must be a finite number' })
})

t.test('a request that fails is a 500 to the client and an error in the log with its stack (#22 item 4)', async (t) => {
  const services = await startServices(t)
  const logged: { level: number; msg: string; err?: { message: string; stack?: string } }[] = []
  const server = await startDashboards({
    consents: consentStore({ registry: deviceRegistry([]), record: () => '' }),
    scores$: NEVER, events$: NEVER, premiums$: NEVER,
    influx: await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_feed_500' }),
    auth: tokenAuthority('a test secret of at least thirty-two bytes'), metrics: new Registry(), deviceClock: () => undefined, whatIf: async () => undefined,
    health: () => { throw new TypeError('a stage broke') },
    logger: pino({ level: 'info' }, { write: (line: string) => void logged.push(JSON.parse(line)) }), host: '127.0.0.1', port: 0,
  })
  t.teardown(() => server.close())
  const res = await fetch(`${server.url}/healthz`)
  t.equal(res.status, 500)
  t.same(await res.json(), { error: 'internal', message: 'the request failed; see the service log' }, 'the client is told nothing of the cause')
  const [line] = logged.filter((l) => l.msg === 'dashboards: request failed')
  t.equal(line?.err?.message, 'a stage broke', 'the log has the error')
  t.match(line?.err?.stack, /^TypeError: a stage broke\n\s+at .*feed\.test\.ts/, 'with its stack, which says where it came from')
})
