import t from 'tap'
import { driveObd, makeFleet, personas, type PersonaName } from './index.ts'

const take = (persona: PersonaName, seed: number, n: number) => {
  const out = []
  for (const s of driveObd(personas[persona], seed, 0)) {
    if (out.length === n) break
    out.push(s)
  }
  return out
}
const HOURS = 4 * 3600

t.test('the same seed drives the same way; another seed does not', async (t) => {
  t.same(take('average', 42, 600), take('average', 42, 600))
  t.not(JSON.stringify(take('average', 42, 600)), JSON.stringify(take('average', 43, 600)))
})

t.test('samples are 1 Hz and physically plausible for every persona', async (t) => {
  for (const name of Object.keys(personas) as PersonaName[]) {
    const samples = take(name, 1, HOURS)
    t.ok(samples.every((s, i) => s.ts === i * 1000), `${name}: one sample per second`)
    const speeds = samples.map((s) => s.speed_kmh)
    t.ok(Math.min(...speeds) === 0 && Math.max(...speeds) <= 160, `${name}: speeds within 0–160 km/h`)
    const accels = samples.slice(1).map((s, i) => (s.speed_kmh - samples[i]!.speed_kmh) / 3.6)
    t.ok(Math.max(...accels.map(Math.abs)) <= 7.01, `${name}: no change beyond 7 m/s² (≈0.7 g) in a second`)
    t.ok(samples.every((s) => s.engine_rpm >= 800 && s.engine_rpm <= 7000 && s.throttle_pct >= 0 && s.throttle_pct <= 100), `${name}: rpm and throttle in range`)
  }
})

t.test('personas are separated in the way their names promise', async (t) => {
  const stats = (name: PersonaName) => {
    const s = take(name, 7, HOURS)
    const decels = s.slice(1).map((x, i) => (s[i]!.speed_kmh - x.speed_kmh) / 3.6)
    return {
      harshBrakes: decels.filter((d) => d >= 3.5).length,
      over120: s.filter((x) => x.speed_kmh > 120).length / s.length,
    }
  }
  const [cautious, average, aggressive] = [stats('cautious'), stats('average'), stats('aggressive')]
  t.ok(cautious.harshBrakes < average.harshBrakes && average.harshBrakes < aggressive.harshBrakes,
    `harsh-brake seconds order by persona: ${cautious.harshBrakes} < ${average.harshBrakes} < ${aggressive.harshBrakes}`)
  t.equal(cautious.over120, 0, 'the cautious driver never exceeds 120 km/h')
  t.ok(aggressive.over120 > 0.1, `the aggressive driver spends ${(aggressive.over120 * 100).toFixed(0)}% of the time above 120 km/h`)
})

t.test('a fleet cycles personas and gives every vehicle its own policy and seed', async (t) => {
  const fleet = makeFleet(4, 9)
  t.same(fleet.map((v) => v.persona), ['cautious', 'average', 'aggressive', 'cautious'])
  t.equal(new Set(fleet.map((v) => v.policyId)).size, 4)
  t.equal(new Set(fleet.map((v) => v.seed)).size, 4)
  t.same(makeFleet(4, 9), fleet, 'deterministic')
})
