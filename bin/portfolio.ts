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
  homeAccumulator, roadMap, tripTracker, vehicleDetectors, type DrivingDay, type PortfolioRow,
} from '../scoring/index.ts'

const YEAR_DAYS = 365.25


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
