/**
 * A training portfolio (issue #6): simulated policies observed through the real scoring code, each
 * with the simulator's ground truth and a claims history drawn from it.
 *
 * Every policy's devices are simulated for `days`; their messages go through ingest's decoder and
 * scoring's own trip tracker, detectors and health and home accumulators, exactly as in the service,
 * and the features are the ones a score would have at the end of that span. The claims come from
 * the persona's latent risk (edge-sim/claims.ts) over `years` of the same behaviour: a few hundred
 * policies with years of history carry the claim counts a real portfolio reaches with many more
 * policies, which is what a frequency model needs to be fitted and checked at all.
 */
import { availableParallelism } from 'node:os'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { createAdapters, decodeMessage, deviceRegistry, isRejection, type Reading, type Subject } from '../ingest/index.ts'
import {
  cityGeoJson, drawClaims, expectedClaims, makeCity, makePolicies, policyDevices, policyRegistry,
  type City, type SimPolicy, type StreamOptions,
} from '../edge-sim/index.ts'
import {
  addTrip, DAY_MS, dayOf, defaultHealthConfig, defaultHomeConfig, defaultTripConfig, drivingFeatures, healthAccumulator, HISTORY_DAYS,
  homeAccumulator, roadMap, tripTracker, vehicleDetectors, type DrivingDay,
} from '../scoring/index.ts'

const YEAR_DAYS = 365.25

/** One policy's subject, as a model is trained and checked on it. */
export interface PortfolioRow {
  policyId: string
  subject: Subject
  /** Where the policyholder lives (inner or outer city): not a rating attribute, kept to check fairness. */
  region: string
  /** The simulator's persona: the truth, for checking models, never a model input. */
  persona: string
  /** Features at the end of the observed span, as scoring computes them. */
  features: Record<string, number>
  /** Years of claims history. */
  years: number
  /** Exposure of that history: km driven (driving, from the observed km per day) or policy-years. */
  exposure: number
  /** The truth: expected claims per policy-year. */
  expectedPerYear: number
  /** Claims drawn over the history. */
  claims: number
}

export interface PortfolioOptions {
  /** Start of the observed span, ms. */
  startTs: number
  /**
   * Days of telemetry per policy, per subject. Driving's features are rates of rare events: a
   * fortnight ranks drivers, four weeks are needed for a model to meet the quality goals; health
   * needs more than 45 days for its resting heart rate trend.
   */
  days: Record<Subject, number>
  /** Years of claims history per policy. */
  years: number
  /** Seed of the claim draws. */
  seed: number
  imuHz?: number
}

/** Every message a policy's devices send, decoded by ingest as the service decodes them, per device in sending order. */
export function* decodedReadings(city: City, policy: SimPolicy, opts: StreamOptions): Generator<Reading> {
  const cfg = { registry: deviceRegistry(policyRegistry([policy])), maxPayloadBytes: 1 << 20, maxFutureSkewMs: 60_000, adapters: createAdapters() }
  for (const device of policyDevices(city, policy, opts)) {
    for (const m of device.messages) {
      const r = decodeMessage(cfg, m.topic, Buffer.from(m.payload), m.sendAt)
      if (!r || isRejection(r)) throw new Error(`simulated message rejected: ${JSON.stringify(r)}`)
      yield r
    }
  }
}

/** The portfolio's rows, a policy at a time (each policy's devices simulated and scored, then dropped). */
export function* simulatePortfolio(city: City, policies: readonly SimPolicy[], opts: PortfolioOptions): Generator<PortfolioRow> {
  const detectors = vehicleDetectors(roadMap(cityGeoJson(city)))
  for (const policy of policies) {
    const features = policyFeatures(city, policy, opts, detectors)
    for (const [i, truth] of expectedClaims(city, policy, { startTs: opts.startTs, days: opts.days.driving }).entries()) {
      const f = features[truth.subject]
      const exposure = truth.subject === 'driving' ? f.km_per_day! * YEAR_DAYS * opts.years : opts.years
      yield {
        policyId: policy.policyId,
        subject: truth.subject,
        region: region(city, policy),
        persona: truth.persona,
        features: f,
        years: opts.years,
        exposure,
        expectedPerYear: truth.expectedPerYear,
        claims: drawClaims(truth.expectedPerYear, opts.startTs, opts.years, opts.seed * 1_000_003 + policy.seed * 3 + i).length,
      }
    }
  }
}

