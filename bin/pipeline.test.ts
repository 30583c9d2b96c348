/**
 * Starting against an InfluxDB that is not there (#20 item 12): ubiq start says what it waits for,
 * naming the URL, and gives up after INFLUX_START_TIMEOUT_S with a coded error and a non-zero exit,
 * where it used to wait without a word (a hung server) or give up at once (a closed port).
 * And /healthz (#20 item 6): each stage's liveness, not only the MQTT connections.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import pino from 'pino'
import { Registry } from 'prom-client'
import { NEVER, Subject } from 'rxjs'
import { startDashboards, tokenAuthority } from '../dashboards/index.ts'
import { connectInflux, consentStore, deviceRegistry } from '../ingest/index.ts'
import { startServices, startTestPipeline } from '../test/harness.ts'
import { reportUnhandledErrors, stageChecks, storingWatch, untilInfluxAnswers, watchStage } from './pipeline.ts'

/** A port nothing listens on (taken from the system, then let go). */
async function closedPort(): Promise<number> {
  const server = createTcpServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  await new Promise((r) => server.close(r))
  return port
}

const listen = async (server: Server | ReturnType<typeof createHttpServer>, port = 0) => {
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r))
  return (server.address() as AddressInfo).port
}

t.test('ubiq start against a closed port: a log line naming the URL, then UBIQ_INFLUX_UNREACHABLE and exit 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-influx-wait-'))
  writeFileSync(join(dir, 'devices.json'), '{"devices":[]}')
  const port = await closedPort()
  const child = spawn(process.execPath, [fileURLToPath(new URL('./ubiq.js', import.meta.url)), 'start'], {
    cwd: dir,
    env: {
      PATH: process.env.PATH, INFLUX_URL: `http://127.0.0.1:${port}`, INFLUX_START_TIMEOUT_S: '2',
      MQTT_URL: `mqtt://127.0.0.1:${await closedPort()}`, DEVICE_REGISTRY: join(dir, 'devices.json'), UBIQ_DATA_DIR: join(dir, 'data'),
    },
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d))
  child.stderr.on('data', (d: Buffer) => (stderr += d))
  const code = await new Promise((r) => child.on('exit', r))
  t.equal(code, 1, 'a non-zero exit')
  t.match(stderr, `ubiq: [UBIQ_INFLUX_UNREACHABLE] InfluxDB at http://127.0.0.1:${port}/ did not answer within 2 s (INFLUX_START_TIMEOUT_S): ECONNREFUSED`, 'the coded error names the URL, the time and the setting')
  const lines = stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>)
  t.match(lines, [{ level: 40, msg: 'waiting for InfluxDB to answer', url: `http://127.0.0.1:${port}/`, reason: 'ECONNREFUSED', timeout_s: 2 }], 'said what it was waiting for before giving up')
})

t.test('a server that takes the connection and never answers is waited for with a bound, and said so', async (t) => {
  const sockets: Socket[] = []
  const hung = createTcpServer((s) => void sockets.push(s))
  const port = await listen(hung)
  t.teardown(() => {
    sockets.forEach((s) => s.destroy())
    hung.close()
  })
  const logged: Record<string, unknown>[] = []
  const logger = pino({ level: 'info' }, { write: (l: string) => void logged.push(JSON.parse(l)) })
  await t.rejects(untilInfluxAnswers(`http://user:secret@127.0.0.1:${port}`, 500, logger, 200), { code: 'UBIQ_INFLUX_UNREACHABLE', message: /did not answer within 0.5 s .*: no answer in 0.2 s/ })
  t.ok(logged.length >= 1, `said so, at most every 0.2 s (${logged.length} times)`)
  t.match(logged[0], { msg: 'waiting for InfluxDB to answer', url: `http://127.0.0.1:${port}/`, reason: 'no answer in 0.2 s' })
  t.notMatch(JSON.stringify(logged), /secret/, 'without the password')
})

t.test('InfluxDB that comes up while ubiq waits is taken', async (t) => {
  const port = await closedPort()
  const logged: Record<string, unknown>[] = []
  const late = createHttpServer((_req, res) => res.writeHead(204).end())
  t.teardown(() => late.close())
  const logger = pino({ level: 'info' }, {
    write: (l: string) => {
      logged.push(JSON.parse(l))
      if (logged.length === 1) void listen(late, port)
    },
  })
  await untilInfluxAnswers(`http://127.0.0.1:${port}`, 30_000, logger, 100)
  t.ok(logged.length >= 1, 'it waited, said so, and went on once InfluxDB answered')
})

