/**
 * The feed's journal and its sockets under load (issue #7): `seq` stays with the clock however
 * many policies share a millisecond, replays are exact or say they are not, and a client that
 * stops reading is cut off (1013) instead of piling its messages up in the server, while a client
 * that reads on gets everything.
 */
import t, { type Test } from 'tap'
import pino from 'pino'
import { Registry } from 'prom-client'
import { NEVER, Subject } from 'rxjs'
import WebSocket from 'ws'
import { connectInflux } from '../ingest/index.ts'
import type { Score } from '../scoring/index.ts'
import { feedJournal, type FeedMessage } from './feed.ts'
import { startDashboards, tokenAuthority, type TokenAuthority } from './index.ts'
import { startServices } from '../test/harness.ts'

const score = (policyId: string, value: number, padding = 0): Score => ({
  policyId, subject: 'driving', value, model: 'test@1',
  reasons: [{ code: 'pad', text: 'x'.repeat(padding), label: 'pad', unit: '', value: 0, baseline: 0, impact: 0 }],
  window: { from: 0, to: 1 }, exposure: { days: 1 }, features: {},
})

t.test('the journal: seq per policy stays with the clock, replays are exact or report a gap', async (t) => {
  let clock = 1_000_000
  const journal = feedJournal(4, () => clock)
  clock++
  // Ten thousand messages in one millisecond, over a thousand policies: ten each.
  for (let i = 0; i < 10_000; i++) journal.append(`p${i % 1000}`, { type: 'score', score: score(`p${i % 1000}`, i % 100) })
  const seqs = journal.replay('p7', 0).messages.map((m) => m.seq)
  t.same(seqs, [clock + 6, clock + 7, clock + 8, clock + 9], 'a policy\'s seq runs ten past the clock, not ten thousand; the last 4 kept')
  t.same(journal.policies().length, 1000, 'every policy has its feed')

  const got: FeedMessage[] = []
  const stop = journal.subscribe('p1', (m) => got.push(m))
  journal.append('p2', { type: 'score', score: score('p2', 1) })
  journal.append('p1', { type: 'score', score: score('p1', 2) })
  stop()
  journal.append('p1', { type: 'score', score: score('p1', 3) })
  t.same(got.map((m) => m.type === 'score' && m.score.value), [2], "a listener gets only its policy's messages, until it stops")

  const kept = journal.replay('p1', clock + 9)
  t.equal(kept.gap, undefined, 'from a seq still kept: no gap')
  t.same(kept.messages.map((m) => m.type === 'score' && m.score.value), [2, 3], 'exactly what came after')
  const trimmed = journal.replay('p1', clock + 1)
  t.match(trimmed.gap, { type: 'gap', since: clock + 1, reason: /more has happened/ }, 'from a seq trimmed away: a gap')
  t.match(journal.replay('p1', 5).gap, { reason: /restarted/ }, 'from before the start: a gap that says why')
  t.same(journal.replay('p1').messages.map((m) => m.type === 'score' && m.score.value), [3], 'without since: the standing')
})

t.test('a client that stops reading is cut off with 1013; one that reads gets everything; one that sends too much, 1009', async (t) => {
  const services = await startServices(t)
  const logged: { level: number; msg: string; code?: string }[] = []
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logged.push(JSON.parse(line)) })
  const scores$ = new Subject<Score>()
  const metrics = new Registry()
  const auth = tokenAuthority('a test secret of at least thirty-two bytes')
  const server = await startDashboards({
    scores$, events$: NEVER, premiums$: NEVER,
    influx: await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_feed', retentionPolicy: 'autogen' }),
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
    scores$: NEVER, events$: NEVER, premiums$: NEVER,
    influx: await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_feed_auth', retentionPolicy: 'autogen' }),
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
