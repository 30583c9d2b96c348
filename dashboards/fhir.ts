/**
 * Health readings as FHIR R4 (4.0.1) Observations (issue #21 item 6, access and portability): one
 * Bundle of type `collection` that a policyholder can take to a health record or another service.
 *
 * Each mapped reading is an Observation: status final, a vital-signs or activity category, the
 * LOINC code, a UCUM quantity and the device's time. The subject is a Patient in the same bundle
 * that carries the policy id and nothing else (no name: ubiq holds none). A stream or field with
 * no LOINC code here is left out of the bundle, not given a guessed one; `fhirLeftOut` names them.
 */
import { createHash } from 'node:crypto'
import { sensors, streamFields } from '../ingest/index.ts'

const LOINC = 'http://loinc.org'
const UCUM = 'http://unitsofmeasure.org'
const CATEGORY = 'http://terminology.hl7.org/CodeSystem/observation-category'
/** Identifier systems: the policy id and a reading's (device, stream, seq) are ubiq's own identifiers. */
export const POLICY_SYSTEM = 'urn:ubiq:policy-id'
const READING_SYSTEM = 'urn:ubiq:reading'
const DEVICE_SYSTEM = 'urn:ubiq:device-id'

/** A stored reading of a health stream: its fields by name, as InfluxDB holds them. */
export interface HealthReading { deviceId: string; kind: string; seq: number; ts: number; fields: Record<string, unknown> }

type Effective = { effectiveDateTime: string } | { effectivePeriod: { start: string; end: string } }

/** How one stream becomes an Observation. */
export interface FhirMapping {
  kind: string
  /** The stream's fields the Observation carries (its value, and what times it). */
  fields: readonly string[]
  category: { code: 'vital-signs' | 'activity'; display: string }
  /** LOINC codings, the one asked for first. */
  codings: readonly { code: string; display: string }[]
  /** The UCUM unit: `unit` for people, `code` for machines. */
  unit: { unit: string; code: string }
  value(fields: Record<string, unknown>): number
  effective(ts: number, fields: Record<string, unknown>): Effective
  /** When the Observation says it was, in words. */
  timing: string
}

const iso = (ms: number) => new Date(ms).toISOString()
const VITAL = { code: 'vital-signs', display: 'Vital Signs' } as const
const ACTIVITY = { code: 'activity', display: 'Activity' } as const
/** A period that ends at the reading's time (steps count over an interval, sleep ends at waking). */
const endingAt = (ts: number, seconds: unknown): Effective => ({ effectivePeriod: { start: iso(ts - Number(seconds) * 1000), end: iso(ts) } })
const AT = 'the reading\'s time'

/** The streams with a LOINC code (the catalogue's health kinds; the units are the catalogue's). */
export const fhirMappings: readonly FhirMapping[] = [
  {
    kind: 'hr', fields: ['hr_bpm'], category: VITAL, codings: [{ code: '8867-4', display: 'Heart rate' }],
    unit: { unit: 'beats/minute', code: '/min' }, value: (f) => Number(f.hr_bpm), effective: (ts) => ({ effectiveDateTime: iso(ts) }), timing: AT,
  },
  {
    kind: 'steps', fields: ['steps_count', 'interval_s'], category: ACTIVITY, codings: [{ code: '55423-8', display: 'Number of steps in unspecified time Pedometer' }],
    unit: { unit: 'steps', code: '{steps}' }, value: (f) => Number(f.steps_count), effective: (ts, f) => endingAt(ts, f.interval_s),
    timing: 'the interval: `interval_s` up to the reading\'s time',
  },
  {
    // FHIR's vital-signs profile for pulse oximetry asks for 2708-6 beside 59408-5 (hl7.org/fhir/R4/observation-vitalsigns.html).
    kind: 'spo2', fields: ['spo2_pct'], category: VITAL,
    codings: [{ code: '59408-5', display: 'Oxygen saturation in Arterial blood by Pulse oximetry' }, { code: '2708-6', display: 'Oxygen saturation in Arterial blood' }],
    unit: { unit: '%', code: '%' }, value: (f) => Number(f.spo2_pct), effective: (ts) => ({ effectiveDateTime: iso(ts) }), timing: AT,
  },
  {
    // In minutes to two decimals (the stream sends whole seconds; UCUM `min`).
    kind: 'sleep', fields: ['duration_s'], category: ACTIVITY, codings: [{ code: '93832-4', display: 'Sleep duration' }],
    unit: { unit: 'min', code: 'min' }, value: (f) => Math.round(Number(f.duration_s) / 60 * 100) / 100, effective: (ts, f) => endingAt(ts, f.duration_s),
    timing: 'the sleep: `duration_s` up to the reading\'s time (waking)',
  },
]

