/**
 * The analyst's alert rules (#23: "nothing reaches anyone"): ingest lag, the share of device
 * messages rejected and score drift, evaluated by ubiq, shown on the portfolio page (GET
 * /api/v1/alerts), exposed on /metrics (`ubiq_alert_firing`, `ubiq_score_drift_psi`) and written
 * as a Prometheus alerting-rules file with the same thresholds for operators who run Alertmanager
 * (`prometheusRules`, dashboards/grafana/prometheus-alerts.yml by `npm run docs`).
 *
 * Lag and rejections are over the last few minutes, from the metrics sampler's differences, as
 * Prometheus' rate() over the same window: the file's expressions compute what ubiq computes.
 * Score drift compares the portfolio's score distribution (each policy's latest score, the
 * portfolio page's 10-point bins) of the last window with the reference window before it by the
 * population stability index, PSI = Σ (a − r) · ln(a / r) over the bins' shares; the usual reading
 * is below 0.1 no real change, 0.1 to 0.25 a moderate shift worth a look, above 0.25 a significant
 * shift (Siddiqi, Credit Risk Scorecards, Wiley 2006, ch. 8; Yurdakul, Statistical properties of the
 * population stability index, Western Michigan University 2018), so the rule fires above 0.25.
 */
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { Gauge, type Registry } from 'prom-client'
import { qualified, quoteString, type Influx, type Subject } from '../ingest/index.ts'
import { histogramQuantile, recent, type Sample } from './monitoring.ts'
import { distributionOf } from './portfolio.ts'
import { Nullable, strict } from './schemas.ts'
import { Format, iso, tableRoutes, type App } from './tables.ts'
import type { Principal } from './auth.ts'

/** The rules' thresholds and windows (ConfigSchema's ALERT_* variables). */
export interface AlertThresholds {
  /** Lag and rejections are over the last this many minutes (at most 15, the sampler's memory). */
  windowMin: number
  /** Median device lag (receive time minus device time) above this, s, fires. */
  lagS: number
  /** A share of received messages rejected above this, percent, fires. */
  rejectedPct: number
  /** A population stability index above this fires. */
  driftPsi: number
  /** Drift compares the last this many hours with the 7 times as long before them. */
  driftWindowH: number
  /** Fewer policies with a score than this in either window: no drift figure. */
  driftMinPolicies: number
}

export const defaultAlertThresholds: AlertThresholds = { windowMin: 5, lagS: 300, rejectedPct: 5, driftPsi: 0.25, driftWindowH: 24, driftMinPolicies: 20 }

const AlertState = Type.Union([Type.Literal('ok'), Type.Literal('firing'), Type.Literal('no_data')])
export const AlertRule = strict({
  name: Type.String(),
  title: Type.String(),
  description: Type.String(),
  state: AlertState,
  value: Nullable(Type.Number({ description: "The rule's figure now, in its unit; null without data" })),
  threshold: Type.Number({ description: 'It fires above this' }),
  unit: Type.Union([Type.Literal('s'), Type.Literal('share'), Type.Literal('psi')], { description: 's: seconds; share: 0–1; psi: population stability index' }),
  since: Nullable(Type.String({ description: 'When the rule came to its state' })),
})
export type AlertRule = Static<typeof AlertRule>
export const Alerts = strict({ at: Type.String(), rules: Type.Array(AlertRule) })
export type Alerts = Static<typeof Alerts>

/** A score share for an empty bin: ln(0) is not a number, and one empty bin should not read as infinite drift. */
const EMPTY_SHARE = 1e-4

/** The population stability index of `actual` against `reference` (counts of the same bins); null if either has none. */
export function psi(actual: readonly number[], reference: readonly number[]): number | null {
  const [na, nr] = [actual, reference].map((xs) => xs.reduce((a, b) => a + b, 0))
  if (!na || !nr) return null
  return actual.reduce((sum, a, i) => {
    const p = Math.max(a / na!, EMPTY_SHARE), q = Math.max(reference[i]! / nr!, EMPTY_SHARE)
    return sum + (p - q) * Math.log(p / q)
  }, 0)
}

