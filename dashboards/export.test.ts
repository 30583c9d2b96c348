/**
 * Access and portability (issue #21 item 6) against the real pipeline fed by edge-sim's policies
 * (a car, a wearable and a home each), on a real Mosquitto and InfluxDB: the policyholder downloads
 * the export; the zip opens and holds every stream the policy's devices stored (each reading as
 * the device published it, positions included), the trips, events, scores and premiums with their
 * reasons (as the REST API gives them), the consents, and a README that says what every file and
 * column is; its FHIR part validates against the official FHIR R4 JSON Schema. No other policy's
 * data appears; an analyst exports any policy, a policyholder only their own; the policyholder's
 * page downloads it in a real headless Chromium.
 */
import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import yauzl from 'yauzl'
import { policyRegistry, runSimulation, type DeviceMessage } from '../edge-sim/index.ts'
import { connectInflux, deviceRegistry, envelope, qualified, retentionOf, sensorsByKind } from '../ingest/index.ts'
import type { PolicyEvent, Score, Trip } from '../scoring/index.ts'
import { canonicalJson, type PremiumAdjustment } from '../pricing/index.ts'
import { openBrowser } from '../test/browser.ts'
import { fhirSchema } from '../test/fhir-schema.ts'
import { keepForever, startServices, startTestPipeline, twoPolicies, untilStored } from '../test/harness.ts'
import { pagesOf } from './history.ts'
import { parseCsv, refused } from './page-test-helpers.ts'

const DAY = 86_400_000
const iso = (ms: number) => new Date(ms).toISOString()

/** The zip's files by name, read with yauzl (which checks each entry's CRC and sizes). */
async function unzip(zip: Buffer): Promise<Map<string, Buffer>> {
  const archive = await yauzl.fromBufferPromise(zip, { lazyEntries: true })
  const files = new Map<string, Buffer>()
  for await (const entry of archive.eachEntry()) files.set(entry.fileName, Buffer.concat(await (await archive.openReadStreamPromise(entry)).toArray()))
  return files
}

/** A CSV file of the export as objects by column, after checking its byte order mark. */
function csvRows(t: Test, name: string, file: Buffer | undefined): { header: string[]; rows: Record<string, string>[] } {
  const text = file?.toString('utf8') ?? ''
  t.ok(text.startsWith('\ufeff'), `${name}: UTF-8 with a byte order mark`)
  const [header = [], ...rows] = parseCsv(text.slice(1))
  return { header, rows: rows.map((r) => Object.fromEntries(header.map((c, i) => [c, r[i]!]))) }
}

/** What each published message is as rows of its readings file: by seq (a batch: seq/i), the cells expected. */
function expectedRows(messages: readonly DeviceMessage[]): Map<string, Record<string, string>> {
  const rows = new Map<string, Record<string, string>>()
  for (const m of messages) {
    const { seq, ts, rate_hz, samples, ...fields } = JSON.parse(m.payload) as Record<string, unknown> & { seq: number; ts: number }
    if (Array.isArray(samples)) {
      const columns = sensorsByKind.get(m.kind)!.batch!.columns
      ;(samples as number[][]).forEach((row, i) => rows.set(`${seq}/${i}`, {
        time_utc: iso(Math.round(ts + (i * 1000) / Number(rate_hz))), seq: String(seq), i: String(i), rate_hz: String(rate_hz),
        ...Object.fromEntries(columns.map((c, j) => [c.name, String(row[j])])),
      }))
    } else {
      rows.set(String(seq), { time_utc: iso(ts), seq: String(seq), ...Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, String(v)])) })
    }
  }
  return rows
}

/** The same items, whatever their order (the API is newest first with ties in any order; the export oldest first). */
// Key order aside: the API's answers are serialised in their schema's order, the export's as stored.
const sorted = (xs: readonly unknown[]) => xs.map((x) => canonicalJson(x)).sort()

