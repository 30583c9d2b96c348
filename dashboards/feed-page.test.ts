/**
 * The live score page in a real headless Chromium, against the real pipeline fed by edge-sim:
 * what the page shows is what scoring and pricing produced for the policy it shows.
 */
import t from 'tap'
import { makeFleet, runFleet } from '../edge-sim/index.ts'
import { firstMatch, startServices, startTestPipeline } from '../test/harness.ts'
import { openBrowser, screenshot } from '../test/browser.ts'
import type { WhatIf } from '../pricing/index.ts'

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

  const { page, newPage, errors } = await openBrowser(t)
  // The policyholder's link: the token in the fragment, and the page for that policy alone.
  await page.goto(`${pipeline.url}/#token=${pipeline.auth.issue({ role: 'policyholder', policyId: aggrScore.policyId }, 3600_000)}`)
  await page.locator('#status', { hasText: `live for ${aggrScore.policyId}` }).waitFor()
  await page.locator(`#score-driving[data-value="${aggrScore.value.toFixed(1)}"]`).waitFor()
  await page.locator('#factor-driving').waitFor()
  t.equal(await page.locator('#factor-driving').textContent(), `×${aggrPremium.factor.toFixed(3)}`, 'the premium factor is the published one')
  t.same(await page.locator('#reasons-driving li').allTextContents(), aggrPremium.reasons.map((r) => r.text), 'the premium\'s reasons, in order, in plain words')
  t.same(await page.locator('#why-driving li').allTextContents(), aggrScore.reasons.map((r) => r.text), 'and the score\'s')
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
  // The simulator: half the harsh braking, through the same model and plan as the API.
  t.same(await page.locator('#wi-feature option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value)), aggrScore.reasons.map((r) => r.code).filter((c) => c in aggrScore.features),
    'it offers what the model prices, named as its reasons name them, not every number the score carries')
  t.same(await page.locator('#wi-subject option').evaluateAll((os) => os.map((o) => (o as HTMLOptionElement).value)), ['driving'], 'only the covers the policy has (cars alone: driving)')
  await page.locator('#wi-feature').selectOption('harsh_braking_per_hour')
  await page.locator('#wi-change').selectOption('0.5')
  await page.locator('#whatif button').click()
  const expected = await (await fetch(`${pipeline.url}/api/v1/policies/${aggrScore.policyId}/what-if/driving`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${pipeline.auth.issue({ role: 'analyst' }, 60_000)}` }, body: JSON.stringify({ scale: { harsh_braking_per_hour: 0.5 } }),
  })).json() as WhatIf
  await page.locator('#wi-answer', { hasText: `premium ${expected.changed.premium.toFixed(2)}` }).waitFor()
  t.match(await page.locator('#wi-answer').textContent(), `score ${expected.changed.score.toFixed(1)}`, 'the simulator shows the API\'s answer')
  await screenshot(page, 'feed')

  // On a phone (390×844): one column, nothing wider than the screen, the premium's "why" on it.
  const phone = await newPage()
  await phone.setViewportSize({ width: 390, height: 844 })
  await phone.goto(`${pipeline.url}/#token=${pipeline.auth.issue({ role: 'policyholder', policyId: aggrScore.policyId }, 3600_000)}`)
  await phone.locator('#factor-driving').waitFor()
  await phone.locator('#premiums tr td', { hasText: aggrPremium.premium.toFixed(2) }).first().waitFor()
  t.ok(await phone.evaluate(() => document.scrollingElement!.scrollWidth <= 390), 'no horizontal scroll on a phone')
  const [driving, health] = await Promise.all(['#card-driving', '#card-health'].map((c) => phone.locator(c).boundingBox()))
  t.ok(driving!.x === health!.x && health!.y >= driving!.y + driving!.height, 'the cards are stacked')
  t.same(await phone.evaluate(() => [...document.querySelectorAll('body *')].filter((e) => e.getBoundingClientRect().right > 390).map((e) => e.id || e.tagName)), [],
    'every element (the premium\'s reasons included) within the screen\'s width')
  await screenshot(phone, 'feed-phone')

  // An analyst's link: every policy in the picker.
  const analyst = await newPage()
  await analyst.goto(`${pipeline.url}/?policy=${aggrScore.policyId}#token=${pipeline.auth.issue({ role: 'analyst' }, 3600_000)}`)
  await analyst.locator('#status', { hasText: `live for ${aggrScore.policyId}` }).waitFor()
  t.same(await analyst.locator('#policy option').allTextContents(), fleet.map((v) => v.policyId), 'the picker lists the policies')
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
