/**
 * Health readings as FHIR R4 (issue #21 item 6): the catalogue's example of each health stream
 * becomes an Observation that the official FHIR R4 JSON Schema accepts, with its LOINC code, UCUM
 * unit and time; a stream or field without a LOINC code is named as left out, never guessed.
 */
import t from 'tap'
import { sensors, sensorsByKind } from '../ingest/index.ts'
import { fhirSchema } from '../test/fhir-schema.ts'
import { fhirBundle, fhirLeftOut, fhirMappings, observationEntry, patientEntry, uuidUrn, type HealthReading } from './fhir.ts'

const schema = fhirSchema()
const reading = (kind: string, seq = 1): HealthReading => {
  const { seq: _seq, ts, ...fields } = sensorsByKind.get(kind)!.example as Record<string, number>
  return { deviceId: 'wear-1', kind, seq, ts: ts!, fields }
}

t.test('each mapped health stream: an Observation the FHIR R4 schema accepts, with LOINC, UCUM and the device\'s time', async (t) => {
  const expected = {
    hr: { code: '8867-4', category: 'vital-signs', value: 62, unit: '/min', effectiveDateTime: '2026-01-01T00:00:00.000Z' },
    steps: { code: '55423-8', category: 'activity', value: 412, unit: '{steps}', effectivePeriod: { start: '2025-12-31T23:55:00.000Z', end: '2026-01-01T00:00:00.000Z' } },
    spo2: { code: '59408-5', category: 'vital-signs', value: 97, unit: '%', effectiveDateTime: '2026-01-01T00:00:00.000Z' },
    sleep: { code: '93832-4', category: 'activity', value: 440, unit: 'min', effectivePeriod: { start: '2025-12-31T23:40:00.000Z', end: '2026-01-01T07:00:00.000Z' } },
  }
  t.same(fhirMappings.map((m) => m.kind), Object.keys(expected))
  for (const [kind, want] of Object.entries(expected)) {
    const entry = observationEntry('pol-1', reading(kind))!
    t.same(schema.validateAs('Observation', entry.resource), [], `${kind}: valid`)
    const { code, category, value, unit, ...effective } = want
    t.match(entry.resource, {
      resourceType: 'Observation', status: 'final',
      category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: category }] }],
      code: { coding: [{ system: 'http://loinc.org', code }] },
      valueQuantity: { value, system: 'http://unitsofmeasure.org', code: unit },
      subject: { reference: patientEntry('pol-1').fullUrl },
      identifier: [{ value: `wear-1/${kind}/1` }],
    }, `${kind}: LOINC ${code}, ${value} ${unit}`)
    t.same(Object.fromEntries(Object.entries(entry.resource).filter(([k]) => k.startsWith('effective'))), effective, `${kind}: timed as the stream says`)
  }
  t.equal(observationEntry('pol-1', reading('climate')), undefined, 'a stream without a mapping gives none')
  t.equal(observationEntry('pol-1', { ...reading('hr'), fields: {} }), undefined, 'nor a reading without its value')
})

t.test('what has no LOINC code here is named, every health field either mapped or left out', async (t) => {
  const left = fhirLeftOut().map((x) => `${x.kind}.${x.field}`)
  t.same(left, ['hr.resting', 'sleep.deep_s', 'sleep.rem_s', 'sleep.light_s', 'sleep.awake_s'])
  t.ok(fhirLeftOut().every((x) => x.description.length > 0), 'each with the catalogue\'s description')
  const health = sensors.filter((s) => s.subject === 'health')
  const mapped = fhirMappings.flatMap((m) => m.fields.map((f) => `${m.kind}.${f}`))
  t.same([...mapped, ...left].sort(), health.flatMap((s) => Object.keys(s.schema.properties as object).filter((f) => f !== 'seq' && f !== 'ts').map((f) => `${s.kind}.${f}`)).sort())
})

t.test('the bundle: a collection with a Patient that carries only the policy id, valid as a whole', async (t) => {
  async function* pages() {
    yield [reading('hr', 1), reading('steps', 2)]
    yield []
    yield [reading('sleep', 3), reading('spo2', 4), reading('climate', 5)]
  }
  let counted = 0
  let text = ''
  for await (const piece of fhirBundle('pol-1', pages(), Date.UTC(2026, 0, 2), (n) => (counted += n))) text += piece
  const bundle = JSON.parse(text) as { entry: { fullUrl: string; resource: Record<string, unknown> }[] }
  t.same(schema.validate(bundle), [], 'valid against the whole schema')
  t.match(bundle, { resourceType: 'Bundle', type: 'collection', timestamp: '2026-01-02T00:00:00.000Z' })
  t.same(bundle.entry.map((e) => e.resource.resourceType), ['Patient', 'Observation', 'Observation', 'Observation', 'Observation'])
  t.same(bundle.entry[0]!.resource, { resourceType: 'Patient', identifier: [{ system: 'urn:ubiq:policy-id', value: 'pol-1' }] }, 'no name, nothing but the policy id')
  t.equal(counted, 4, 'the observations counted')
  t.equal(new Set(bundle.entry.map((e) => e.fullUrl)).size, 5, 'each entry its own fullUrl')
  t.same(schema.validate({ ...bundle, entry: [...bundle.entry, { resource: { ...bundle.entry[1]!.resource, status: 'done' } }] }).length > 0, true, 'the schema refuses an Observation with a status FHIR does not have')
  t.same(schema.validateAs('Observation', { ...bundle.entry[1]!.resource, valueQuantity: { value: '62' } }).length > 0, true, 'and a value that is not a number')
})

t.test('fullUrls are version 5 UUIDs of the reading: the same in every export', async (t) => {
  t.match(uuidUrn('observation/pol-1/wear-1/hr/1'), /^urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/)
  t.equal(uuidUrn('x'), uuidUrn('x'))
  t.not(uuidUrn('x'), uuidUrn('y'))
})
