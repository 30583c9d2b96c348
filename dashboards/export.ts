/**
 * Access and portability (issue #21 item 6): a policyholder takes out everything ubiq holds about
 * their policy as one zip: each device's readings per stream (positions at the precision stored),
 * trips, events, scores and premiums with their reasons, the consents, the daily aggregates
 * scoring keeps, the health readings as a FHIR R4 Bundle, and a README that says what every file
 * and column is (the sensor catalogue's descriptions and units).
 *
 * A policy's 90 days of 50 Hz IMU are gigabytes of CSV, so nothing is held whole: the zip is
 * streamed (yazl, ZIP64 where a file or the archive passes 4 GiB), each file read from InfluxDB a
 * page at a time (history.ts pagesOf) as fast as the client takes it. The same rules as every
 * policy route decide who may export (auth.ts mustSee): a policyholder their own, an analyst any.
 */
import { Readable } from 'node:stream'
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import { ZipFile } from 'yazl'
import { envelope, ID_PATTERN, subjectList, POSITION_FIELDS, qualified, type ConsentStore, quoteString, sensorsByKind, storedMeasurements, streamFields, type Influx, type SensorKind, type Series } from '../ingest/index.ts'
import { mustSee, type Principal } from './auth.ts'
import type { PolicyDevice } from './drilldown.ts'
import { fhirBundle, fhirLeftOut, fhirMappingOf, fhirMappings, POLICY_SYSTEM, type HealthReading } from './fhir.ts'
import { eventOf, historyTables, pagesOf, premiumOf, scoreOf, withEvents, type Columns } from './history.ts'
import { ErrorBody, errors } from './schemas.ts'
import { BOM, csvLine, iso, Time, type App } from './tables.ts'

/** A stream a device may send for the policy, as the record of that consent has it. */
export interface Consent {
  deviceId: string
  /** The stream (sensor kind). */
  stream: string
  /** What the data may be used for, where the record says. */
  purposes?: readonly string[]
  /** Since when (ISO 8601), where the record says. */
  since?: string
  /** Which record it comes from. */
  source: string
}

/**
 * The consents in force (the consent store, #21): each registered device's streams with the
 * purposes granted now, since the last recorded change that named the stream, else since
 * enrolment (the registry's streams are the consent given then, for pricing).
 */
export function storeConsents(store: ConsentStore, policyId: string, devices: readonly PolicyDevice[]): Consent[] {
  const consent = store.of(policyId)
  return devices.flatMap((d) => d.kinds.map((stream) => {
    const last = consent?.changes.filter((c) => c.streams.includes(stream)).at(-1)
    const purposes = consent?.streams.find((s) => s.stream === stream)?.purposes ?? []
    return last
      ? { deviceId: d.deviceId, stream, purposes, since: last.at, source: `consent record ${last.hash}` }
      : { deviceId: d.deviceId, stream, purposes, ...(d.registeredAt ? { since: d.registeredAt } : {}), source: 'enrolment (device registry)' }
  }))
}

export interface ExportDeps {
  influx: Influx
  /** The policy's devices, from the device registry. */
  devicesOf?(policyId: string): readonly PolicyDevice[]
  /** The policy's consents, for the archive's consents files. */
  consentsOf(policyId: string): readonly Consent[]
  /** The policy's claims (first notice of loss) and their status; none without it. */
  claimsOf?(policyId: string): readonly unknown[]
  logger: Logger
}

/** ms; either end may be open: from inclusive, to exclusive. */
interface Span { from?: number; to?: number }

/** Exports running at once, at most: each reads InfluxDB as fast as its client takes the zip. */
const MAX_EXPORTS = 2
const ExportQuery = Type.Object({
  from: Type.Optional({ ...Time, description: 'from this time (inclusive), ISO 8601; default: from the first thing stored' }),
  to: Type.Optional({ ...Time, description: 'until this time (exclusive), ISO 8601; default: to the last thing stored' }),
}, { additionalProperties: false })

/** A file of the archive: its name, what it is (for the README), and its text a piece at a time. */
interface Entry { name: string; about: string; text(): AsyncIterable<string> }

type Cell = string | number | boolean | null | undefined

