/**
 * The dashboards as a process of their own (#25, `ubiq start --dashboards`), with real processes:
 * a main `ubiq start` scores and prices a simulated fleet; the dashboards process follows the
 * broker and feeds each policyholder their own live scores and premiums, answers REST from
 * InfluxDB, closes a feed whose token the main process revoked, and both stop cleanly. Then the
 * same dashboards process on nats-server's MQTT listener (MQTT 3.1.1), where workers publish.
 */
import t, { type Test } from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import mqtt from 'mqtt'
import WebSocket from 'ws'
import { fleetRegistry, makeFleet, runFleet } from '../edge-sim/index.ts'
import { topics } from '../ingest/index.ts'
import { freePort, startNatsCluster } from '../bin/local-services.ts'
import { tokenAuthority, type FeedMessage } from '../dashboards/index.ts'
import { scoreFor } from '../bench/feed-scores.ts'
import { startServices } from './harness.ts'

const ubiq = fileURLToPath(new URL('../bin/ubiq.js', import.meta.url))
const TOKEN_SECRET = 'a test secret of at least thirty-two bytes, shared'
const auth = tokenAuthority(TOKEN_SECRET)
const tokens = new Map<string, string>()
/** The policyholder's token, issued once (a revocation revokes those issued until then). */
const tokenOf = (policyId: string) => tokens.get(policyId) ?? tokens.set(policyId, auth.issue({ role: 'policyholder', policyId }, 3600_000)).get(policyId)!

