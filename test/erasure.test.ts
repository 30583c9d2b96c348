/**
 * Erasure, end to end (#21 item 5), on a real Mosquitto and InfluxDB with the whole pipeline: two
 * policies (a car, a wearable and a home each) publish; mid-stream `ubiq erase policy` erases the
 * first while its devices go on publishing. Afterwards nothing of it is anywhere: no series in any
 * retention policy, no line in the data folder's files (journal, dead letters, audit chain, keys,
 * revocations) naming it or its devices, no retained message, no registry entry; its REST routes
 * answer 404, its token and feed are refused, and its devices' later readings are rejected
 * (`unknown_device`) and not stored. The other policy is intact, and the audit chain verifies,
 * with the erased policy's records pseudonymous and the erasure recorded.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import t from 'tap'
import WebSocket from 'ws'
import { policyRegistry, runSimulation, type DeviceMessage } from '../edge-sim/index.ts'
import { deviceRegistry, qualified, storedMeasurements, topics, type Rejection } from '../ingest/index.ts'
import { auditRecords, examplePlans, loadPlans, verifyAudit, type PremiumAdjustment } from '../pricing/index.ts'
import { auditLogFile } from '../bin/pipeline.ts'
import { startServices, startTestPipeline, twoPolicies, untilStored } from './harness.ts'

const DB = 'ubiq_erasure'
const ubiq = fileURLToPath(new URL('../bin/ubiq.js', import.meta.url))
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Every file under `dir`, with its text. */
const filesUnder = (dir: string): { path: string; text: string }[] => readdirSync(dir).flatMap((name) => {
  const path = join(dir, name)
  return statSync(path).isDirectory() ? filesUnder(path) : [{ path, text: readFileSync(path, 'latin1') }]
})

