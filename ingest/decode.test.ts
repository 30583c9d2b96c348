import t from 'tap'
import fc from 'fast-check'
import { createAdapters, decodeMessage, deviceRegistry, isRejection, sensors, topics, type Reading, type Rejection } from './index.ts'

const now = Date.UTC(2026, 10, 23, 12)
const cfg = {
  registry: deviceRegistry([
    { deviceId: 'car-1', policyId: 'pol-1', kinds: ['obd'] },
    { deviceId: 'car-2', policyId: 'pol-2', kinds: ['gps'] },
    { deviceId: 'phone-1', policyId: 'pol-1', kinds: ['imu'] },
    { deviceId: 'car-3', policyId: 'pol-3', kinds: ['obd'], registeredAt: '2026-11-01T00:00:00Z' },
  ]),
  maxPayloadBytes: 1024,
  maxFutureSkewMs: 60_000,
  adapters: createAdapters(),
}
// Only adapter configs decode to null; none of these is one.
const decode = (topic: string, payload: unknown) =>
  decodeMessage(cfg, topic, Buffer.isBuffer(payload) ? payload : Buffer.from(typeof payload === 'string' ? payload : JSON.stringify(payload)), now)!
const obd = topics.device('car-1', 'obd')
const imu = topics.device('phone-1', 'imu')

t.test('a valid OBD message becomes a reading for the device\'s policy', async (t) => {
  t.same(decode(obd, { seq: 7, ts: now - 1000, speed_kmh: 52.5, engine_rpm: 1800 }), {
    deviceId: 'car-1', policyId: 'pol-1', kind: 'obd', subject: 'driving', seq: 7, ts: now - 1000, receivedAt: now,
    fields: { speed_kmh: 52.5, engine_rpm: 1800 },
  })
})

t.test('every catalogue example is valid', async (t) => {
  for (const s of sensors) {
    const r = decodeMessage({ ...cfg, registry: deviceRegistry([{ deviceId: 'd', policyId: 'p', kinds: [s.kind] }]) },
      topics.device('d', s.kind), Buffer.from(JSON.stringify(s.example)), Number(s.example.ts))!
    t.notOk(isRejection(r), `${s.kind} example: ${JSON.stringify(r)}`)
  }
})

t.test('each kind of bad message is rejected with its reason', async (t) => {
  const cases: [string, string, unknown, Rejection['reason']][] = [
    ['not a device topic', 'ubiq/v1/scores/x', {}, 'bad_topic'],
    ['unknown device', topics.device('car-9', 'obd'), { seq: 1, ts: now, speed_kmh: 1 }, 'unknown_device'],
    ['unknown stream', topics.device('car-1', 'warp'), { seq: 1, ts: now }, 'unknown_stream'],
    ['stream without consent', topics.device('car-2', 'obd'), { seq: 1, ts: now, speed_kmh: 1 }, 'no_consent'],
    ['oversized payload', obd, 'x'.repeat(2000), 'payload_too_large'],
    ['malformed JSON', obd, '{"seq": 1,', 'malformed_json'],
    ['binary garbage', obd, Buffer.from([0xff, 0xfe, 0x00, 0x12]), 'malformed_json'],
    ['1e400 overflows to Infinity', obd, '{"seq":1,"ts":1,"speed_kmh":1e400}', 'invalid_payload'],
    ['missing field', obd, { seq: 1, ts: now }, 'invalid_payload'],
    ['wrong type', obd, { seq: 1, ts: now, speed_kmh: '50' }, 'invalid_payload'],
    ['out of range', obd, { seq: 1, ts: now, speed_kmh: 256 }, 'invalid_payload'],
    ['negative seq', obd, { seq: -1, ts: now, speed_kmh: 1 }, 'invalid_payload'],
    ['fractional seq', obd, { seq: 1.5, ts: now, speed_kmh: 1 }, 'invalid_payload'],
    ['unexpected field', obd, { seq: 1, ts: now, speed_kmh: 1, lat: 52.1 }, 'invalid_payload'],
    ['array body', obd, [1, 2], 'invalid_payload'],
    ['timestamp far in the future', obd, { seq: 1, ts: now + 3600_000, speed_kmh: 1 }, 'timestamp_in_future'],
    ['timestamp before registration', topics.device('car-3', 'obd'), { seq: 1, ts: Date.UTC(2026, 9, 31), speed_kmh: 1 }, 'before_registration'],
    // Issue #20: a batch's derived sample times are bounded like ts (1e-300 Hz put them at 1e303 ms).
    ['a batch rate far below 1 Hz', imu, { seq: 1, ts: now, rate_hz: 1e-300, samples: [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]] }, 'invalid_payload'],
    ['a batch rate of 0.001 Hz', imu, { seq: 1, ts: now, rate_hz: 0.001, samples: [[0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0]] }, 'invalid_payload'],
    ['a batch spanning more than 10 s', imu, { seq: 1, ts: now - 60_000, rate_hz: 1, samples: Array.from({ length: 12 }, () => [0, 0, 0, 0, 0, 0]) }, 'invalid_payload'],
    ['a batch whose last sample is in the future', imu, { seq: 1, ts: now + 55_000, rate_hz: 1, samples: Array.from({ length: 10 }, () => [0, 0, 0, 0, 0, 0]) }, 'timestamp_in_future'],
    ['a 10 MB string, refused before parsing', obd, `{"seq":1,"ts":1,"speed_kmh":1,"note":"${'x'.repeat(10_000_000)}"}`, 'payload_too_large'],
  ]
  for (const [name, topic, payload, reason] of cases) {
    const r = decode(topic, payload)
    t.equal(isRejection(r) && r.reason, reason, name)
  }
})

