/**
 * The analyst's backtest page (issue #7) on a real pipeline: GET /api/v1/backtest gives what
 * `ubiq backtest`'s backtest() gives for the pipeline's plan and champion models over the reference
 * portfolio, each table as CSV, to analysts only, computed once per set of models; the page charts
 * it in a real headless Chromium and shows the same numbers.
 */
import t from 'tap'
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { backtest, backtestSummary, cachedBacktest, referencePortfolio, type BacktestSummary } from '../bin/backtest.ts'
import { examplePlans, loadPlans } from '../pricing/index.ts'
import { modelId } from '../scoring/index.ts'
import { launchBrowser } from '../test/browser.ts'
import { startServices, startTestPipeline } from '../test/harness.ts'

/** RFC 4180 with quoted cells (none here has a line break). */
const parseCsv = (text: string) => text.trimEnd().split('\r\n').map((line) => [...line.matchAll(/("(?:[^"]|"")*"|[^,]*)(,|$)/g)].slice(0, -1).map((m) => m[1]!.replace(/^"|"$/g, '').replace(/""/g, '"')))
const painted = (c: HTMLCanvasElement) => {
  const { data } = c.getContext('2d')!.getImageData(0, 0, c.width, c.height)
  let n = 0
  for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) n++
  return n
}

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
    const csv = async (table: string) => {
      const r = await get(`/api/v1/backtest?format=csv&table=${table}`, analyst)
      t.equal(r.status, 200, table)
      t.match(r.headers.get('content-type'), /^text\/csv/)
      t.equal(r.headers.get('content-disposition'), `attachment; filename="backtest-${table}.csv"`)
      const [head, ...rows] = parseCsv(await r.text())
      return rows.map((cells) => Object.fromEntries(head!.map((h, j) => [h, cells[j]!])))
    }
    const deciles = await csv('deciles')
    t.same(deciles.map((d) => [d.subject, Number(d.decile), Number(d.policies), Number(d.relative_loss_ratio), Number(d.mean_premium)]),
      summary.subjects.flatMap((s) => s.deciles.map((d) => [s.subject, d.decile, d.policies, d.relativeLossRatio, d.meanPremium])), 'deciles: loss ratios and premiums')
    const limits = await csv('limits')
    t.same(limits.map((l) => [l.subject, l.limit, Number(l.policies), Number(l.share)]), summary.subjects.flatMap((s) => [
      [s.subject, 'below minimum exposure', s.belowMinimum.policies, s.belowMinimum.share],
      [s.subject, 'any limit', s.limited.any.policies, s.limited.any.share],
      [s.subject, 'any floor', s.limited.floor.policies, s.limited.floor.share],
      [s.subject, 'any cap', s.limited.cap.policies, s.limited.cap.share],
      ...Object.entries(s.limited.by).map(([code, c]) => [s.subject, code, c.policies, c.share]),
    ]), 'limits: policies and shares held')
    const groups = await csv('groups')
    t.same(groups.map((g) => [g.subject, g.attribute, g.value, Number(g.policies), Number(g.premium_relative), Number(g.expected_relative)]),
      summary.subjects.flatMap((s) => s.groups.flatMap((g) => g.values.map((v) => [s.subject, g.attribute, v.value, v.policies, v.premiumRelative, v.expectedRelative]))), 'groups: premium against true frequency')
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
    t.same((await other).models, ['driving-frequency@2'])
    t.same(await first, summary, 'and the same numbers as backtest()')
  })

  await t.test('analysts only; bad queries are named', async (t) => {
    const policyholder = pipeline.auth.issue({ role: 'policyholder', policyId: 'pol-000001' }, 3600_000)
    for (const path of ['/api/v1/backtest', '/api/v1/backtest?format=csv&table=deciles']) {
      t.equal((await get(path)).status, 401, `${path} without a token: 401`)
      const forbidden = await get(path, policyholder)
      t.equal(forbidden.status, 403, `${path} with a policyholder's token: 403`)
      t.match(await forbidden.json(), { error: 'forbidden', message: /analyst/ })
    }
    for (const [path, message] of [['/api/v1/backtest?colour=red', /additional properties \(colour\)/], ['/api/v1/backtest?format=csv', /table=/], ['/api/v1/backtest?format=csv&table=rows', /table/]] as const) {
      const r = await get(path, analyst)
      t.equal(r.status, 400, `${path}: 400`)
      t.match(await r.json(), { error: 'bad_request', message }, path)
    }
    const doc = (await (await get('/api/v1/openapi.json')).json()) as { paths: Record<string, { get?: { parameters?: { name: string }[] } }> }
    t.same(doc.paths['/api/v1/backtest']?.get?.parameters?.map((p) => p.name).sort(), ['format', 'table'], 'in the OpenAPI document')
  })

  await t.test('the page charts the backtest and shows its numbers', async (t) => {
    const browser = await launchBrowser(t)
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } })
    const errors: string[] = []
    page.on('pageerror', (err) => errors.push(err.message))
    await page.goto(`${url}/analyst/backtest#token=${analyst}`)
    await page.locator('body[data-loaded]').waitFor()
    t.notOk(page.url().includes('token'), 'the token leaves the address bar')
    for (const id of ['chart-deciles', 'chart-groups']) t.ok(await page.locator(`#${id} .uplot canvas`).evaluate(painted) > 0, `${id}: drawn`)

    const cells = (table: string) => page.locator(`#${table} tbody tr`).evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((c) => c.textContent)))
    const num = (x: number, digits: number) => (Number.isFinite(x) ? x.toFixed(digits) : '–')
    t.same(await cells('deciles-table'), summary.subjects.flatMap((s) => s.deciles.map((d) => [
      s.subject, String(d.decile), String(d.policies), `${d.minScore.toFixed(1)}–${d.maxScore.toFixed(1)}`, `${d.meanPremium.toFixed(2)} ${summary.currency}`, num(d.expectedPerYear, 4), num(d.relativeLossRatio, 2), num(d.relativeDrawnLossRatio, 2),
    ])), 'deciles')
    const pct = (c: { policies: number; share: number }) => `${c.policies} (${(100 * c.share).toFixed(1)}%)`
    t.same(await cells('limits-table'), [
      ['below minimum exposure', ...summary.subjects.map((s) => pct(s.belowMinimum))],
      ['any limit', ...summary.subjects.map((s) => pct(s.limited.any))],
      ['any floor', ...summary.subjects.map((s) => pct(s.limited.floor))],
      ['any cap', ...summary.subjects.map((s) => pct(s.limited.cap))],
      ...Object.keys(summary.subjects[0]!.limited.by).map((code) => [code, ...summary.subjects.map((s) => pct(s.limited.by[code as keyof typeof s.limited.by]))]),
    ], 'shares held at limits, per subject')
    t.same(await cells('groups-table'), summary.subjects.flatMap((s) => s.groups.flatMap((g) => g.values.map((v) => [
      s.subject, `${g.attribute}${g.ratedByPlan ? ' (rated)' : ''}`, v.value, String(v.policies), num(v.premiumRelative, 3), num(v.expectedRelative, 3), num(v.relativeLossRatio, 2),
    ]))), 'fairness: premium against true frequency by group')

    // The CSV button downloads the server's CSV.
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('button[data-csv="groups"]').click()])
    t.equal(download.suggestedFilename(), 'backtest-groups.csv')
    const served = await (await get('/api/v1/backtest?format=csv&table=groups', analyst)).text()
    t.equal(readFileSync((await download.path())!, 'utf8'), served, 'the download is the server\'s CSV')

    await page.locator('#subject').selectOption('home')
    t.ok(await page.locator('#chart-groups .uplot canvas').evaluate(painted) > 0, 'the fairness chart follows the cover picked')

    const shots = process.env.UBIQ_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), 'ubiq-shots-'))
    mkdirSync(shots, { recursive: true })
    await page.locator('#subject').selectOption('driving')
    await page.screenshot({ path: join(shots, 'backtest.png'), fullPage: true })

    const stranger = await browser.newPage()
    await stranger.goto(`${url}/analyst/backtest#token=${pipeline.auth.issue({ role: 'policyholder', policyId: 'pol-000001' }, 60_000)}`)
    await stranger.locator('#signin').waitFor()
    t.equal(await stranger.locator('#status').textContent(), 'not an analyst token')
    t.equal(await stranger.locator('.uplot').count(), 0, 'no chart without an analyst token')
    t.same(errors, [], 'no script errors on the page')
  })
})