/** A stream one device of the policy stored: the file of its readings. */
interface StreamFile { deviceId: string; sensor: SensorKind; fields: string[] }
/** Another measurement scoring keeps about the policy (its daily aggregates, trial models' scores). */
interface DerivedFile { measurement: string; tags: string[]; fields: string[] }

async function* mapPages<A, B>(pages: AsyncIterable<A[]>, f: (page: A[]) => B[] | Promise<B[]>): AsyncGenerator<B[]> {
  for await (const page of pages) yield await f(page)
}

/** A CSV file: BOM and header, then a line a row; counts its rows. */
async function* csvText<T>(columns: readonly string[], pages: AsyncIterable<T[]>, cells: (r: T) => Cell[], count: (n: number) => void): AsyncGenerator<string> {
  yield BOM + csvLine(columns)
  for await (const page of pages) {
    count(page.length)
    if (page.length > 0) yield page.map((r) => csvLine(cells(r))).join('')
  }
}

/** A JSON file shaped as the REST API answers (`{"policyId", key: [...]}`), an item a line; counts its items. */
async function* jsonText(policyId: string, key: string, pages: AsyncIterable<unknown[]>, count: (n: number) => void): AsyncGenerator<string> {
  yield `${JSON.stringify({ policyId, [key]: [] }).slice(0, -2)}\n`
  let first = true
  for await (const page of pages) {
    count(page.length)
    if (page.length === 0) continue
    yield (first ? '' : ',\n') + page.map((x) => JSON.stringify(x)).join(',\n')
    first = false
  }
  yield '\n]}\n'
}

const names = (series: readonly Series[]) => series.flatMap((s) => s.values.map((v) => String(v[0])))
const byMeasurement = (series: readonly Series[]) => new Map(series.map((s) => [s.name, s.values.map((v) => String(v[0]))]))

/** Measurements ubiq declares (retention.ts): another one in the database is not ubiq's to export. */
const declared = new Set(storedMeasurements.map((m) => m.name))
/** Measurements declared readable by analysts (retention.ts): an analyst's export holds no others of the derived ones. */
const analystMeasurements = new Set(storedMeasurements.filter((m) => m.readers.includes('analyst')).map((m) => m.name))

/**
 * What the archive will hold, from InfluxDB's catalogue of series: undefined when ubiq holds
 * nothing of the policy. The policyholder's own export holds everything (their right of access),
 * positions at the precision kept; an analyst's holds no position (#21): readings without their
 * position fields, and none of the derived measurements analysts may not read (trip cells, crash tracks).
 */
async function planExport(influx: Influx, policyId: string, devices: readonly PolicyDevice[], forAnalyst: boolean) {
  const [stored, policyMeasurements, tagKeys] = await Promise.all([
    // Every stream a device stored, also one it may no longer send: what is held is what is exported.
    Promise.all(devices.map(async (d) => ({ deviceId: d.deviceId, kinds: names(await influx.query(`SHOW MEASUREMENTS WHERE device_id = ${quoteString(d.deviceId)}`)).filter((k) => sensorsByKind.has(k)).sort() }))),
    influx.query(`SHOW MEASUREMENTS WHERE policy_id = ${quoteString(policyId)}`).then((series) => names(series).filter((m) => declared.has(m))),
    influx.query('SHOW TAG KEYS').then(byMeasurement),
  ])
  if (devices.length === 0 && policyMeasurements.length === 0) return undefined
  // Field keys are kept per retention policy, and an unqualified SHOW FIELD KEYS reads the default
  // one only: each measurement's are asked of its own (retention.ts), in one request.
  const measurements = [...new Set([...stored.flatMap((d) => d.kinds), ...policyMeasurements])]
  const fieldKeys = byMeasurement(measurements.length === 0 ? [] : await influx.query(measurements.map((m) => `SHOW FIELD KEYS FROM ${qualified(m)}`).join('; ')))
  const ENVELOPE = new Set(['seq', 'i', 'rate_hz'])
  const streams: StreamFile[] = stored.flatMap(({ deviceId, kinds }) => kinds.map((kind) => {
    const sensor = sensorsByKind.get(kind)!
    const own = streamFields(sensor)
    // Fields stored once but no longer in the contract are held too: after the catalogue's, by name.
    const others = (fieldKeys.get(kind) ?? []).filter((f) => !own.includes(f) && !ENVELOPE.has(f)).sort()
    return { deviceId, sensor, fields: [...own, ...others].filter((f) => !(forAnalyst && POSITION_FIELDS.has(f))) }
  }))
  const derived: DerivedFile[] = policyMeasurements.filter((m) => !HISTORY.has(m) && !(forAnalyst && !analystMeasurements.has(m))).sort().map((measurement) => ({
    measurement, tags: (tagKeys.get(measurement) ?? []).filter((t) => t !== 'policy_id'), fields: fieldKeys.get(measurement) ?? [],
  }))
  return { streams, derived }
}