/** `ubiq start [args]` as a process; resolves once its /healthz answers 200. */
async function ubiqProcess(t: Test, args: string[], env: NodeJS.ProcessEnv) {
  const port = await freePort()
  const child = spawn(process.execPath, [ubiq, 'start', ...args], { env: { ...process.env, ...env, PORT: String(port), TOKEN_SECRET, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'] })
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(() => void child.kill('SIGKILL'))
  const url = `http://127.0.0.1:${port}`
  while (!(await fetch(`${url}/healthz`).then((r) => r.ok, () => false))) {
    if (child.exitCode !== null) throw new Error(`ubiq start ${args.join(' ')} exited with ${child.exitCode}`)
    await sleep(100)
  }
  return { url, child: child as ChildProcess, stop: () => (child.kill('SIGTERM'), exited) }
}

/** A policyholder's feed: what it received, and how it closed. */
async function follow(t: Test, url: string, policyId: string) {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/feed?token=${tokenOf(policyId)}`)
  const got: FeedMessage[] = []
  ws.on('message', (data) => got.push(JSON.parse(String(data)) as FeedMessage))
  const closed = new Promise<number>((resolve) => ws.once('close', resolve))
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
  t.teardown(() => ws.close())
  return { got, closed }
}

const until = async (ok: () => boolean) => {
  while (!ok()) await sleep(50)
}
const policyOf = (m: FeedMessage) => (m.type === 'score' ? m.score.policyId : m.type === 'event' ? m.event.policyId : m.premium.policyId)

t.test('main ubiq and the dashboards process: each policyholder gets their own live scores and premiums, REST answers, revocations reach it, both stop cleanly', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(2, 7)
  const [a, b] = fleet.map((v) => v.policyId) as [string, string]
  const registry = join(services.dataDir, '..', 'devices.json')
  writeFileSync(registry, JSON.stringify({ devices: fleetRegistry(fleet) }))
  const env = { MQTT_URL: services.mqttUrl, INFLUX_URL: services.influxUrl, INFLUX_DATABASE: 'ubiq_dashboards', DEVICE_REGISTRY: registry, UBIQ_DATA_DIR: services.dataDir }
  const main = await ubiqProcess(t, [], env)
  const dashboards = await ubiqProcess(t, ['--dashboards'], env)
  t.not(dashboards.url, main.url)

  const feedA = await follow(t, dashboards.url, a)
  const feedB = await follow(t, dashboards.url, b)
  const run = await runFleet({ mqttUrl: services.mqttUrl, fleet, startTs: Date.now() - 2 * 3600_000, speedup: Infinity, samples: 600 })
  t.teardown(() => run.stop())
  await run.done
  const has = (got: FeedMessage[], type: FeedMessage['type']) => got.some((m) => m.type === type)
  await until(() => [feedA, feedB].every((f) => has(f.got, 'score') && has(f.got, 'premium')))
  t.ok(feedA.got.every((m) => policyOf(m) === a) && feedB.got.every((m) => policyOf(m) === b), 'each feed carries only its own policy')
  const seqs = feedA.got.map((m) => m.seq)
  t.same(seqs, [...seqs].sort((x, y) => x - y), 'in seq order')

  const get = (path: string, policyId: string) => fetch(`${dashboards.url}${path}`, { headers: { authorization: `Bearer ${tokenOf(policyId)}` } })
  const standing = await get(`/api/v1/policies/${a}`, a)
  t.equal(standing.status, 200)
  const body = (await standing.json()) as { scores: { driving?: { value: number } }; premiums: { driving?: { factor: number } } }
  const lastScore = feedA.got.filter((m) => m.type === 'score').at(-1)!
  t.equal(body.scores.driving?.value, lastScore.type === 'score' ? lastScore.score.value : NaN, "REST's standing is the feed's latest score")
  t.ok(body.premiums.driving, 'and a premium')
  // Scoring writes its scores to InfluxDB in batches: they are there within a second or so.
  const stored = async () => ((await (await get(`/api/v1/policies/${a}/scores`, a)).json()) as { scores: unknown[] }).scores.length
  while ((await stored()) === 0) await sleep(200)
  t.pass('score history from InfluxDB')
  t.equal((await get(`/api/v1/policies/${b}`, a)).status, 403, "another policy's standing: 403")
  t.equal((await get(`/api/v1/policies/${a}/consents`, a)).status, 404, "consent is the main process's: not served here")
  t.equal((await fetch(`${main.url}/api/v1/policies/${a}/consents`, { headers: { authorization: `Bearer ${tokenOf(a)}` } })).status, 200, 'but by the main process')
  const asAnalyst = { headers: { authorization: `Bearer ${auth.issue({ role: 'analyst' }, 60_000)}` } }
  t.equal((await fetch(`${dashboards.url}/api/v1/models/drift`, asAnalyst)).status, 200, "the models' drift reads InfluxDB only: served here")
  t.equal((await fetch(`${dashboards.url}/api/v1/ingest/health`, asAnalyst)).status, 404, "ingest's health is the main process's: not served here")

  // A revocation made on the main process closes the feed its token opened on the dashboards process.
  const revoked = await fetch(`${main.url}/api/v1/tokens/revocations`, {
    method: 'POST', headers: { authorization: `Bearer ${auth.issue({ role: 'analyst' }, 60_000)}`, 'content-type': 'application/json' }, body: JSON.stringify({ policy: b }),
  })
  t.equal(revoked.status, 200)
  t.equal(await feedB.closed, 4401, "B's feed on the dashboards process is closed: its token was revoked on the main process")
  t.equal((await get(`/api/v1/policies/${b}`, b)).status, 401, 'and its token opens no route there')

  t.equal(await dashboards.stop(), 0, 'the dashboards process stops cleanly on SIGTERM')
  t.equal(await feedA.closed, 1001, 'telling its feeds to come back later')
  t.equal(await main.stop(), 0, 'so does the main process')
})

t.test("on nats-server's MQTT listener: the dashboards process follows what workers publish", async (t) => {
  const services = await startServices(t)
  const [nats] = await startNatsCluster(join(services.dataDir, '..', 'nats'), 1, 4)
  t.teardown(() => nats!.stop())
  const registry = join(services.dataDir, '..', 'devices.json')
  const [a, b] = ['pol-nats-a', 'pol-nats-b']
  writeFileSync(registry, JSON.stringify({ devices: [a, b].map((policyId, i) => ({ deviceId: `veh-nats-${i}`, policyId, kinds: ['obd'] })) }))
  // Published before the dashboards process starts: a retained message is not news to it.
  const publisher = await mqtt.connectAsync(nats!.mqttUrl, { clientId: 'test-worker-out', protocolVersion: 4 })
  t.teardown(() => publisher.endAsync())
  const old = scoreFor(a, 0, Date.now() - 60_000)
  await publisher.publishAsync(topics.scores(a), JSON.stringify(old), { qos: 1, retain: true })
  const dashboards = await ubiqProcess(t, ['--dashboards'], { MQTT_URL: nats!.mqttUrl, INFLUX_URL: services.influxUrl, INFLUX_DATABASE: 'ubiq_dashboards_nats', DEVICE_REGISTRY: registry, UBIQ_DATA_DIR: services.dataDir })
  const feedA = await follow(t, dashboards.url, a)
  const feedB = await follow(t, dashboards.url, b)
  const scores = [scoreFor(a, 1, Date.now()), scoreFor(b, 2, Date.now()), scoreFor(a, 3, Date.now())]
  for (const s of scores) await publisher.publishAsync(topics.scores(s.policyId), JSON.stringify(s), { qos: 1 })
  // A payload that is not its topic's policy's (another's score) reaches nobody.
  await publisher.publishAsync(topics.scores(b), JSON.stringify(scoreFor(a, 4, Date.now())), { qos: 1 })
  await until(() => feedA.got.length >= 2 && feedB.got.length >= 1)
  await sleep(500) // anything more would come now
  t.same(feedA.got.map((m) => m.type === 'score' && m.score), [scores[0], scores[2]], "A's feed: A's two live scores, as published, and not the retained one")
  t.same(feedB.got.map((m) => m.type === 'score' && m.score), [scores[1]], "B's feed: B's own")
  t.equal(await dashboards.stop(), 0, 'stops cleanly')
})
