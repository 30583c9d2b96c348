/**
 * First notice of loss (#24 items 2 and 5) on a real Mosquitto and a real InfluxDB: edge-sim cars
 * crash now (their trips shifted so the impact is a few seconds ahead, and everything after it
 * published as it happens), each crash opens a claim with its evidence window (≥ 10 s before,
 * ≥ 20 s after) and the claim reaches a claims receiver (a real HTTP server) signed, through two
 * failed attempts, once per claim. A pothole-like spike followed by normal driving opens none.
 * The time from the impact to the claim delivered is measured (README "Claims hook").
 */
import t from 'tap'
import mqtt from 'mqtt'
import { createServer } from 'node:http'
import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { deviceRegistry, topics } from '../ingest/index.ts'
import { auditRecords, verifyAudit, verifySignature, SIGNATURE_HEADER, type Claim, type ClaimRecord } from '../pricing/index.ts'
import type { PolicyEvent } from '../scoring/index.ts'
import { driveVehicle, makeCity, makePolicies, toMessages, type DeviceMessage, type TripTruth } from '../edge-sim/index.ts'
import { auditLogFile, webhooksDir } from '../bin/pipeline.ts'
import { firstMatch, startServices, startTestPipeline } from './harness.ts'

const DB = 'ubiq_claims'
const SECRET = 'claims-secret-'.padEnd(40, 'x')
const DAY = 86_400_000
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const until = async (ok: () => boolean) => {
  while (!ok()) await sleep(20)
}

/** A car's first trip, which ends in a crash, shifted in time so that the impact is at `crashAt`. */
function crashTrip(city: ReturnType<typeof makeCity>, vehicle: NonNullable<ReturnType<typeof makePolicies>[number]['vehicle']>, crashAt: number) {
  let truth: TripTruth | undefined
  const start = Math.floor(crashAt / DAY) * DAY - 2 * DAY
  const out: DeviceMessage[] = []
  for (const m of toMessages(vehicle.deviceId, driveVehicle(city, vehicle, { startTs: start, days: 1, imuHz: 10, crashOnTrip: 0 }, (trip) => (truth ??= trip)))) {
    if (truth) break // the next trip's first message
    out.push(m)
  }
  const shift = crashAt - truth!.crash!.ts
  return {
    crashAt,
    messages: out.map((m) => ({ ...m, ts: m.ts + shift, sendAt: m.sendAt + shift, payload: JSON.stringify({ ...JSON.parse(m.payload), ts: m.ts + shift }) })),
  }
}

/** A minute at 50 km/h with a 100 Hz IMU, and at 30 s a 60 ms spike of 4.6 g (a pothole, a phone knocked): Δv 9.7 km/h, then on at 50 km/h. */
function potholeDrive(from: number) {
  const out: { kind: string; body: Record<string, unknown> }[] = [{ kind: 'status', body: { ts: from, ignition_on: true } }]
  for (let s = 1; s <= 60; s++) {
    const ts = from + s * 1000
    out.push({ kind: 'obd', body: { ts, speed_kmh: 50 } })
    const samples = Array.from({ length: 100 }, (_, i) => [s === 30 && i >= 40 && i < 46 ? 45 : 0.2 * Math.sin(i), 0.1, 0.05, 0, 0, 0])
    out.push({ kind: 'imu', body: { ts, rate_hz: 100, samples } })
  }
  out.push({ kind: 'status', body: { ts: from + 61_000, ignition_on: false } })
  return out.map((m, seq) => ({ ...m, body: { seq, ...m.body } }))
}