/** The policy's own measurements that have files of their own (the others go to derived/). */
const HISTORY = new Set(['trip', 'event', 'score', 'premium'])

const CONSENT_COLUMNS: Columns = [
  ['device_id', 'the device'], ['stream', 'the stream it may send (the readings file of that name)'], ['subject', subjectList],
  ['purposes', 'what it may be used for, where recorded, separated by " | "'], ['since', 'since when, where recorded (ISO 8601)'], ['source', 'the record the consent comes from'],
]

/** The archive's files in order, each read when the zip reaches it; `count` tallies the rows of each. */
function entries(deps: ExportDeps, policyId: string, span: Span, plan: NonNullable<Awaited<ReturnType<typeof planExport>>>, count: (file: string) => (n: number) => void, exportedAt: number): Entry[] {
  // Paged reads (pagesOf) ask one InfluxDB: the one that holds the policy whole.
  const influx = deps.influx.of(policyId)
  const mine = `policy_id = ${quoteString(policyId)}`
  const ofPolicy = (measurement: string) => pagesOf(influx, measurement, mine, span)
  const csv = <T>(name: string, columns: readonly string[], pages: () => AsyncIterable<T[]>, cells: (r: T) => Cell[], about: string): Entry =>
    ({ name, about, text: () => csvText(columns, pages(), cells, count(name)) })
  const header = (columns: Columns) => columns.map(([c]) => c)
  const json = (name: string, key: string, pages: () => AsyncIterable<unknown[]>, about: string): Entry =>
    ({ name, about, text: () => jsonText(policyId, key, pages(), count(name)) })
  const trips = () => mapPages(ofPolicy('trip'), (page) => withEvents(influx, policyId, page))
  const events = () => mapPages(ofPolicy('event'), (page) => page.map(eventOf))
  const consents = async function* () { yield [...deps.consentsOf(policyId)] }
  return [
    csv('consents.csv', header(CONSENT_COLUMNS), consents, (c) => [c.deviceId, c.stream, sensorsByKind.get(c.stream)?.subject, c.purposes?.join(' | '), c.since, c.source],
      'The streams each device of the policy may send, as recorded.'),
    json('consents.json', 'consents', consents, 'The same consents as JSON.'),
    json('claims.json', 'claims', async function* () { yield [...(deps.claimsOf?.(policyId) ?? [])] }, 'Claims opened for the policy (first notice of loss: a crash, a leak that kept running, fire, CO) and their status, as `GET /api/v1/policies/{policy}/claims` gives them; the readings each carried are in the readings files.'),
    ...plan.streams.map((s) => csv(`readings/${s.deviceId}/${s.sensor.kind}.csv`, readingColumns(s), () => streamPages(influx, s, span),
      (r) => [iso(Number(r.time)), r.seq as Cell, ...(s.sensor.batch ? [r.i as Cell, r.hz as Cell] : []), ...s.fields.map((f) => r[f] as Cell)],
      `Stream \`${s.sensor.kind}\` of device ${s.deviceId} (${s.sensor.description}).`)),
    csv('trips.csv', header(historyTables.trips.columns), trips, historyTables.trips.cells, 'Trips, oldest first.'),
    json('trips.json', 'trips', trips, 'Trips with the driving events that ended in each (evidence included), as `GET /api/v1/policies/{policy}/trips` gives them.'),
    csv('events.csv', header(historyTables.events.columns), events, historyTables.events.cells, 'Events of every subject, oldest first.'),
    json('events.json', 'events', events, 'Events with their evidence, as `GET /api/v1/policies/{policy}/events` gives them.'),
    csv('scores.csv', header(historyTables.scores.columns), () => ofPolicy('score'), (x) => historyTables.scores.cells(scoreOf(x)), 'Scores, oldest first.'),
    json('scores.json', 'scores', () => mapPages(ofPolicy('score'), (page) => page.map(scoreOf)), 'Scores with their features and reasons (each: feature, value, typical value, points), as `GET /api/v1/policies/{policy}/scores` gives them.'),
    csv('premiums.csv', header(historyTables.premiums.columns), () => ofPolicy('premium'), (x) => historyTables.premiums.cells(premiumOf(x)), 'Premium changes, oldest first.'),
    json('premiums.json', 'premiums', () => mapPages(ofPolicy('premium'), (page) => page.map(premiumOf)), 'Premium changes with their reasons, as `GET /api/v1/policies/{policy}/premiums` gives them.'),
    ...plan.derived.map((d) => csv(`derived/${d.measurement}.csv`, ['time_utc', ...d.tags, ...d.fields], () => ofPolicy(d.measurement),
      (r) => [iso(Number(r.time)), ...[...d.tags, ...d.fields].map((c) => r[c] as Cell)], DERIVED[d.measurement] ?? 'Kept by scoring about the policy.')),
    { name: 'fhir/observations.json', about: 'The health readings as a FHIR R4 Bundle of Observations (see "Health readings as FHIR").', text: () => fhirBundle(policyId, healthPages(influx, plan.streams, span), exportedAt, count('fhir/observations.json')) },
  ]
}

