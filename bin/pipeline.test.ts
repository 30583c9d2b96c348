/**
 * Starting against an InfluxDB that is not there (#20 item 12): ubiq start says what it waits for,
 * naming the URL, and gives up after INFLUX_START_TIMEOUT_S with a coded error and a non-zero exit,
 * where it used to wait without a word (a hung server) or give up at once (a closed port).
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
import { untilInfluxAnswers } from './pipeline.ts'

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

t.test('ubiq start against a closed port: a log line naming the URL, then INFLUX_UNREACHABLE and exit 1', async (t) => {
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
  t.match(stderr, `ubiq: [INFLUX_UNREACHABLE] InfluxDB at http://127.0.0.1:${port}/ did not answer within 2 s (INFLUX_START_TIMEOUT_S): ECONNREFUSED`, 'the coded error names the URL, the time and the setting')
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
  await t.rejects(untilInfluxAnswers(`http://user:secret@127.0.0.1:${port}`, 500, logger, 200), { code: 'INFLUX_UNREACHABLE', message: /did not answer within 0.5 s .*: no answer in 0.2 s/ })
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
