/**
 * The live score page in a real headless Chromium, against the real pipeline fed by edge-sim:
 * what the page shows is what scoring and pricing produced for the policy it shows.
 */
import t from 'tap'
import type { Page } from 'playwright-core'
import { makeFleet, runFleet } from '../edge-sim/index.ts'
import { connectInflux } from '../ingest/index.ts'
import { firstMatch, keepForever, startServices, startTestPipeline } from '../test/harness.ts'
import { openBrowser, screenshot } from '../test/browser.ts'
import { premiumLine, type WhatIf } from '../pricing/index.ts'
import { scoreLine } from '../scoring/index.ts'
import type { Summary } from './coaching.ts'
import { accessibilityProblems } from './page-test-helpers.ts'

/** The elements (by id or tag) reaching beyond `width`: none, and nothing scrolls sideways. */
const overflowing = (page: Page, width: number) => page.evaluate((w) => [document.scrollingElement!.scrollWidth > w ? ['the page'] : [],
  [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > w).map((e) => e.id || e.tagName)].flat(), width)

interface Trip { from: string; distance_km: number; duration_s: number; max_speed_kmh: number; events: { type: string; evidence: { unit: string } }[] }

t.test('the policyholder page: scores, premium and reasons live, trips, premium history and the simulator; an analyst picks any policy', async (t) => {
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
  // Ten more drivers' scores (five below the aggressive driver's), for where the policy stands; and
  // the aggressive driver's premium twice more before, unchanged, as a quiet week repeats it.
  const influx = await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_page', retentionDays: keepForever })
  t.teardown(() => influx.close())
  const peers = Array.from({ length: 10 }, (_, i) => ({ ...aggrScore, policyId: `peer-${i}`, value: aggrScore.value + (i < 5 ? -1 - i : 1 + i) }))
  const repeated = [1, 2].map((k) => ({ ...aggrPremium, effectiveFrom: new Date(Date.parse(aggrPremium.effectiveFrom) - k * 3600_000).toISOString() }))
  influx.write([...peers.map(scoreLine), ...repeated.map(premiumLine)])
  await influx.flush()

  const { page, newPage, errors } = await openBrowser(t)
  // The policyholder's link: the token in the fragment, and the page for that policy alone.
  await page.goto(`${pipeline.url}/#token=${pipeline.auth.issue({ role: 'policyholder', policyId: aggrScore.policyId }, 3600_000)}`)
  await page.locator('#status', { hasText: `live for ${aggrScore.policyId}` }).waitFor()
  await page.locator(`#score-driving[data-value="${aggrScore.value.toFixed(1)}"]`).waitFor()
  await page.locator('#factor-driving').waitFor()
  t.equal(await page.locator('#factor-driving').textContent(), `×${aggrPremium.factor.toFixed(3)}`, 'the premium factor is the published one')
  t.same(await page.locator('#reasons-driving li').allTextContents(), aggrPremium.reasons.map((r) => r.text), 'the premium\'s reasons, in order, in plain words')
  // The summary, as the API gives it: the page shows its words.
  const summary = await (await fetch(`${pipeline.url}/api/v1/policies/${aggrScore.policyId}/summary`, { headers: { authorization: `Bearer ${pipeline.auth.issue({ role: 'policyholder', policyId: aggrScore.policyId }, 60_000)}` } })).json() as Summary
  const summed = summary.subjects.find((x) => x.subject === 'driving')!
  await page.locator('#tips-driving li').first().waitFor()
  t.same(await page.locator('#tips-driving li').allTextContents(), summed.tips.filter((x) => x.points < 0).map((x) => x.text), "the score's reasons that cost points as tips, in the API's words")
  t.same(await page.locator('#praise-driving li').allTextContents(), summed.tips.filter((x) => x.points >= 0).map((x) => x.text), 'and those that earn points, folded away')
  t.ok(summed.tips.some((x) => x.points < 0), 'the aggressive driver has something to improve')
  t.ok(summed.tips.some((x) => /^You .*; most drivers .*\. [A-Z]/.test(x.text)), `a reason in words with a tip: ${summed.tips[0]?.text}`)
  const others = [...results.map(([s]) => s), ...peers].filter((s) => s.policyId !== aggrScore.policyId)
  const below = others.filter((s) => s.value < aggrScore.value).length
  t.equal(await page.locator('#standing-driving').textContent(), `Better than ${Math.floor((100 * below) / others.length)}% of drivers`, 'where the policy stands among the 12 others')
  t.equal(await page.locator('#trend-driving circle.week').count(), summed.weeks.length, 'the weekly trend, a point a week')
  t.ok(summed.outlook && summed.outlook.text.startsWith('After 50 more km driven like your last ones, your premium would be '), `the outlook: ${summed.outlook?.text}`)
  t.equal(await page.locator('#outlook-driving').textContent(), summed.outlook!.text, 'on the page')
  t.ok(await page.locator('#alerts-card').isVisible(), 'alerts can be turned on')
  t.notOk(page.url().includes('token'), 'the token leaves the address bar')
  const icon = await fetch(`${pipeline.url}/favicon.ico`)
  t.match([icon.status, icon.headers.get('content-type'), await icon.text()], [200, /^image\/svg\+xml/, /^<svg /], 'an icon, not a 404 (#23)')
  t.notOk(await page.locator('#picker').isVisible(), 'a policyholder picks no other policy')
  // Trips and premium history come from InfluxDB through the REST API.
  await page.locator('#trips tr td', { hasText: ' km' }).first().waitFor()
  t.equal(await page.locator('#trips tr').count(), 1, 'one trip: the one the fleet drove')
  // The trip itself, as the API has it: what the price reads from it, and its events on a timeline, in words with units.
  const analystToken = pipeline.auth.issue({ role: 'analyst' }, 3600_000)
  const { trips: [trip] } = await (await fetch(`${pipeline.url}/api/v1/policies/${aggrScore.policyId}/trips`, { headers: { authorization: `Bearer ${analystToken}` } })).json() as { trips: Trip[] }
  await page.locator('#trip-facts dd').first().waitFor()
  const facts = Object.fromEntries(await page.locator('#trip-facts div').evaluateAll((ds) => ds.map((d) => [d.querySelector('dt')!.textContent, d.querySelector('dd')!.textContent])))
  t.match(facts, {
    Distance: `${trip!.distance_km.toFixed(1)} km`, Duration: `${Math.floor(trip!.duration_s / 60)} min ${Math.round(trip!.duration_s % 60)} s`, 'Top speed': `${Math.round(trip!.max_speed_kmh)} km/h`,
    'At night': /^\d+ (s|min)/, Speeding: /^\d+ (s|min)/, 'Phone in hand': /^\d+ (s|min)/,
  }, 'the trip\'s distance, real duration, top speed, night, speeding and phone time')
  t.ok(trip!.events.length > 0, 'the aggressive driver\'s trip has events')
  t.equal(await page.locator('#trip-timeline rect.mark').count(), trip!.events.length, 'each event a mark on the trip\'s timeline')
  const lines = await page.locator('#trip-events li').allTextContents()
  t.equal(lines.length, trip!.events.length, 'each event in words')
  t.ok(trip!.events.some((e) => e.evidence.unit === 'm/s²'), 'the API gives each event\'s unit')
  t.ok(lines.every((l, i) => !l.includes('_') && (trip!.events[i]!.evidence.unit !== 'm/s²' || /peak \d+(\.\d)? m\/s², threshold \d+(\.\d)? m\/s²/.test(l))), `with units: ${lines[0]}`)
  await page.locator('#premiums tr td', { hasText: aggrPremium.premium.toFixed(2) }).first().waitFor()
  t.match(await page.locator('#premiums tr').first().textContent(), `×${aggrPremium.factor.toFixed(3)}`, 'the premium history starts with the latest change')
  t.match(await page.locator('#premiums tr td').first().textContent(), /^\d{4}-\d\d-\d\d \d\d:\d\d \S+ to \d{4}-\d\d-\d\d \d\d:\d\d \S+ \(3 times\)$/, 'the same premium three times in a row is one row, from when to when')
  // The simulator: half the harsh braking, through the same model and plan as the API.
  t.same(await page.locator('#wi-feature option').evaluateAll((os) => os.map((o) => [(o as HTMLOptionElement).value, o.textContent])), summed.changes.map((c) => [c.feature, c.label]),
    'it offers what the model prices, in words, not every number the score carries')
  t.same(await page.locator('#wi-subject option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value)), ['driving'], 'only the covers the policy has (cars alone: driving)')
  await page.locator('#wi-feature').selectOption('harsh_braking_per_hour')
  await page.locator('#wi-change').selectOption('0.5')
  // By keyboard: from the last choice, Tab to the button and Enter.
  await page.locator('#wi-change').focus()
  await page.keyboard.press('Tab')
  t.equal(await page.evaluate(() => document.activeElement?.textContent), 'Show my premium', 'Tab reaches the button')
  await page.keyboard.press('Enter')
  const expected = await (await fetch(`${pipeline.url}/api/v1/policies/${aggrScore.policyId}/what-if/driving`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${pipeline.auth.issue({ role: 'analyst' }, 60_000)}` }, body: JSON.stringify({ scale: { harsh_braking_per_hour: 0.5 } }),
  })).json() as WhatIf
  await page.locator('#wi-answer', { hasText: `premium ${expected.changed.premium.toFixed(2)}` }).waitFor()
  t.match(await page.locator('#wi-answer').textContent(), `score ${expected.changed.score.toFixed(1)}`, 'the simulator shows the API\'s answer')
  // Accessible and within the screen on a desktop (1400×900).
  await page.setViewportSize({ width: 1400, height: 900 })
  t.same(await accessibilityProblems(page), [], 'no serious or critical WCAG 2.1 AA violation at 1400×900')
  t.same(await overflowing(page, 1400), [], 'nothing wider than the screen at 1400×900')
  await screenshot(page, 'feed')

  // Installable: a manifest with icons, and a service worker that keeps the shell, never personal data.
  const manifest = await (await fetch(`${pipeline.url}/manifest.webmanifest`)).json() as { start_url: string; display: string; icons: { src: string; type: string }[] }
  t.match(manifest, { start_url: '/', display: 'standalone' })
  for (const icon of manifest.icons) t.equal((await fetch(`${pipeline.url}${icon.src}`)).headers.get('content-type'), icon.type, `the icon ${icon.src}`)
  t.equal(await page.evaluate(async () => (await navigator.serviceWorker.ready).active?.scriptURL), `${pipeline.url}/sw.js`, 'the service worker is active')
  const devtools = await page.context().newCDPSession(page)
  // Playwright's pages are incognito, where no app installs: any other error (manifest, icons, service worker) would be the app's.
  t.same((await devtools.send('Page.getInstallabilityErrors')).installabilityErrors.filter((e) => e.errorId !== 'in-incognito'), [], 'Chromium finds nothing else that keeps it from being installed')
  const cached = async () => page.evaluate(async () => (await Promise.all((await caches.keys()).map(async (k) => (await (await caches.open(k)).keys()).map((r) => new URL(r.url).pathname)))).flat().sort())
  await page.reload()
  await page.locator('#tips-driving li').first().waitFor()
  t.same(await cached(), ['/', '/assets/words.js', '/icon.svg', '/manifest.webmanifest'], 'it caches the shell, and no API answer (scores, trips, premiums)')
  // Offline, the app still opens: the shell from the cache, saying it cannot reach the feed.
  await page.context().setOffline(true)
  await page.reload()
  t.equal(await page.title(), 'ubiq · my scores', 'the shell opens offline')
  await page.context().setOffline(false)

  // On a phone (390×844): one column, nothing wider than the screen, the premium's "why" on it.
  const phone = await newPage()
  await phone.setViewportSize({ width: 390, height: 844 })
  await phone.goto(`${pipeline.url}/#token=${pipeline.auth.issue({ role: 'policyholder', policyId: aggrScore.policyId }, 3600_000)}`)
  await phone.locator('#factor-driving').waitFor()
  await phone.locator('#premiums tr td', { hasText: aggrPremium.premium.toFixed(2) }).first().waitFor()
  await phone.locator('#tips-driving li').first().waitFor()
  t.same(await accessibilityProblems(phone), [], 'no serious or critical WCAG 2.1 AA violation at 390×844')
  t.same(await overflowing(phone, 390), [], 'nothing wider than the screen at 390×844, the premium\'s reasons included')
  const [driving, health] = await Promise.all(['#card-driving', '#card-health'].map((c) => phone.locator(c).boundingBox()))
  t.ok(driving!.x === health!.x && health!.y >= driving!.y + driving!.height, 'the cards are stacked')
  await screenshot(phone, 'feed-phone')

  // An analyst's link: every policy in the picker.
  const analyst = await newPage()
  await analyst.goto(`${pipeline.url}/?policy=${aggrScore.policyId}#token=${pipeline.auth.issue({ role: 'analyst' }, 3600_000)}`)
  await analyst.locator('#status', { hasText: `live for ${aggrScore.policyId}` }).waitFor()
  t.same(await analyst.locator('#policy option').allTextContents(), [...fleet.map((v) => v.policyId), ...peers.map((p) => p.policyId)].sort(), 'the picker lists the policies')
  await analyst.locator('#policy').selectOption(cautiousScore.policyId)
  await analyst.locator('#status', { hasText: `live for ${cautiousScore.policyId}` }).waitFor()
  await analyst.locator(`#score-driving[data-value="${cautiousScore.value.toFixed(1)}"]`).waitFor()
  t.equal(await analyst.locator('#score-driving').getAttribute('data-value'), cautiousScore.value.toFixed(1), 'picking another policy shows that policy\'s score')
  // A token that does not open the page's policy: the page says why, and shows nothing.
  const stranger = await newPage()
  await stranger.goto(`${pipeline.url}/#token=not-a-token`)
  await stranger.locator('#signin').waitFor()
  t.equal(await stranger.locator('#score-driving').count(), 0, 'no score without a token')
  t.same(errors, [], 'no script errors on the page')
})
