import t from 'tap'
import { from, lastValueFrom, toArray } from 'rxjs'
import { rejectJumps } from './plausibility.ts'
import type { Reading } from './index.ts'

const fix = (seq: number, s: number, lat: number, lon: number, acc = 5): Reading => ({
  deviceId: 'phone', policyId: 'p', kind: 'gps', subject: 'driving', seq, ts: s * 1000, receivedAt: s * 1000,
  fields: { lat_deg: lat, lon_deg: lon, accuracy_m: acc },
})
const outcome = async (fixes: Reading[]) =>
  (await lastValueFrom(from(fixes).pipe(rejectJumps(1000), toArray()))).map((r) => ('reason' in r ? r.reason : 'ok'))

t.test('a fix that implies an impossible speed is rejected; driving, even fast, is not', async (t) => {
  // 0.001° of latitude is 111 m: 30 m/s is 108 km/h.
  t.same(await outcome([fix(1, 0, 52, 4.9), fix(2, 1, 52.0003, 4.9), fix(3, 2, 52.0006, 4.9)]), ['ok', 'ok', 'ok'])
  t.same(await outcome([fix(1, 0, 52, 4.9), fix(2, 1, 48.85, 2.35), fix(3, 2, 52.0003, 4.9)]), ['ok', 'implausible_jump', 'ok'],
    'Amsterdam → Paris in a second is a spike; the next fix near the last good one is fine')
})

t.test('a device that really moved recovers after one rejected fix', async (t) => {
  // Half an hour: after an hour's silence the device would be forgotten, and its next fix a new start.
  t.same(await outcome([fix(1, 0, 52, 4.9), fix(2, 1800, 40.64, -73.78), fix(3, 1801, 40.6403, -73.78)]),
    ['ok', 'implausible_jump', 'ok'], 'Amsterdam → New York in half an hour: rejected, then the next consistent fix is accepted')
})

t.test('accuracy is allowed for, and repeats or late fixes are not jumps', async (t) => {
  t.same(await outcome([fix(1, 0, 52, 4.9, 400), fix(2, 1, 52.005, 4.9, 400)]), ['ok', 'ok'], '555 m apart with 400 m accuracy each')
  t.same(await outcome([fix(1, 0, 52, 4.9, 5), fix(2, 1, 52.005, 4.9, 5)]), ['ok', 'implausible_jump'], 'the same with 5 m accuracy')
  t.same(await outcome([fix(1, 10, 52, 4.9), fix(1, 10, 52, 4.9), fix(0, 9, 52.0001, 4.9)]), ['ok', 'ok', 'ok'])
})

t.test('a rejection names the speed, never the position', async (t) => {
  const [, r] = await lastValueFrom(from([fix(1, 0, 52, 4.9), fix(2, 1, 48.85, 2.35)]).pipe(rejectJumps(1000), toArray()))
  t.match(r, { reason: 'implausible_jump', seq: 2, detail: /^implies \d+ km\/h since the last good fix \(limit 1000\)$/ })
  t.notMatch(JSON.stringify(r), /48\.85|2\.35/)
})
