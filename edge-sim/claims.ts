/**
 * The ground truth a model is checked against (issue #4: "a ground-truth expected claim frequency
 * derived from its persona and exposure, and the simulator can draw claims from it"). Claims are
 * a Poisson process per policy and subject:
 *
 *   driving: rate = base per km × persona relativity × km planned over the term
 *   health, home: rate = base per year × persona relativity × policy-years
 *
 * so ranking (relativities) and calibration (expected against drawn counts) can both be checked.
 * Exports it as CSV and JSON for training and for analysts.
 */
import type { Subject } from '../ingest/device-contract.ts'
import { claimBase, drivingPersonas, healthPersonas, homePersonas } from './personas.ts'
import { deriveSeed, poisson, seededRandom } from './random.ts'
import type { City } from './roads.ts'
import { plannedKm, planTrips } from './trips.ts'
import type { SimPolicy } from './device-streams.ts'

/** The truth for one subject of one policy over the term. */
export interface SubjectTruth {
  policyId: string
  subject: Subject
  deviceId: string
  persona: string
  /** Km driven (driving) or policy-years (health, home) over the term. */
  exposure: number
  exposureUnit: 'km' | 'years'
  /** Length of the term, years. */
  years: number
  /** The expected claim frequency, claims per policy-year. */
  expectedPerYear: number
  /** Claims drawn over the term, ms since the epoch, in order. */
  claims: number[]
}

/** A term's truth: every policy's subjects with their claims. */
export interface GroundTruth {
  seed: number
  fromTs: number
  toTs: number
  subjects: SubjectTruth[]
}

/** The policy term the truth covers. */
export interface TermOptions {
  startTs: number
  days: number
  /** Seed of the claim draws (the behaviour's seeds are the policies'). */
  seed?: number
}

const YEAR_DAYS = 365.25
const DAY_MS = 86_400_000

/** Exposure and expected frequency of each of the policy's subjects over the term (no claims drawn yet). */
export function expectedClaims(city: City, policy: SimPolicy, term: TermOptions): Omit<SubjectTruth, 'claims'>[] {
  const years = term.days / YEAR_DAYS
  const out: Omit<SubjectTruth, 'claims'>[] = []
  const { vehicle, wearable, home } = policy
  if (vehicle) {
    const persona = drivingPersonas[vehicle.persona]
    const km = plannedKm(city, planTrips(city, persona, vehicle.places, term.startTs, term.days, vehicle.seed))
    out.push({ policyId: policy.policyId, subject: 'driving', deviceId: vehicle.deviceId, persona: persona.name, exposure: round(km, 1), exposureUnit: 'km', years, expectedPerYear: (claimBase.driving_perKm * persona.relativity * km) / years })
  }
  if (wearable) {
    const persona = healthPersonas[wearable.persona]
    out.push({ policyId: policy.policyId, subject: 'health', deviceId: wearable.deviceId, persona: persona.name, exposure: years, exposureUnit: 'years', years, expectedPerYear: claimBase.health_perYear * persona.relativity })
  }
  if (home) {
    const persona = homePersonas[home.persona]
    out.push({ policyId: policy.policyId, subject: 'home', deviceId: home.deviceId, persona: persona.name, exposure: years, exposureUnit: 'years', years, expectedPerYear: claimBase.home_perYear * persona.relativity })
  }
  return out
}

/** Claims of a Poisson process with `perYear` over `years` from `fromTs`: their times, in order. */
export function drawClaims(perYear: number, fromTs: number, years: number, seed: number): number[] {
  const rand = seededRandom(seed)
  const span = years * YEAR_DAYS * DAY_MS
  return Array.from({ length: poisson(rand, perYear * years) }, () => Math.round(fromTs + rand() * span)).sort((a, b) => a - b)
}

/** The ground truth of a term: exposures, expected frequencies and drawn claims of every policy. */
export function groundTruth(city: City, policies: readonly SimPolicy[], term: TermOptions): GroundTruth {
  const seed = term.seed ?? 1
  const subjects = policies.flatMap((policy) =>
    expectedClaims(city, policy, term).map((s, i) => ({ ...s, claims: drawClaims(s.expectedPerYear, term.startTs, s.years, deriveSeed(seed, policy.seed, i)) })))
  return { seed, fromTs: term.startTs, toTs: term.startTs + term.days * DAY_MS, subjects }
}

/** CSV text: one row per policy and subject, and one row per claim. */
export function groundTruthCsv(truth: GroundTruth): { policies: string; claims: string } {
  const policies = [
    'policy_id,subject,device_id,persona,exposure,exposure_unit,years,expected_claims_per_year,expected_claims,claims',
    ...truth.subjects.map((s) => [s.policyId, s.subject, s.deviceId, s.persona, s.exposure, s.exposureUnit, round(s.years, 4), round(s.expectedPerYear, 6), round(s.expectedPerYear * s.years, 6), s.claims.length].join(',')),
  ]
  const claims = ['policy_id,subject,device_id,claim_time', ...truth.subjects.flatMap((s) => s.claims.map((ts) => [s.policyId, s.subject, s.deviceId, new Date(ts).toISOString()].join(',')))]
  // Ids and persona names are [A-Za-z0-9_-]: nothing to quote.
  return { policies: policies.join('\n') + '\n', claims: claims.join('\n') + '\n' }
}

/** JSON text: the term and, per policy, its subjects with their claims as ISO times. */
export function groundTruthJson(truth: GroundTruth): string {
  const byPolicy = new Map<string, Record<string, unknown>>()
  for (const { policyId, subject, claims, ...rest } of truth.subjects) {
    const policy = byPolicy.get(policyId) ?? { policyId }
    policy[subject] = { ...rest, expectedPerYear: round(rest.expectedPerYear, 6), claims: claims.map((ts) => new Date(ts).toISOString()) }
    byPolicy.set(policyId, policy)
  }
  return JSON.stringify({ seed: truth.seed, from: new Date(truth.fromTs).toISOString(), to: new Date(truth.toTs).toISOString(), policies: [...byPolicy.values()] }, null, 2) + '\n'
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits
