/** The check after an impact (claims.ts afterImpact): table tests on speeds after a crash pulse. */
import t from 'tap'
import { afterImpact } from './claims.ts'

const at = 1_000_000
/** 1 Hz speeds from `from_s` to `to_s` after the impact, by `kmh(s)`. */
const speeds = (kmh: (s: number) => number, from_s = 0, to_s = 25) => Array.from({ length: to_s - from_s + 1 }, (_, i) => ({ ts: at + (from_s + i) * 1000, kmh: kmh(from_s + i) }))

t.test('the car stops, drives on, rolls, or says nothing', async (t) => {
  const table: [string, { ts: number; kmh: number }[], string][] = [
    ['stopped at once (a crash)', speeds(() => 0), 'stopped'],
    ['braked to a stop within 6 s', speeds((s) => Math.max(0, 50 - 9 * s)), 'stopped'],
    ['on at 50 km/h (a pothole, a dropped phone)', speeds(() => 50), 'moved_on'],
    ['slowed to 30 km/h and went on', speeds((s) => (s < 3 ? 45 : 30)), 'moved_on'],
    ['stopped, then drove off after 8 s (pulled over, then left)', speeds((s) => (s < 8 ? 0 : 40)), 'moved_on'],
    ['rolling at 10 km/h', speeds(() => 10), 'slow'],
    ['no speed at all (a phone without GNSS)', [], 'unknown'],
  ]
  for (const [name, s, verdict] of table) t.equal(afterImpact(s, at).verdict, verdict, name)
  t.match(afterImpact(speeds((s) => Math.max(0, 50 - 9 * s)), at), { stopped_s: 5, moving_share: 0 }, 'with the numbers behind it: 5 km/h or less 5 s after')
})
