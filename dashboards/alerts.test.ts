/**
 * The alert rules' arithmetic and the Prometheus rules file (#23). That the rules fire against the
 * real pipeline, on the page and on /metrics, is workbench.test.ts'.
 */
import { readFileSync } from 'node:fs'
import t from 'tap'
import { parse } from 'yaml'
import { defaultAlertThresholds, prometheusRules, PROMETHEUS_RULES, psi } from './alerts.ts'

t.test('population stability index: 0 for the same shares, growing with the shift', async (t) => {
  t.equal(psi([10, 20, 30, 40], [1, 2, 3, 4]), 0, 'the same shares in any number')
  // By hand: (0.5 − 0.25)·ln 2 + (0.5 − 0.75)·ln(2/3) = 0.2747
  t.ok(Math.abs(psi([50, 50], [25, 75])! - 0.2747) < 1e-4, 'two bins, by hand')
  t.ok(psi([0, 100], [50, 50])! > 0.25 * 10, 'everyone moved bin: far past the 0.25 band')
  t.ok(psi([48, 52], [50, 50])! < 0.1, 'a few policies moved: below the 0.1 band')
  t.equal(psi([0, 0], [1, 1]), null, 'no scores: no figure')
})

t.test('the Prometheus rules file is the one the code writes, and reads what ubiq exposes', async (t) => {
  const text = readFileSync(new URL(`../${PROMETHEUS_RULES}`, import.meta.url), 'utf8')
  t.equal(text, prometheusRules(), `${PROMETHEUS_RULES} is current (npm run docs)`)
  const doc = parse(text) as { groups: { name: string; rules: { alert: string; expr: string; labels: object; annotations: { summary: string } }[] }[] }
  const rules = doc.groups[0]!.rules
  t.same(rules.map((r) => r.alert), ['ubiq_ingest_lag', 'ubiq_rejection_rate', 'ubiq_score_drift_driving', 'ubiq_score_drift_health', 'ubiq_score_drift_home'])
  t.match(rules[0]!.expr, `ubiq_ingest_device_lag_seconds_bucket[${defaultAlertThresholds.windowMin}m]`)
  t.match(rules[0]!.expr, new RegExp(`> ${defaultAlertThresholds.lagS}$`))
  t.match(rules[1]!.expr, new RegExp(`> ${defaultAlertThresholds.rejectedPct / 100}$`))
  t.match(rules[2]!.expr, `ubiq_score_drift_psi{subject="driving"} > ${defaultAlertThresholds.driftPsi}`)
})
