/**
 * The analyst's backtest page (issue #7) on a real pipeline: GET /api/v1/backtest gives what
 * `ubiq backtest`'s backtest() gives for the pipeline's plan and champion models over the reference
 * portfolio, each table as CSV, to analysts only, computed once per set of models; the page charts
 * it in a real headless Chromium and shows the same numbers.
 */
import t from 'tap'
import { backtest, backtestSummary, cachedBacktest, examplePlans, loadPlans, type BacktestSummary } from '../pricing/index.ts'
import { modelId, referencePortfolio } from '../scoring/index.ts'
import { cells, downloadCsv, openBrowser, painted, screenshot } from '../test/browser.ts'
import { startServices, startTestPipeline } from '../test/harness.ts'
import { analystsOnly, fetchCsv, openApi, refused } from './page-test-helpers.ts'
import { csvNumber } from './tables.ts'

t.test('the backtest route and page: backtest() over the reference portfolio with the pipeline\'s plan and champions', async (t) => {
  const services = await startServices(t)
  const pipeline = await startTestPipeline(t, services, [], 'ubiq_backtest')
  const url = pipeline.url
  const analyst = pipeline.auth.issue({ role: 'analyst' }, 3600_000)
  const get = (path: string, tok?: string) => fetch(`${url}${path}`, tok ? { headers: { authorization: `Bearer ${tok}` } } : {})

  const started = performance.now()
  const direct = await backtest({ portfolio: referencePortfolio, plans: loadPlans(examplePlans), models: pipeline.models().champions })
  t.comment(`backtest of the reference portfolio: ${(performance.now() - started).toFixed(0)} ms (${direct.rows.length} policy subjects)`)
  const summary: BacktestSummary = backtestSummary(direct)
  // JSON turns NaN into null: the expected body is the summary as JSON would carry it.
  const expected = JSON.parse(JSON.stringify(summary)) as BacktestSummary

  const res = await get('/api/v1/backtest', analyst)
  t.equal(res.status, 200)
  const body = (await res.json()) as BacktestSummary
  t.same(body, expected, 'the route gives backtest() called directly, without the per-policy rows')
  t.notOk('rows' in body, 'no per-policy rows')
  t.same(body.models, Object.values(pipeline.models().champions).map((m) => modelId(m.definition)), "the pipeline's champions")
  t.equal(body.subjects.length, 3, 'every subject backtested')

  await t.test('every table as CSV, the numbers of the summary', async (t) => {
    // A number as the CSV has it (to 12 significant digits), read back.
    const asCsv = <T>(x: T) => (typeof x === 'number' ? Number(csvNumber(x)) : x)
    const csv = async (table: string) => {
      const [head, ...rows] = await fetchCsv(t, url, analyst, `/api/v1/backtest?format=csv&table=${table}`, `backtest-${table}`)
      return rows.map((cells) => Object.fromEntries(head!.map((h, j) => [h, cells[j]!])))
    }
    const deciles = await csv('deciles')
    t.same(deciles.map((d) => [d.subject, Number(d.decile), Number(d.policies), Number(d.relative_loss_ratio), Number(d.mean_premium)]),
      summary.subjects.flatMap((s) => s.deciles.map((d) => [s.subject, d.decile, d.policies, d.relativeLossRatio, d.meanPremium].map(asCsv))), 'deciles: loss ratios and premiums')
    const limits = await csv('limits')
    t.same(limits.map((l) => [l.subject, l.limit, Number(l.policies), Number(l.share)]), summary.subjects.flatMap((s) => [
      [s.subject, 'below minimum exposure', s.belowMinimum.policies, s.belowMinimum.share],
      [s.subject, 'any limit', s.limited.any.policies, s.limited.any.share],
      [s.subject, 'any floor', s.limited.floor.policies, s.limited.floor.share],
      [s.subject, 'any cap', s.limited.cap.policies, s.limited.cap.share],
      ...Object.entries(s.limited.by).map(([code, c]) => [s.subject, code, c.policies, c.share]),
    ].map((row) => row.map(asCsv))), 'limits: policies and shares held')
    const groups = await csv('groups')
    t.same(groups.map((g) => [g.subject, g.attribute, g.value, Number(g.policies), Number(g.premium_relative), Number(g.expected_relative)]),
      summary.subjects.flatMap((s) => s.groups.flatMap((g) => g.values.map((v) => [s.subject, g.attribute, v.value, v.policies, v.premiumRelative, v.expectedRelative].map(asCsv)))), 'groups: premium against true frequency')
    t.ok(groups.some((g) => g.attribute === 'persona') && groups.some((g) => g.attribute === 'region'), 'by region and by persona')
  })

  await t.test('computed once per set of models', async (t) => {
    let models = pipeline.models().champions
    const run = cachedBacktest({ portfolio: referencePortfolio, plans: loadPlans(examplePlans) }, () => models)
    const first = run()
    t.equal(run(), first, 'the same models: the same run')
    models = { driving: models.driving }
    const other = run()
    t.not(other, first, 'other models: a new run')
    t.same((await other).models, ['driving-frequency@3'])
    t.same(await first, summary, 'and the same numbers as backtest()')
  })

  await t.test('analysts only; bad queries are named', async (t) => {
    const policyholder = pipeline.auth.issue({ role: 'policyholder', policyId: 'pol-000001' }, 3600_000)
    await analystsOnly(t, url, ['/api/v1/backtest', '/api/v1/backtest?format=csv&table=deciles'], policyholder)
    await refused(t, url, analyst, [['/api/v1/backtest?colour=red', /additional properties \(colour\)/], ['/api/v1/backtest?format=csv', /table=/], ['/api/v1/backtest?format=csv&table=rows', /table/]])
    t.same((await openApi(url))('/api/v1/backtest').parameters.sort(), ['format', 'table'], 'in the OpenAPI document')
  })

  await t.test('the page charts the backtest and shows its numbers', async (t) => {
    const { page, newPage, errors } = await openBrowser(t)
    await page.goto(`${url}/analyst/backtest#token=${analyst}`)
    await page.locator('body[data-loaded]').waitFor()
    t.notOk(page.url().includes('token'), 'the token leaves the address bar')
    for (const id of ['chart-deciles', 'chart-groups']) t.ok((await painted(page, id)) > 0, `${id}: drawn`)

    const num = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : '–')
    t.same(await cells(page, 'deciles-table'), summary.subjects.flatMap((s) => s.deciles.map((d) => [
      s.subject, String(d.decile), String(d.policies), `${d.minScore.toFixed(1)}–${d.maxScore.toFixed(1)}`, `${d.meanPremium.toFixed(2)} ${summary.currency}`, num(d.expectedPerYear, 4), num(d.relativeLossRatio, 2), num(d.relativeDrawnLossRatio, 2),
    ])), 'deciles')
    const pct = (c: { policies: number; share: number }) => `${c.policies} (${(100 * c.share).toFixed(1)}%)`
    t.same(await cells(page, 'limits-table'), [
      ['below minimum exposure', ...summary.subjects.map((s) => pct(s.belowMinimum))],
      ['any limit', ...summary.subjects.map((s) => pct(s.limited.any))],
      ['any floor', ...summary.subjects.map((s) => pct(s.limited.floor))],
      ['any cap', ...summary.subjects.map((s) => pct(s.limited.cap))],
      ...Object.keys(summary.subjects[0]!.limited.by).map((code) => [code, ...summary.subjects.map((s) => pct(s.limited.by[code as keyof typeof s.limited.by]))]),
    ], 'shares held at limits, per subject')
    t.same(await cells(page, 'groups-table'), summary.subjects.flatMap((s) => s.groups.flatMap((g) => g.values.map((v) => [
      s.subject, `${g.attribute}${g.ratedByPlan ? ' (rated)' : ''}`, v.value, String(v.policies), num(v.premiumRelative, 3), num(v.expectedRelative, 3), num(v.relativeLossRatio, 2),
    ]))), 'fairness: premium against true frequency by group')

    // The CSV button downloads the server's CSV.
    const download = await downloadCsv(page, 'groups')
    t.equal(download.name, 'backtest-groups.csv')
    const served = await (await get('/api/v1/backtest?format=csv&table=groups', analyst)).text()
    t.equal(download.text, served, 'the download is the server\'s CSV')

    await page.locator('#subject').selectOption('home')
    t.ok((await painted(page, 'chart-groups')) > 0, 'the fairness chart follows the cover picked')

    await page.locator('#subject').selectOption('driving')
    await screenshot(page, 'backtest')

    const stranger = await newPage()
    await stranger.goto(`${url}/analyst/backtest#token=${pipeline.auth.issue({ role: 'policyholder', policyId: 'pol-000001' }, 60_000)}`)
    await stranger.locator('#signin').waitFor()
    t.equal(await stranger.locator('#status').textContent(), 'not an analyst token')
    t.equal(await stranger.locator('.uplot').count(), 0, 'no chart without an analyst token')
    t.same(errors, [], 'no script errors on the page')
  })
})
