import t from 'tap'
import {
  consentCategory, consentedFor, consentStore, createAdapters, decodeConsent, decodeMessage, deviceRegistry, isRejection, sensors, topics,
  type ConsentChange, type ConsentStoreOptions, type Reading, type RecordedChange, type Rejection,
} from './index.ts'

const registry = deviceRegistry([
  { deviceId: 'car-1', policyId: 'pol-1', kinds: ['obd', 'gps', 'status'] },
  { deviceId: 'watch-1', policyId: 'pol-1', kinds: ['hr', 'steps'] },
  { deviceId: 'car-2', policyId: 'pol-2', kinds: ['obd'] },
])
const T0 = Date.UTC(2026, 11, 1, 12)

/** A store over `registry` whose record is an array; its clock moves a second a change. */
function store(extra: Partial<ConsentStoreOptions> = {}) {
  const recorded: ConsentChange[] = []
  let clock = T0
  const s = consentStore({
    registry,
    record: (c) => (recorded.push(c), `hash-${recorded.length}`),
    now: () => (clock += 1000),
    ...extra,
  })
  return { s, recorded }
}
const policyholder = { role: 'policyholder' as const }

t.test('categories come from the sensor catalogue: positions are location data, subject health is health data', async (t) => {
  const by = Object.fromEntries(sensors.map((s) => [s.kind, consentCategory(s)]))
  t.equal(by.gps, 'location')
  for (const k of ['hr', 'steps', 'sleep', 'spo2']) t.equal(by[k], 'health', k)
  for (const k of ['obd', 'imu', 'imu_device', 'status', 'crash', 'leak', 'smoke', 'climate', 'contact', 'valve']) t.equal(by[k], 'other', k)
})

t.test('with nothing recorded, the registry\'s streams are the consent given at enrolment: pricing, and only pricing', async (t) => {
  const { s } = store()
  t.ok(s.stored('pol-1', 'gps'))
  t.ok(s.allows('pol-1', 'hr', 'pricing'))
  t.notOk(s.allows('pol-1', 'hr', 'coaching'))
  t.notOk(s.stored('pol-2', 'gps'), 'a stream no device of the policy is registered for: none')
  t.same(s.of('pol-1')?.streams.map((x) => [x.stream, x.category, x.purposes]), [
    ['obd', 'other', ['pricing']], ['gps', 'location', ['pricing']], ['status', 'other', ['pricing']], ['hr', 'health', ['pricing']], ['steps', 'health', ['pricing']],
  ])
  t.equal(s.of('pol-9'), undefined, 'a policy the registry does not know')
})

t.test('a change is recorded first, then in effect; withdrawing every purpose stops storage, one purpose left keeps it', async (t) => {
  const { s, recorded } = store()
  s.change('pol-1', { streams: ['gps'], purposes: ['coaching'], granted: true }, policyholder)
  const change = s.change('pol-1', { streams: ['gps', 'hr'], purposes: ['pricing'], granted: false }, { role: 'analyst', tokenId: 'tok-1' })
  t.match(change, { policyId: 'pol-1', streams: ['gps', 'hr'], purposes: ['pricing'], granted: false, by: { role: 'analyst', tokenId: 'tok-1' }, at: new Date(T0 + 2000).toISOString(), hash: 'hash-2' })
  t.equal(recorded.length, 2, 'both recorded')
  t.ok(s.stored('pol-1', 'gps'), 'gps: coaching left, still stored')
  t.notOk(s.allows('pol-1', 'gps', 'pricing'), 'but not for pricing')
  t.notOk(s.stored('pol-1', 'hr'), 'hr: no purpose left, not stored')
  t.ok(s.stored('pol-2', 'obd'), "another policy's streams are untouched")
  t.same(s.of('pol-1')!.changes.map((c) => c.hash), ['hash-1', 'hash-2'], 'the policy\'s changes, each with its record')
})

t.test('a change that cannot be recorded does not happen', async (t) => {
  const s = consentStore({ registry, record: () => { throw new Error('disk full') } })
  t.throws(() => s.change('pol-1', { streams: ['obd'], purposes: ['pricing'], granted: false }, policyholder), /disk full/)
  t.ok(s.stored('pol-1', 'obd'), 'consent as it was')
  t.same(s.of('pol-1')!.changes, [])
})

