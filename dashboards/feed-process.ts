/**
 * The feed's sockets live in a process of their own (issue #7). Each message a client gets costs
 * a socket write, about 15 µs: at 10,000 messages a second that is a sixth of a core, and on the
 * main thread it would come out of ingest's throughput. So the dashboards server authenticates a
 * feed request and hands the socket over (`child.send(msg, socket)`, the way node's cluster hands
 * over connections); this process upgrades it, keeps the journal (feed.ts) and sends. The main
 * process only forwards each score, event and premium, batched, over the IPC channel.
 *
 * The process runs at a lower priority (nice 10): when the machine is busy, ingest, which must
 * lose nothing, goes first; the feed catches up, and a client that falls too far behind is told
 * to reconnect and replays what it missed.
 *
 * One file holds both sides, so that the messages between them are written down once.
 */
import { fork, type ChildProcess } from 'node:child_process'
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import { setPriority } from 'node:os'
import { fileURLToPath } from 'node:url'
import type { Logger } from 'pino'
import { WebSocketServer, type WebSocket } from 'ws'
import { feedJournal, type FeedBody, type FeedMessage, type FeedNotice } from './feed.ts'

/** Who may follow which policy, decided by the dashboards server before it hands the socket over. */
export type FeedGrant = { policyId: string; since?: number; expiresAt: number } | { refuse: { code: number; reason: string } }

type ToFeed =
  | { type: 'append'; items: [policyId: string, body: FeedBody][] }
  | { type: 'connect'; grant: FeedGrant; request: { method: string; url: string; headers: IncomingMessage['headers'] }; head: string }
  | { type: 'ask'; id: number; question: Question }
  | { type: 'close' }
type Question = { what: 'standing'; policyId: string } | { what: 'policies' } | { what: 'stats' }
type FromFeed = { type: 'answer'; id: number; value: unknown }
export interface FeedStats { clients: number; sent: number; cutOff: number }

export interface FeedProcess {
  /** Adds a message to its policy's feed (sent on with others of the same turn of the event loop). */
  append(policyId: string, body: FeedBody): void
  /** Hands an upgrade request's socket to the feed process, which completes or refuses it. */
  connect(req: IncomingMessage, socket: Socket, head: Buffer, grant: FeedGrant): void
  /** The policy's latest score and premium per subject. */
  standing(policyId: string): Promise<FeedMessage[]>
  policies(): Promise<string[]>
  stats(): Promise<FeedStats>
  close(): Promise<void>
}

const FEED_PROCESS_FLAG = '--ubiq-feed-process'
// The process runs ubiq's TypeScript as the CLI does, through tsx, whatever node was started with.
const execArgv = ['--import', import.meta.resolve('tsx')]

