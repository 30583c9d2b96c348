/**
 * The pricing service: scores → premium adjustments, hash-chained, appended to the audit log,
 * then published retained on `ubiq/v1/premiums/{policyId}` and stored in InfluxDB.
 */
import { createHash } from 'node:crypto'
import type { MqttClient } from 'mqtt'
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import { defer, filter, map, share, tap, type Observable, type OperatorFunction } from 'rxjs'
import { toLine, topics, type Influx } from '../ingest/index.ts'
import type { Reason, Score } from '../scoring/index.ts'
import type { AuditLog } from './audit.ts'
import { rate, type RatingPlan } from './plan.ts'

/** A premium change, with everything needed to explain and reproduce it (DESIGN.md core types). */
export interface PremiumAdjustment {
  policyId: string
  factor: number
  reasons: Reason[]
  models: string[]
  ruleset: string
  effectiveFrom: string
  /** sha256 of the canonical inputs: the same inputs always give the same adjustment. */
  inputsHash: string
  /** Hash of the previous adjustment in the chain ('' for the first). */
  prevHash: string
  /** Hash of this adjustment, prevHash included. */
  hash: string
  credibility: number
  limited: 'floor' | 'cap' | null
}

export interface PricingDeps {
  scores$: Observable<Score>
  mqtt: MqttClient
  influx: Influx
  plan: RatingPlan
  /** Every adjustment is appended here before it is published; the chain continues from its last record. */
  audit: AuditLog
  logger: Logger
  metrics: Registry
}

/** Starts pricing; premiums$ is hot and shared. */
export function startPricing(deps: PricingDeps): { premiums$: Observable<PremiumAdjustment> } {
  const log = deps.logger.child({ stage: 'pricing' })
  const priced = new Counter({ name: 'ubiq_premium_adjustments_total', help: 'Premium adjustments published', registers: [deps.metrics] })
  // The rating plan prices motor cover from the driving score; health and home scores wait for
  // their own plans (#6), rather than publishing a neutral premium over the motor one.
  if (deps.audit.dropped > 0) log.warn({ bytes: deps.audit.dropped }, 'audit log: dropped a partial last record, never published')
  const premiums$ = deps.scores$.pipe(
    filter((s) => s.subject === 'driving'),
    priceScores(deps.plan, deps.audit.lastHash),
    // In the log before any subscriber sees it: nothing is published that the audit log lacks (#6).
    tap((p) => deps.audit.append(p)),
    share(),
  )
  premiums$.subscribe({
    next: (p) => {
      priced.inc()
      log.debug({ policyId: p.policyId, factor: p.factor }, 'premium adjusted')
      deps.mqtt.publish(topics.premiums(p.policyId), JSON.stringify(p), { qos: 1, retain: true })
      deps.influx.write([toLine('premium', { policy_id: p.policyId, ruleset: p.ruleset }, {
        factor: p.factor, credibility: p.credibility, inputs_hash: p.inputsHash, prev_hash: p.prevHash, hash: p.hash,
      }, Date.parse(p.effectiveFrom))])
    },
    // An adjustment that cannot be audited is never published: premiums$ ends with the error.
    error: (err: Error) => log.error({ err: err.message }, 'pricing stopped: the audit log failed'),
  })
  return { premiums$ }
}

/**
 * Stage: scores → adjustments. A score whose inputs hash equals the policy's last one (a
 * redelivery, or nothing new) yields nothing: an adjustment never applies twice. The chain
 * continues from `startHash`: '' for a new chain, the audit log's last hash after a restart.
 */
export function priceScores(plan: RatingPlan, startHash = ''): OperatorFunction<Score, PremiumAdjustment> {
  // State per subscription, not per pipe: two subscribers must not share one chain.
  return (scores$) => defer(() => {
    const lastInputs = new Map<string, string>()
    let prevHash = startHash
    return scores$.pipe(
      map((s) => {
        const inputs = { policyId: s.policyId, score: s.value, model: s.model, window: s.window, exposure: s.exposure, ruleset: plan.version }
        return { s, inputs, inputsHash: sha256(canonicalJson(inputs)) }
      }),
      filter(({ s, inputsHash }) => lastInputs.get(s.policyId) !== inputsHash),
      map(({ s, inputsHash }) => {
        lastInputs.set(s.policyId, inputsHash)
        const r = rate(plan, s.value, s.exposure.distance_km ?? 0)
        const body = {
          policyId: s.policyId,
          factor: r.factor,
          reasons: s.reasons,
          models: [s.model],
          ruleset: plan.version,
          effectiveFrom: new Date(s.window.to).toISOString(),
          inputsHash,
          prevHash,
          credibility: Math.round(r.credibility * 1000) / 1000,
          limited: r.limited,
        }
        const adjustment = { ...body, hash: adjustmentHash(body) }
        prevHash = adjustment.hash
        return adjustment
      }),
    )
  })
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex')

/** An adjustment's hash: over everything in it but the hash itself, prevHash included. */
export function adjustmentHash(body: Omit<PremiumAdjustment, 'hash'>): string {
  return sha256(canonicalJson(body))
}

/** JSON with object keys sorted at every level, so equal values hash equal. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  if (value && typeof value === 'object') {
    const obj = value as Record<string, unknown>
    return `{${Object.keys(obj).sort().filter((k) => obj[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`
  }
  return JSON.stringify(value)
}
