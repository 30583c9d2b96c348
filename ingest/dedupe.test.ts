import t from 'tap'
import fc from 'fast-check'
import { from, lastValueFrom, toArray } from 'rxjs'
import { dropDuplicates, type Reading } from './index.ts'

const reading = (deviceId: string, seq: number): Reading =>
  ({ deviceId, policyId: 'p', kind: 'obd', subject: 'driving', seq, ts: seq, receivedAt: 0, fields: {} })
const run = async (window: number, input: [string, number][]) => {
  let duplicates = 0
  const out = await lastValueFrom(from(input.map(([d, s]) => reading(d, s))).pipe(dropDuplicates(window, () => duplicates++), toArray()))
  return { kept: out.map((r) => [r.deviceId, r.seq]), duplicates }
}

t.test('redeliveries are dropped, per device; other devices\' seqs are their own', async (t) => {
  t.same(await run(8, [['a', 1], ['a', 2], ['b', 1], ['a', 1], ['a', 3], ['b', 1], ['a', 2]]), {
    kept: [['a', 1], ['a', 2], ['b', 1], ['a', 3]], duplicates: 3,
  })
})

t.test('out-of-order seqs inside the window are kept once; older than the window cannot be told', async (t) => {
  t.same((await run(4, [['a', 10], ['a', 8], ['a', 9], ['a', 8], ['a', 6], ['a', 6]])).kept,
    [['a', 10], ['a', 8], ['a', 9], ['a', 6], ['a', 6]], '6 is 4 below 10: outside a window of 4')
})

t.test('property: within the window, exactly the first copy of each (device, seq) is kept', async () => {
  const W = 16
  fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom('a', 'b'), fc.nat(40)), { maxLength: 300 }), async (input) => {
    // The reference model: everything seen, and each device's highest seq.
    const seen = new Set<string>()
    const max = new Map<string, number>()
    const want: [string, number][] = []
    for (const [d, s] of input) {
      const m = max.get(d)
      const tooOld = m !== undefined && m - s >= W
      if (tooOld || !seen.has(`${d}/${s}`)) want.push([d, s])
      seen.add(`${d}/${s}`)
      max.set(d, Math.max(m ?? s, s))
    }
    const got = await run(W, input)
    return JSON.stringify(got.kept) === JSON.stringify(want) && got.duplicates === input.length - want.length
  }), { numRuns: 500 })
})
