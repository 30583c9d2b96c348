import t from 'tap'
import { idleMap } from './idle-map.ts'
import { clockTracker } from './clock.ts'
import { rejectJumps } from './plausibility.ts'
import { from, lastValueFrom, toArray } from 'rxjs'
import type { Reading } from './contract.ts'

const H = 3600_000

t.test('an idle map forgets keys not set or touched for idleMs, keeps the active ones', async (t) => {
  const m = idleMap<number>(H)
  m.set('a', 1, 0)
  m.set('b', 2, 0)
  m.touch('a', H / 2)
  m.set('c', 3, H + H / 4) // a sweep: b idle for more than an hour, a for three quarters
  t.same([...m.keys()].sort(), ['a', 'c'])
  t.equal(m.get('a'), 1)
  m.set('d', 4, H + H / 4 + 1) // within a quarter of idleMs of the last sweep: none, O(1)
  t.equal(m.size, 3)
  m.set('e', 5, 2 * H)
  t.same([...m.keys()].sort(), ['c', 'd', 'e'], 'a, last active at H/2, is gone an hour and a half later')
})

t.test('touch gives the entry back, marked active; one idle for idleMs is gone at its own touch, sweep or not', async (t) => {
  const m = idleMap<number>(H)
  m.set('k', 1, 0)
  t.equal(m.touch('k', H / 2), 1, 'active: given back')
  m.set('j', 2, 1.4 * H) // a sweep: k has been idle 0.9 h
  t.equal(m.get('k'), 1)
  t.equal(m.touch('k', 1.5 * H + 1), undefined, 'idle for an hour: gone, though no sweep was due (the caller starts afresh, never on an entry the next sweep drops)')
  t.equal(m.touch('j', 1.5 * H + 1), 2)
})

t.test('an entry in use stays however idle; its idle time counts from its next touch', async (t) => {
  const m = idleMap<{ clients: number }>(H, (v) => v.clients > 0)
  m.set('followed', { clients: 1 }, 0)
  m.set('quiet', { clients: 0 }, 0)
  m.set('x', { clients: 0 }, 2 * H)
  t.same([...m.keys()].sort(), ['followed', 'x'])
  m.touch('followed', 2 * H + 1) // its last client leaves: touched while still in use
  m.get('followed')!.clients = 0
  m.set('y', { clients: 0 }, 3 * H)
  t.same([...m.keys()].sort(), ['followed', 'y'], 'its last client left less than an hour ago: it stays')
  m.set('z', { clients: 0 }, 3 * H + H / 4 + 1)
  t.same([...m.keys()].sort(), ['y', 'z'], 'more than an hour: gone')
})

t.test('memory follows the active devices: 10,000 devices that came and went leave nothing behind', async (t) => {
  const clocks = clockTracker(5 * 60_000, H)
  for (let i = 0; i < 10_000; i++) clocks.observe(`dev-${i}`, i * 100, i * 100 + 50)
  clocks.observe('still-here', 3 * H, 3 * H + 20)
  t.equal(clocks.get('dev-0'), undefined, 'a device silent for hours is forgotten')
  t.match(clocks.get('still-here'), { skewMs: 20 })
  t.equal(clocks.countSkewedOver(10), 1, 'and counts no more among skewed clocks')

  const fix = (deviceId: string, ts: number, lon_deg: number): Reading => ({ deviceId, policyId: 'p', kind: 'gps', subject: 'driving', seq: ts, ts, receivedAt: ts, fields: { lat_deg: 0, lon_deg, accuracy_m: 5 } })
  // After two hours of silence, 3,000 km away: forgotten, so a new start, not a jump (the limit would allow 2,000 km anyway).
  const out = await lastValueFrom(from([fix('car', 0, 0), fix('car', 60_000, 20), fix('car', 2 * H, 27)]).pipe(rejectJumps(1000), toArray()))
  t.same(out.map((r) => ('reason' in r ? r.reason : 'ok')), ['ok', 'implausible_jump', 'ok'])
})
