import t from 'tap'
import { from, lastValueFrom, toArray } from 'rxjs'
import { canonicalJson, priceScores, rate, skeletonPlan } from './index.ts'
import type { Score } from '../scoring/index.ts'

t.test('rate: relativity from the score, credibility by exposure, floor and cap', async (t) => {
  const cases: [string, number, number, { factor: number; limited: string | null }][] = [
    ['typical score, full credibility', 50, 1000, { factor: 1, limited: null }],
    ['safe driver, full credibility', 55, 4000, { factor: 0.818, limited: null }],
    ['safe driver, a quarter of the exposure: Z = 0.5', 55, 250, { factor: 0.909, limited: null }],
    ['risky driver is capped', 20, 1000, { factor: 1.3, limited: 'cap' }],
    ['very safe driver is floored', 90, 1000, { factor: 0.7, limited: 'floor' }],
    ['below the minimum exposure nothing changes', 10, 0.5, { factor: 1, limited: null }],
  ]
  for (const [name, score, km, want] of cases) t.match(rate(skeletonPlan, score, km), want, name)
})

const score = (policyId: string, value: number, to: number): Score => ({
  policyId, subject: 'driving', value, model: 'driving-frequency@1', reasons: [], window: { from: 0, to },
  exposure: { days: 30, distance_km: 1000 }, features: {},
})

t.test('priceScores: a redelivered score never applies twice; the chain links every adjustment', async (t) => {
  const scores = [score('a', 40, 1), score('a', 40, 1), score('b', 60, 1), score('a', 45, 2)]
  const out = await lastValueFrom(from(scores).pipe(priceScores(skeletonPlan), toArray()))
  t.same(out.map((p) => [p.policyId, p.factor]), [['a', 1.3], ['b', 0.7], ['a', 1.222]], 'the duplicate of a@1 produced nothing')
  t.equal(out[0]!.prevHash, '', 'the chain starts empty')
  t.equal(out[1]!.prevHash, out[0]!.hash)
  t.equal(out[2]!.prevHash, out[1]!.hash)
  const again = await lastValueFrom(from(scores).pipe(priceScores(skeletonPlan), toArray()))
  t.same(again, out, 'the same inputs give the same adjustments, hashes included')
  t.equal(out[0]!.effectiveFrom, new Date(1).toISOString())
  t.same(out[0]!.models, ['driving-frequency@1'])
  t.equal(out[0]!.ruleset, skeletonPlan.version)
})

t.test('canonicalJson sorts keys at every level', async (t) => {
  t.equal(canonicalJson({ b: 1, a: { d: [2, { f: 1, e: 0 }], c: null } }), '{"a":{"c":null,"d":[2,{"e":0,"f":1}]},"b":1}')
})
