/**
 * `ubiq backtest`'s logic on a small simulated portfolio, scored by the shipped models and rated by
 * the example plan: every policy rated once and as pricing rates it, summaries that add back up to
 * the rows, a tighter plan that shows its caps, a plan's attribute carried through, and the same
 * inputs giving the same numbers.
 */
import t from 'tap'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Subject } from '../ingest/index.ts'
import { backtest, backtestCsv, backtestReport, checkPlan, credibility, examplePlans, loadPlans, type BacktestRow, type RatingPlan, type RiskGroup, type SubjectRating } from './index.ts'
import { builtInModels, loadModel, modelId, readPortfolio, type LoadedModel } from '../scoring/index.ts'
import { writePortfolio } from '../bin/train.ts'

const subjects: readonly Subject[] = ['driving', 'health', 'home']
const dir = mkdtempSync(join(tmpdir(), 'ubiq-backtest-'))
// Few driving days keep the simulation short; 30 days of wearable and home data give partial credibility.
const dataDays = 30
await writePortfolio({ policies: 60, startTs: Date.UTC(2026, 0, 5), days: { driving: 3, health: dataDays, home: dataDays }, years: 50, seed: 7, imuHz: 10 }, dir)
const portfolio = readPortfolio(dir)
const models: Partial<Record<Subject, LoadedModel>> = Object.fromEntries(await Promise.all(builtInModels.map(async ({ definition }) =>
  [definition.subject, await loadModel(definition, fileURLToPath(new URL(`../scoring/models/${definition.file}`, import.meta.url)))])))
const plan = loadPlans(examplePlans)[0]!
const example = await backtest({ portfolio: dir, plans: [plan], models, dataDays })

/** The plan with every subject's rating changed by `change`. */
const variant = (version: string, change: (s: SubjectRating) => SubjectRating, extra: Partial<RatingPlan> = {}) =>
  checkPlan({ ...plan, ...extra, version, subjects: Object.fromEntries(Object.entries(plan.subjects).map(([k, s]) => [k, change(s)])) })
const of = (rows: readonly BacktestRow[], subject: Subject) => rows.filter((r) => r.subject === subject)
const close = (a: number, b: number) => Math.abs(a - b) < 1e-9
/** Premium-weighted mean of the groups' relative loss ratios: 1 when the groups partition the subject. */
const weightedBack = (groups: readonly RiskGroup[], lr: 'relativeLossRatio' | 'relativeDrawnLossRatio') => {
  const premium = groups.reduce((a, g) => a + g.meanPremium * g.policies, 0)
  return groups.reduce((a, g) => a + ((g.meanPremium * g.policies) / premium) * g[lr], 0)
}

t.test('every policy of every subject is rated once, with its exposure, within the limits, at basePremium × factor rounded', async (t) => {
  t.same(example.skipped, [])
  t.same(example.models, builtInModels.map((m) => modelId(m.definition)))
  t.equal(new Set(example.rows.map((r) => `${r.policyId}/${r.subject}`)).size, example.rows.length, 'no policy subject twice')
  for (const subject of subjects) {
    const sp = plan.subjects[subject]!
    const rows = of(example.rows, subject)
    t.same(rows.map((r) => r.policyId), portfolio[subject]!.map((r) => r.policyId), `${subject}: the portfolio's policies, in its order`)
    t.same(rows.filter((r) => !(r.score >= 0 && r.score <= 100)), [], `${subject}: scores 0–100`)
    // A new policy's first adjustment: the change and period limits apply against factor 1.
    const lo = Math.max(sp.factor.floor, sp.change.floor, sp.period.floor), hi = Math.min(sp.factor.cap, sp.change.cap, sp.period.cap)
    t.same(rows.filter((r) => r.factor < lo || r.factor > hi), [], `${subject}: factors within ${lo}–${hi}`)
    const offRounding = (r: BacktestRow) => Math.abs(r.premium - sp.basePremium * r.factor) > plan.rounding / 2 + 1e-9 || !close(Math.round(r.premium / plan.rounding), r.premium / plan.rounding)
    t.same(rows.filter(offRounding), [], `${subject}: premium = ${sp.basePremium} × factor, to the nearest ${plan.rounding}`)
    const exposure = (r: BacktestRow) => subject === 'driving' ? portfolio.driving!.find((p) => p.policyId === r.policyId)!.features.distance_km! : dataDays
    t.same(rows.filter((r) => r.credibility !== Math.round(credibility(sp, exposure(r)) * 1000) / 1000), [], `${subject}: credibility of the ${sp.credibility.exposure} observed`)
    t.same(rows.filter((r) => r.credibility === 0 && (r.factor !== 1 || r.limited !== null)), [], `${subject}: below the minimum exposure the factor stays 1`)
  }
  t.ok(of(example.rows, 'driving').some((r) => r.credibility === 0) && of(example.rows, 'driving').some((r) => r.credibility > 0), 'driving has policies below and above the minimum km')
})