/** A policy's features per subject at the end of its span, from its simulated devices through scoring's own code. */
function policyFeatures(city: City, policy: SimPolicy, opts: PortfolioOptions, detectors: ReturnType<typeof vehicleDetectors>): Record<Subject, Record<string, number>> {
  let days: DrivingDay[] = []
  const trackers = new Map<string, ReturnType<typeof tripTracker>>()
  const health = healthAccumulator(defaultHealthConfig, policy.policyId)
  const home = homeAccumulator(defaultHomeConfig, policy.policyId)
  const addTrips = (outputs: ReturnType<ReturnType<typeof tripTracker>['push']>) => {
    for (const o of outputs) if ('trip' in o) days = addTrip(days, o.trip)
  }
  const readings = (device: 'vehicle' | 'wearable' | 'home', days: number) =>
    decodedReadings(city, { policyId: policy.policyId, seed: policy.seed, [device]: policy[device] }, { startTs: opts.startTs, days, imuHz: opts.imuHz })
  const end = (subject: Subject) => opts.startTs + opts.days[subject] * DAY_MS
  const streams = [readings('vehicle', opts.days.driving), readings('wearable', opts.days.health), readings('home', opts.days.home)]
  for (const stream of streams) {
    for (const r of stream) {
      if (r.subject === 'health') health.push(r)
      else if (r.subject === 'home') home.push(r)
      else {
        let tracker = trackers.get(r.deviceId)
        if (!tracker) trackers.set(r.deviceId, (tracker = tripTracker(defaultTripConfig, r.deviceId, r.policyId, detectors(r.deviceId, r.policyId))))
        addTrips(tracker.push(r))
      }
    }
  }
  for (const tracker of trackers.values()) addTrips(tracker.flush())
  health.flush()
  home.flush()
  return {
    driving: drivingFeatures(days, dayOf(end('driving') - 1), HISTORY_DAYS),
    health: health.features(end('health')),
    home: home.features(end('home')),
  }
}

/** Inner or outer city, by where the policyholder lives (known from the car's home place). */
function region(city: City, policy: SimPolicy): string {
  const home = policy.vehicle?.places.home
  if (home === undefined) return 'unknown'
  const radius = Math.hypot(city.x[0]!, city.y[0]!) / 2
  return Math.hypot(city.x[home]!, city.y[home]!) < radius ? 'inner' : 'outer'
}

/** A simulated portfolio: `policies` of the fleet `seed`, every policy with a car, a wearable and a home. */
export interface PortfolioSpec extends PortfolioOptions {
  policies: number
}

/**
 * Simulates the portfolio on every core: policy i on worker i mod n. Resolves with the rows in
 * policy order (the same for the same spec, whatever the number of workers).
 */
export async function runPortfolio(spec: PortfolioSpec, onPolicy: (done: number) => void = () => {}): Promise<PortfolioRow[]> {
  const workers = Math.max(1, Math.min(availableParallelism(), spec.policies))
  let done = 0
  const parts = await Promise.all(Array.from({ length: workers }, (_, k) => new Promise<{ policy: number; row: PortfolioRow }[]>((resolve, reject) => {
    const rows: { policy: number; row: PortfolioRow }[] = []
    // The worker registers the TypeScript loader, then runs this module's worker part below.
    const worker = new Worker(new URL('./portfolio-worker.js', import.meta.url), { workerData: { portfolio: spec, part: k, parts: workers } })
    worker.on('message', (m: { policy: number; rows: PortfolioRow[] }) => {
      rows.push(...m.rows.map((row) => ({ policy: m.policy, row })))
      onPolicy(++done)
    })
    worker.on('error', reject)
    worker.on('exit', (code) => (code === 0 ? resolve(rows) : reject(new Error(`portfolio worker ${k} exited with ${code}`))))
  })))
  // A policy's rows come in subject order; policies in the order of the fleet.
  return parts.flat().sort((a, b) => a.policy - b.policy).map((r) => r.row)
}