const DERIVED: Record<string, string> = {
  health_day: 'The wearable\'s daily aggregates scoring keeps (a row a UTC day): steps, active minutes, resting heart rate, sleep …',
  home_day: 'The home\'s daily aggregates scoring keeps (a row a UTC day): freeze and humid hours, leaks, offline time …',
  shadow_score: 'Scores of models on trial beside the one in use: never published, never priced.',
}

/** A stream's file: its columns (times in UTC, the header says), and its stored rows a page at a time. */
const readingColumns = (s: StreamFile) => ['time_utc', 'seq', ...(s.sensor.batch ? ['i', 'rate_hz'] : []), ...s.fields]
const streamPages = (influx: Influx, s: StreamFile, span: Span) => pagesOf(influx, s.sensor.kind, `device_id = ${quoteString(s.deviceId)}`, span)

/** The stored readings of the streams with a FHIR mapping, a stream's pages after another's. */
async function* healthPages(influx: Influx, streams: readonly StreamFile[], span: Span): AsyncGenerator<HealthReading[]> {
  for (const s of streams.filter((x) => fhirMappingOf.has(x.sensor.kind))) {
    for await (const page of streamPages(influx, s, span)) {
      yield page.map((r) => ({ deviceId: s.deviceId, kind: s.sensor.kind, seq: Number(r.seq), ts: Number(r.time), fields: r }))
    }
  }
}

const table = (rows: readonly (readonly string[])[]) => rows.map((r) => `| ${r.map((c) => c.replace(/\|/g, '\\|').replace(/\n/g, ' ')).join(' | ')} |`).join('\n')

/** What a stream's column means, from the catalogue (the contract's descriptions carry the units). */
function meaning(sensor: SensorKind, column: string): string {
  const props = sensor.schema.properties as Record<string, { description?: string }>
  if (column === 'time_utc') return sensor.batch ? 'the sample\'s device time: ts + i·1000/rate_hz ms (UTC)' : 'the device\'s time of the reading (UTC)'
  if (column === 'seq') return envelope.seq.description!
  if (column === 'i') return 'the sample\'s place in its batch, from 0'
  if (column === 'rate_hz') return 'samples a second in the batch'
  return sensor.batch?.columns.find((c) => c.name === column)?.description ?? props[column]?.description ?? 'stored, but no longer in the device contract'
}

/** The README: what each file is, and what each column of it means, with units. */
function readme(policyId: string, span: Span, exportedAt: number, plan: NonNullable<Awaited<ReturnType<typeof planExport>>>, files: readonly Entry[]): string {
  const period = span.from === undefined && span.to === undefined ? 'everything stored'
    : `${span.from !== undefined ? `from ${iso(span.from)} (inclusive)` : 'from the first thing stored'} ${span.to !== undefined ? `until ${iso(span.to)} (exclusive)` : 'to the last thing stored'}`
  const kinds = [...new Set(plan.streams.map((s) => s.sensor.kind))]
  const fixed = (title: string, file: string, columns: Columns) => `### ${title} (\`${file}\`)\n\n${table([['column', 'meaning'], ['---', '---'], ...columns.map(([c, m]) => [`\`${c}\``, m])])}\n`
  return `# Your data from ubiq: policy ${policyId}

