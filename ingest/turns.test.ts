/**
 * Ingest lets the event loop go round during a backlog (ingest.ts, turnLimiter): once a turn has
 * lasted its limit, the next message waits until the work already waiting has run.
 */
import t from 'tap'
import { turnLimiter } from './ingest.ts'

t.test('messages are handled at once for 10 ms of a turn, then after the waiting work', async (t) => {
  let clock = 1000
  const next = turnLimiter(10, () => clock)
  const order: string[] = []
  setImmediate(() => order.push('waiting work'))
  next(() => order.push('m1'))
  clock += 9
  next(() => order.push('m2'))
  clock += 1
  next(() => order.push('m3'))
  t.same(order, ['m1', 'm2'], 'within the first 10 ms of the turn: at once')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(order, ['m1', 'm2', 'waiting work', 'm3'], 'after 10 ms: once the event loop has gone round, after the waiting work')
  next(() => order.push('m4'))
  t.equal(order.at(-1), 'm4', 'a new turn starts a new 10 ms')
})