const subjects: readonly Subject[] = ['driving', 'health', 'home']

/** The rules, each with how it reads its figure. */
function rules(th: AlertThresholds) {
  const window = `${th.windowMin} min`
  return [
    {
      name: 'ingest_lag', title: 'Ingest lag', unit: 's' as const, threshold: th.lagS,
      description: `Median device lag (receive time minus device time) over the last ${window}: devices send late, or a broker queue is backing up`,
      prometheus: `histogram_quantile(0.5, sum by (instance, le) (rate(ubiq_ingest_device_lag_seconds_bucket[${th.windowMin}m]))) > ${th.lagS}`,
    },
    {
      name: 'rejection_rate', title: 'Rejected messages', unit: 'share' as const, threshold: th.rejectedPct / 100,
      description: `Share of device messages rejected over the last ${window}: a firmware or contract change, or a misbehaving device (the ingest page gives the reasons)`,
      prometheus: `sum by (instance) (rate(ubiq_ingest_messages_rejected_total[${th.windowMin}m])) / sum by (instance) (rate(ubiq_ingest_messages_received_total[${th.windowMin}m])) > ${th.rejectedPct / 100}`,
    },
    ...subjects.map((subject) => ({
      name: `score_drift_${subject}`, title: `Score drift, ${subject}`, unit: 'psi' as const, threshold: th.driftPsi,
      description: `Population stability index of the ${subject} scores (each policy's latest) of the last ${th.driftWindowH} h against the ${7 * th.driftWindowH} h before: the portfolio or the model's inputs changed`,
      prometheus: `ubiq_score_drift_psi{subject="${subject}"} > ${th.driftPsi}`,
    })),
  ]
}

/** Where `npm run docs` writes the rules file, beside the Grafana provisioning. */
export const PROMETHEUS_RULES = 'dashboards/grafana/prometheus-alerts.yml'

/**
 * The rules as a Prometheus alerting-rules file (YAML), with the same expressions and thresholds
 * ubiq evaluates: `prometheus.yml`'s rule_files loads it, and Alertmanager routes what fires.
 */
export function prometheusRules(th: AlertThresholds = defaultAlertThresholds): string {
  const q = (s: string) => JSON.stringify(s) // a JSON string is a YAML double-quoted scalar
  return [
    '# ubiq\'s analyst alert rules for Prometheus (rule_files), the thresholds at ubiq\'s defaults.',
    '# Generated from dashboards/alerts.ts by `npm run docs`: change the ALERT_* variables there and',
    '# here alike, so that the portfolio page and Alertmanager agree.',
    'groups:',
    '  - name: ubiq-analyst',
    '    rules:',
    ...rules(th).flatMap((r) => [
      `      - alert: ubiq_${r.name}`,
      `        expr: ${q(r.prometheus)}`,
      '        labels:',
      '          severity: warning',
      '        annotations:',
      `          summary: ${q(`${r.title} above ${r.unit === 'share' ? `${100 * r.threshold} %` : r.unit === 's' ? `${r.threshold} s` : r.threshold}`)}`,
      `          description: ${q(r.description)}`,
    ]),
    '',
  ].join('\n')
}

export interface AlertDeps {
  influx: Influx
  metrics: Registry
  thresholds: AlertThresholds
  log: { error(obj: object, msg: string): void }
}

/** Drift is read from InfluxDB at most this often: it moves with days of scores, not seconds. */
const DRIFT_EVERY_MS = 60_000

/**
 * The rules' evaluator: `evaluate(samples)` after each metrics sample, `alerts()` for the page;
 * the gauges `ubiq_alert_firing{alert}` and `ubiq_score_drift_psi{subject}` on `metrics`.
 */