Exported ${iso(exportedAt)}; period: ${period}. This archive holds what ubiq stores about the
policy: each device's readings, the trips, events, scores and premiums made from them (with the
reasons), the consents, and the health readings again as FHIR R4. It holds no other policy's data.

## How the files are written

- **CSV**: RFC 4180, UTF-8 with a byte order mark (so spreadsheet programs read it as UTF-8),
  commas, CRLF line ends, one header line. Times are ISO 8601 in UTC (columns ending \`_utc\`, and
  \`time_utc\`). Numbers are as stored, with a dot for decimals and no rounding: positions
  (\`lat_deg\`, \`lon_deg\`, \`alt_m\`) at the precision ubiq keeps them. Booleans are \`true\` or
  \`false\`; an empty cell is a value not sent or not stored.
- **JSON**: UTF-8, for what is nested (reasons, evidence, features), shaped as the REST API
  answers, oldest first.
- \`manifest.json\`, last in the archive, counts the rows (or items) of every file.

## Files

${table([['file', 'what it holds'], ['---', '---'], ['`README.md`', 'this file'], ...files.map((f) => [`\`${f.name}\``, f.about]), ['`manifest.json`', 'the policy, the period, when it was exported, and the rows of each file']])}

## Readings

One file a device and stream: \`readings/DEVICE/STREAM.csv\`, a row a reading, oldest first. A
batched stream (high-rate motion) has a row a sample, numbered \`i\` within its message \`seq\`.
${kinds.length === 0 ? '\nNo device of the policy stored readings in the period.\n' : ''}${kinds.map((kind) => {
  const sensor = sensorsByKind.get(kind)!
  const columns = readingColumns(plan.streams.find((s) => s.sensor.kind === kind)!)
  return `\n### \`${kind}\`: ${sensor.description} (${sensor.subject})\n\n${table([['column', 'meaning'], ['---', '---'], ...columns.map((c) => [`\`${c}\``, meaning(sensor, c)])])}\n`
}).join('')}
## History

${fixed('Trips', 'trips.csv', historyTables.trips.columns)}
${fixed('Events', 'events.csv', historyTables.events.columns)}
${fixed('Scores', 'scores.csv', historyTables.scores.columns)}
${fixed('Premiums', 'premiums.csv', historyTables.premiums.columns)}
${fixed('Consents', 'consents.csv', CONSENT_COLUMNS)}
${plan.derived.map((d) => `### \`derived/${d.measurement}.csv\`\n\n${DERIVED[d.measurement] ?? 'Kept by scoring about the policy.'} Columns: \`time_utc\` (UTC; a day's row is timed at the day's start), then ${[...d.tags, ...d.fields].map((c) => `\`${c}\``).join(', ')}.\n`).join('\n')}
## Health readings as FHIR

\`fhir/observations.json\` is a FHIR R4 (4.0.1) Bundle of type \`collection\`: a Patient that
carries only the policy id (identifier system \`${POLICY_SYSTEM}\`; no name), and an Observation
(status \`final\`) per mapped health reading, with its LOINC code, a UCUM quantity and the device's
time. Each Observation's identifier is \`DEVICE/STREAM/SEQ\`, the row of the readings file it comes
from, and its \`fullUrl\` a UUID made from it, the same in every export.

${table([['stream', 'field', 'LOINC', 'category', 'value (UCUM)', 'time'], ['---', '---', '---', '---', '---', '---'], ...fhirMappings.map((m) => [
    `\`${m.kind}\``, m.fields.map((f) => `\`${f}\``).join(', '), m.codings.map((c) => `${c.code} ${c.display}`).join('; '), m.category.code, `${m.unit.unit} (\`${m.unit.code}\`)`,
    m.timing,
  ])])}

