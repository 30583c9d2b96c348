/**
 * What ubiq emits, live, against what it publishes about it (#22 item 2): a running pipeline fed
 * by edge-sim's policies (a car that crashes, a wearable, a home that leaks), and every score,
 * event and premium it publishes over MQTT, every message of the websocket feed and every REST
 * answer, each validated against the schema of its channel or route in the documents a client
 * reads: the committed docs/contract/asyncapi.json and the server's own OpenAPI document.
 */
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:http'
import { Ajv, type ValidateFunction } from 'ajv'
import mqtt from 'mqtt'
import WebSocket from 'ws'
import { policyRegistry, runSimulation, type DeviceMessage } from '../edge-sim/index.ts'
import { deviceRegistry } from '../ingest/index.ts'
import { examplePlans, loadPlans, verifySignature, SIGNATURE_HEADER } from '../pricing/index.ts'
import { startServices, startTestPipeline, twoPolicies } from './harness.ts'

type Schema = Record<string, unknown>
const ajv = new Ajv({ strict: false, allErrors: true })
const asyncApi = JSON.parse(readFileSync(new URL('../docs/contract/asyncapi.json', import.meta.url), 'utf8')) as {
  channels: Record<string, { subscribe?: { message: { payload?: Schema; oneOf?: { name: string; payload: Schema }[] } } }>
}
/** The validator of what ubiq sends on an AsyncAPI channel. */
const channelPayload = (channel: string): ValidateFunction => {
  const message = asyncApi.channels[channel]?.subscribe?.message
  return ajv.compile(message?.payload ?? { oneOf: message!.oneOf!.map((m) => m.payload) })
}

/** Checks each of `values` against `valid`, saying where it fails. */
function conforms(t: Test, what: string, valid: ValidateFunction, values: readonly unknown[]) {
  t.ok(values.length > 0, `${what}: some to check`)
  const bad = values.map((v) => (valid(v) ? undefined : { errors: ajv.errorsText(valid.errors), value: JSON.stringify(v).slice(0, 300) })).filter(Boolean)
  t.same(bad, [], `${what}: all ${values.length} match the published schema`)
}