t.test('stage checks: a stage whose stream ends fails its check, by name; storing fails only when lines wait unconfirmed', async (t) => {
  let clock = 0
  const now = () => clock
  const logged: Record<string, unknown>[] = []
  const logger = pino({ level: 'info' }, { write: (l: string) => void logged.push(JSON.parse(l)) })
  const journal = { pending: 0 }
  const [readings$, trips$, scores$, premiums$] = [new Subject<unknown>(), new Subject<unknown>(), new Subject<unknown>(), new Subject<unknown>()]
  const storing = storingWatch(journal, now)
  const health = stageChecks({
    mqttIngest: () => true, mqttPublisher: () => true, journal, storing, stallMs: 30_000, now,
    receiving: watchStage('readings', readings$, logger, now),
    scoring: [watchStage('trips', trips$, logger, now), watchStage('scores', scores$, logger, now)],
    pricing: watchStage('premiums', premiums$, logger, now),
  })
  t.match(health(), { ok: true, checks: { receiving: true, storing: true, scoring: true, pricing: true, journalPendingLines: 0 } }, 'a new pipeline is healthy')

  // An hour idle, then a reading: its lines wait from now, not from the last confirmation.
  clock = 3600_000
  journal.pending = 3
  readings$.next({})
  storing.appended()
  clock += 29_000
  t.match(health(), { ok: true, checks: { storing: true, sinceReading_s: 29 } }, 'lines waiting 29 s: not yet a stall')
  clock += 1000
  t.match(health(), { ok: false, checks: { storing: false, journalPendingLines: 3 } }, 'lines waiting 30 s with none confirmed: storing has stalled')
  journal.pending = 1
  storing.confirmed()
  t.match(health(), { ok: true, checks: { storing: true, sinceStored_s: 0 } }, 'InfluxDB confirms some: progress')
  clock += 60_000
  journal.pending = 0
  t.match(health(), { ok: true, checks: { storing: true } }, 'nothing waiting: no stall, however long since the last line')

  scores$.next({})
  scores$.error(new Error('a bug'))
  t.match(health(), { ok: false, checks: { scoring: false, receiving: true, pricing: true } }, 'a scoring stream that failed fails scoring')
  t.match(logged, [{ level: 50, stream: 'scores', err: { message: 'a bug' }, msg: /stream failed/ }], 'and is logged once, with its error')
  premiums$.complete()
  t.match(health(), { checks: { pricing: false } }, 'a pricing stream that ended fails pricing')
})

t.test('/healthz of a running pipeline reports each stage; a 503 names the failing checks', async (t) => {
  const services = await startServices(t)
  const pipeline = await startTestPipeline(t, services, [], 'ubiq_healthz')
  const res = await fetch(`${pipeline.url}/healthz`)
  t.equal(res.status, 200)
  t.match(await res.json(), { status: 'ok', checks: { mqttIngest: true, mqttPublisher: true, receiving: true, storing: true, scoring: true, pricing: true, journalPendingLines: 0 } }, 'each stage\'s liveness beside the connections')

  const server = await startDashboards({
    consents: consentStore({ registry: deviceRegistry([]), record: () => '' }),
    scores$: NEVER, events$: NEVER, premiums$: NEVER,
    influx: await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_healthz' }),
    auth: tokenAuthority('a test secret of at least thirty-two bytes'), metrics: new Registry(), deviceClock: () => undefined, whatIf: async () => undefined,
    health: () => ({ ok: false, checks: { mqttIngest: true, storing: false, scoring: false, journalPendingLines: 7 } }),
    logger: pino({ level: 'silent' }), host: '127.0.0.1', port: 0,
  })
  t.teardown(() => server.close())
  const degraded = await fetch(`${server.url}/healthz`)
  t.equal(degraded.status, 503)
  t.same(await degraded.json(), { status: 'degraded', failing: ['storing', 'scoring'], checks: { mqttIngest: true, storing: false, scoring: false, journalPendingLines: 7 } }, 'the failing checks by name')
})

t.test('an error no subscriber handles is logged and counted; the process runs on (#20 item 6)', async (t) => {
  const logged: Record<string, unknown>[] = []
  const logger = pino({ level: 'info' }, { write: (l: string) => void logged.push(JSON.parse(l)) })
  const metrics = new Registry()
  t.teardown(reportUnhandledErrors(logger, metrics))
  // As the service subscribes to its stages: next only. RxJS would rethrow these on a later tick.
  const stage$ = new Subject<number>()
  stage$.subscribe(() => {})
  stage$.subscribe((n) => {
    if (n === 2) throw new Error('a bug in a callback')
  })
  stage$.next(1)
  stage$.next(2)
  stage$.next(3)
  stage$.error(new Error('a stage failed'))
  await new Promise((r) => setTimeout(r, 10))
  t.match(logged.map((l) => (l.err as { message: string }).message), ['a bug in a callback', 'a stage failed', 'a stage failed'], 'each error logged with its cause, once per subscriber that had no handler')
  t.match(await metrics.getSingleMetricAsString('ubiq_unhandled_errors_total'), /ubiq_unhandled_errors_total 3/, 'and counted')
})