export function alertRules(deps: AlertDeps) {
  const th = deps.thresholds
  const list = rules(th)
  const state = new Map<string, { state: AlertRule['state']; value: number | null; since: number | null }>(list.map((r) => [r.name, { state: 'no_data', value: null, since: null }]))
  const firing = new Gauge({ name: 'ubiq_alert_firing', help: 'Analyst alert rules (GET /api/v1/alerts): 1 while the rule fires, else 0', labelNames: ['alert'], registers: [deps.metrics] })
  const drift = new Gauge({ name: 'ubiq_score_drift_psi', help: "Population stability index of each subject's portfolio score distribution, last ALERT_DRIFT_WINDOW_H against the 7 times as long before", labelNames: ['subject'], registers: [deps.metrics] })
  for (const r of list) firing.set({ alert: r.name }, 0)

  const set = (name: string, value: number | null, threshold: number, now: number) => {
    const s = state.get(name)!
    const next = value === null ? 'no_data' : value > threshold ? 'firing' : 'ok'
    if (next !== s.state) Object.assign(s, { state: next, since: now })
    s.value = value
    firing.set({ alert: name }, next === 'firing' ? 1 : 0)
  }

  let lastDrift = -Infinity, drifting: Promise<void> | undefined
  async function evaluateDrift(now: number) {
    const to = now, from = to - th.driftWindowH * 3600_000, refFrom = from - 7 * th.driftWindowH * 3600_000
    const latest = (s: Subject, a: number, b: number) => `SELECT last(value) AS value FROM ${qualified('score')} WHERE subject = ${quoteString(s)} AND time >= ${a}ms AND time < ${b}ms GROUP BY policy_id`
    for (const subject of subjects) {
      const [recentSeries, referenceSeries] = await Promise.all([deps.influx.query(latest(subject, from, to)), deps.influx.query(latest(subject, refFrom, from))])
      const bins = (series: typeof recentSeries) => {
        const values = series.flatMap((s) => s.values.map((v) => ({ policyId: s.tags?.policy_id ?? '', value: Number(v[s.columns.indexOf('value')]) })))
        return values.length < th.driftMinPolicies ? null : distributionOf(subject, values).bins.map((b) => b.count)
      }
      const [a, r] = [bins(recentSeries), bins(referenceSeries)]
      const value = a && r ? psi(a, r) : null
      if (value === null) drift.remove({ subject })
      else drift.set({ subject }, value)
      set(`score_drift_${subject}`, value, th.driftPsi, now)
    }
  }

  return {
    /** Evaluates the rules on the sampler's `samples` (oldest first); drift at most once a minute, in the background. */
    evaluate(samples: readonly Sample[]) {
      const now = samples.at(-1)
      if (!now) return
      const window = recent(samples, now, th.windowMin * 60_000)
      set('ingest_lag', histogramQuantile(window.lag, 0.5), th.lagS, now.at)
      set('rejection_rate', window.totals.received > 0 ? window.totals.rejected / window.totals.received : null, th.rejectedPct / 100, now.at)
      if (drifting || now.at - lastDrift < DRIFT_EVERY_MS) return
      lastDrift = now.at
      drifting = evaluateDrift(now.at)
        .catch((err: Error) => deps.log.error({ err }, 'alerts: cannot read the scores for drift'))
        .finally(() => (drifting = undefined))
    },
    /** Every rule as it stands. */
    alerts(): Alerts {
      return {
        at: iso(Date.now()),
        rules: list.map((r) => {
          const s = state.get(r.name)!
          return { name: r.name, title: r.title, description: r.description, state: s.state, value: s.value, threshold: r.threshold, unit: r.unit, since: s.since === null ? null : iso(s.since) }
        }),
      }
    },
  }
}

const AlertsQuery = Type.Object({ format: Format }, { additionalProperties: false })

/** Registers GET /api/v1/alerts (analyst token). */
export function registerAlerts(app: App, alerts: () => Alerts, who: (req: FastifyRequest) => Principal): void {
  tableRoutes(app, who)('/api/v1/alerts', 'The analyst alert rules (ingest lag, rejected share, score drift per subject) as ubiq evaluates them every 5 s: state (ok, firing, no_data), figure, threshold and since when (analyst token)',
    AlertsQuery, Alerts, async () => alerts(), (a) => ({ name: 'alerts', table: { columns: ['name', 'state', 'value', 'threshold', 'since'], rows: a.rules.map((r) => [r.name, r.state, r.value, r.threshold, r.since]) } }))
}
