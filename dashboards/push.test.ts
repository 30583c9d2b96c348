/**
 * Alerts by web push (#23): a real http server in the test stands in for the browser's push
 * service. A crash reaches it signed with the service's VAPID key (RFC 8292: the JWT is checked
 * against the key the app subscribes with) and encrypted for the subscription (RFC 8291,
 * aes128gcm: decrypted here with the subscription's own keys); a premium change does too. Only
 * the policyholder subscribes, only their own policy, only to a push service's address.
 */
import { createECDH, createPublicKey, randomBytes, verify } from 'node:crypto'
import { readFileSync, statSync } from 'node:fs'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { join } from 'node:path'
import t from 'tap'
import pino from 'pino'
import { Registry } from 'prom-client'
import { Subject } from 'rxjs'
import ece from 'http_ece'
import { connectInflux, consentStore, deviceRegistry } from '../ingest/index.ts'
import type { PremiumAdjustment } from '../pricing/index.ts'
import type { PolicyEvent } from '../scoring/index.ts'
import { pushAlerts, startDashboards, tokenAuthority } from './index.ts'
import { startServices } from '../test/harness.ts'

const b64url = (b: Buffer) => b.toString('base64url')

t.test('a crash and a premium change reach the subscribed app: VAPID-signed, encrypted for the subscription; only the policyholder subscribes', async (t) => {
  const services = await startServices(t)
  // The push service: records each message and answers as one does (201), or 410 once told the subscription is gone.
  const got: { headers: IncomingHttpHeaders; body: Buffer; path: string }[] = []
  let answer = 201
  const pushService = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      got.push({ headers: req.headers, body: Buffer.concat(chunks), path: req.url! })
      res.writeHead(answer).end()
    })
  })
  await new Promise<void>((r) => pushService.listen(0, '127.0.0.1', r))
  t.teardown(() => pushService.close())
  const origin = `http://127.0.0.1:${(pushService.address() as { port: number }).port}`
  const next = async (n: number) => {
    while (got.length < n) await new Promise((r) => setTimeout(r, 10))
    return got[n - 1]!
  }

  const events$ = new Subject<PolicyEvent>()
  const premiums$ = new Subject<PremiumAdjustment>()
  const auth = tokenAuthority('a test secret of at least thirty-two bytes')
  const dir = join(services.dataDir, 'state')
  const metrics = new Registry()
  const push = pushAlerts({ dir, subject: 'mailto:ops@insurer.example', hosts: ['127.0.0.1'], logger: pino({ level: 'silent' }), metrics })
  const influx = await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_push' })
  t.teardown(() => influx.close())
  const server = await startDashboards({
    consents: consentStore({ registry: deviceRegistry([]), record: () => '' }),
    scores$: new Subject(), events$, premiums$, influx, auth, metrics, push,
    // The erasure of the stores outside the dashboards is bin/erase.ts's (test/erasure.test.ts); here, what the dashboards forget with it.
    erase: async (policyId) => ({ policyId, pseudonym: 'p', auditHash: 'h', at: new Date().toISOString(), devices: 0, removed: {}, kept: [] }),
    deviceClock: () => undefined, whatIf: async () => undefined, health: () => ({ ok: true, checks: {} }), logger: pino({ level: 'silent' }), host: '127.0.0.1', port: 0,
  })
  t.teardown(() => server.close())

  // The VAPID key: made on first start, private to ubiq's user, the same at the next start.
  t.equal(statSync(join(dir, 'vapid.json')).mode & 0o777, 0o600, 'the VAPID keys are readable by their owner only')
  t.equal(pushAlerts({ dir, logger: pino({ level: 'silent' }), metrics: new Registry() }).publicKey, push.publicKey, 'and kept: a restart keeps every subscription working')
  const { publicKey } = await (await fetch(`${server.url}/api/v1/push/key`)).json() as { publicKey: string }
  t.equal(publicKey, push.publicKey, 'the key the app subscribes with, without a token')
  t.equal(Buffer.from(publicKey, 'base64url').length, 65, 'an uncompressed P-256 point')

  // The phone's subscription: its own key pair and auth secret, as a browser makes them.
  const phone = createECDH('prime256v1')
  phone.generateKeys()
  const authSecret = randomBytes(16)
  const subscription = { endpoint: `${origin}/push/phone-1`, expirationTime: null, keys: { p256dh: b64url(phone.getPublicKey()), auth: b64url(authSecret) } }
  const subscribe = (token: string | undefined, body: unknown, policy = 'pol-1') => fetch(`${server.url}/api/v1/policies/${policy}/push-subscriptions`, {
    method: 'POST', headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) }, body: JSON.stringify(body),
  })
  const holder = auth.issue({ role: 'policyholder', policyId: 'pol-1' }, 600_000)
  t.equal((await subscribe(undefined, subscription)).status, 401, 'no token: 401')
  t.equal((await subscribe(auth.issue({ role: 'policyholder', policyId: 'pol-2' }, 600_000), subscription)).status, 403, "another policy's token: 403")
  t.equal((await subscribe(auth.issue({ role: 'analyst' }, 600_000), subscription)).status, 403, "an analyst's: 403 (a phone is the policyholder's to subscribe)")
  t.match(await (await subscribe(holder, { ...subscription, endpoint: 'https://intranet.example/admin' })).json(), { error: 'bad_request', message: /not a push service/ }, 'an address that is not a push service: 400')
  t.equal((await subscribe(holder, { ...subscription, keys: { p256dh: 'short', auth: subscription.keys.auth } })).status, 400, 'a key that is not a P-256 point: 400')
  t.equal((await subscribe(holder, { endpoint: subscription.endpoint })).status, 400, 'no keys: 400')
  const ok = await subscribe(holder, subscription)
  t.same([ok.status, await ok.json()], [200, { subscribed: true }], 'the policyholder subscribes their phone')
  t.equal(statSync(join(dir, 'push-subscriptions.json')).mode & 0o777, 0o600, 'subscriptions are kept private to ubiq\'s user')

  // A harsh brake is not urgent: nothing is pushed. A crash is.
  const event = (type: PolicyEvent['type'], urgent: boolean, policyId = 'pol-1'): PolicyEvent => ({ policyId, deviceId: 'car-1', subject: 'driving', type, urgent, from: Date.now() - 2000, to: Date.now(), evidence: { source: 'imu', peak: 60, threshold: 40, unit: 'm/s²' } } as PolicyEvent)
  events$.next(event('harsh_braking', false))
  events$.next(event('crash', true, 'pol-2'))
  events$.next(event('crash', true))
  const crash = await next(1)
  t.equal(crash.path, '/push/phone-1', 'the crash goes to the subscription\'s endpoint (not the brake, nor another policy\'s crash)')
  t.equal(crash.headers['content-encoding'], 'aes128gcm', 'encrypted as RFC 8291 says')
  t.equal(crash.headers.urgency, 'high', 'urgent: the push service wakes the phone')
  t.ok(Number(crash.headers.ttl) > 0, 'kept a while for a phone that is off')

  // VAPID (RFC 8292): "vapid t=JWT, k=public key", the JWT ES256-signed with the service's key, for this push service.
  const [, jwt, k] = /^vapid t=([^,]+), k=(.+)$/.exec(crash.headers.authorization ?? '') ?? []
  t.equal(k, publicKey, 'the key named is the one the app subscribed with')
  const [header, claims, signature] = jwt!.split('.') as [string, string, string]
  t.same(JSON.parse(Buffer.from(header, 'base64url').toString()), { typ: 'JWT', alg: 'ES256' })
  const point = Buffer.from(k!, 'base64url')
  const key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: b64url(point.subarray(1, 33)), y: b64url(point.subarray(33, 65)) }, format: 'jwk' })
  t.ok(verify('sha256', Buffer.from(`${header}.${claims}`), { key, dsaEncoding: 'ieee-p1363' }, Buffer.from(signature, 'base64url')), 'the JWT is signed by the VAPID key')
  const c = JSON.parse(Buffer.from(claims, 'base64url').toString()) as { aud: string; exp: number; sub: string }
  t.equal(c.aud, origin, 'for this push service (its origin)')
  t.equal(c.sub, 'mailto:ops@insurer.example', 'naming who runs the service')
  t.ok(c.exp * 1000 > Date.now() && c.exp * 1000 <= Date.now() + 24 * 3600_000, 'expiring within 24 h')

  // Only the phone can read it: decrypted with the subscription's private key and auth secret.
  const decrypt = (body: Buffer) => JSON.parse(ece.decrypt(body, { version: 'aes128gcm', privateKey: phone, authSecret: b64url(authSecret) }).toString())
  t.same(decrypt(crash.body), { title: 'Possible crash', body: "Your car's sensors detected a crash. Are you OK? Call the emergency services if anyone is hurt.", tag: 'event-crash', url: '/' }, 'the crash alert, in words')

  // A premium that did not move says nothing; one that did, does.
  const premium = (factor: number, previousFactor: number) => ({ policyId: 'pol-1', subject: 'driving', factor, previousFactor, premium: 600 * factor, currency: 'EUR' } as PremiumAdjustment)
  premiums$.next(premium(1, 1))
  premiums$.next(premium(1.05, 1))
  const change = await next(2)
  t.same(decrypt(change.body), { title: 'Your driving premium went up', body: 'Now 630.00 EUR a year (+5%). Open the app to see why.', tag: 'premium-driving', url: '/' }, 'a premium change, in words')
  t.equal(change.headers.urgency, 'normal')

  // The push service says the subscription is gone (the app was uninstalled): it is removed.
  answer = 410
  events$.next(event('crash', true))
  await next(3)
  while (!(await metrics.getSingleMetricAsString('ubiq_push_sent_total')).includes('outcome="gone"} 1')) await new Promise((r) => setTimeout(r, 10))
  const removed = await fetch(`${server.url}/api/v1/policies/pol-1/push-subscriptions`, { method: 'DELETE', headers: { 'content-type': 'application/json', authorization: `Bearer ${holder}` }, body: JSON.stringify({ endpoint: subscription.endpoint }) })
  t.same(await removed.json(), { removed: false }, 'a subscription the push service called gone is no longer kept')

  // An erased policy's subscriptions go with it.
  answer = 201
  t.equal((await subscribe(holder, subscription)).status, 200)
  t.match(readFileSync(join(dir, 'push-subscriptions.json'), 'utf8'), 'pol-1')
  const erased = await fetch(`${server.url}/api/v1/policies/pol-1/erasure`, { method: 'POST', headers: { authorization: `Bearer ${auth.issue({ role: 'analyst' }, 60_000)}` } })
  t.equal(erased.status, 200)
  t.notMatch(readFileSync(join(dir, 'push-subscriptions.json'), 'utf8'), 'pol-1', 'erasure removes the policy\'s subscriptions')
})