/** Starts the feed process; a client whose buffered bytes pass `maxBuffered` is cut off (1013). */
export function startFeedProcess(logger: Logger, maxBuffered: number): FeedProcess {
  let child: ChildProcess
  let closing = false
  let batch: [string, FeedBody][] = []
  let nextId = 0
  let lastStats: FeedStats = { clients: 0, sent: 0, cutOff: 0 }
  const waiting = new Map<number, { resolve(value: unknown): void; reject(err: Error): void }>()

  const spawn = () => {
    child = fork(fileURLToPath(import.meta.url), [FEED_PROCESS_FLAG, String(maxBuffered)], { execArgv, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    if (child.pid) setPriority(child.pid, 10)
    child.on('message', (msg: FromFeed) => {
      waiting.get(msg.id)?.resolve(msg.value)
      waiting.delete(msg.id)
    })
    child.once('exit', (code, signal) => {
      for (const w of waiting.values()) w.reject(new Error('the feed process stopped'))
      waiting.clear()
      if (closing) return
      // Its clients lose their sockets and reconnect; the journal is gone, so they are told of a gap.
      logger.error({ code, signal }, 'dashboards: the feed process stopped; starting it again')
      spawn()
    })
  }
  spawn()
  const send = (msg: ToFeed) => {
    if (child.connected) child.send(msg)
  }
  const flush = () => {
    send({ type: 'append', items: batch })
    batch = []
  }
  const ask = <T>(question: Question) => new Promise<T>((resolve, reject) => {
    const id = nextId++
    if (!child.connected) return reject(new Error('the feed process is not running'))
    waiting.set(id, { resolve: resolve as (value: unknown) => void, reject })
    child.send({ type: 'ask', id, question } satisfies ToFeed)
  })

  return {
    append(policyId, body) {
      if (batch.push([policyId, body]) === 1) setImmediate(flush)
    },
    connect(req, socket, head, grant) {
      if (!child.connected) return socket.destroy()
      const msg: ToFeed = { type: 'connect', grant, request: { method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers }, head: head.toString('base64') }
      // The feed process gets its own copy of the socket, and this one is closed once it is sent.
      // Detached from the HTTP server first: node would otherwise count it as the feed process's,
      // and the server's close would wait on that process (forever, once it has been restarted).
      ;(socket as Socket & { server: unknown }).server = null
      child.send(msg, socket, { keepOpen: true }, () => socket.destroy())
    },
    standing: (policyId) => ask({ what: 'standing', policyId }),
    policies: () => ask({ what: 'policies' }),
    // Metrics are read at any time, also while the process restarts or stops: then the last figures.
    stats: () => ask<FeedStats>({ what: 'stats' }).then((s) => (lastStats = s), () => lastStats),
    async close() {
      closing = true
      if (child.exitCode !== null || child.signalCode !== null) return
      const exited = new Promise((r) => child.once('exit', r))
      send({ type: 'close' })
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000)
      await exited
      clearTimeout(timer)
    },
  }
}

/** The feed process itself. */
function runFeedProcess(maxBuffered: number) {
  const journal = feedJournal()
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 })
  const stats: FeedStats = { clients: 0, sent: 0, cutOff: 0 }
  const answer = (msg: FromFeed) => process.send!(msg)

  function follow(ws: WebSocket, policyId: string, since: number | undefined, expiresAt: number) {
    let unsubscribe = () => {}
    const send = (msg: FeedMessage | FeedNotice) => {
      // A client that does not read (a stalled phone, a slow link) would otherwise hold every
      // message since in memory: cut it off; it comes back with ?since= and replays.
      if (ws.bufferedAmount > maxBuffered) {
        if (ws.readyState !== ws.OPEN) return
        unsubscribe()
        stats.cutOff++
        return ws.close(1013, 'the client is not keeping up: reconnect with ?since=')
      }
      ws.send(JSON.stringify(msg))
      stats.sent++
    }
    const { gap, messages } = journal.replay(policyId, since)
    if (gap) send(gap)
    messages.forEach(send)
    // Replay and subscription in one synchronous step: no message can fall between them.
    unsubscribe = journal.subscribe(policyId, send)
    stats.clients++
    // A token that expires closes the feed it opened (timers hold at most 2^31 - 1 ms).
    const expiry = setTimeout(() => ws.close(4401, 'the token has expired'), Math.min(Math.max(0, expiresAt - Date.now()), 2 ** 31 - 1))
    ws.on('message', () => send({ type: 'error', reason: 'the feed is read-only: clients send nothing' }))
    ws.on('close', () => {
      clearTimeout(expiry)
      unsubscribe()
      stats.clients--
    })
  }

  const answers: { [Q in Question['what']]: (q: Extract<Question, { what: Q }>) => unknown } = {
    standing: (q) => journal.replay(q.policyId).messages,
    policies: () => journal.policies(),
    stats: () => stats,
  }
  process.on('message', (msg: ToFeed, socket?: Socket) => {
    if (msg.type === 'append') for (const [policyId, body] of msg.items) journal.append(policyId, body)
    else if (msg.type === 'ask') answer({ type: 'answer', id: msg.id, value: answers[msg.question.what](msg.question as never) })
    else if (msg.type === 'connect' && socket) {
      const { grant } = msg
      wss.handleUpgrade(msg.request as IncomingMessage, socket, Buffer.from(msg.head, 'base64'), (ws) => {
        ws.on('error', () => ws.terminate())
        if ('refuse' in grant) ws.close(grant.refuse.code, grant.refuse.reason)
        else follow(ws, grant.policyId, grant.since, grant.expiresAt)
      })
    } else if (msg.type === 'close') {
      for (const ws of wss.clients) ws.close(1001, 'the service is stopping')
      wss.close()
      // Not from inside the message handler: node is still reading the channel there.
      setImmediate(() => process.disconnect())
    }
  })
  // The main process ends this one: a Ctrl-C reaches the whole process group, and the feed
  // must not stop before the server does. Without the main process there is nothing to serve.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => {})
  process.on('disconnect', () => setTimeout(() => process.exit(0), 1000).unref())
}

if (process.argv[2] === FEED_PROCESS_FLAG) runFeedProcess(Number(process.argv[3]))
