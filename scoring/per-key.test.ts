import t from 'tap'
import { from, lastValueFrom, toArray } from 'rxjs'
import { perKey } from './per-key.ts'

// A running sum per key that also checks order: its state is built asynchronously, as from InfluxDB after a restart.
const sums = (start: (key: string) => Promise<number>) => perKey<{ key: string; i: number }, { sum: number; last: number; ordered: boolean }, string>({
  key: (x) => x.key,
  create: async (first) => ({ sum: await start(first.key), last: -1, ordered: true }),
  push: (m, x) => ((m.sum += 1), (m.ordered &&= x.i > m.last), (m.last = x.i), []),
  end: (m) => [`${m.sum} ${m.ordered ? 'in order' : 'out of order'}`],
  idleMs: 60_000,
})

t.test('a restart\'s burst waits for its key\'s state, in order, without recursing once per value', async (t) => {
  const burst = Array.from({ length: 50_000 }, (_, i) => ({ key: i % 2 ? 'b' : 'a', i }))
  const out = await lastValueFrom(from(burst).pipe(sums(async (key) => (key === 'a' ? 100 : 0)), toArray()))
  t.same(out.sort(), ['25000 in order', '25100 in order'], 'every value counted once, in order, on top of the restored state')
})

t.test('a failed build is the stream\'s error', async (t) => {
  await t.rejects(lastValueFrom(from([{ key: 'a', i: 0 }]).pipe(sums(() => Promise.reject(new Error('InfluxDB down'))))), /InfluxDB down/)
})
