/**
 * Shutdown and the feed (#20, #23): every feed client is told why it is closed (1001, going away,
 * with what to do), and a client that never answers the close frame does not hold the shutdown.
 */
import t from 'tap'
import { Registry } from 'prom-client'
import { NEVER } from 'rxjs'
import WebSocket from 'ws'
import { connectInflux, consentStore, deviceRegistry } from '../ingest/index.ts'
import { startDashboards, tokenAuthority } from './index.ts'
import { startServices, testLogger } from '../test/harness.ts'

t.test('shutdown closes each feed with 1001 and a reason, and cuts off a client that does not answer', async (t) => {
  const services = await startServices(t)
  const metrics = new Registry()
  const auth = tokenAuthority('a test secret of at least thirty-two bytes')
  const server = await startDashboards({
    consents: consentStore({ registry: deviceRegistry([]), record: () => '' }),
    scores$: NEVER, events$: NEVER, premiums$: NEVER,
    influx: await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_shutdown' }),
    auth, metrics, deviceClock: () => undefined, whatIf: async () => undefined, health: () => ({ ok: true, checks: {} }),
    logger: testLogger(), host: '127.0.0.1', port: 0,
  })
  const connect = async (policyId: string) => {
    const ws = new WebSocket(`${server.url.replace('http', 'ws')}/feed?token=${auth.issue({ role: 'policyholder', policyId }, 600_000)}`)
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.once('close', (code, reason) => r({ code, reason: String(reason) })))
    await new Promise((r) => ws.once('open', r))
    return { ws, closed }
  }
  const open = async () => Number((await metrics.getSingleMetricAsString('ubiq_feed_clients')).trim().split(' ').at(-1))
  const reading = await connect('pol-a')
  const deaf = await connect('pol-b')
  // A phone gone quiet: it takes nothing off its socket, so it never answers the close frame.
  ;(deaf.ws as unknown as { _socket: { pause(): void } })._socket.pause()
  t.equal(await open(), 2, 'two feeds open')

  await server.close()
  t.same(await reading.closed, { code: 1001, reason: 'the service is shutting down: reconnect with ?since=' }, 'a reading client is told it is a shutdown (1001), and what to do')
  t.equal(await open(), 0, 'close() returned with every feed closed, the one that never answered included')
})
