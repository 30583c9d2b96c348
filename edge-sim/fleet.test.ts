import t from 'tap'
import { makeFleet, tripLengths, type SimVehicle } from './fleet.ts'

const first = (v: SimVehicle, n: number) => {
  const it = tripLengths(v)
  return Array.from({ length: n }, () => it.next().value as number)
}

t.test("the demo fleet's trips last 3 to 20 minutes, each vehicle its own (every trip was 10 minutes)", async (t) => {
  const lengths = makeFleet(6).flatMap((v) => first(v, 10))
  t.ok(lengths.every((s) => Number.isInteger(s) && s >= 180 && s <= 1200), 'within 3 to 20 minutes, whole seconds')
  t.ok(new Set(lengths).size > 50, `${new Set(lengths).size} lengths among 60 trips`)
  t.same(first(makeFleet(1)[0]!, 5), first(makeFleet(1)[0]!, 5), 'the same seed, the same trips')
})
