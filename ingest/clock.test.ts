import t from 'tap'
import { clockTracker } from './clock.ts'

t.test('the skew is the least delay seen: buffered uploads do not count as skew', async (t) => {
  const clocks = clockTracker(60_000)
  const t0 = Date.UTC(2026, 10, 23)
  // The device clock is 30 s behind; messages take 20–200 ms; one burst was buffered for 10 min.
  clocks.observe('d', t0 - 30_000, t0 + 200)
  clocks.observe('d', t0 + 1000 - 30_000, t0 + 1020)
  clocks.observe('d', t0 - 600_000, t0 + 2000)
  t.match(clocks.get('d'), { skewMs: 30_020, samples: 3 })
  t.equal(clocks.get('nobody'), undefined)
})

t.test('the estimate follows the clock from window to window; ahead is negative', async (t) => {
  const clocks = clockTracker(60_000)
  const t0 = Date.UTC(2026, 10, 23)
  for (let s = 0; s < 60; s++) clocks.observe('d', t0 + s * 1000 + 5000, t0 + s * 1000 + 50) // 5 s ahead
  clocks.observe('d', t0 + 61_000, t0 + 60_050) // a new window starts: the last one's estimate holds
  t.match(clocks.get('d'), { skewMs: -4950, samples: 60, lastSeen: t0 + 60_050 })
})
