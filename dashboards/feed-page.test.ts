/**
 * The live score page in a real headless Chromium, against the real pipeline fed by edge-sim:
 * what the page shows is what scoring and pricing produced for the policy it shows.
 */
import t from 'tap'
import { mkdirSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { makeFleet, runFleet } from '../edge-sim/index.ts'
import { firstMatch, startServices, startTestPipeline } from '../test/harness.ts'
import { launchBrowser } from '../test/browser.ts'

t.test('the feed page shows its policy\'s score, premium and reasons, and follows the policy picker', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(3, 11)
  const pipeline = await startTestPipeline(t, services, fleet, 'ubiq_page')
  const startTs = Date.now() - 3600_000
  const lastTs = startTs + 599_000
  const finals = fleet.map((v) => Promise.all([
    firstMatch(pipeline.scores$, (s) => s.policyId === v.policyId && s.window.to === lastTs),
    firstMatch(pipeline.premiums$, (p) => p.policyId === v.policyId && p.effectiveFrom === new Date(lastTs).toISOString()),
  ]))
  const run = await runFleet({ mqttUrl: services.mqttUrl, fleet, startTs, speedup: Infinity, samples: 600 })
  await run.done
  const results = await Promise.all(finals)
  const [cautiousScore] = results[0]! // the fleet cycles cautious, average, aggressive
  const [aggrScore, aggrPremium] = results[2]!

  const browser = await launchBrowser(t)
  const page = await browser.newPage({ viewport: { width: 900, height: 640 } })
  const errors: string[] = []
  page.on('pageerror', (err) => errors.push(err.message))
  await page.goto(`${pipeline.url}/?policy=${aggrScore.policyId}`)
  await page.locator('#status', { hasText: `live for ${aggrScore.policyId}` }).waitFor()
  await page.locator('#score', { hasText: aggrScore.value.toFixed(1) }).waitFor()
  t.equal(await page.locator('#score').textContent(), aggrScore.value.toFixed(1), 'the score is the pipeline\'s final score')
  t.equal(await page.locator('#factor').textContent(), `×${aggrPremium.factor.toFixed(3)}`, 'the premium factor is the published one')
  t.same(await page.locator('#reasons li').allTextContents(), aggrScore.reasons.map((r) => r.text), 'the reasons, in order, in plain words')
  t.same(await page.locator('#policy option').allTextContents(), fleet.map((v) => v.policyId), 'the picker lists the policies')
  // UBIQ_SCREENSHOTS=docs/img npm test refreshes the README's picture; otherwise it goes to a temp folder.
  const shots = process.env.UBIQ_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), 'ubiq-shots-'))
  mkdirSync(shots, { recursive: true })
  await page.screenshot({ path: join(shots, 'feed.png') })

  await page.locator('#policy').selectOption(cautiousScore.policyId)
  await page.locator('#status', { hasText: `live for ${cautiousScore.policyId}` }).waitFor()
  await page.locator('#score', { hasText: cautiousScore.value.toFixed(1) }).waitFor()
  t.equal(await page.locator('#score').textContent(), cautiousScore.value.toFixed(1), 'picking another policy shows that policy\'s score')
  t.same(errors, [], 'no script errors on the page')
})
