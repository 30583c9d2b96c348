import t from 'tap'
import { fleetLiving, makeFleet, tripLengths, type SimVehicle } from './fleet.ts'

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

t.test("the demo's wearables and homes: one of each beside each car, for the car's policy (#23: the Health and Home cards stayed empty)", async (t) => {
  const fleet = makeFleet(3)
  const start = Date.UTC(2026, 10, 2)
  const { registry, devices } = fleetLiving(fleet, 1, start, 2)
  t.same(registry.map((d) => [d.deviceId, d.policyId]), [['wear-0001', 'pol-0001'], ['home-0001', 'pol-0001'], ['wear-0002', 'pol-0002'], ['home-0002', 'pol-0002'], ['wear-0003', 'pol-0003'], ['home-0003', 'pol-0003']])
  t.ok(registry.every((d) => d.kinds.length > 0), 'each with its streams')
  const sent = devices.map((d) => [...d.messages])
  t.ok(sent.every((m) => m.length > 0), `each sends: ${sent.map((m) => m.length).join(', ')} messages over two days`)
  t.ok(sent.flat().every((m) => m.sendAt >= start), 'from the start on')
})