t.test('crash → claim with its evidence window, signed, delivered once through retries; a pothole opens none', async (t) => {
  const services = await startServices(t)
  const city = makeCity()
  const policies = makePolicies(city, 3)
  const cars = policies.map((p) => p.vehicle!)
  const pothole = { deviceId: 'car-pothole', policyId: 'pol-pothole', kinds: ['status', 'obd', 'imu'] }
  const registry = deviceRegistry([...cars.map((v) => ({ deviceId: v.deviceId, policyId: policies.find((p) => p.vehicle === v)!.policyId, kinds: ['status', 'obd', 'gps', 'imu', 'imu_device', 'crash'] })), pothole])

  // The claims system: fails the first two requests (whoever's), then takes each claim once.
  const received: { at: number; id: string; body: string; signed: boolean }[] = []
  let requests = 0
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      if (++requests <= 2) return void res.writeHead(503).end()
      const id = String(req.headers['idempotency-key'])
      if (!received.some((r) => r.id === id)) received.push({ at: Date.now(), id, body, signed: verifySignature(SECRET, req.headers[SIGNATURE_HEADER] as string, body) })
      res.writeHead(200).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => server.close(r)))
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}/fnol`

  const pipeline = await startTestPipeline(t, services, [], DB, { devices: registry, claims: { url, secret: SECRET, retry: { baseDelayMs: 100 } } })
  const events: PolicyEvent[] = []
  pipeline.events$.subscribe((e) => events.push(e))

  // The pothole, driven a few minutes ago: its crash event comes, and no claim.
  const client = await mqtt.connectAsync(services.mqttUrl, { clientId: 'claims-test-devices' })
  t.teardown(() => client.endAsync())
  for (const m of potholeDrive(Date.now() - 5 * 60_000)) await client.publishAsync(topics.device(pothole.deviceId, m.kind), JSON.stringify(m.body), { qos: 1 })

  // The cars crash a few seconds from now, a second apart; what a car sends before now goes at once, the rest as it happens.
  const now = Date.now()
  const trips = cars.map((v, i) => ({ deviceId: v.deviceId, ...crashTrip(city, v, now + 8000 + i * 1000) }))
  const queue = trips.flatMap((trip) => trip.messages).sort((a, b) => a.sendAt - b.sendAt)
  for (const m of queue) {
    if (m.sendAt > Date.now()) await sleep(m.sendAt - Date.now())
    await client.publishAsync(m.topic, m.payload, { qos: 1 })
  }

  await until(() => received.length === cars.length)
  t.equal(requests, cars.length + 2, 'the claims system was asked once per claim, plus the two attempts it failed')
  const claims = received.map((r) => ({ ...r, claim: JSON.parse(r.body) as { claimId: string; policyId: string; confidence: string; event: { type: string; deviceId: string; from: string; to: string }; movement: { verdict: string }; device: { id: string; streams: string[] }; position: { precision: string; geohash?: string; lat_deg?: number } | null; evidence: { from: string; to: string; complete: boolean; readings: Record<string, { columns: string[]; rows: unknown[][] }> } } }))
  const notice: number[] = []
  for (const trip of trips) {
    const r = claims.find((c) => c.claim.event.deviceId === trip.deviceId)
    if (!t.ok(r, `${trip.deviceId}: a claim`)) continue
    const { claim } = r!
    t.ok(r!.signed, 'signed: X-Ubiq-Signature verifies with the shared secret')
    t.equal(r!.id, claim.claimId, 'the idempotency key is the claim id')
    t.ok(Math.abs(Date.parse(claim.event.from) - trip.crashAt) < 1000, `the crash, seen ${(Date.parse(claim.event.from) - trip.crashAt) / 1000} s from the impact (the device's report or the IMU pulse, whichever came first)`)
    t.match(claim, { event: { type: 'crash' }, confidence: 'high', movement: { verdict: 'stopped' }, device: { id: trip.deviceId }, evidence: { complete: true } })
    const times = (kind: string) => claim.evidence.readings[kind]?.rows.map((row) => Number(row[0])) ?? []
    for (const kind of ['imu', 'obd', 'gps']) {
      const ts = times(kind)
      // 1 Hz streams read the second marks in the window: within a second of its ends.
      t.ok(ts.length > 0 && Math.min(...ts) <= trip.crashAt - 9000 && Math.max(...ts) >= trip.crashAt + 19_000, `${kind}: readings from ${(Math.min(...ts) - trip.crashAt) / 1000} s to +${(Math.max(...ts) - trip.crashAt) / 1000} s of the impact`)
    }
    t.ok(Date.parse(claim.evidence.from) <= Date.parse(claim.event.from) - 10_000 && Date.parse(claim.evidence.to) >= Date.parse(claim.event.to) + 20_000, 'the window: at least 10 s before and 20 s after the crash')
    const imu = claim.evidence.readings.imu!
    const at100 = imu.rows.filter((row) => row[imu.columns.indexOf('hz')] === '100').length
    t.ok(at100 >= 29 * 100, `the crash recorder's 100 Hz window in it: ${at100} samples`)
    t.match(claim.position, { precision: 'cell', geohash: /^[0-9b-hjkmnp-z]{6}$/ }, 'no consent to positions for claims: the position as a 6-character cell')
    t.notOk(claim.evidence.readings.gps!.columns.some((c) => ['lat_deg', 'lon_deg', 'alt_m'].includes(c)), 'and no position in the readings')
    notice.push((r!.at - trip.crashAt) / 1000)
  }
  t.comment(`time to notice, impact → claim delivered: ${notice.map((s) => s.toFixed(1)).join(', ')} s (the post-crash window is 20 s)`)
  t.ok(notice.every((s) => s >= 20), 'no claim before its post-crash window was stored')

  const analyst = { authorization: `Bearer ${pipeline.auth.issue({ role: 'analyst' }, 60_000)}` }
  let listed: Claim[] = []
  while (listed.filter((c) => c.status === 'delivered').length < cars.length) {
    listed = ((await (await fetch(`${pipeline.url}/api/v1/claims`, { headers: analyst })).json()) as { claims: Claim[] }).claims
    await sleep(50)
  }
  t.same(listed.map((c) => c.deviceId).sort(), cars.map((v) => v.deviceId).sort(), 'the analyst lists the claims, delivered')
  const holder = { authorization: `Bearer ${pipeline.auth.issue({ role: 'policyholder', policyId: pothole.policyId }, 60_000)}` }
  t.equal((await fetch(`${pipeline.url}/api/v1/claims`, { headers: holder })).status, 403, 'a policyholder may not')
  const own = policies[0]!
  const ownHolder = { authorization: `Bearer ${pipeline.auth.issue({ role: 'policyholder', policyId: own.policyId }, 60_000)}` }
  const mine = ((await (await fetch(`${pipeline.url}/api/v1/policies/${own.policyId}/claims`, { headers: ownHolder })).json()) as { claims: Claim[] }).claims
  t.match(mine, [{ policyId: own.policyId, deviceId: own.vehicle!.deviceId, type: 'crash', status: 'delivered' }], 'a policyholder sees its own claim\'s status (the feed page shows it)')
  t.equal((await fetch(`${pipeline.url}/api/v1/policies/${own.policyId}/claims`, { headers: holder })).status, 403, "and not another policy's")

  t.ok(events.some((e) => e.type === 'crash' && e.deviceId === pothole.deviceId), 'the pothole\'s spike is a crash to the detector…')
  let dismissed = ''
  while (!/dismissed/.test(dismissed)) {
    dismissed = await pipeline.metrics.getSingleMetricAsString('ubiq_claims_total')
    await sleep(50)
  }
  t.notOk(received.some((r) => r.body.includes(pothole.deviceId)) || listed.some((c) => c.deviceId === pothole.deviceId), '…but the car drove on: no claim')

  const records = [...auditRecords(auditLogFile(services.dataDir))].filter((r): r is ClaimRecord => r.record === 'claim')
  t.same(records.map((r) => r.action).sort(), [...cars.map(() => 'delivered'), ...cars.map(() => 'opened')], 'each claim opened and delivered, in the audit chain')
  t.notOk(records.some((r) => r.policyId.startsWith('pol-') || cars.some((v) => r.deviceId === v.deviceId)), 'pseudonymised: no policy or device id in them')
  t.match(verifyAudit(auditLogFile(services.dataDir)), { ok: true })

  // After a restart the list comes back from the audit chain, and nothing is sent again.
  await pipeline.stop()
  const again = await startTestPipeline(t, services, [], DB, { devices: registry, claims: { url, secret: SECRET } })
  const after = ((await (await fetch(`${again.url}/api/v1/claims`, { headers: { authorization: `Bearer ${again.auth.issue({ role: 'analyst' }, 60_000)}` } })).json()) as { claims: Claim[] }).claims
  t.same(after, listed, 'after a restart: the same claims, the same statuses')
  t.same(readdirSync(join(webhooksDir(services.dataDir), 'pending')), [], 'no delivery left pending to send again')
})