t.test('pay-as-you-drive: the same driving over more km scores the same and costs more', async (t) => {
  // Every driving policy's exposure doubled (km, hours per day), its behaviour kept: a second portfolio folder.
  const more = join(dir, 'more')
  mkdirSync(more)
  for (const f of ['health.csv', 'home.csv']) copyFileSync(join(dir, f), join(more, f))
  const [head, ...lines] = readFileSync(join(dir, 'driving.csv'), 'utf8').trimEnd().split('\n')
  const cols = head!.split(',')
  const doubled = lines.map((l) => l.split(',').map((c, i) => (['distance_km', 'km_per_day', 'moving_h', 'hours_per_day'].includes(cols[i]!) && c !== '' ? String(Number(c) * 2) : c)).join(','))
  writeFileSync(join(more, 'driving.csv'), [head, ...doubled].join('\n') + '\n')
  const wide = variant('wide', (s) => ({ ...s, credibility: { ...s.credibility, full: 1, minimum: 0 }, change: { floor: 0.1, cap: 10 }, period: { ...s.period, floor: 0.1, cap: 10 } }))
  const [once, twice] = await Promise.all([dir, more].map(async (p) => of((await backtest({ portfolio: p, plans: [wide], models, dataDays })).rows, 'driving')))
  t.same(twice!.map((r) => r.score), once!.map((r) => r.score), 'the same scores: behaviour only')
  const moved = once!.filter((r, i) => r.credibility === 1 && r.exposureRelativity > wide.subjects.driving!.exposure!.floor && twice![i]!.exposureRelativity < wide.subjects.driving!.exposure!.cap)
  // Credibility is by km too: only fully credible policies keep the same weight when their km double.
  t.ok(moved.length > 0, `${moved.length} fully credible policies within the exposure limits`)
  t.same(moved.filter((r) => !(twice!.find((x) => x.policyId === r.policyId)!.exposureRelativity > r.exposureRelativity)), [], 'twice the km: a higher exposure relativity')
  // Factor and relativity are rounded to 3 decimals: their quotient is within half a percent.
  t.same(once!.filter((r, i) => r.credibility === 1 && Math.abs(twice![i]!.factor / twice![i]!.exposureRelativity / (r.factor / r.exposureRelativity) - 1) > 0.005), [], 'the behaviour part of the factor is the same')
})