t.test("live output matches the AsyncAPI and OpenAPI documents' schemas", async (t) => {
  const services = await startServices(t)
  const { policies, start, devices, policy } = twoPolicies()
  // The example plan moves no premium before 50 km: let it price from the first score.
  const [plan] = loadPlans(examplePlans)
  const driving = { ...plan!.subjects.driving!, credibility: { exposure: 'distance_km' as const, full: 1000, minimum: 0 } }
  // The insurer's alert receiver (#23 item 4): urgent events and premium changes come signed, once each.
  const SECRET = 'alerts-receiver-shared-secret-0123456789'
  const alerts: { type: string; id: string; signed: boolean; body: Record<string, unknown> }[] = []
  const receiver = createServer((req, res) => {
    let body = ''
    req.on('data', (c) => (body += c))
    req.on('end', () => {
      const id = String(req.headers['idempotency-key'])
      if (!alerts.some((a) => a.id === id)) alerts.push({ type: String(req.headers['x-ubiq-event']), id, signed: verifySignature(SECRET, req.headers[SIGNATURE_HEADER] as string, body), body: JSON.parse(body) as Record<string, unknown> })
      res.writeHead(204).end()
    })
  })
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r))
  t.teardown(() => new Promise((r) => receiver.close(r)))
  const pipeline = await startTestPipeline(t, services, [], 'ubiq_contract', {
    devices: deviceRegistry(policyRegistry(policies)), reorderWindowMs: 100, plans: [{ ...plan!, subjects: { ...plan!.subjects, driving } }],
    alertsHook: { url: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/alerts`, secret: SECRET },
  })

  const published = new Map<string, unknown[]>([['scores', []], ['events', []], ['premiums', []]])
  const watcher = await mqtt.connectAsync(services.mqttUrl, { clientId: 'contract-watcher' })
  t.teardown(() => watcher.endAsync())
  watcher.on('message', (topic, payload) => published.get(topic.split('/')[2]!)?.push(JSON.parse(String(payload))))
  await watcher.subscribeAsync(['ubiq/v1/scores/+', 'ubiq/v1/events/+', 'ubiq/v1/premiums/+/+'], { qos: 1 })

  const token = pipeline.auth.issue({ role: 'policyholder', policyId: policy }, 3600_000)
  const feed: { type: string }[] = []
  const ws = new WebSocket(`${pipeline.url.replace('http', 'ws')}/feed?token=${token}`)
  ws.on('message', (data) => feed.push(JSON.parse(String(data)) as { type: string }))
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
  t.teardown(() => ws.close())

  const run = await runSimulation({ mqttUrl: services.mqttUrl, devices: devices.map((d) => ({ deviceId: d.deviceId, messages: d.sent.values() as unknown as Generator<DeviceMessage> })), startTs: start, speedup: Infinity })
  await run.done
  // Until each kind has come on MQTT and the feed (tap's per-file timeout guards a hang).
  const kinds = ['score', 'event', 'premium']
  while ([...published.values()].some((v) => v.length === 0) || kinds.some((k) => !feed.some((m) => m.type === k))) await new Promise((r) => setTimeout(r, 50))
  // A reconnect from long ago: the feed says so (gap) before the standing.
  const late: unknown[] = []
  const again = new WebSocket(`${pipeline.url.replace('http', 'ws')}/feed?token=${token}&since=1`)
  again.on('message', (data) => late.push(JSON.parse(String(data))))
  t.teardown(() => again.close())
  while (!late.some((m) => (m as { type: string }).type === 'gap')) await new Promise((r) => setTimeout(r, 20))

  for (const [name, values] of published) conforms(t, `MQTT ubiq/v1/${name}`, channelPayload(`ubiq/v1/${name}/{policyId}${name === 'premiums' ? '/{subject}' : ''}`), values)
  // Every urgent event and premium change published reaches the alert receiver, signed, as its channel's payload.
  const urgent = (published.get('events') as { urgent: boolean }[]).filter((e) => e.urgent).length
  const changed = (published.get('premiums') as { factor: number; previousFactor: number }[]).filter((p) => p.factor !== p.previousFactor).length
  while (alerts.filter((a) => a.type === 'event.urgent').length < urgent || alerts.filter((a) => a.type === 'premium.changed').length < changed) await new Promise((r) => setTimeout(r, 50))
  t.ok(urgent > 0 && changed > 0, `urgent events (${urgent}) and premium changes (${changed}) to alert on`)
  t.same(alerts.filter((a) => !a.signed).map((a) => a.type), [], 'every alert webhook carries a valid signature')
  conforms(t, 'alert webhooks event.urgent', channelPayload('ubiq/v1/events/{policyId}'), alerts.filter((a) => a.type === 'event.urgent').map((a) => a.body.event))
  conforms(t, 'alert webhooks premium.changed', channelPayload('ubiq/v1/premiums/{policyId}/{subject}'), alerts.filter((a) => a.type === 'premium.changed').map((a) => a.body.premium))
  conforms(t, 'the feed', channelPayload('/feed'), [...feed, ...late])

  // REST: every JSON route, as the OpenAPI document says it answers.
  const analyst = pipeline.auth.issue({ role: 'analyst' }, 3600_000)
  const openapi = await (await fetch(`${pipeline.url}/api/v1/openapi.json`)).json() as { paths: Record<string, Record<string, { responses: Record<string, { content?: Record<string, { schema: Schema }> }> }>> }
  const device = devices.find((d) => d.policyId === policy)!.deviceId
  const day = new Date(start).toISOString()
  const asked = new Set<string>()
  /** Asks `path` (as an analyst unless `as` says whom), checks the answer against its route's 200 schema, and gives it back. */
  const check = async (route: string, path: string, init: RequestInit = {}, as = analyst): Promise<unknown> => {
    const method = (init.method ?? 'GET').toLowerCase()
    asked.add(`${method} ${route}`)
    const res = await fetch(`${pipeline.url}${path}`, { ...init, headers: { authorization: `Bearer ${as}`, ...(init.body ? { 'content-type': 'application/json' } : {}) } })
    t.equal(res.status, 200, `${method} ${path}`)
    const schema = openapi.paths[route]?.[method]?.responses['200']?.content?.['application/json']?.schema
    const body = await res.json()
    // An open object (no properties, or additionalProperties with none) describes nothing.
    if (!t.ok(Object.keys(schema?.properties ?? {}).length > 0, `${method} ${route} declares the properties of its 200 body`)) return body
    conforms(t, `${method} ${path}`, ajv.compile(schema!), [body])
    return body
  }
  await check('/healthz', '/healthz')
  await check('/api/v1/policies', '/api/v1/policies')
  await check('/api/v1/policies/{policy}', `/api/v1/policies/${policy}`)
  for (const what of ['scores', 'premiums', 'events']) await check(`/api/v1/policies/{policy}/${what}`, `/api/v1/policies/${policy}/${what}?from=${day}`)
  const { trips: [trip] } = await check('/api/v1/policies/{policy}/trips', `/api/v1/policies/${policy}/trips?from=${day}`) as { trips: { from: string }[] }
  // A trip's route is its policyholder's alone.
  const route = await check('/api/v1/policies/{policy}/trips/{from}/route', `/api/v1/policies/${policy}/trips/${trip!.from}/route`, {}, token) as { points: unknown[] }
  t.ok(route.points.length > 0, 'the route has its fixes')
  await check('/api/v1/policies/{policy}/household', `/api/v1/policies/${policy}/household`)
  await check('/api/v1/policies/{policy}/readings', `/api/v1/policies/${policy}/readings?from=${day}`)
  await check('/api/v1/policies/{policy}/what-if/{subject}', `/api/v1/policies/${policy}/what-if/driving`, { method: 'POST', body: JSON.stringify({ scale: { harsh_braking_per_hour: 0.5 } }) })
  await check('/api/v1/devices/{device}/clock', `/api/v1/devices/${device}/clock`)
  await check('/api/v1/portfolio/scores', '/api/v1/portfolio/scores?subject=driving')
  await check('/api/v1/portfolio/premiums', `/api/v1/portfolio/premiums?from=${day}&interval=1h`)
  await check('/api/v1/portfolio/events', `/api/v1/portfolio/events?from=${day}`)
  await check('/api/v1/models/drift', `/api/v1/models/drift?from=${day}`)
  await check('/api/v1/models/shadow', `/api/v1/models/shadow?from=${day}`)
  await check('/api/v1/ingest/health', '/api/v1/ingest/health')
  const consent = await check('/api/v1/policies/{policy}/consents', `/api/v1/policies/${policy}/consents`) as { streams: { stream: string }[] }
  await check('/api/v1/policies/{policy}/summary', `/api/v1/policies/${policy}/summary`)
  await check('/api/v1/push/key', '/api/v1/push/key')
  await check('/api/v1/claims', '/api/v1/claims')
  await check('/api/v1/policies/{policy}/claims', `/api/v1/policies/${policy}/claims`)
  await check('/api/v1/alerts', '/api/v1/alerts')
  // Those that change state, last: a consent change, a pause and its end, a revocation (of a token nobody holds).
  const json = (body: unknown): RequestInit => ({ method: 'POST', body: JSON.stringify(body) })
  await check('/api/v1/policies/{policy}/consents', `/api/v1/policies/${policy}/consents`, json({ streams: [consent.streams[0]!.stream], purposes: ['coaching'], granted: true }))
  await check('/api/v1/policies/{policy}/privacy', `/api/v1/policies/${policy}/privacy`)
  const { pause } = await check('/api/v1/policies/{policy}/privacy', `/api/v1/policies/${policy}/privacy`, json({ scope: 'location', minutes: 5 }), token) as { pause: { id: string } }
  await check('/api/v1/policies/{policy}/privacy/{id}/end', `/api/v1/policies/${policy}/privacy/${pause.id}/end`, { method: 'POST' }, token)
  await check('/api/v1/tokens/revocations', '/api/v1/tokens/revocations', json({ tokenId: 'held-by-nobody' }))
  // Every route the OpenAPI document describes with a JSON body was asked, but the erasure (it
  // would take the policy away; its own test), push subscriptions (their own test), the backtest (no reference run here) and the export (a zip).
  const jsonRoutes = Object.entries(openapi.paths).flatMap(([route, methods]) => Object.entries(methods).filter(([, op]) => op.responses['200']?.content?.['application/json']).map(([m]) => `${m} ${route}`))
  const untested = ['post /api/v1/policies/{policy}/erasure', 'post /api/v1/policies/{policy}/push-subscriptions', 'delete /api/v1/policies/{policy}/push-subscriptions', 'get /api/v1/backtest']
  t.same(jsonRoutes.filter((r) => !asked.has(r) && !untested.includes(r)), [], 'no JSON route left unchecked')
})
