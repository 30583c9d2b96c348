/**
 * The analyst's workbench in Chromium against the real pipeline (#23): on every analyst page, at
 * a phone's 390×844 and a desktop's 1400×900, no horizontal overflow; the period picker and a drag
 * across a chart change the charts' x range; UTC or local time, one format; updates without a
 * reload; the alert rules firing on induced ingest lag and rejections; and axe-core's WCAG 2.1 AA
 * checks on every page at both sizes.
 */
import mqtt from 'mqtt'
import t from 'tap'
import type { Page } from 'playwright-core'
import { makeFleet, runFleet } from '../edge-sim/index.ts'
import { topics } from '../ingest/index.ts'
import { examplePlans, loadPlans } from '../pricing/index.ts'
import { launchBrowser, screenshot } from '../test/browser.ts'
import { startServices, startTestPipeline } from '../test/harness.ts'
import { defaultAlertThresholds, type Alerts } from './alerts.ts'
import { accessibilityProblems } from './page-test-helpers.ts'

const HOUR = 3600_000
const PHONE = { width: 390, height: 844 }, DESKTOP = { width: 1400, height: 900 }
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** The x range chart #id draws, s (its box's data-x). */
const xRange = (page: Page, id: string) => page.locator(`#${id}`).evaluate((e) => (e as HTMLElement).dataset.x!.split(',').map(Number))
/** Waits until chart #id spans `seconds`, within `within` s. */
const untilSpan = (page: Page, id: string, seconds: number, within = 1) => page.waitForFunction(([id, seconds, within]) => {
  const [a, b] = (document.getElementById(id)?.dataset.x ?? '0,0').split(',').map(Number)
  return Math.abs(b! - a! - seconds) < within
}, [id, seconds, within] as const)

/**
 * A drag across chart #id from `a` to `b` (fractions of its width), as a mouse makes it. Events
 * made in the page: those Chromium gets from Playwright carry no movementX, and uPlot ignores a
 * move without movement while a button is down (a stray Chrome event, it says).
 */
const drag = (page: Page, id: string, a: number, b: number) => page.locator(`#${id} .u-over`).evaluate((over, [a, b]) => {
  // No named function in here: tsx would wrap it in a helper the page does not have.
  const r = over.getBoundingClientRect(), y = r.top + r.height / 2, step = ((b - a) * r.width) / 5
  over.dispatchEvent(new MouseEvent('mousedown', { clientX: r.left + a * r.width, clientY: y, button: 0, buttons: 1, bubbles: true }))
  for (let i = 1; i <= 5; i++) over.dispatchEvent(new MouseEvent('mousemove', { clientX: r.left + a * r.width + i * step, clientY: y, movementX: step, buttons: 1, bubbles: true }))
  document.dispatchEvent(new MouseEvent('mouseup', { clientX: r.left + b * r.width, clientY: y, button: 0, bubbles: true }))
}, [a, b] as const)

