/** The ground truth: claim frequencies order as designed, drawn claims are calibrated, exports are complete. */
import t from 'tap'
import { drawClaims, expectedClaims, groundTruth, groundTruthCsv, groundTruthJson, type SubjectTruth } from './claims.ts'
import { makePolicies } from './device-streams.ts'
import { claimBase, drivingPersonas, healthPersonas, homePersonas } from './personas.ts'
import { makeCity } from './roads.ts'

const city = makeCity({ seed: 1 })
const start = Date.UTC(2026, 0, 1)
// 96 policies: 16 of each driving persona, 24 of each health and home persona; a year's exposure.
const policies = makePolicies(city, 96, { seed: 2 })
const expected = policies.flatMap((p) => expectedClaims(city, p, { startTs: start, days: 365 }))
const subjectRows = (subject: string) => expected.filter((s) => s.subject === subject)
const byPersona = (rows: Omit<SubjectTruth, 'claims'>[]) => {
  const groups = new Map<string, typeof rows>()
  for (const r of rows) groups.set(r.persona, [...(groups.get(r.persona) ?? []), r])
  return groups
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
/** Persona names from least to most risky, as the design's relativities order them. */
const designed = (personas: Record<string, { relativity: number }>) => Object.entries(personas).sort(([, a], [, b]) => a.relativity - b.relativity).map(([name]) => name)

t.test('expected claim frequencies derive from persona and exposure, and order as designed', async (t) => {
  const off = subjectRows('driving').filter((r) => {
    const persona = drivingPersonas[r.persona as keyof typeof drivingPersonas]
    return Math.abs(r.expectedPerYear - (claimBase.driving_perKm * persona.relativity * r.exposure) / r.years) > 1e-4
  })
  t.same(off, [], 'driving: base per km × relativity × km driven, per year')
  t.ok(subjectRows('health').every((r) => r.expectedPerYear === claimBase.health_perYear * healthPersonas[r.persona as keyof typeof healthPersonas].relativity), 'health: base × relativity')
  const driving = byPersona(subjectRows('driving'))
  const perKm = [...driving].map(([name, rows]) => [name, mean(rows.map((r) => (r.expectedPerYear * r.years) / r.exposure))] as const).sort((a, b) => a[1] - b[1])
  t.same(perKm.map(([name]) => name), designed(drivingPersonas), `per km: ${perKm.map(([n, f]) => `${n} ${(f * 1e4).toFixed(3)}`).join(' < ')} claims per 10,000 km`)
  const perYear = Object.fromEntries([...driving].map(([name, rows]) => [name, mean(rows.map((r) => r.expectedPerYear))]))
  t.comment(`driving, claims per policy-year: ${Object.entries(perYear).map(([n, f]) => `${n} ${f.toFixed(3)}`).join(', ')}`)
  t.ok(perYear['low-mileage']! < perYear.cautious! && perYear.cautious! < perYear.average!, 'per year: low-mileage < cautious < average (exposure matters)')
  t.ok(['aggressive', 'night-owl', 'distracted'].every((n) => perYear[n]! > 1.5 * perYear.average!), 'aggressive, night owls and the distracted claim far more often')
  for (const [subject, personas] of [['health', healthPersonas], ['home', homePersonas]] as const) {
    const rows = byPersona(subjectRows(subject))
    const order = [...rows].map(([name, rs]) => [name, mean(rs.map((r) => r.expectedPerYear))] as const).sort((a, b) => a[1] - b[1])
    t.same(order.map(([name]) => name), designed(personas), `${subject}: ${order.map(([n, f]) => `${n} ${f.toFixed(3)}`).join(' < ')} per policy-year`)
  }
})

t.test('drawn claims order as designed, firmly (z > 4 between neighbours)', async (t) => {
  // The claim process of each policy run for 10,000 years at its yearly exposure: about a million
  // policy-years per subject, enough that neighbouring personas differ by well over 4 standard errors.
  const YEARS = 10_000
  for (const [subject, personas, exposureOf] of [
    ['driving', drivingPersonas, (r: Omit<SubjectTruth, 'claims'>) => r.exposure * YEARS],
    ['health', healthPersonas, () => YEARS],
    ['home', homePersonas, () => YEARS],
  ] as const) {
    const observed = new Map<string, { claims: number; exposure: number }>()
    for (const [i, r] of subjectRows(subject).entries()) {
      const o = observed.get(r.persona) ?? { claims: 0, exposure: 0 }
      o.claims += drawClaims(r.expectedPerYear, start, YEARS, 1000 + i).length
      o.exposure += exposureOf(r)
      observed.set(r.persona, o)
    }
    // Driving per km (what the relativities say), health and home per policy-year.
    const order = designed(personas)
    const rate = (name: string) => observed.get(name)!.claims / observed.get(name)!.exposure
    for (let i = 1; i < order.length; i++) {
      const [lo, hi] = [observed.get(order[i - 1]!)!, observed.get(order[i]!)!]
      const z = (rate(order[i]!) - rate(order[i - 1]!)) / Math.sqrt(lo.claims / lo.exposure ** 2 + hi.claims / hi.exposure ** 2)
      t.ok(z > 4, `${subject}: ${order[i - 1]} (${lo.claims} claims) < ${order[i]} (${hi.claims} claims), z = ${z.toFixed(1)}`)
    }
  }
})

t.test('drawn claims are calibrated against the expected frequency', async (t) => {
  for (const subject of ['driving', 'health', 'home']) {
    const rows = subjectRows(subject)
    const want = rows.reduce((s, r) => s + r.expectedPerYear * 500, 0)
    const got = rows.reduce((s, r, i) => s + drawClaims(r.expectedPerYear, start, 500, 77 + i).length, 0)
    t.ok(Math.abs(got - want) < 4 * Math.sqrt(want), `${subject}: ${got} claims drawn, ${want.toFixed(0)} expected`)
  }
  const claims = drawClaims(3, start, 2, 5)
  t.ok(claims.every((ts, i) => ts >= start && ts < start + 2 * 365.25 * 86_400_000 && (i === 0 || ts >= claims[i - 1]!)), 'claims fall in the term, in order')
})

t.test('the ground truth exports as CSV and JSON', async (t) => {
  const truth = groundTruth(city, policies.slice(0, 12), { startTs: start, days: 365, seed: 3 })
  t.equal(truth.subjects.length, 36)
  const csv = groundTruthCsv(truth)
  const lines = csv.policies.trim().split('\n')
  t.equal(lines[0], 'policy_id,subject,device_id,persona,exposure,exposure_unit,years,expected_claims_per_year,expected_claims,claims')
  t.equal(lines.length, 37, 'a row per policy and subject')
  const first = lines[1]!.split(',')
  const s0 = truth.subjects[0]!
  t.same(first.slice(0, 6), [s0.policyId, 'driving', s0.deviceId, s0.persona, String(s0.exposure), 'km'])
  t.ok(Math.abs(Number(first[7]) - s0.expectedPerYear) < 1e-6)
  const total = truth.subjects.reduce((n, s) => n + s.claims.length, 0)
  t.equal(csv.claims.trim().split('\n').length, total + 1, `a row per claim (${total})`)
  t.same(lines.slice(1).reduce((n, l) => n + Number(l.split(',')[9]), 0), total)

  const json = JSON.parse(groundTruthJson(truth))
  t.equal(json.policies.length, 12)
  t.equal(json.from, '2026-01-01T00:00:00.000Z')
  t.match(json.policies[0], { policyId: s0.policyId, driving: { persona: s0.persona, exposureUnit: 'km' }, health: { exposureUnit: 'years' }, home: { exposureUnit: 'years' } })
  t.equal(json.policies.reduce((n: number, p: Record<string, { claims?: string[] }>) => n + ['driving', 'health', 'home'].reduce((m, s) => m + p[s]!.claims!.length, 0), 0), total)

  const again = groundTruth(city, policies.slice(0, 12), { startTs: start, days: 365, seed: 3 })
  t.equal(groundTruthCsv(again).policies, csv.policies, 'the same seed exports the same bytes')
  t.equal(groundTruthJson(again), groundTruthJson(truth))
  const other = groundTruth(city, policies.slice(0, 12), { startTs: start, days: 365, seed: 4 })
  t.same(other.subjects.map((s) => s.expectedPerYear), truth.subjects.map((s) => s.expectedPerYear), 'another claim seed: the same exposures and frequencies…')
  t.not(JSON.stringify(other.subjects.map((s) => s.claims)), JSON.stringify(truth.subjects.map((s) => s.claims)), '…and other claims')
})
