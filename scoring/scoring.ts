/**
 * The scoring service: readings → per-policy driving totals → features → ONNX scores with reasons,
 * published on `ubiq/v1/scores/{policyId}` and stored in InfluxDB; IMU readings → harsh driving
 * events with their evidence, published on `ubiq/v1/events/{policyId}` and stored in InfluxDB.
 */
import type { MqttClient } from 'mqtt'
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import { auditTime, debounceTime, filter, groupBy, map, mergeMap, share, type Observable } from 'rxjs'
import { toLine, topics, type Influx, type Reading } from '../ingest/index.ts'
import type { DrivingEvent, PolicyEvent } from './events.ts'
import { detectManoeuvres, type ManoeuvreConfig } from './manoeuvres.ts'
import { accumulateDriving, drivingFeatures, type DrivingThresholds } from './features.ts'
import type { LoadedModel } from './model.ts'
import { scoreWith, type BatchConfig, type Score, type ScoreInput } from './score.ts'

export interface ScoringDeps {
  readings$: Observable<Reading>
  mqtt: MqttClient
  influx: Influx
  model: LoadedModel
  logger: Logger
  metrics: Registry
  thresholds: DrivingThresholds
  manoeuvres: ManoeuvreConfig
  batch: BatchConfig
  /** A policy is re-scored at most this often, ms. */
  scoreIntervalMs: number
  /** A policy with no reading for this long is dropped from memory, ms. */
  idleExpiryMs: number
}

/** Starts scoring; scores$ and events$ are hot and shared. */
export function startScoring(deps: ScoringDeps): { scores$: Observable<Score>; events$: Observable<DrivingEvent> } {
  const log = deps.logger.child({ stage: 'scoring' })
  const scored = new Counter({ name: 'ubiq_scores_total', help: 'Scores produced', labelNames: ['subject'], registers: [deps.metrics] })
  const failures = new Counter({ name: 'ubiq_model_failures_total', help: 'Model calls that failed', registers: [deps.metrics] })

  const scores$ = deps.readings$.pipe(
    // The driving features are computed from OBD speed; other driving streams join with their features.
    filter((r) => r.kind === 'obd'),
    // Bounded memory: a policy's group closes after idleExpiryMs without readings.
    groupBy((r) => r.policyId, { duration: (g) => g.pipe(debounceTime(deps.idleExpiryMs)) }),
    mergeMap((policy$) => policy$.pipe(
      accumulateDriving(deps.thresholds, policy$.key),
      auditTime(deps.scoreIntervalMs),
      map((t): ScoreInput => ({
        policyId: t.policyId,
        window: { from: t.from, to: t.to },
        exposure: { days: round3((t.to - t.from) / 86_400_000), distance_km: round3(t.distance_km) },
        features: drivingFeatures(deps.thresholds, t),
      })),
    )),
    scoreWith(deps.model, deps.batch, (err) => {
      failures.inc()
      log.error({ err }, 'model call failed')
    }),
    share(),
  )
  scores$.subscribe((s) => {
    scored.inc({ subject: s.subject })
    deps.mqtt.publish(topics.scores(s.policyId), JSON.stringify(s), { qos: 1 })
    deps.influx.write([
      toLine('score', { policy_id: s.policyId, subject: s.subject, model: s.model }, { value: s.value, ...s.exposure, ...s.features }, s.window.to),
    ])
  })

  const detected = new Counter({ name: 'ubiq_events_total', help: 'Driving events detected', labelNames: ['type'], registers: [deps.metrics] })
  const events$ = deps.readings$.pipe(
    detectManoeuvres(deps.manoeuvres, deps.idleExpiryMs),
    share(),
  )
  events$.subscribe((e) => {
    detected.inc({ type: e.type })
    deps.mqtt.publish(topics.events(e.policyId), JSON.stringify(e), { qos: 1 })
    deps.influx.write([eventLine(e)])
  })
  return { scores$, events$ }
}

/** An event as an InfluxDB line: its numeric evidence as fields (a crash's sample window stays on MQTT). */
function eventLine(e: PolicyEvent): string {
  const numbers: Record<string, number | boolean> = { urgent: e.urgent, end_ms: e.to }
  for (const [k, v] of Object.entries(e.evidence)) if (typeof v === 'number') numbers[k] = v
  return toLine('event', { policy_id: e.policyId, device_id: e.deviceId, subject: e.subject, type: e.type, source: e.evidence.source }, numbers, e.from, ['samples', 'end_ms'])
}

const round3 = (x: number) => Math.round(x * 1000) / 1000