t.test('the workbench: time controls, zoom, zones, live pages, alert rules, phone and desktop', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(5, 31)
  const [plan] = loadPlans(examplePlans)
  const driving = { ...plan!.subjects.driving!, credibility: { exposure: 'distance_km' as const, full: 1000, minimum: 0 } }
  // Rejections fire above 2 % of the messages: the 100 spoilt ones below among about a thousand.
  // Drift with one policy a window: a figure from this small a fleet.
  const pipeline = await startTestPipeline(t, services, fleet, 'ubiq_workbench', { plans: [{ ...plan!, subjects: { driving } }], alertThresholds: { ...defaultAlertThresholds, rejectedPct: 2, driftMinPolicies: 1 } })
  const url = pipeline.url
  const analyst = pipeline.auth.issue({ role: 'analyst' }, HOUR)
  const headers = { authorization: `Bearer ${analyst}` }
  const rule = async (name: string) => ((await (await fetch(`${url}/api/v1/alerts`, { headers })).json()) as Alerts).rules.find((r) => r.name === name)!
  const until = async (name: string, state: string) => {
    while ((await rule(name)).state !== state) await pause(200)
  }

  const browser = await launchBrowser(t)
  const errors: string[] = []
  /** A new tab of `size` in `timezoneId`, on `path` with the analyst's token, loaded. */
  const open = async (path: string, size = DESKTOP, timezoneId = 'UTC') => {
    const page = await (await browser.newContext({ viewport: size, timezoneId })).newPage()
    page.on('pageerror', (err) => errors.push(`${path}: ${err.message}`))
    await page.goto(`${url}${path}${path.includes('#') ? '&' : '#'}token=${analyst}`)
    await page.locator('body[data-loaded]').waitFor()
    return page
  }

  // Before any message: nothing to judge.
  t.same((await (await fetch(`${url}/api/v1/alerts`, { headers })).json() as Alerts).rules.map((r) => [r.name, r.state]),
    ['ingest_lag', 'rejection_rate', 'score_drift_driving', 'score_drift_health', 'score_drift_home'].map((n) => [n, 'no_data']), 'every rule, without data')
  const portfolio = await open('/analyst')
  t.equal(await portfolio.locator('#alert-ingest_lag td').nth(1).textContent(), 'no data', 'the portfolio page shows the rules')
  const late = fleet[3]!
  const drill = await open(`/analyst/policy#policy=${late.policyId}`)
  t.match(await drill.locator('#status').textContent(), new RegExp(`^${late.policyId}, \\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2} UTC – now · updated`), 'the drill-down: until now')
  t.same(await drill.locator('#scores-table tbody td').allTextContents(), ['no scores in the period'])

  await t.test('ingest lag: trips uploaded three hours late fire the rule, on the page without a reload', async (t) => {
    // And one trip two days back: the reference window of score drift (the 7 days before the last 24 h).
    const runs = await Promise.all([
      runFleet({ mqttUrl: services.mqttUrl, fleet: fleet.slice(0, 3), startTs: Date.now() - 3 * HOUR, speedup: Infinity, samples: 300 }),
      runFleet({ mqttUrl: services.mqttUrl, fleet: [fleet[4]!], startTs: Date.now() - 48 * HOUR, speedup: Infinity, samples: 300 }),
    ])
    await Promise.all(runs.map((r) => r.done))
    await until('ingest_lag', 'firing')
    const lag = await rule('ingest_lag')
    t.ok(lag.value! > 2 * 3600, `median lag ${lag.value} s, above ${lag.threshold} s`)
    await portfolio.locator('#alert-ingest_lag td.firing').waitFor()
    t.equal(await portfolio.locator('#alert-ingest_lag td').nth(1).textContent(), 'firing', 'the open page shows it fire')
    const metrics = await (await fetch(`${url}/metrics`, { headers })).text()
    t.match(metrics, /^ubiq_alert_firing\{alert="ingest_lag"\} 1$/m, 'and so does /metrics')
    // The open page's premium table fills as the premiums come (#23: every page refreshes live).
    await portfolio.waitForFunction(() => !document.querySelector('#premiums-table td.muted') && document.querySelectorAll('#premiums-table tbody tr').length > 0)
    t.pass('premium changes arrive on the open portfolio page')
  })

  await t.test('score drift: the latest scores of the last day against the week before, from InfluxDB', async (t) => {
    // Read at most once a minute: the first reading came before any score.
    while ((await rule('score_drift_driving')).state === 'no_data') await pause(1000)
    const drift = await rule('score_drift_driving')
    t.ok(drift.value! >= 0, `PSI ${drift.value}: ${drift.state}`)
    t.match(await (await fetch(`${url}/metrics`, { headers })).text(), new RegExp(`^ubiq_score_drift_psi\\{subject="driving"\\} ${drift.value}$`, 'm'), 'on /metrics')
    t.equal((await rule('score_drift_home')).state, 'no_data', 'no home scores: no figure')
  })

  await t.test('rejections: spoilt messages fire the rule', async (t) => {
    const device = await mqtt.connectAsync(services.mqttUrl, { clientId: 'workbench-test' })
    t.teardown(() => device.endAsync())
    for (let i = 0; i < 100; i++) await device.publishAsync(topics.device(fleet[0]!.deviceId, 'obd'), 'not json', { qos: 1 })
    await until('rejection_rate', 'firing')
    const r = await rule('rejection_rate')
    t.ok(r.value! > 0.02 && r.value! < 0.5, `${(100 * r.value!).toFixed(1)} % rejected`)
    await portfolio.locator('#alert-rejection_rate td.firing').waitFor()
    t.match(await (await fetch(`${url}/metrics`, { headers })).text(), /^ubiq_alert_firing\{alert="rejection_rate"\} 1$/m)
  })

  await t.test('the drill-down refreshes: a new trip appears without a reload', async (t) => {
    const run = await runFleet({ mqttUrl: services.mqttUrl, fleet: [late], startTs: Date.now() - 2 * HOUR, speedup: Infinity, samples: 300 })
    await run.done
    await drill.locator('#scores-table tbody td', { hasText: 'driving' }).first().waitFor()
    t.ok((await drill.locator('#scores-table tbody tr').count()) > 0, "the policy's new score, on the page opened before it")
  })

  await t.test('the period picker sets the charts\' x range; a drag zooms; the address keeps it', async (t) => {
    for (const [value, seconds] of [['1h', 3600], ['6h', 6 * 3600], ['7d', 7 * 24 * 3600]] as const) {
      await portfolio.locator('#period').selectOption(value)
      await untilSpan(portfolio, 'chart-premiums', seconds)
      t.pass(`portfolio, ${value}: the premium chart spans ${seconds} s`)
    }
    const models = await open('/analyst/models?period=6h')
    await untilSpan(models, 'chart-drift-driving', 6 * 3600)
    await models.locator('#period').selectOption('1d')
    await untilSpan(models, 'chart-drift-driving', 24 * 3600)
    t.pass('models: the drift chart follows the picker')
    await drill.locator('#period').selectOption('6h')
    await untilSpan(drill, 'chart-readings', 6 * 3600)
    await untilSpan(drill, 'chart-scores', 6 * 3600)
    t.pass('drill-down: both charts follow the picker')
    // A year's link (from the portfolio) on the drill-down, which reads raw readings of 30 days at most.
    const year = await open(`/analyst/policy?period=1y#policy=${late.policyId}`)
    t.equal(await year.locator('#period').inputValue(), '30d', "a year's link: the drill-down's longest period")
    await untilSpan(year, 'chart-readings', 30 * 24 * 3600)
    await year.context().close()

    // A drag across the middle half of the premium chart: that half of the 6 hours.
    await portfolio.locator('#period').selectOption('6h')
    await untilSpan(portfolio, 'chart-premiums', 6 * 3600)
    const [from, to] = await xRange(portfolio, 'chart-premiums')
    await drag(portfolio, 'chart-premiums', 0.25, 0.75)
    await portfolio.waitForFunction(() => (document.getElementById('period') as HTMLSelectElement).value === 'zoom')
    // A pixel of the chart is some 20 s of the 6 hours.
    await untilSpan(portfolio, 'chart-premiums', (to! - from!) / 2, 60)
    const zoomed = await xRange(portfolio, 'chart-premiums')
    t.ok(Math.abs(zoomed[0]! - (from! + (to! - from!) / 4)) < 60, 'zoomed to the part dragged across')
    const address = new URL(portfolio.url())
    t.ok(address.searchParams.get('from') && address.searchParams.get('to'), `the zoom is in the address: ${address.search}`)
    t.equal(await portfolio.locator('nav a[href^="/analyst/models"]').getAttribute('href'), `/analyst/models${address.search}`, 'and the links to the other pages carry it')
    await portfolio.locator('#period').selectOption('1d')
    await untilSpan(portfolio, 'chart-premiums', 24 * 3600)
    t.notOk(new URL(portfolio.url()).searchParams.has('from'), 'a period picked ends the zoom')
  })

  await t.test('UTC or local time: one format in the charts, tables and status line', async (t) => {
    const india = await open('/analyst?period=1d', DESKTOP, 'Asia/Kolkata')
    t.equal(await india.locator('#zone').inputValue(), 'UTC', 'UTC by default')
    t.match(await india.locator('#status').textContent(), / UTC, every 5 s$/)
    await india.locator('#zone').selectOption('local')
    await india.waitForFunction(() => / GMT\+5:30, every 5 s$/.test(document.getElementById('status')!.textContent!))
    t.same([...new Set(await india.locator('.zone').allTextContents())], ['GMT+5:30'], 'every header names the zone')
    t.equal(new URL(india.url()).searchParams.get('zone'), 'local', 'kept in the address')
    await india.locator('#chart-premiums .u-over').hover()
    t.match(await india.locator('#chart-premiums .u-legend .u-series').first().locator('.u-value').textContent(), /^\d{4}-\d{2}-\d{2} \d{2}:\d{2} GMT\+5:30$/, "the chart's cursor time in the zone")
    const first = await india.locator('#premiums-table tbody tr td').first().textContent()
    const { buckets } = await (await fetch(`${url}/api/v1/portfolio/premiums?${new URLSearchParams({ from: new Date(Date.now() - 24 * HOUR).toISOString(), interval: '10m' })}`, { headers })).json() as { buckets: { time: string }[] }
    const local = new Date(Date.parse(buckets[0]!.time) + 5.5 * HOUR).toISOString()
    t.equal(first, `${local.slice(0, 10)} ${local.slice(11, 16)}`, 'the tables in the zone too')
  })

  await t.test('every analyst page fits a phone and a desktop, with no serious WCAG 2.1 AA violation', async (t) => {
    for (const size of [PHONE, DESKTOP]) {
      for (const path of ['/analyst', `/analyst/policy#policy=${fleet[0]!.policyId}`, '/analyst/models', '/analyst/backtest', '/analyst/ingest']) {
        const page = await open(path, size)
        const [scroll, client] = await page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth])
        t.ok(scroll <= client, `${path} at ${size.width}×${size.height}: ${scroll} px wide in ${client}`)
        t.same(await accessibilityProblems(page), [], `${path} at ${size.width}×${size.height}: no serious or critical WCAG 2.1 AA violation`)
        if (path === '/analyst') await screenshot(page, `portfolio-${size === PHONE ? 'phone' : 'desktop'}`)
        await page.context().close()
      }
    }
  })
  t.same(errors, [], 'no script errors on the pages')
})
