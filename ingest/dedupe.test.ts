import t from 'tap'
import fc from 'fast-check'
import { from, lastValueFrom, toArray } from 'rxjs'
import { dropDuplicates, rejectTimeReuse, TIME_REUSE_WINDOW, type Reading } from './index.ts'

const reading = (deviceId: string, seq: number): Reading =>
  ({ deviceId, policyId: 'p', kind: 'obd', subject: 'driving', seq, ts: seq, receivedAt: 0, fields: {} })
const run = async (window: number, input: [string, number][]) => {
  let duplicates = 0
  const out = await lastValueFrom(from(input.map(([d, s]) => reading(d, s))).pipe(dropDuplicates(window, Infinity, () => duplicates++), toArray()))
  return { kept: out.map((r) => [r.deviceId, r.seq]), duplicates }
}

t.test('redeliveries are dropped, per device; other devices\' seqs are their own', async (t) => {
  t.same(await run(8, [['a', 1], ['a', 2], ['b', 1], ['a', 1], ['a', 3], ['b', 1], ['a', 2]]), {
    kept: [['a', 1], ['a', 2], ['b', 1], ['a', 3]], duplicates: 3,
  })
})

t.test('out-of-order seqs inside the window are kept once; older than the window cannot be told, but its redelivery can', async (t) => {
  t.same((await run(4, [['a', 10], ['a', 8], ['a', 9], ['a', 8], ['a', 6], ['a', 6], ['a', 5]])).kept,
    [['a', 10], ['a', 8], ['a', 9], ['a', 6], ['a', 5]], '6 is 4 below 10: outside a window of 4, kept once')
})

t.test('one stray seq far ahead (2^53−1) does not turn dedupe off for the device (#20)', async (t) => {
  t.same(await run(1024, [['a', 1], ['a', 2], ['a', Number.MAX_SAFE_INTEGER], ['a', 3], ['a', 3], ['a', 2], ['a', 4]]), {
    kept: [['a', 1], ['a', 2], ['a', Number.MAX_SAFE_INTEGER], ['a', 3], ['a', 4]], duplicates: 2,
  })
})

t.test('a counter that restarts (a device reset) gets a window of its own from its second seq', async (t) => {
  t.same(await run(8, [['a', 1000], ['a', 1001], ['a', 0], ['a', 1], ['a', 1], ['a', 0], ['a', 2], ['a', 1001]]), {
    kept: [['a', 1000], ['a', 1001], ['a', 0], ['a', 1], ['a', 2], ['a', 1001]], duplicates: 2,
  })
})

t.test('property: within the window, exactly the first copy of each (device, seq) is kept', async () => {
  const W = 16
  fc.assert(fc.asyncProperty(fc.array(fc.tuple(fc.constantFrom('a', 'b'), fc.oneof(fc.nat(40), fc.constantFrom(1000, 1001, Number.MAX_SAFE_INTEGER))), { maxLength: 300 }), async (input) => {
    // The reference model: per device, the highest seq, the seqs seen since the window last
    // moved, and a pending jump (a seq W or more away from the highest).
    const state = new Map<string, { max: number; seen: Set<number>; jump?: number }>()
    const want: [string, number][] = []
    for (const [d, s] of input) {
      const st = state.get(d)
      if (!st) state.set(d, { max: s, seen: new Set([s]) })
      else if (Math.abs(s - st.max) >= W) {
        if (st.jump === s) continue
        if (st.jump !== undefined && Math.abs(s - st.jump) < W) state.set(d, { max: Math.max(s, st.jump), seen: new Set([s, st.jump]) })
        else st.jump = s
      } else {
        if (st.seen.has(s)) continue
        st.seen.add(s)
        st.max = Math.max(st.max, s)
      }
      want.push([d, s])
    }
    const got = await run(W, input)
    return JSON.stringify(got.kept) === JSON.stringify(want) && got.duplicates === input.length - want.length
  }), { numRuns: 500 })
})

t.test('memory follows the active policies: a policy silent for idleMs is forgotten, a device silent beside an active one of its policy is not (#20 item 5)', async (t) => {
  const H = 3600_000
  const r = (deviceId: string, policyId: string, seq: number, receivedAt: number): Reading =>
    ({ deviceId, policyId, kind: 'obd', subject: 'driving', seq, ts: seq, receivedAt, fields: {} })
  const input = [
    r('watch', 'p1', 1, 0), r('car', 'p1', 1, 0), r('other', 'p2', 1, 0),
    r('car', 'p1', 2, 0.75 * H), r('car', 'p1', 3, 1.5 * H), // p1's car drives on; its watch is silent
    r('watch', 'p1', 1, 1.5 * H + 1), // the watch resends after 1.5 h: its policy is active, so it is known
    r('other', 'p2', 1, 1.5 * H + 1), // p2 has been silent for 1.5 h: forgotten, its seq 1 starts afresh
    r('other', 'p2', 1, 1.5 * H + 2),
  ]
  let duplicates = 0
  const out = await lastValueFrom(from(input).pipe(dropDuplicates(1024, H, () => duplicates++), toArray()))
  t.same(out.map((x) => `${x.deviceId}:${x.seq}`), ['watch:1', 'car:1', 'other:1', 'car:2', 'car:3', 'other:1'])
  t.equal(duplicates, 2, "the watch's resend and the second other:1")
})

