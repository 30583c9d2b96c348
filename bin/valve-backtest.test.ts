import t from 'tap'
import { valveBacktest, valveReport } from './valve-backtest.ts'

t.test('the valve backtest: the same leaks with and without close_valve; scoring sees each stopped, and the water and claims saved show', async (t) => {
  const b = valveBacktest({ homes: 4, days: 45, startTs: Date.parse('2026-01-01T00:00:00Z'), commandDelay_s: 10, claimLitres: [100] })
  t.ok(b.without.leaks >= 3, `${b.without.leaks} leaks in 4 homes × 45 winter days`)
  t.equal(b.with.leaks, b.without.leaks, 'the same leaks in both arms')
  t.equal(b.without.stopped, 0)
  t.equal(b.with.stopped, b.with.leaks, 'each leak raised close_valve and its valve reported shut (or still shut)')
  t.ok(b.with.litres * 100 < b.without.litres, `litres: ${b.with.litres} with, ${b.without.litres} without`)
  t.ok(b.with.running_min * 100 < b.without.running_min, 'minutes of running water likewise')
  t.same(b.with.claims, [0], 'no leak over 100 L with the command')
  t.equal(b.with.response_s.median, 10, "scoring's valve_shutoff measures the command's delay")
  const slow = valveBacktest({ ...b.options, commandDelay_s: 600 })
  t.ok(slow.with.litres > b.with.litres, 'a slower shut-off lets more water run')
  t.match(valveReport(b), /\| stopped by close_valve \| – \| \d+ \(100%\) \|[\s\S]*Triple-I's 1 in 60 homes a year at USD 11,650/, 'the report says how claims were projected')
})
