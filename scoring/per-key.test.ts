import t from 'tap'
import { from, lastValueFrom, toArray } from 'rxjs'
import { perKey } from './per-key.ts'

// A running sum per key: its state is built asynchronously, as from InfluxDB after a restart.
const sums = (start: (key: string) => Promise<number>) => perKey<{ key: string; n: number }, { sum: number }, string>({
  key: (x) => x.key,
  create: async (first) => ({ sum: await start(first.key) }),
  push: (m, x) => ((m.sum += x.n), []),
  end: (m) => [String(m.sum)],
  idleMs: 60_000,
})

t.test('a restart\'s burst waits for its key\'s state, in order, without recursing once per value', async (t) => {
  const burst = Array.from({ length: 50_000 }, (_, i) => ({ key: i % 2 ? 'b' : 'a', n: 1 }))
  const out = await lastValueFrom(from(burst).pipe(sums(async (key) => (key === 'a' ? 100 : 0)), toArray()))
  t.same(out.sort(), ['25000', '25100'], 'every value counted once, on top of the restored state')
})

t.test('a failed build is the stream\'s error', async (t) => {
  await t.rejects(lastValueFrom(from([{ key: 'a', n: 1 }]).pipe(sums(() => Promise.reject(new Error('InfluxDB down'))))), /InfluxDB down/)
})