t.test('changes that are not valid are refused with what is wrong, and nothing is recorded', async (t) => {
  const { s, recorded } = store()
  const cases: [string, Parameters<typeof s.change>, RegExp][] = [
    ['an unknown policy', ['pol-9', { streams: ['obd'], purposes: ['pricing'], granted: true }, policyholder], /no policy pol-9 in the device registry/],
    ['a stream not in the contract', ['pol-1', { streams: ['obd', 'radar'], purposes: ['pricing'], granted: true }, policyholder], /\/streams\/1: no stream "radar" in contract v1/],
    ['a stream no device of the policy sends', ['pol-2', { streams: ['gps'], purposes: ['pricing'], granted: true }, policyholder], /\/streams\/0: no device of policy pol-2 is registered for stream "gps"/],
    ['a purpose that is not one', ['pol-1', { streams: ['obd'], purposes: ['marketing'], granted: true }, policyholder], /\/purposes\/0: no purpose "marketing"/],
    ['a grant of location with other data', ['pol-1', { streams: ['obd', 'gps'], purposes: ['pricing'], granted: true }, policyholder], /location and health data are consented to separately: grant other \(obd\), location \(gps\) in changes of their own/],
    ['a grant of health with location', ['pol-1', { streams: ['hr', 'gps'], purposes: ['coaching'], granted: true }, policyholder], /health \(hr\), location \(gps\)/],
    ['a device changing a stream it does not send', ['pol-1', { streams: ['hr'], purposes: ['pricing'], granted: false }, { role: 'device', deviceId: 'car-1' }], /device car-1 is not registered for stream "hr"/],
  ]
  for (const [name, args, message] of cases) t.throws(() => s.change(...args), { code: 'UBIQ_CONSENT_INVALID', message }, name)
  t.same(recorded, [], 'nothing recorded')
  t.ok(s.change('pol-1', { streams: ['obd', 'gps', 'hr'], purposes: ['pricing', 'coaching', 'claims'], granted: false }, policyholder), 'a withdrawal may name streams of every category')
  t.ok(s.change('pol-1', { streams: ['hr', 'steps'], purposes: ['coaching'], granted: true }, policyholder), 'a grant of health streams alone')
})

t.test("a device's changes apply in seq order: a redelivery or an older decision arriving late is dropped", async (t) => {
  const { s, recorded } = store()
  const phone = { role: 'device' as const, deviceId: 'car-1' }
  t.ok(s.change('pol-1', { streams: ['gps'], purposes: ['pricing'], granted: false }, phone, { seq: 10, ts: T0 }))
  t.equal(s.change('pol-1', { streams: ['gps'], purposes: ['pricing'], granted: false }, phone, { seq: 10, ts: T0 }), undefined, 'the same seq again')
  t.equal(s.change('pol-1', { streams: ['gps'], purposes: ['pricing'], granted: true }, phone, { seq: 9, ts: T0 - 1000 }), undefined, 'an older one')
  t.notOk(s.allows('pol-1', 'gps', 'pricing'), 'the latest decision stands')
  t.match(s.change('pol-1', { streams: ['gps'], purposes: ['pricing'], granted: true }, phone, { seq: 11, ts: T0 + 1000 }), { seq: 11, deviceTs: T0 + 1000, by: phone })
  t.equal(recorded.length, 2)
})

t.test('the store comes back from its record: consent, changes and device seqs', async (t) => {
  const first = store()
  first.s.change('pol-1', { streams: ['gps'], purposes: ['pricing'], granted: false }, { role: 'device', deviceId: 'car-1' }, { seq: 5, ts: T0 })
  first.s.change('pol-1', { streams: ['hr'], purposes: ['claims'], granted: true }, policyholder)
  const history: RecordedChange[] = first.recorded.map((c, i) => ({ ...c, hash: `hash-${i + 1}` }))
  const again = store({ history })
  t.same(again.s.of('pol-1'), first.s.of('pol-1'), 'the same consent and changes')
  t.equal(again.s.change('pol-1', { streams: ['gps'], purposes: ['pricing'], granted: true }, { role: 'device', deviceId: 'car-1' }, { seq: 5, ts: T0 }), undefined, 'the device\'s last seq is known')
})

t.test('scores say which of their streams lost pricing consent within their window', async (t) => {
  const { s } = store()
  s.change('pol-1', { streams: ['gps'], purposes: ['coaching'], granted: false }, policyholder) // T0+1s: not pricing
  s.change('pol-1', { streams: ['gps', 'hr'], purposes: ['pricing'], granted: false }, policyholder) // T0+2s
  s.change('pol-1', { streams: ['gps'], purposes: ['pricing'], granted: true }, policyholder) // T0+3s
  s.change('pol-1', { streams: ['gps'], purposes: ['pricing'], granted: false }, policyholder) // T0+4s
  const at = (s: number) => new Date(T0 + s * 1000).toISOString()
  t.same(s.notes('pol-1', 'driving', T0).map(({ text: _, ...n }) => n), [
    { stream: 'gps', withdrawnAt: at(2), grantedAgainAt: at(3) },
    { stream: 'gps', withdrawnAt: at(4) },
  ], 'each withdrawal, and its grant again')
  t.match(s.notes('pol-1', 'driving', T0)[1]!.text, /^gps: consent for pricing withdrawn at .*; its readings from before then still count in this score, none since$/)
  t.same(s.notes('pol-1', 'driving', T0 + 3500).map((n) => n.withdrawnAt), [at(4)], 'only withdrawals after the window starts')
  t.same(s.notes('pol-1', 'health', T0).map((n) => n.stream), ['hr'], 'by subject')
  t.same(s.notes('pol-2', 'driving', T0), [], 'none for a policy that withdrew nothing')
})