t.test('a stream\'s device time reused under another seq is rejected, duplicate_time: InfluxDB would overwrite the stored reading (#20)', async (t) => {
  const r = (seq: number, ts: number, kind = 'obd', fields: Reading['fields'] = {}, samples?: number[][]): Reading =>
    ({ deviceId: 'a', policyId: 'p', kind, subject: 'driving', seq, ts, receivedAt: 0, fields, ...(samples ? { samples } : {}) })
  const input = [
    r(1, 1000), r(2, 1000, 'gps'), // another stream: its own series
    r(1, 1000), // a redelivery: dropDuplicates' to drop
    r(3, 1000), // the overwrite
    r(4, 2000, 'imu', { rate_hz: 25 }, [[0]]), r(5, 2000, 'imu', { rate_hz: 100 }, [[0]]), // a crash window beside a batch
    r(6, 2000, 'imu', { rate_hz: 25 }, [[0]]),
  ]
  const out = await lastValueFrom(from(input).pipe(rejectTimeReuse(TIME_REUSE_WINDOW), toArray()))
  t.same(out.map((x) => ('reason' in x ? `${x.seq}: ${x.reason}` : x.seq)), [1, 2, 1, '3: duplicate_time', 4, 5, '6: duplicate_time'])
  // A batch's times are all its samples': one sharing any with an earlier batch at the same rate
  // would replace that batch's samples in InfluxDB (#20: two 200 Hz batches 10 ms apart).
  const rows = (n: number) => Array.from({ length: n }, () => [0])
  const batches = [
    r(10, 10_000, 'imu', { rate_hz: 200 }, rows(7)), // 10,000 … 10,030 ms
    r(11, 10_010, 'imu', { rate_hz: 200 }, rows(7)), // from 10,010: its first two samples are the first batch's third and fourth
    r(12, 10_035, 'imu', { rate_hz: 200 }, rows(7)), // right after the first batch's last: nothing shared
    r(13, 10_002, 'imu', { rate_hz: 200 }, rows(3)), // between the first batch's samples (10,002 … 10,012): none shared
    r(14, 10_070, 'imu', { rate_hz: 3 }, rows(4)), // 10,070, 10,403, 10,737, 11,070
    r(15, 10_403, 'imu', { rate_hz: 3 }, rows(1)), // the second of those, rounded as it is stored
    r(12, 10_035, 'imu', { rate_hz: 200 }, rows(7)), // a redelivery
  ]
  t.same((await lastValueFrom(from(batches).pipe(rejectTimeReuse(TIME_REUSE_WINDOW), toArray()))).map((x) => ('reason' in x ? `${x.seq}: ${x.reason}` : x.seq)),
    [10, '11: duplicate_time', 12, 13, 14, '15: duplicate_time', 12])
  // Forgotten after the device's next TIME_REUSE_WINDOW readings: memory is bounded per device.
  const later = [r(1, 1000), ...Array.from({ length: TIME_REUSE_WINDOW }, (_, i) => r(10 + i, 5000 + i)), r(99, 1000)]
  t.notOk('reason' in (await lastValueFrom(from(later).pipe(rejectTimeReuse(TIME_REUSE_WINDOW), toArray()))).at(-1)!)
  // Redeliveries take no room: a reading redelivered TIME_REUSE_WINDOW times does not push another out.
  const redelivered = [r(1, 1000), r(2, 2000), ...Array.from({ length: TIME_REUSE_WINDOW }, () => r(2, 2000)), r(99, 1000)]
  t.match((await lastValueFrom(from(redelivered).pipe(rejectTimeReuse(TIME_REUSE_WINDOW), toArray()))).at(-1), { seq: 99, reason: 'duplicate_time' })
  // And a device silent for half an hour is forgotten.
  const back = [r(1, 1000), { ...r(2, 9000), deviceId: 'b', receivedAt: 1800_000 }, { ...r(3, 1000), receivedAt: 1800_000 }]
  t.notOk('reason' in (await lastValueFrom(from(back).pipe(rejectTimeReuse(TIME_REUSE_WINDOW), toArray()))).at(-1)!)
})