t.test('a message on a topic that is no device stream goes back to the device the broker let publish there (#20)', async (t) => {
  // The ACL lets car-1 write all of ubiq/v1/dev/car-1/#: a level too many is still car-1's mistake,
  // and ubiq/v1/rejected/car-1 is the one rejected topic it may read (`?`, no device may).
  const to = (topic: string) => {
    const r = decode(topic, { seq: 1, ts: now, speed_kmh: 1 }) as Rejection
    return [r.deviceId, r.reason]
  }
  t.same(to('ubiq/v1/dev/car-1/obd/extra'), ['car-1', 'bad_topic'])
  t.same(to('ubiq/v1/dev/car-1'), ['car-1', 'bad_topic'])
  t.same(to('ubiq/v1/dev//obd/x'), ['?', 'bad_topic'], 'no device named')
  t.same(to('ubiq/v1/scores/x'), ['?', 'bad_topic'], 'not a device\'s topic at all')
})

t.test('a batch within the limits is accepted: 10 s at 1 Hz, its last sample up to the allowed skew', async (t) => {
  const rows = (n: number) => Array.from({ length: n }, () => [0, 0, 0, 0, 0, 0])
  for (const body of [{ seq: 1, ts: now - 60_000, rate_hz: 1, samples: rows(11) }, { seq: 2, ts: now + 50_000, rate_hz: 1, samples: rows(11) }]) {
    const r = decode(imu, body)
    t.notOk(isRejection(r), JSON.stringify(isRejection(r) && r.detail))
  }
})

t.test('rejections never quote the payload (it may hold position or health data)', async (t) => {
  const secret = '52.3702157'
  for (const payload of [`{"seq":1,"ts":1,"speed_kmh":${secret}x}`, `{"seq":1,"ts":1,"speed_kmh":"${secret}"}`]) {
    const r = decode(obd, payload)
    t.ok(isRejection(r), 'rejected')
    t.notMatch(JSON.stringify(r), secret)
  }
})

t.test('property: any bytes on any topic give a reading or a rejection, never a throw', async () => {
  fc.assert(fc.property(fc.string(), fc.uint8Array({ maxLength: 2048 }), (topic, bytes) => {
    const r = decodeMessage(cfg, topic, Buffer.from(bytes), now)
    if (r === null) return false
    return isRejection(r) ? typeof r.reason === 'string' : r.deviceId === 'car-1'
  }), { numRuns: 2000 })
})

t.test('property: any JSON value on a device topic is a valid reading or rejected', async () => {
  fc.assert(fc.property(fc.jsonValue(), (value) => {
    const r = decodeMessage(cfg, obd, Buffer.from(JSON.stringify(value) ?? 'null'), now)!
    if (isRejection(r)) return ['invalid_payload', 'payload_too_large', 'timestamp_in_future', 'malformed_json'].includes(r.reason)
    return Number.isFinite(r.fields.speed_kmh) && Number.isInteger(r.seq)
  }), { numRuns: 2000 })
})

t.test('property: in-range OBD payloads are always accepted, their values unchanged', async () => {
  const payload = fc.record({
    seq: fc.nat(),
    ts: fc.integer({ min: 0, max: now }),
    speed_kmh: fc.double({ min: 0, max: 255, noNaN: true }),
    engine_rpm: fc.double({ min: 0, max: 16383.75, noNaN: true }),
  })
  fc.assert(fc.property(payload, (p) => {
    const r = decode(obd, p) as Reading
    return !isRejection(r) && r.seq === p.seq && r.ts === p.ts && Object.is(r.fields.speed_kmh, p.speed_kmh)
  }), { numRuns: 2000 })
})