if (!isMainThread && workerData?.portfolio) {
  const { portfolio: spec, part, parts } = workerData as { portfolio: PortfolioSpec; part: number; parts: number }
  const city = makeCity({ seed: spec.seed })
  makePolicies(city, spec.policies, { seed: spec.seed }).forEach((policy, i) => {
    if (i % parts === part) parentPort!.postMessage({ policy: i, rows: [...simulatePortfolio(city, [policy], spec)] })
  })
}

/** The rows of one subject as CSV: identity, truth and claims, then that subject's features. */
export function portfolioCsv(rows: readonly PortfolioRow[], subject: Subject): string {
  const mine = rows.filter((r) => r.subject === subject)
  const features = [...new Set(mine.flatMap((r) => Object.keys(r.features)))].sort()
  const head = ['policy_id', 'region', 'persona', 'years', 'exposure', 'expected_claims_per_year', 'claims', ...features]
  // Ids, regions and persona names are [A-Za-z0-9_-]: nothing to quote. A missing feature is empty.
  const lines = mine.map((r) => [r.policyId, r.region, r.persona, r.years, round(r.exposure), round(r.expectedPerYear), r.claims, ...features.map((f) => r.features[f] ?? '')].join(','))
  return [head.join(','), ...lines].join('\n') + '\n'
}

/** Rows back from `portfolioCsv`; throws with the line and column of anything malformed. */
export function readPortfolioCsv(text: string, subject: Subject, file: string): PortfolioRow[] {
  const [head, ...lines] = text.split(/\r?\n/).filter((l) => l.trim() !== '')
  if (!head) throw new Error(`${file}: empty`)
  const cols = head.split(',')
  const need = ['policy_id', 'years', 'exposure', 'claims']
  const missing = need.filter((c) => !cols.includes(c))
  if (missing.length) throw new Error(`${file}: no column ${missing.join(', ')}`)
  const fixed = new Set(['policy_id', 'region', 'persona', 'years', 'exposure', 'expected_claims_per_year', 'claims'])
  return lines.map((line, i) => {
    const cells = line.split(',')
    if (cells.length !== cols.length) throw new Error(`${file}:${i + 2}: ${cells.length} cells, the header has ${cols.length}`)
    const at = (c: string) => cells[cols.indexOf(c)]
    const num = (c: string, ok: (n: number) => boolean) => {
      const n = Number(at(c))
      if (at(c) === '' || !ok(n)) throw new Error(`${file}:${i + 2}: ${c} "${at(c)}" is not a valid number`)
      return n
    }
    const features: Record<string, number> = {}
    for (const [j, c] of cols.entries()) if (!fixed.has(c) && cells[j] !== '') features[c] = num(c, Number.isFinite)
    return {
      policyId: at('policy_id')!,
      subject,
      region: at('region') ?? '',
      persona: at('persona') ?? '',
      features,
      years: num('years', (n) => n > 0),
      exposure: num('exposure', (n) => n >= 0),
      expectedPerYear: cols.includes('expected_claims_per_year') ? num('expected_claims_per_year', (n) => n >= 0) : NaN,
      claims: num('claims', (n) => Number.isInteger(n) && n >= 0),
    }
  })
}

const round = (x: number) => Math.round(x * 1e6) / 1e6
