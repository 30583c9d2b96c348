/**
 * The webhook sender against real HTTP receivers on loopback: signed, retried with back-off under
 * one idempotency key, dead-lettered when the receiver never answers, resumed after a restart.
 */
import t from 'tap'
import { createServer, type IncomingMessage } from 'node:http'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { Registry } from 'prom-client'
import { deadLetters, signature, verifySignature, webhookSender, SIGNATURE_HEADER, type Delivery } from './webhooks.ts'

const SECRET = 's'.repeat(32)
const logger = pino({ level: 'silent' })
interface Teardown {
  teardown(fn: () => unknown): void
}

/** A receiver that answers each request with the next of `codes` (then 200), remembering what it was sent. */
async function receiver(t: Teardown, codes: number[] = []) {
  const heard: { headers: IncomingMessage['headers']; body: string }[] = []
  const taken = new Set<string>()
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      heard.push({ headers: req.headers, body })
      const code = codes.shift() ?? 200
      // A receiver does the work once per idempotency key, whatever the attempts.
      if (code === 200 && verifySignature(SECRET, req.headers[SIGNATURE_HEADER] as string, body)) taken.add(String(req.headers['idempotency-key']))
      res.writeHead(code).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => server.close(r)))
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/claims`, heard, taken, codes }
}

const until = async (ok: () => boolean) => {
  while (!ok()) await new Promise((r) => setTimeout(r, 10))
}
const tempDir = (t: Teardown) => {
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-webhooks-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

t.test('signed, and retried under one idempotency key until the receiver takes it: taken once', async (t) => {
  const r = await receiver(t, [503, 503])
  const done: [string, string][] = []
  const metrics = new Registry()
  const sender = webhookSender({ dir: tempDir(t), logger, metrics, baseDelayMs: 20, onDone: (d, outcome) => done.push([d.id, outcome]) })
  t.teardown(() => sender.close())
  const id = sender.deliver(r.url, SECRET, 'claim.opened', { claimId: 'clm_1', n: 1 }, { id: 'clm_1', owner: 'pol-1' })
  t.equal(id, 'clm_1')
  t.ok(sender.pending('clm_1'), 'pending (on disk) before the first attempt answers')
  await until(() => done.length === 1)
  t.same(done, [['clm_1', 'delivered']])
  t.equal(r.heard.length, 3, 'three attempts: two 503s, then 200')
  t.same(r.heard.map((h) => h.headers['idempotency-key']), ['clm_1', 'clm_1', 'clm_1'], 'each with the same idempotency key')
  t.same(r.heard.map((h) => h.headers['x-ubiq-attempt']), ['1', '2', '3'])
  t.same([...r.taken], ['clm_1'], 'the receiver took it once')
  t.ok(r.heard.every((h) => h.headers['x-ubiq-event'] === 'claim.opened' && h.headers['content-type'] === 'application/json'))
  const { headers, body } = r.heard[2]!
  t.ok(verifySignature(SECRET, headers[SIGNATURE_HEADER] as string, body), 'X-Ubiq-Signature verifies over t.body')
  t.match(headers[SIGNATURE_HEADER], /^t=\d+,v1=[0-9a-f]{64}$/)
  t.notOk(verifySignature(SECRET, headers[SIGNATURE_HEADER] as string, body.replace('1}', '2}')), 'a changed body does not')
  t.notOk(verifySignature('x'.repeat(32), headers[SIGNATURE_HEADER] as string, body), 'nor another secret')
  const old = Math.floor(Date.now() / 1000) - 600
  t.notOk(verifySignature(SECRET, signature(SECRET, old, body), body), 'nor a signature 10 minutes old (a replay)')
  t.notOk(sender.pending('clm_1'), 'no longer pending')
  t.match(await metrics.getSingleMetricAsString('ubiq_webhook_attempts_total'), /outcome="retry"} 2[\s\S]*outcome="delivered"} 1|outcome="delivered"} 1[\s\S]*outcome="retry"} 2/)
})

t.test('a receiver down for good: attempts exhausted, a dead letter with every attempt', async (t) => {
  // A port that was just free: nothing listens there.
  const closed = createServer()
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r))
  const down = `http://127.0.0.1:${(closed.address() as { port: number }).port}/claims`
  await new Promise((r) => closed.close(r))
  const dir = tempDir(t)
  const done: [string, string][] = []
  const sender = webhookSender({ dir, logger, metrics: new Registry(), maxAttempts: 3, baseDelayMs: 10, onDone: (d, outcome) => done.push([d.id, outcome]) })
  t.teardown(() => sender.close())
  sender.deliver(down, SECRET, 'claim.opened', { claimId: 'clm_2' }, { id: 'clm_2', owner: 'pol-2' })
  await until(() => done.length === 1)
  t.same(done, [['clm_2', 'dead']])
  const [dead] = deadLetters(dir) as [Delivery]
  t.match(dead, { id: 'clm_2', url: down, type: 'claim.opened', owner: 'pol-2', body: '{"claimId":"clm_2"}' }, 'the dead letter keeps what a resend needs')
  t.same(dead.attempts.map((a) => a.outcome), ['ECONNREFUSED', 'ECONNREFUSED', 'ECONNREFUSED'], 'and each attempt\'s outcome')
  t.equal(sender.forget('pol-2'), 1, 'an erasure removes it')
  t.same(deadLetters(dir), [])
})

t.test('a delivery pending at a stop is sent after the restart', async (t) => {
  const r = await receiver(t, [503])
  const dir = tempDir(t)
  const first = webhookSender({ dir, logger, metrics: new Registry(), baseDelayMs: 60_000 })
  first.deliver(r.url, SECRET, 'claim.opened', { claimId: 'clm_3' }, { id: 'clm_3' })
  await until(() => r.heard.length === 1)
  first.close() // its retry would come in a minute: the process stops first
  const done: string[] = []
  const second = webhookSender({ dir, logger, metrics: new Registry(), onDone: (d, outcome) => done.push(`${d.id} ${outcome}`) })
  t.teardown(() => second.close())
  await until(() => done.length === 1)
  t.same(done, ['clm_3 delivered'], 'resumed from its file and delivered')
  t.same(r.heard.map((h) => h.headers['x-ubiq-attempt']), ['1', '2'], 'its attempts counted across the restart')
})