t.test('only readings of streams granted for pricing reach scoring', async (t) => {
  const { s } = store()
  s.change('pol-1', { streams: ['gps'], purposes: ['pricing'], granted: false }, policyholder)
  const reading = (kind: string): Reading => ({ deviceId: 'car-1', policyId: 'pol-1', kind, subject: 'driving', seq: 1, ts: T0, receivedAt: T0, fields: {} })
  t.same([reading('obd'), reading('gps'), reading('status')].filter(consentedFor(s, 'pricing')).map((r) => r.kind), ['obd', 'status'])
})

t.test('decode: a stream withdrawn for every purpose is rejected with no_consent; its device\'s other streams are not', async (t) => {
  const { s } = store()
  const cfg = { registry, maxPayloadBytes: 1024, maxFutureSkewMs: 60_000, adapters: createAdapters(), consents: s }
  const decode = (kind: string, body: object) => decodeMessage(cfg, topics.device('car-1', kind), Buffer.from(JSON.stringify(body)), T0)!
  const fix = { seq: 1, ts: T0, lat_deg: 52.1, lon_deg: 4.3, accuracy_m: 5 }
  t.notOk(isRejection(decode('gps', fix)), 'stored while consented')
  s.change('pol-1', { streams: ['gps'], purposes: ['pricing'], granted: false }, policyholder)
  t.match(decode('gps', { ...fix, seq: 2 }), { reason: 'no_consent', detail: 'policy has withdrawn consent for stream "gps" for every purpose' })
  t.notMatch(JSON.stringify(decode('gps', { ...fix, seq: 3 })), /52\.1|4\.3/, 'the rejection holds no position')
  t.notOk(isRejection(decode('obd', { seq: 4, ts: T0, speed_kmh: 30 })), 'obd still stored')
  // OwnTracks positions are gps: the same consent holds for them.
  const owntracks = decodeMessage(cfg, 'owntracks/car-1/phone', Buffer.from(JSON.stringify({ _type: 'location', tst: T0 / 1000, lat: 52.1, lon: 4.3, acc: 5 })), T0)!
  t.match(owntracks, { reason: 'no_consent' }, 'an OwnTracks position is rejected too')
})

t.test('decodeConsent: a device\'s consent message is checked before the store sees it', async (t) => {
  const cfg = { registry, maxPayloadBytes: 1024, maxFutureSkewMs: 60_000, adapters: createAdapters() }
  const decode = (deviceId: string, body: unknown) => decodeConsent(cfg, deviceId, Buffer.from(typeof body === 'string' ? body : JSON.stringify(body)), T0)
  t.same(decode('car-1', { seq: 3, ts: T0, streams: ['gps'], purposes: ['pricing'], granted: false }), {
    deviceId: 'car-1', policyId: 'pol-1', seq: 3, ts: T0, request: { streams: ['gps'], purposes: ['pricing'], granted: false }, receivedAt: T0,
  })
  const cases: [string, string, unknown, Rejection['reason'], RegExp][] = [
    ['an unknown device', 'car-9', { seq: 1, ts: T0, streams: ['gps'], purposes: ['pricing'], granted: false }, 'unknown_device', /not in the registry/],
    ['not JSON', 'car-1', '{granted', 'malformed_json', /not valid/],
    ['no purposes', 'car-1', { seq: 1, ts: T0, streams: ['gps'], purposes: [], granted: false }, 'invalid_payload', /^\/purposes: /],
    ['a stream twice', 'car-1', { seq: 1, ts: T0, streams: ['gps', 'gps'], purposes: ['pricing'], granted: false }, 'invalid_payload', /^\/streams: /],
    ['granted missing', 'car-1', { seq: 1, ts: T0, streams: ['gps'], purposes: ['pricing'] }, 'invalid_payload', /granted/],
    ['an extra field', 'car-1', { seq: 1, ts: T0, streams: ['gps'], purposes: ['pricing'], granted: false, all: true }, 'invalid_payload', /^\/all: /],
    ['no seq', 'car-1', { ts: T0, streams: ['gps'], purposes: ['pricing'], granted: false }, 'invalid_payload', /seq/],
    ['ts far ahead', 'car-1', { seq: 1, ts: T0 + 3600_000, streams: ['gps'], purposes: ['pricing'], granted: false }, 'timestamp_in_future', /ahead/],
  ]
  for (const [name, deviceId, body, reason, detail] of cases) t.match(decode(deviceId, body), { kind: 'consent', reason, detail }, name)
})