export const fhirMappingOf: ReadonlyMap<string, FhirMapping> = new Map(fhirMappings.map((m) => [m.kind, m]))

/** The health streams' fields that no Observation carries: no LOINC code for them here, and none guessed. */
export function fhirLeftOut(): { kind: string; field: string; description: string }[] {
  return sensors.filter((s) => s.subject === 'health').flatMap((s) => {
    const used = new Set(fhirMappingOf.get(s.kind)?.fields ?? [])
    const props = s.schema.properties as Record<string, { description?: string }>
    return streamFields(s).filter((f) => !used.has(f)).map((field) => ({ kind: s.kind, field, description: props[field]?.description ?? '' }))
  })
}

// A fixed namespace for ubiq's name-based UUIDs: the same reading gets the same fullUrl in every export.
const NAMESPACE = Buffer.from('5f0c61f2a3b84e7d9b1e2c7a4d6f8e90', 'hex')
/** RFC 4122 version 5 (name-based, SHA-1) UUID of `name`, as a URN. */
export function uuidUrn(name: string): string {
  const h = createHash('sha1').update(NAMESPACE).update(name).digest()
  h[6] = (h[6]! & 0x0f) | 0x50
  h[8] = (h[8]! & 0x3f) | 0x80
  const x = h.subarray(0, 16).toString('hex')
  return `urn:uuid:${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`
}

/** The bundle's Patient: the policy id, nothing else. */
export const patientEntry = (policyId: string) => ({
  fullUrl: uuidUrn(`patient/${policyId}`),
  resource: { resourceType: 'Patient', identifier: [{ system: POLICY_SYSTEM, value: policyId }] },
})

/** A reading as a bundle entry, or undefined for a stream without a mapping (or a reading without its value). */
export function observationEntry(policyId: string, r: HealthReading) {
  const m = fhirMappingOf.get(r.kind)
  if (!m || m.fields.some((f) => typeof r.fields[f] !== 'number')) return undefined
  const id = `${r.deviceId}/${r.kind}/${r.seq}`
  return {
    fullUrl: uuidUrn(`observation/${policyId}/${id}`),
    resource: {
      resourceType: 'Observation',
      identifier: [{ system: READING_SYSTEM, value: id }],
      status: 'final',
      category: [{ coding: [{ system: CATEGORY, ...m.category }] }],
      code: { coding: m.codings.map((c) => ({ system: LOINC, ...c })), text: m.codings[0]!.display },
      subject: { reference: patientEntry(policyId).fullUrl },
      ...m.effective(r.ts, r.fields),
      device: { identifier: { system: DEVICE_SYSTEM, value: r.deviceId } },
      valueQuantity: { value: m.value(r.fields), unit: m.unit.unit, system: UCUM, code: m.unit.code },
    },
  }
}

/**
 * The Bundle as JSON text, a piece at a time: the Patient, then an Observation per mapped reading
 * of `pages` (a stream's pages after another's), so a year of heart rate never sits in memory whole.
 */
export async function* fhirBundle(policyId: string, pages: AsyncIterable<readonly HealthReading[]>, timestamp: number, count: (n: number) => void = () => {}): AsyncGenerator<string> {
  yield `{"resourceType":"Bundle","type":"collection","timestamp":"${iso(timestamp)}","entry":[\n${JSON.stringify(patientEntry(policyId))}`
  for await (const page of pages) {
    const entries = page.flatMap((r) => observationEntry(policyId, r) ?? [])
    count(entries.length)
    if (entries.length > 0) yield entries.map((e) => `,\n${JSON.stringify(e)}`).join('')
  }
  yield '\n]}\n'
}