t.test('the export: every stream, trip, event, score, premium and consent of the policy, FHIR for health, and nothing of another', async (t) => {
  const services = await startServices(t)
  const { policies, start, devices, policy, other } = twoPolicies()
  const mine = devices.filter((d) => d.policyId === policy)
  const theirs = devices.filter((d) => d.policyId === other)
  const pipeline = await startTestPipeline(t, services, [], 'ubiq_export', { devices: deviceRegistry(policyRegistry(policies)), reorderWindowMs: 100 })
  const url = pipeline.url
  const holder = pipeline.auth.issue({ role: 'policyholder', policyId: policy }, 3600_000)
  const analyst = pipeline.auth.issue({ role: 'analyst' }, 3600_000)
  const get = (path: string, token?: string) => fetch(`${url}${path}`, token ? { headers: { authorization: `Bearer ${token}` } } : {})
  const api = async <T>(path: string) => (await (await get(path, analyst)).json()) as T

  const seen = { scores: [] as Score[], events: [] as PolicyEvent[], trips: [] as Trip[], premiums: [] as PremiumAdjustment[] }
  let last = Date.now()
  const note = <T extends { policyId: string }>(into: T[]) => (x: T) => {
    last = Date.now()
    if (x.policyId === policy) into.push(x)
  }
  pipeline.scores$.subscribe(note(seen.scores))
  pipeline.events$.subscribe(note(seen.events))
  pipeline.trips$.subscribe(note(seen.trips))
  pipeline.premiums$.subscribe(note(seen.premiums))
  const run = await runSimulation({ mqttUrl: services.mqttUrl, devices: devices.map((d) => ({ deviceId: d.deviceId, messages: d.sent.values() as unknown as Generator<DeviceMessage> })), startTs: start, speedup: Infinity })
  await run.done
  await untilStored(pipeline, devices.reduce((n, d) => n + d.sent.length, 0))
  // Scoring and pricing have caught up when nothing has come from them for 2 s, and InfluxDB holds what they made.
  while (Date.now() - last < 2000) await new Promise((r) => setTimeout(r, 200))
  const storedCount = async (m: string) => Number((await services.influxql('ubiq_export', `SELECT count(*) FROM ${m} WHERE policy_id = '${policy}'`))[0]?.values[0]?.slice(1).reduce((a, b) => Math.max(Number(a), Number(b)), 0) ?? 0)
  for (const [m, n] of [['score', seen.scores.length], ['event', seen.events.length], ['trip', seen.trips.length], ['premium', seen.premiums.length]] as const) {
    while ((await storedCount(m)) < n) await new Promise((r) => setTimeout(r, 200))
  }
  t.ok(seen.trips.length > 0 && seen.events.some((e) => e.subject === 'home') && new Set(seen.scores.map((s) => s.subject)).size === 3 && seen.premiums.length > 0,
    `${seen.trips.length} trips, ${seen.events.length} events, ${seen.scores.length} scores of every subject, ${seen.premiums.length} premiums`)

  const res = await get(`/api/v1/policies/${policy}/export`, holder)
  t.equal(res.status, 200, 'the policyholder downloads their export')
  t.equal(res.headers.get('content-type'), 'application/zip')
  t.match(res.headers.get('content-disposition'), new RegExp(`^attachment; filename="ubiq-${policy}-\\d{8}\\.zip"$`))
  t.equal(res.headers.get('cache-control'), 'no-store', 'personal data: no cache keeps it')
  const zip = Buffer.from(await res.arrayBuffer())
  const files = await unzip(zip)
  const text = (name: string) => files.get(name)?.toString('utf8') ?? ''
  const json = <T>(name: string) => JSON.parse(text(name)) as T
  t.ok(files.size > 10, `the zip opens: ${files.size} files, ${zip.length} bytes`)

  await t.test('every stream each device of the policy stored, each reading as the device sent it', async (t) => {
    const streams = mine.flatMap((d) => [...new Set(d.sent.map((m) => m.kind))].map((kind) => `readings/${d.deviceId}/${kind}.csv`)).sort()
    t.same([...files.keys()].filter((f) => f.startsWith('readings/')).sort(), streams, 'a file per device and stream, no other')
    t.ok(['gps', 'imu', 'obd', 'hr', 'steps', 'sleep', 'climate'].every((k) => streams.some((s) => s.endsWith(`/${k}.csv`))), 'car, wearable and home streams')
    for (const d of mine) {
      for (const kind of new Set(d.sent.map((m) => m.kind))) {
        const name = `readings/${d.deviceId}/${kind}.csv`
        const { header, rows } = csvRows(t, name, files.get(name))
        const sensor = sensorsByKind.get(kind)!
        t.same(header.slice(0, sensor.batch ? 4 : 2), sensor.batch ? ['time_utc', 'seq', 'i', 'rate_hz'] : ['time_utc', 'seq'], `${name}: times in UTC, the header says`)
        const want = expectedRows(d.sent.filter((m) => m.kind === kind))
        const got = new Map(rows.map((r) => [sensor.batch ? `${r.seq}/${r.i}` : r.seq!, r]))
        t.equal(got.size, want.size, `${name}: ${want.size} rows, one a ${sensor.batch ? 'sample' : 'reading'}`)
        const off = [...want].filter(([key, cells]) => Object.entries(cells).some(([c, v]) => got.get(key)?.[c] !== v))
        t.same(off.slice(0, 3).map(([key, cells]) => [cells, got.get(key)]), [], `${name}: every value as sent`)
        t.same(rows.map((r) => r.time_utc), rows.map((r) => r.time_utc).sort(), `${name}: oldest first`)
      }
    }
    const gps = csvRows(t, 'gps', files.get(`readings/${mine[0]!.deviceId}/gps.csv`)).rows
    t.ok(gps.length > 0 && gps.every((r) => /^-?\d+\.\d+$/.test(r.lat_deg!) && /^-?\d+\.\d+$/.test(r.lon_deg!)), 'positions are there, at the precision stored')
  })

  await t.test('pages of any size read every row once: around the crash, the window\'s samples share instants with the regular ones', async (t) => {
    const influx = await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_export', retentionDays: keepForever })
    t.teardown(() => influx.close())
    const crash = Date.parse(csvRows(t, 'crash', files.get(`readings/${mine[0]!.deviceId}/crash.csv`)).rows[0]!.time_utc!)
    const span = { from: crash - 1000, to: crash + 1000 }
    const all = async (pageRows?: number) => {
      const got: string[] = []
      for await (const page of pagesOf(influx, 'imu', `device_id = '${mine[0]!.deviceId}'`, span, pageRows)) got.push(...page.map((r) => `${r.time}/${r.hz}/${r.seq}/${r.i}`))
      return got
    }
    const whole = await all()
    const instants = whole.map((r) => r.split('/')[0])
    t.ok(instants.length > new Set(instants).size, `${whole.length} rows, ${instants.length - new Set(instants).size} of them at an instant another series has too`)
    for (const n of [1, 3]) t.same(await all(n), whole, `pages of ${n}: the same rows, in the same order`)
  })

  await t.test('trips, events, scores and premiums: all of them, as the REST API gives them, reasons included', async (t) => {
    for (const [name, key, n] of [['trips', 'trips', seen.trips.length], ['events', 'events', seen.events.length], ['scores', 'scores', seen.scores.length], ['premiums', 'premiums', seen.premiums.length]] as const) {
      const exported = json<Record<string, unknown[]>>(`${name}.json`)
      t.equal(exported.policyId, policy as unknown)
      const fromApi = (await api<Record<string, unknown[]>>(`/api/v1/policies/${policy}/${name}?limit=1000`))[key]!
      t.equal(exported[key]!.length, n, `${name}.json: every one scoring and pricing made (${n})`)
      t.same(sorted(exported[key]!), sorted(fromApi), `${name}.json: as the API gives them`)
      const times = exported[key]!.map((x) => JSON.stringify((x as Record<string, unknown>).from ?? (x as { window?: { to: string } }).window?.to ?? (x as { effectiveFrom?: string }).effectiveFrom))
      t.same(times, [...times].sort(), `${name}.json: oldest first`)
      t.equal(csvRows(t, `${name}.csv`, files.get(`${name}.csv`)).rows.length, n, `${name}.csv: a row each`)
    }
    const scores = json<{ scores: { reasons: { text: string; impact: number }[] }[] }>('scores.json').scores
    t.ok(scores.some((s) => s.reasons.length > 0 && s.reasons.every((r) => r.text.length > 0 && typeof r.impact === 'number')), 'scores with their reasons, each with its points')
    const csv = csvRows(t, 'scores.csv', files.get('scores.csv')).rows
    t.same(csv.map((r) => r.reasons), scores.map((s) => s.reasons.map((r) => r.text).join(' | ')), 'scores.csv: the reasons in plain words')
    const premiums = csvRows(t, 'premiums.csv', files.get('premiums.csv')).rows
    t.ok(premiums.every((p) => p.reasons!.length > 0 && Number(p.factor) > 0), 'premiums.csv: factors and reasons')
    const events = csvRows(t, 'events.csv', files.get('events.csv')).rows
    t.ok(events.some((e) => e.type === 'crash') && events.some((e) => e.subject === 'home'), 'events.csv: the crash and the leak among them')
    t.ok(events.every((e) => typeof JSON.parse(e.evidence!) === 'object'), 'each event\'s evidence as JSON')
  })

  await t.test('consents, daily aggregates and the manifest', async (t) => {
    const { rows } = csvRows(t, 'consents.csv', files.get('consents.csv'))
    const registry = policyRegistry(policies).filter((d) => d.policyId === policy)
    t.same(rows.map((r) => `${r.device_id}/${r.stream}`).sort(), registry.flatMap((d) => d.kinds.map((k) => `${d.deviceId}/${k}`)).sort(), 'each device\'s consented streams, from the device registry')
    t.ok(rows.every((r) => r.source === 'enrolment (device registry)' && r.purposes === 'pricing' && r.subject !== ''), 'the consent in force: given at enrolment, for pricing, with its subject')
    t.same(json<{ consents: unknown[] }>('consents.json').consents.length, rows.length)
    t.ok(files.has('derived/health_day.csv') && files.has('derived/home_day.csv'), 'the daily aggregates scoring keeps')
    t.ok(files.has('derived/crash_track.csv'), 'the crash\'s track, kept for the claim (in the claims retention policy)')
    const manifest = json<{ policyId: string; period: unknown; files: { name: string; rows: number }[] }>('manifest.json')
    t.match(manifest, { policyId: policy, period: { from: null, to: null } })
    t.same(manifest.files.map((f) => f.name).sort(), [...files.keys()].filter((f) => f !== 'README.md' && f !== 'manifest.json').sort(), 'the manifest lists every file')
    for (const f of manifest.files.filter((x) => x.name.endsWith('.csv'))) t.equal(csvRows(t, f.name, files.get(f.name)).rows.length, f.rows, `${f.name}: ${f.rows} rows, as the manifest says`)
  })

  await t.test('every readings and derived file has a column for each field and tag InfluxDB holds, whichever retention policy it is in', async (t) => {
    const held = async (measurement: string) => (await Promise.all(['FIELD', 'TAG'].map((what) => services.influxql('ubiq_export', `SHOW ${what} KEYS FROM ${qualified(measurement)}`))))
      .flatMap((series) => series.flatMap((x) => x.values.map((v) => String(v[0])))).filter((k) => k !== 'policy_id' && k !== 'device_id' && k !== 'hz')
    const tables = [...files.keys()].filter((f) => /^(readings|derived)\/.*\.csv$/.test(f))
    t.ok(tables.some((f) => retentionOf(f.split('/').at(-1)!.slice(0, -4)) !== 'aggregates'), `${tables.length} files, of measurements in every retention policy`)
    for (const name of tables) {
      const header = csvRows(t, name, files.get(name)).header
      const missing = (await held(name.split('/').at(-1)!.slice(0, -4))).filter((k) => !header.includes(k))
      t.same(missing, [], `${name}: every field and tag`)
    }
  })

  await t.test('the README says what each file and column is, with the catalogue\'s units', async (t) => {
    const readme = text('README.md')
    t.match(readme, `# Your data from ubiq: policy ${policy}`)
    for (const name of files.keys()) {
      if (!name.startsWith('readings/')) t.ok(readme.includes(`\`${name}\``), `${name} is described`)
    }
    for (const kind of new Set(mine.flatMap((d) => d.sent.map((m) => m.kind)))) {
      const sensor = sensorsByKind.get(kind)!
      t.ok(readme.includes(`### \`${kind}\`: ${sensor.description}`), `${kind} is described`)
      const props = sensor.schema.properties as Record<string, { description?: string }>
      const columns = sensor.batch ? sensor.batch.columns.map((c) => [c.name, c.description] as const) : Object.keys(props).filter((c) => c !== 'seq' && c !== 'ts').map((c) => [c, props[c]!.description!] as const)
      const missing = columns.filter(([c, description]) => !readme.includes(`| \`${c}\` | ${description.replace(/\|/g, '\\|')} |`))
      t.same(missing, [], `${kind}: each column with its meaning and unit`)
    }
    t.ok(readme.includes(envelope.seq.description!), 'and the envelope\'s seq')
    t.match(readme, /ISO 8601 in UTC/)
    t.match(readme, /`hr.resting`[^]*`sleep.deep_s`/, 'what FHIR leaves out, by name')
  })

  await t.test('the FHIR part: valid against the official FHIR R4 JSON Schema, an Observation per health reading', async (t) => {
    const schema = fhirSchema()
    const bundle = json<{ resourceType: string; type: string; entry: { fullUrl: string; resource: Record<string, unknown> & { resourceType: string } }[] }>('fhir/observations.json')
    t.same(schema.validate(bundle).slice(0, 5), [], 'the bundle is valid FHIR R4')
    const invalid = bundle.entry.flatMap((e) => schema.validateAs(e.resource.resourceType, e.resource).map((err) => `${e.fullUrl}: ${err.instancePath} ${err.message}`))
    t.same(invalid.slice(0, 5), [], 'each resource is valid as its own type')
    t.match(bundle, { resourceType: 'Bundle', type: 'collection' })
    const [patient, ...observations] = bundle.entry
    t.same(patient!.resource, { resourceType: 'Patient', identifier: [{ system: 'urn:ubiq:policy-id', value: policy }] }, 'the Patient is the policy id, no name')
    t.ok(observations.every((o) => o.resource.resourceType === 'Observation' && (o.resource.subject as { reference: string }).reference === patient!.fullUrl), 'every Observation is about that Patient')
    const wearable = mine.find((d) => d.device === 'wearable')!
    const health = wearable.sent.filter((m) => ['hr', 'steps', 'spo2', 'sleep'].includes(m.kind))
    t.equal(observations.length, health.length, `an Observation per heart rate, steps, SpO2 and sleep reading (${health.length})`)
    const byId = new Map(observations.map((o) => [(o.resource.identifier as { value: string }[])[0]!.value, o.resource]))
    const loinc = { hr: '8867-4', steps: '55423-8', spo2: '59408-5', sleep: '93832-4' } as Record<string, string>
    const off = health.filter((m) => {
      const body = JSON.parse(m.payload) as Record<string, number>
      const o = byId.get(`${wearable.deviceId}/${m.kind}/${m.seq}`) as { code: { coding: { code: string }[] }; valueQuantity: { value: number }; effectiveDateTime?: string; effectivePeriod?: { end: string } } | undefined
      const value = { hr: body.hr_bpm, steps: body.steps_count, spo2: body.spo2_pct, sleep: Math.round(body.duration_s! / 60 * 100) / 100 }[m.kind]
      return !o || o.code.coding[0]!.code !== loinc[m.kind] || o.valueQuantity.value !== value || (o.effectiveDateTime ?? o.effectivePeriod?.end) !== iso(m.ts)
    })
    t.same(off.slice(0, 3).map((m) => m.payload), [], 'each with its LOINC code, value and time as the wearable sent them')
  })

  await t.test('no other policy\'s data, anywhere in the archive', async (t) => {
    const names = [other, ...theirs.map((d) => d.deviceId)]
    const found = [...files].flatMap(([name, body]) => names.filter((n) => name.includes(n) || body.includes(n)).map((n) => `${n} in ${name}`))
    t.same(found, [], `none of ${names.join(', ')}`)
  })

  await t.test('who may export: the policyholder their own, an analyst any; ranges checked', async (t) => {
    t.equal((await get(`/api/v1/policies/${policy}/export`)).status, 401, 'no token: 401')
    const forbidden = await get(`/api/v1/policies/${other}/export`, holder)
    t.equal(forbidden.status, 403, 'another policy\'s export: 403')
    t.match(await forbidden.json(), { error: 'forbidden', message: /another policy/ })
    const theirsRes = await get(`/api/v1/policies/${other}/export`, analyst)
    t.equal(theirsRes.status, 200, 'an analyst exports any policy')
    const theirFiles = await unzip(Buffer.from(await theirsRes.arrayBuffer()))
    t.same([...theirFiles.keys()].filter((f) => f.startsWith('readings/')).map((f) => f.split('/')[1]).filter((d, i, a) => a.indexOf(d) === i).sort(), theirs.map((d) => d.deviceId).sort(), 'that policy\'s devices, no other')
    const header = (name: string) => theirFiles.get(name)!.toString('utf8').split('\n')[0]!
    t.ok(theirFiles.has(`readings/${theirs.find((d) => d.sent.some((m) => m.kind === 'gps'))!.deviceId}/gps.csv`), 'its GNSS readings are there')
    t.same([...theirFiles.keys()].filter((f) => f.endsWith('.csv') && /\b(lat_deg|lon_deg|alt_m|cells)\b/.test(header(f))), [], 'but no position: an analyst\'s export has no lat_deg, lon_deg, alt_m or trip cells column (#21)')
    t.equal((await get('/api/v1/policies/pol-nobody/export', analyst)).status, 404, 'a policy ubiq holds nothing of: 404')
    await refused(t, url, holder, [
      [`/api/v1/policies/${policy}/export?from=${iso(start + DAY)}&to=${iso(start)}`, /from must be before to/],
      [`/api/v1/policies/${policy}/export?from=yesterday`, /querystring\/from must be an ISO 8601 time/],
      [`/api/v1/policies/${policy}/export?limit=5`, /must NOT have additional properties \(limit\)/],
    ])
    const day = await get(`/api/v1/policies/${policy}/export?from=${iso(start + DAY)}&to=${iso(start + 2 * DAY)}`, holder)
    const dayFiles = await unzip(Buffer.from(await day.arrayBuffer()))
    const times = [...dayFiles].filter(([name]) => name.startsWith('readings/')).flatMap(([name, body]) => csvRows(t, name, body).rows.map((r) => Date.parse(r.time_utc!)))
    t.ok(times.length > 0 && times.every((x) => x >= start + DAY && x < start + 2 * DAY), `from/to: ${times.length} readings of the second day only`)
    t.match(JSON.parse(dayFiles.get('manifest.json')!.toString()), { period: { from: iso(start + DAY), to: iso(start + 2 * DAY) } })
    const doc = await (await fetch(`${url}/api/v1/openapi.json`)).json() as { paths: Record<string, { get?: { parameters?: { name: string }[]; responses?: Record<string, { content?: Record<string, unknown> }> } }> }
    const route = doc.paths['/api/v1/policies/{policy}/export']?.get
    t.ok(route?.responses?.['200']?.content?.['application/zip'], 'in the OpenAPI document, as application/zip')
    t.same(route?.parameters?.map((p) => p.name).sort(), ['from', 'policy', 'to'])
  })

  await t.test('the policyholder\'s page: "Download my data" saves the same archive', async (t) => {
    const { page, errors } = await openBrowser(t)
    await page.goto(`${url}/#token=${holder}`)
    await page.locator('#status', { hasText: `live for ${policy}` }).waitFor()
    const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#download').click()])
    t.match(download.suggestedFilename(), new RegExp(`^ubiq-${policy}-\\d{8}\\.zip$`))
    const saved = await unzip(readFileSync((await download.path())!))
    t.same([...saved.keys()], [...files.keys()], 'the same files')
    t.equal(saved.get('readings/' + mine[0]!.deviceId + '/obd.csv')?.toString(), files.get('readings/' + mine[0]!.deviceId + '/obd.csv')?.toString(), 'with the same readings')
    await page.locator('#download-status', { hasText: 'saved' }).waitFor()
    t.same(errors, [], 'no script errors on the page')
  })
})
