import t from 'tap'
import { EMPTY, from, lastValueFrom, of, toArray } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
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

// A machine per key that echoes its values with a count; the value `boom` makes it throw where `at` says.
type Failing = { boomAt: 'create' | 'push' | 'end' | 'none' }
const echo = (at: Failing['boomAt'], failures: string[], scheduler?: TestScheduler) => perKey<string, { n: number; key: string }, string>({
  key: (x) => x[0]!,
  create: (first) => {
    if (at === 'create' && first.endsWith('!')) throw new Error(`create ${first}`)
    return of({ n: 0, key: first[0]! })
  },
  push: (m, x) => {
    if (at === 'push' && x.endsWith('!')) throw new Error(`push ${x}`)
    return [`${x}${++m.n}`]
  },
  end: (m) => {
    if (at === 'end' && m.key === 'b') throw new Error('end b')
    return [`${m.key}.`]
  },
  idleMs: 10,
  scheduler,
  onError: (err, key) => void failures.push(`${key}: ${(err as Error).message}`),
})

t.test('marbles: a key whose machine throws is dropped and rebuilt; the other keys run on (#20)', (t) => {
  const failures: string[] = []
  const scheduler = new TestScheduler((actual, expected) => t.same(actual, expected))
  scheduler.run(({ cold, expectObservable }) => {
    // b's second value throws in push: b's count starts again from its next value; a and c never notice.
    const source = cold('a b c B a b c 20ms |', { a: 'a', b: 'b', c: 'c', B: 'b!' })
    expectObservable(source.pipe(echo('push', failures, scheduler))).toBe('a b c - d e f 7ms x y z 10ms |', {
      a: 'a1', b: 'b1', c: 'c1', d: 'a2', e: 'b1', f: 'c2', x: 'a.', y: 'b.', z: 'c.',
    })
  })
  t.same(failures, ['b: push b!'], 'the failure reported once, with its key')
  t.end()
})

t.test('a failing create or end costs its key only; without onError, the stream errors', async (t) => {
  const run = (at: Failing['boomAt'], values: string[]) => {
    const failures: string[] = []
    return lastValueFrom(from(values).pipe(echo(at, failures), toArray())).then((out) => ({ out, failures }))
  }
  t.same(await run('create', ['a', 'b!', 'b', 'a']), { out: ['a1', 'b1', 'a2', 'a.', 'b.'], failures: ['b: create b!'] }, 'create: b builds anew from its next value')
  t.same(await run('end', ['a', 'b', 'c']), { out: ['a1', 'b1', 'c1', 'a.', 'c.'], failures: ['b: end b'] }, 'end: the others still flush and the stream completes')
  const loud = perKey<string, number, string>({ key: (x) => x, create: () => of(0), push: () => { throw new Error('push') }, end: () => [], idleMs: 10 })
  await t.rejects(lastValueFrom(from(['a']).pipe(loud)), /push/, 'no onError: the error is the stream\'s (tests see it)')
})

t.test('a build that rejects or never yields a machine costs its key only', async (t) => {
  const failures: string[] = []
  const out = await lastValueFrom(from([{ key: 'a', i: 0 }, { key: 'b', i: 1 }, { key: 'c', i: 2 }, { key: 'a', i: 3 }]).pipe(perKey<{ key: string; i: number }, number[], string>({
    key: (x) => x.key,
    create: (first) => (first.key === 'a' ? Promise.reject(new Error('InfluxDB down')) : first.key === 'b' ? EMPTY : of([])),
    push: (m, x) => (m.push(x.i), []),
    end: (m) => [m.join()],
    idleMs: 60_000,
    onError: (err, key) => void failures.push(`${key}: ${(err as Error).message}`),
  }), toArray()))
  t.same(out, ['2'], 'c is scored; a\'s queued values went with its failed build')
  t.same(failures, ['b: no machine was built for key b', 'a: InfluxDB down'])
})

t.test('marbles: a forgotten key (an erased policy, #21 item 5) is dropped at once, without its end; the others run on', (t) => {
  const scheduler = new TestScheduler((actual, expected) => t.same(actual, expected))
  scheduler.run(({ cold, hot, expectObservable }) => {
    const source = cold('a b a b 20ms |')
    const forget$ = hot('  -----b')
    const machine = perKey<string, { n: number; key: string }, string>({
      key: (x) => x, create: (first) => of({ n: 0, key: first }), push: (m, x) => [`${x}${++m.n}`], end: (m) => [`${m.key}.`],
      idleMs: 10, scheduler, forget$,
    })
    // b goes at 5 ms, before its idle end at 13 ms, with nothing flushed; a idles out at 12 ms and is flushed, as before.
    expectObservable(source.pipe(machine)).toBe('a b c d 8ms x 11ms |', { a: 'a1', b: 'b1', c: 'a2', d: 'b2', x: 'a.' })
  })
  t.end()
})