Left out of FHIR, with no LOINC code here (they are in the readings files):
${fhirLeftOut().map((x) => `\`${x.kind}.${x.field}\` (${x.description})`).join(', ')}; and the streams that are not
about health.
`
}

/** The zip, streamed: each file read from InfluxDB when the zip reaches it. */
function zipOf(files: readonly Entry[], mtime: Date, onError: (err: Error) => void): Readable {
  const zip = new ZipFile()
  let reading: Readable | undefined
  for (const f of files) {
    zip.addReadStreamLazy(f.name, { mtime }, (cb) => {
      reading = Readable.from(f.text(), { objectMode: false })
      // yazl does not watch the streams it reads: a failed query ends the download, cut short.
      reading.once('error', (err) => {
        onError(err)
        ;(zip.outputStream as Readable).destroy(err)
      })
      cb(null, reading)
    })
  }
  zip.end()
  const out = zip.outputStream as Readable
  // A client gone away stops the reading (the generator's queries) with it.
  out.once('close', () => reading?.destroy())
  return out
}

/** Registers the export route; `who` checks a request's bearer token. */
export function registerExport(app: App, deps: ExportDeps, who: (req: FastifyRequest) => Principal): void {
  let running = 0
  app.get<{ Params: { policy: string }; Querystring: Static<typeof ExportQuery> }>('/api/v1/policies/:policy/export', {
    schema: {
      description: 'Everything ubiq holds about the policy, as a zip (a policyholder their own, an analyst any): each device\'s readings per stream as CSV '
        + '(positions at the precision stored), trips, events, scores and premiums with their reasons (CSV and JSON), consents, daily aggregates, the health readings '
        + 'as a FHIR R4 Bundle of Observations (LOINC, UCUM), and a README that says what each file and column is. Streamed as it is read; '
        + '`from`/`to` narrow it to a period (default: everything). 503 while two exports run',
      params: Type.Object({ policy: Type.String({ pattern: ID_PATTERN, description: 'policy id' }) }),
      querystring: ExportQuery,
      response: {
        200: { description: 'the archive', content: { 'application/zip': { schema: { type: 'string', format: 'binary' } } } },
        ...errors,
        503: ErrorBody,
      },
    },
  }, async (req, reply) => {
    const principal = who(req)
    mustSee(principal, req.params.policy)
    const { policy } = req.params
    const span: Span = { from: req.query.from ? Date.parse(req.query.from) : undefined, to: req.query.to ? Date.parse(req.query.to) : undefined }
    if (span.from !== undefined && span.to !== undefined && span.from >= span.to) return reply.code(400).send({ error: 'bad_request', message: 'from must be before to' })
    if (running >= MAX_EXPORTS) return reply.code(503).header('retry-after', '60').send({ error: 'busy', message: `${MAX_EXPORTS} exports are running: try again in a minute` })
    running++
    let done = false
    const finish = () => {
      if (!done) (done = true), running--
    }
    try {
      const plan = await planExport(deps.influx.of(policy), policy, deps.devicesOf?.(policy) ?? [], principal.role === 'analyst')
      if (!plan) {
        finish()
        return reply.code(404).send({ error: 'unknown_policy', message: `ubiq holds nothing of policy ${policy}` })
      }
      const exportedAt = Date.now()
      const rows = new Map<string, number>()
      const count = (file: string) => (n: number) => void rows.set(file, (rows.get(file) ?? 0) + n)
      const files = entries(deps, policy, span, plan, count, exportedAt)
      const manifest: Entry = {
        name: 'manifest.json',
        about: '',
        async* text() {
          yield `${JSON.stringify({ policyId: policy, exportedAt: iso(exportedAt), period: { from: span.from !== undefined ? iso(span.from) : null, to: span.to !== undefined ? iso(span.to) : null }, files: files.map((f) => ({ name: f.name, rows: rows.get(f.name) ?? 0 })) }, null, 2)}\n`
        },
      }
      const readmeEntry: Entry = { name: 'README.md', about: '', async* text() { yield readme(policy, span, exportedAt, plan, files) } }
      const zip = zipOf([readmeEntry, ...files, manifest], new Date(exportedAt), (err) => deps.logger.error({ err }, 'dashboards: an export failed part way'))
      reply.raw.once('close', finish)
      const day = iso(exportedAt).slice(0, 10).replace(/-/g, '')
      return reply.type('application/zip').header('content-disposition', `attachment; filename="ubiq-${policy}-${day}.zip"`).header('cache-control', 'no-store').send(zip)
    } catch (err) {
      finish()
      throw err
    }
  })
}