t.test("each subject's summary adds back up to its rows", async (t) => {
  for (const s of example.subjects) {
    const rows = of(example.rows, s.subject)
    const n = rows.length
    t.equal(s.policies, n)
    const share = (keep: (r: BacktestRow) => boolean) => ({ policies: rows.filter(keep).length, share: rows.filter(keep).length / n })
    t.same(s.limited.any, share((r) => r.limited !== null), `${s.subject}: limited`)
    t.same(s.limited.floor, share((r) => r.limited?.bound === 'floor'), `${s.subject}: floored`)
    t.same(s.limited.cap, share((r) => r.limited?.bound === 'cap'), `${s.subject}: capped`)
    for (const [code, count] of Object.entries(s.limited.by)) t.same(count, share((r) => `${r.limited?.by} ${r.limited?.bound}` === code), `${s.subject}: ${code}`)
    t.same(s.belowMinimum, share((r) => r.credibility === 0), `${s.subject}: below the minimum exposure`)

    const premiums = rows.map((r) => r.premium).sort((a, b) => a - b)
    const p = s.premium
    t.same([p.min, p.max], [premiums[0], premiums.at(-1)])
    t.ok(close(p.mean, premiums.reduce((a, x) => a + x, 0) / n), `${s.subject}: mean premium`)
    t.ok(close(p.median, (premiums[n / 2 - 1]! + premiums[n / 2]!) / 2), `${s.subject}: median of ${n} premiums`)
    t.ok([p.min, p.p5, p.p25, p.median, p.p75, p.p95, p.max].every((x, i, xs) => i === 0 || x >= xs[i - 1]!), `${s.subject}: quantiles in order`)

    t.same(s.deciles.map((d) => [d.decile, d.policies]), Array.from({ length: 10 }, (_, i) => [i + 1, n / 10]), `${s.subject}: 10 deciles of equal count`)
    t.ok(s.deciles.every((d, i) => i === 0 || d.minScore >= s.deciles[i - 1]!.maxScore), `${s.subject}: decile 1 has the lowest scores`)
    for (const lr of ['relativeLossRatio', 'relativeDrawnLossRatio'] as const) {
      t.ok(close(weightedBack(s.deciles, lr), 1), `${s.subject}: deciles' ${lr} weighted by premium give 1 for the whole`)
      for (const g of s.groups) t.ok(close(weightedBack(g.values, lr), 1), `${s.subject}: ${g.attribute} groups' ${lr} weighted by premium give 1`)
    }
    for (const g of s.groups) {
      t.equal(g.values.reduce((a, v) => a + v.policies, 0), n, `${s.subject}: every policy in one ${g.attribute} group`)
      t.notOk(g.ratedByPlan, `${s.subject}: the example plan rates on no ${g.attribute}`)
    }
    t.same(s.groups.find((g) => g.attribute === 'persona')!.values.map((v) => v.value), [...new Set(rows.map((r) => r.persona))].sort())

    // The models rank risk: the three deciles the truth finds riskiest pay more than the three safest.
    const byTruth = [...s.deciles].sort((a, b) => a.expectedPerYear - b.expectedPerYear)
    const meanPremium = (ds: typeof byTruth) => ds.reduce((a, d) => a + d.meanPremium, 0) / ds.length
    t.ok(meanPremium(byTruth.slice(-3)) > meanPremium(byTruth.slice(0, 3)), `${s.subject}: riskiest deciles pay ${meanPremium(byTruth.slice(-3)).toFixed(2)}, safest ${meanPremium(byTruth.slice(0, 3)).toFixed(2)}`)
  }
})

t.test('a plan that only gives discounts (change cap 1) raises no premium and shows whom it capped', async (t) => {
  const discounts = variant('2-discounts', (s) => ({ ...s, change: { ...s.change, cap: 1 } }), { effectiveFrom: '2026-07-01T00:00:00Z' })
  const b = await backtest({ portfolio: dir, plans: [plan, discounts], models, dataDays })
  t.equal(b.plan, 'ubiq-example@2-discounts', 'by default the latest plan')
  t.same(b.rows.filter((r) => r.factor > 1), [], 'no factor above 1')
  for (const s of b.subjects) t.ok(s.limited.cap.share > 0, `${s.subject}: ${s.limited.cap.policies} policies capped`)
  t.ok(b.subjects.find((s) => s.subject === 'driving')!.limited.by['change cap'].policies > 0, 'driving held back by the change cap')
  // A discount is the same under both plans; every increase became no change.
  const changed = b.rows.filter((r, i) => {
    const before = example.rows[i]!
    return before.policyId !== r.policyId || (before.factor <= 1 ? r.factor !== before.factor : r.factor !== 1)
  })
  t.same(changed, [], 'discounts kept, increases gone')
})