t.test('a policy erased mid-stream leaves no trace; the other stays whole and the audit chain verifies', async (t) => {
  const services = await startServices(t)
  const { policies, start, devices, policy, other } = twoPolicies()
  const erasedDevices = devices.filter((d) => d.policyId === policy).map((d) => d.deviceId)
  const names = [policy, ...erasedDevices]
  const registryFile = join(mkdtempSync(join(tmpdir(), 'ubiq-registry-')), 'devices.json')
  writeFileSync(registryFile, JSON.stringify({ devices: policyRegistry(policies) }))
  // Premiums from the first score: no minimum exposure.
  const [plan] = loadPlans(examplePlans)
  const subjects = Object.fromEntries(Object.entries(plan!.subjects).map(([s, r]) => [s, { ...r, credibility: { ...r.credibility, minimum: 0 } }]))
  const pipeline = await startTestPipeline(t, services, [], DB, { devices: deviceRegistry(policyRegistry(policies)), devicesFile: registryFile, reorderWindowMs: 100, plans: [{ ...plan!, subjects }] })
  const analyst = pipeline.auth.issue({ role: 'analyst' }, 3600_000)
  const holder = pipeline.auth.issue({ role: 'policyholder', policyId: policy }, 3600_000)
  const api = (path: string, token = analyst, method = 'GET') => fetch(`${pipeline.url}${path}`, { method, headers: { authorization: `Bearer ${token}` } })
  const premiums: PremiumAdjustment[] = []
  let last = Date.now()
  pipeline.premiums$.subscribe((p) => premiums.push(p))
  pipeline.scores$.subscribe(() => (last = Date.now()))
  const quiet = async () => {
    while (Date.now() - last < 2000) await sleep(200)
  }

  // A policyholder's feed and an analyst's, open when the policy is erased.
  const feed = (query: string) => {
    const ws = new WebSocket(`${pipeline.url.replace('http', 'ws')}/feed?${query}`)
    const closed = new Promise<number>((resolve) => ws.on('close', (code) => resolve(code)))
    return { opened: new Promise((resolve) => ws.on('open', resolve)), closed }
  }
  // The erased devices' rejections, as they would read them.
  const watcher = await mqtt.connectAsync(services.mqttUrl, { reconnectPeriod: 0 })
  t.teardown(() => watcher.endAsync())
  const rejected: Rejection[] = []
  watcher.on('message', (topic, payload) => {
    if (topic.startsWith('ubiq/v1/rejected/')) rejected.push(JSON.parse(String(payload)) as Rejection)
  })
  await watcher.subscribeAsync(erasedDevices.map((d) => topics.rejected(d)), { qos: 1 })

  // The first half of each device's messages, and scoring and pricing caught up with them.
  const half = (d: (typeof devices)[0], first: boolean) => d.sent.slice(...(first ? [0, d.sent.length >> 1] : [d.sent.length >> 1])) as unknown as DeviceMessage[]
  // The first as fast as it goes; the second at a simulated day in about 55 s, so that it is still
  // being published when the erasure comes and goes, even on a loaded machine (at 20 s a busy CI
  // machine had finished publishing before the erasure was done).
  const publish = (first: boolean) => runSimulation({
    mqttUrl: services.mqttUrl, devices: devices.map((d) => ({ deviceId: d.deviceId, messages: half(d, first).values() as Generator<DeviceMessage> })),
    startTs: first ? start : Math.min(...devices.map((d) => half(d, false)[0]!.sendAt)), speedup: first ? Infinity : 1500,
  })
  const firstHalf = devices.reduce((n, d) => n + half(d, true).length, 0)
  await (await publish(true)).done
  await untilStored(pipeline, firstHalf)
  await quiet()
  t.ok(premiums.some((p) => p.policyId === policy) && premiums.some((p) => p.policyId === other), 'both policies have premiums')
  // A consent change of each policy: recorded in the chain (the policyholder's token id sealed), and
  // told to each device on its retained consent topic.
  for (const p of [policy, other]) {
    const res = await fetch(`${pipeline.url}/api/v1/policies/${p}/consents`, {
      method: 'POST', headers: { authorization: `Bearer ${pipeline.auth.issue({ role: 'policyholder', policyId: p }, 60_000)}`, 'content-type': 'application/json' },
      body: JSON.stringify({ streams: ['obd'], purposes: ['claims'], granted: true }),
    })
    t.equal(res.status, 200, `${p}: a consent change`)
  }
  const holderFeed = feed(`token=${holder}`)
  const analystFeed = feed(`token=${analyst}&policy=${policy}`)
  await Promise.all([holderFeed.opened, analystFeed.opened])

  t.equal((await api(`/api/v1/policies/${policy}/erasure`, holder, 'POST')).status, 403, "a policyholder's token cannot erase, not even its own policy")

  // Mid-stream: the second half is being published as ubiq erases the policy.
  const second = await publish(false)
  await untilStored(pipeline, firstHalf + 200)
  const erase = spawn(process.execPath, [ubiq, 'erase', 'policy', policy, '--url', pipeline.url], { env: { PATH: process.env.PATH, UBIQ_DATA_DIR: services.dataDir } })
  let out = ''
  erase.stdout.on('data', (b) => (out += String(b)))
  erase.stderr.on('data', (b) => (out += String(b)))
  const code = await new Promise((resolve) => erase.on('close', resolve))
  t.equal(code, 0, `ubiq erase policy: ${out.trim().split('\n')[0]}`)
  t.match(out, /removed: registryDevices 3, retainedTopicsCleared \d+, discoveryFiles 0, influxSeries [1-9]\d*, journalLines \d+/, 'it says what was removed')
  t.match(out, /stays:\n {2}- the audit chain keeps/, 'and what stays, and why')
  t.ok(second.simulatedTs < Math.max(...devices.map((d) => d.sent.at(-1)!.sendAt)), 'the devices were still publishing when the erasure was done')
  await second.done
  await quiet()
  await untilStored(pipeline, 0)
  t.equal(await holderFeed.closed, 4401, "the policyholder's open feed is closed: its token is revoked")
  t.equal(await analystFeed.closed, 4404, "an analyst's feed of the policy is closed: the policy is gone")

  await t.test('its devices\' readings after the erasure are refused, and not stored', async (t) => {
    const car = erasedDevices[0]!
    const device = await mqtt.connectAsync(services.mqttUrl, { reconnectPeriod: 0 })
    const before = rejected.length
    await device.publishAsync(topics.device(car, 'obd'), JSON.stringify({ seq: 1e12, ts: Date.now() - 1000, speed_kmh: 50 }), { qos: 1 })
    await device.endAsync()
    while (rejected.length === before) await sleep(50)
    t.match(rejected.at(-1), { deviceId: car, reason: 'unknown_device', detail: 'device is not in the registry' })
    t.ok(rejected.filter((r) => r.reason === 'unknown_device').length > 1, `the second half's readings sent after the erasure were refused too (${rejected.length} rejections)`)
  })

  await t.test('no trace in InfluxDB: no series of the policy or its devices in any retention policy', async (t) => {
    const series = (await services.influxql(DB, 'SHOW SERIES')).flatMap((s) => s.values.map((v) => String(v[0])))
    t.ok(series.some((k) => k.includes(other)), `the other policy's series stay (${series.length} series in all)`)
    t.same(series.filter((k) => names.some((n) => k.includes(`=${n},`) || k.endsWith(`=${n}`))), [], 'SHOW SERIES names none of them')
    for (const m of storedMeasurements) {
      const rows = await services.influxql(DB, `SELECT count(*) FROM ${qualified(m.name)} WHERE ${m.tags.map((tag) => names.map((n) => `"${tag}" = '${n}'`).join(' OR ')).join(' OR ')}`)
      t.same(rows, [], `${qualified(m.name)}: nothing`)
    }
  })

  await t.test('no trace in the data folder\'s files, nor in the registry file', async (t) => {
    const files = filesUnder(services.dataDir)
    t.ok(files.some((f) => f.path.endsWith('audit.jsonl')) && files.some((f) => f.path.endsWith('audit-keys.json')), `${files.length} files: ${files.map((f) => f.path.slice(services.dataDir.length + 1)).join(', ')}`)
    t.same(files.filter((f) => names.some((n) => f.text.includes(n))).map((f) => f.path), [], 'none names the policy or its devices')
    t.ok(files.some((f) => f.text.includes(other)), 'the other policy is still named where it was (its audit key)')
    const registry = JSON.parse(readFileSync(registryFile, 'utf8')) as { devices: { deviceId: string; policyId: string }[] }
    t.same(registry.devices.map((d) => d.policyId), policyRegistry(policies).filter((d) => d.policyId === other).map((d) => d.policyId), 'the registry file keeps the other policy\'s devices only')
  })

  await t.test('no retained message names it; the other policy\'s premiums stay retained', async (t) => {
    const reader = await mqtt.connectAsync(services.mqttUrl, { reconnectPeriod: 0 })
    const retained: string[] = []
    reader.on('message', (topic, payload, packet) => packet.retain && payload.length > 0 && retained.push(`${topic} ${String(payload)}`))
    await reader.subscribeAsync('#', { qos: 1 })
    await sleep(1000)
    await reader.endAsync()
    t.ok(retained.some((m) => m.startsWith(`ubiq/v1/premiums/${other}/`)), `${retained.length} retained messages, the other policy's premiums among them`)
    t.ok(retained.some((m) => m.startsWith('ubiq/v1/consent/') && devices.some((d) => d.policyId === other && m.startsWith(topics.consent(d.deviceId)))), "and its devices' consent notices")
    t.same(retained.filter((m) => names.some((n) => m.includes(n))).map((m) => m.split(' ')[0]), [], 'none of the erased policy')
  })

  await t.test('REST: 404 for the policy, its token revoked; the other policy answers', async (t) => {
    for (const path of ['', '/scores', '/premiums', '/events', '/trips', '/consents', '/export', '/devices']) {
      const res = await api(`/api/v1/policies/${policy}${path}`)
      t.equal(res.status, 404, `GET /api/v1/policies/${policy}${path}: 404`)
    }
    t.equal((await api(`/api/v1/policies/${policy}/erasure`, analyst, 'POST')).status, 404, 'erasing it again: 404')
    const revoked = await api(`/api/v1/policies/${policy}`, holder)
    t.same([revoked.status, ((await revoked.json()) as { error: string }).error], [401, 'revoked_token'], "the policyholder's token is revoked")
    const listed = (await (await api('/api/v1/policies')).json()) as { policies: string[] }
    t.ok(listed.policies.includes(other) && !listed.policies.includes(policy), 'the policy list has the other policy, not this one')
    t.equal((await api(`/api/v1/policies/${other}`)).status, 200, 'the other policy answers')
    const late = feed(`token=${analyst}&policy=${policy}`)
    t.equal(await late.closed, 4404, 'a feed of it is refused')
  })

  await t.test('the audit chain verifies; the erased policy\'s records are pseudonymous, and the erasure is recorded', async (t) => {
    const file = auditLogFile(services.dataDir)
    const verdict = verifyAudit(file)
    t.match(verdict, { ok: true }, `the chain holds: ${JSON.stringify(verdict)}`)
    const records = [...auditRecords(file)]
    const erasure = records.find((r) => r.record === 'erasure')
    t.match(erasure, { record: 'erasure', policyId: /^hmac:[0-9a-f]{64}$/, devices: 3, by: { role: 'analyst', tokenId: String }, at: String }, 'when, who (an analyst\'s token id) and the pseudonym')
    const itsPremiums = records.filter((r) => r.record === undefined && r.policyId === erasure?.policyId)
    t.ok(itsPremiums.length > 0, `its ${itsPremiums.length} premium records stay, under the pseudonym`)
    t.ok(records.every((r) => r.policyId.startsWith('hmac:')), 'every record names its policy by a pseudonym')
    t.ok(records.filter((r) => r.record === 'consent').length === 2, 'the consent changes of both policies stay in the chain')
    const published = premiums.filter((p) => p.policyId === policy).map((p) => p.hash)
    t.same(itsPremiums.map((r) => r.hash).filter((h) => published.includes(h)).length, published.length, 'the premiums it published are in the chain, by their hashes')
  })

  await t.test('after a restart: the other policy\'s consent and premiums come back from the chain, the erased one stays gone', async (t) => {
    await pipeline.stop()
    const again = await startTestPipeline(t, services, [], DB, { devices: deviceRegistry((JSON.parse(readFileSync(registryFile, 'utf8')) as { devices: [] }).devices), devicesFile: registryFile, plans: [{ ...plan!, subjects }] })
    const get = (path: string) => fetch(`${again.url}${path}`, { headers: { authorization: `Bearer ${analyst}` } })
    const consent = (await (await get(`/api/v1/policies/${other}/consents`)).json()) as { changes: { by: { role: string; tokenId?: string } }[]; streams: { stream: string; purposes: string[] }[] }
    t.match(consent.changes, [{ by: { role: 'policyholder', tokenId: /^[0-9a-f-]{36}$/ } }], "its change read back, the token's id unsealed")
    t.same(consent.streams.find((s) => s.stream === 'obd')?.purposes, ['pricing', 'claims'])
    t.equal((await get(`/api/v1/policies/${other}`)).status, 200, 'its premiums answer')
    t.equal((await get(`/api/v1/policies/${policy}/consents`)).status, 404, 'the erased policy is not found')
    t.match(verifyAudit(auditLogFile(services.dataDir)), { ok: true })
  })
})
