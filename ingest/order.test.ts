/** Virtual-time tests (RxJS TestScheduler): the window's behaviour is exact and the test instant. */
import t from 'tap'
import { TestScheduler } from 'rxjs/testing'
import { orderWithin } from './order.ts'
import type { Reading } from './index.ts'

const r = (deviceId: string, seq: number, ts: number): Reading =>
  ({ deviceId, policyId: 'p', kind: 'obd', subject: 'driving', seq, ts, receivedAt: 0, fields: { speed_kmh: 1 } })

/** Runs `marbles` of readings through orderWithin(window) in virtual time: [frame, device:seq] out. */
function emitted(marbles: string, values: Record<string, Reading>, windowMs: number): [number, string][] {
  const out: [number, string][] = []
  const scheduler = new TestScheduler(() => {})
  scheduler.run(({ cold }) => {
    cold(marbles, values).pipe(orderWithin(windowMs)).subscribe((x) => out.push([scheduler.now(), `${x.deviceId}:${x.seq}`]))
  })
  return out
}

t.test('readings that arrive out of order within the window leave in device-time order', async (t) => {
  const values = { a: r('d', 3, 3000), b: r('d', 1, 1000), c: r('d', 2, 2000) }
  t.same(emitted('a 4ms b 4ms c', values, 100), [[100, 'd:1'], [100, 'd:2'], [100, 'd:3']])
})

t.test('devices are ordered apart; a reading later than its window passes on when its own window ends', async (t) => {
  const values = { a: r('x', 2, 2000), b: r('y', 1, 1000), c: r('x', 1, 1000), d: r('x', 0, 500) }
  // x's windows start when x is first seen (0 ms), y's when y is (1 ms); d comes at 153 ms.
  t.same(emitted('a b c 150ms d', values, 100), [[100, 'x:1'], [100, 'x:2'], [101, 'y:1'], [200, 'x:0']])
})

t.test('equal device times keep seq order', async (t) => {
  const values = { a: r('d', 2, 1000), b: r('d', 1, 1000) }
  t.same(emitted('a b', values, 10), [[10, 'd:1'], [10, 'd:2']])
})

t.test('a quiet device\'s group closes, releasing what it held; the next reading opens a new one', async (t) => {
  const values = { a: r('d', 1, 1000), b: r('d', 2, 2000) }
  // Window 10: a is released at 10; the group closes at 21 (quiet for 20); b at 50 opens a new one.
  t.same(emitted('a 49ms b', values, 10), [[10, 'd:1'], [60, 'd:2']])
})