t.test("a plan's rating attribute multiplies the base premium, and the report says the plan rates on it", async (t) => {
  const region = { inner: 1.2, outer: 0.9 }
  const b = await backtest({ portfolio: dir, plans: [variant('1-region', (s) => s, { attributes: { region } })], models, dataDays })
  t.same(b.rows.map((r) => r.factor), example.rows.map((r) => r.factor), 'the same factors')
  const off = b.rows.filter((r) => Math.abs(r.premium - plan.subjects[r.subject]!.basePremium * region[r.region as keyof typeof region] * r.factor) > plan.rounding / 2 + 1e-9)
  t.same(off, [], 'premium = base × region relativity × factor')
  t.ok(b.subjects.every((s) => s.groups.find((g) => g.attribute === 'region')!.ratedByPlan))
  t.match(backtestReport(b), /By region \(rated on by the plan\)/)
})

t.test('the report names plan, models, portfolio and policies, with a section per subject; the CSV has a line per row', async (t) => {
  const report = backtestReport(example)
  const first = report.split('\n')[0]!
  t.equal(first, `backtest of ubiq-example@1 with ${builtInModels.map((m) => modelId(m.definition)).join(', ')} on ${dir}: 60 policies, 180 policy subjects rated`)
  t.match(report, /rated as a new policy's first adjustment/)
  t.match(report, `Health and home scores rest on ${dataDays} days of data`)
  for (const subject of subjects) {
    t.match(report, new RegExp(`^${subject}: 60 policies; base premium ${plan.subjects[subject]!.basePremium} EUR`, 'm'))
  }
  t.equal(report.match(/^ {2}10 +6 /gm)?.length, 3, "each subject's decile 10 of 6 policies")
  t.match(report, /^ {2}premium \(EUR\) +[\d.]+ /m)

  const lines = backtestCsv(example).trimEnd().split('\n')
  t.equal(lines.length, example.rows.length + 1, 'a header and a line per row')
  t.equal(lines[0], 'policy_id,subject,region,persona,score,factor,exposure_relativity,premium,limited,credibility,expected_claims_per_year,claims,years')
  const parsed = lines.slice(1).map((l) => l.split(','))
  t.same(parsed.map((c) => [c[0], c[1], Number(c[5]), Number(c[6]), Number(c[7]), c[8]]), example.rows.map((r) => [r.policyId, r.subject, r.factor, r.exposureRelativity, r.premium, r.limited ? `${r.limited.by} ${r.limited.bound}` : '']))
  t.match(report, /^ {2}factor = behaviour × exposure relativity \(km a year, typical 10000; night share, typical 0.05; 0.6–1.6\)$/m, 'driving says how its factor is made')
  t.match(report, /^ {2}exposure relativity +[\d.]+ /m)
})

t.test('the same inputs give the same backtest, report and CSV', async (t) => {
  const again = await backtest({ portfolio: dir, plans: [plan], models, dataDays })
  t.same(again, example)
  t.equal(backtestReport(again), backtestReport(example))
  t.equal(backtestCsv(again), backtestCsv(example))
})

t.test('subjects without a model are left out with the reason; no plan in effect or a wrong model is refused', async (t) => {
  const drivingOnly = await backtest({ portfolio: dir, plans: [plan], models: { driving: models.driving }, dataDays })
  t.same(drivingOnly.subjects.map((s) => s.subject), ['driving'])
  t.match(backtestReport(drivingOnly), /Not backtested: health: no health model\.\nNot backtested: home: no home model\./)
  t.notMatch(backtestReport(drivingOnly), /days of data/, 'no health or home exposure to state')
  await t.rejects(backtest({ portfolio: dir, plans: [plan], models, at: Date.UTC(2025, 5, 1) }), { message: /no rating plan in effect at 2025-06-01T00:00:00.000Z; the earliest takes effect 2026-01-01T00:00:00Z/ })
  await t.rejects(backtest({ portfolio: dir, plans: [plan], models: { driving: models.home } }), { message: /home-frequency@1 scores home, not driving/ })
  await t.rejects(backtest({ portfolio: dir, plans: [plan], models: {} }), { message: /nothing to backtest: no driving model; no health model; no home model/ })
})