t.test('a leak that kept running opens a claim; one the valve stopped in time does not', async (t) => {
  const services = await startServices(t)
  const hubs = ['hub-running', 'hub-stopped'].map((deviceId, i) => ({ deviceId, policyId: `pol-home-${i + 1}`, kinds: ['leak', 'valve', 'climate'] }))
  const received: { id: string; body: string }[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      received.push({ id: String(req.headers['idempotency-key']), body })
      res.writeHead(200).end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => server.close(r)))
  const pipeline = await startTestPipeline(t, services, [], DB, { devices: deviceRegistry(hubs), claims: { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/fnol`, secret: SECRET } })

  // 40 minutes ago each probe got wet, with the valve open; one valve shut 30 s later. The climate
  // sensor reports every 5 minutes, past the 15 minutes a valve has to stop the leak.
  const leakAt = Date.now() - 40 * 60_000
  const client = await mqtt.connectAsync(services.mqttUrl, { clientId: 'claims-test-hubs' })
  t.teardown(() => client.endAsync())
  for (const [i, hub] of hubs.entries()) {
    const messages: [string, number, Record<string, unknown>][] = [['valve', leakAt - 60_000, { valve_open: true }], ['leak', leakAt, { leak_detected: true }]]
    if (i === 1) messages.push(['valve', leakAt + 30_000, { valve_open: false }])
    for (let m = 5; m <= 20; m += 5) messages.push(['climate', leakAt + m * 60_000, { temp_c: 19.5 }])
    for (const [seq, [kind, ts, body]] of messages.sort((a, b) => a[1] - b[1]).entries()) await client.publishAsync(topics.device(hub.deviceId, kind), JSON.stringify({ seq, ts, ...body }), { qos: 1 })
  }

  await until(() => received.length === 1)
  const claim = JSON.parse(received[0]!.body) as { event: { type: string; deviceId: string }; evidence: { complete: boolean; readings: Record<string, unknown> } }
  t.match(claim, { event: { type: 'leak', deviceId: 'hub-running' }, evidence: { complete: true } }, 'the leak no valve stopped: a claim, its window whole')
  t.ok(claim.evidence.readings.leak && claim.evidence.readings.valve, 'with the leak and valve readings around it')
  let dismissed = ''
  while (!/type="leak"/.test(dismissed) || !/dismissed/.test(dismissed)) {
    dismissed = await pipeline.metrics.getSingleMetricAsString('ubiq_claims_total')
    await sleep(50)
  }
  t.equal(received.length, 1, 'the leak the valve stopped 30 s in: no claim')
})

t.test('a crash whose claim was waiting for its window when ubiq stopped is claimed after the restart, with what was stored', async (t) => {
  const services = await startServices(t)
  const city = makeCity()
  const [policy] = makePolicies(city, 1)
  const car = policy!.vehicle!
  const registry = deviceRegistry([{ deviceId: car.deviceId, policyId: policy!.policyId, kinds: ['status', 'obd', 'gps', 'imu', 'imu_device', 'crash'] }])
  const received: string[] = []
  const server = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => void (received.push(body), res.writeHead(200).end()))
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => server.close(r)))
  const claims = { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/fnol`, secret: SECRET }
  const { crashAt, messages } = crashTrip(city, car, Date.now() + 6000)
  // Its recorder's window never comes (the phone broke): nothing after the restart is a crash again,
  // and the claim's window is never whole.
  const queue = messages.filter((m) => m.sendAt === m.ts).sort((a, b) => a.sendAt - b.sendAt)
  const client = await mqtt.connectAsync(services.mqttUrl, { clientId: 'claims-test-restart' })
  t.teardown(() => client.endAsync())
  const publishUntil = async (last: number) => {
    while (queue.length && queue[0]!.sendAt <= last) {
      const m = queue.shift()!
      if (m.sendAt > Date.now()) await sleep(m.sendAt - Date.now())
      await client.publishAsync(m.topic, m.payload, { qos: 1 })
    }
  }

  // The crash, and 5 s after it: the claim waits for its 20 s; ubiq stops.
  const first = await startTestPipeline(t, services, [], DB, { devices: registry, claims })
  const crash = firstMatch(first.events$, (e: PolicyEvent) => e.type === 'crash')
  await publishUntil(crashAt + 5000)
  await crash
  await first.stop()
  t.same(received, [], 'no claim yet: its window was not stored')

  // Started again (waiting 1 s past a window, not 60), the rest of the car's messages: its standstill.
  const again = await startTestPipeline(t, services, [], DB, { devices: registry, claims: { ...claims, graceMs: 1000 } })
  await publishUntil(Infinity)
  await until(() => received.length === 1)
  const claim = JSON.parse(received[0]!) as { event: { type: string; deviceId: string }; evidence: { complete: boolean; readings: Record<string, unknown> } }
  t.match(claim, { event: { type: 'crash', deviceId: car.deviceId }, evidence: { complete: false, note: /assembled with what exists/ } }, 'the claim after the restart, saying its window is not whole (no recorder\'s window)')
  t.ok(claim.evidence.readings.obd && claim.evidence.readings.imu, 'with the readings that were stored')
  let listed: Claim[] = []
  while (listed.length === 0 || listed.some((c) => c.status !== 'delivered')) {
    listed = ((await (await fetch(`${again.url}/api/v1/claims`, { headers: { authorization: `Bearer ${again.auth.issue({ role: 'analyst' }, 60_000)}` } })).json()) as { claims: Claim[] }).claims
    await sleep(50)
  }
  t.equal(received.length, 1, 'one claim for the crash')
  t.equal(listed.length, 1)
})
