/**
 * The analyst's monitoring pages (issue #7): how the models score over time and how a shadow
 * model would differ from its champion (/analyst/models), and whether ingest keeps up
 * (/analyst/ingest).
 *
 * Model monitoring reads what scoring stores: champion scores (`score`) and shadow scores
 * (`shadow_score`), both tagged policy_id, subject and model and written at the score's
 * window.to, so a shadow score and the champion's for the same input share policy, subject and
 * time. Ingest health reads the pipeline's Prometheus registry; counters only say "so many since
 * start", so a sampler keeps the last 15 minutes of them to give rates.
 *
 * As on the portfolio, every table is JSON by default and CSV with `?format=csv`, the routes need
 * an analyst's token and the pages, which hold no data, are public.
 */
import { readFileSync } from 'node:fs'
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type { Registry } from 'prom-client'
import { qualified, quoteString, Subject, type Influx } from '../ingest/index.ts'
import type { Principal } from './auth.ts'
import { Nullable, strict } from './schemas.ts'
import { Format, inBuckets, inPeriod, Interval, INTERVAL_MS, IntervalQuery, iso, PeriodQuery, tableRoutes, timeWhere, type App, type Period, type Table } from './tables.ts'

// ---------------------------------------------------------------------------------------------
// Model monitoring

/** The scores of one model of one subject in one time bucket (UTC-aligned). */
export const DriftBucket = strict({
  time: Type.String(),
  subject: Subject,
  model: Type.String(),
  role: Type.Union([Type.Literal('champion'), Type.Literal('shadow')], { description: 'champion: the scores that priced (`score`); shadow: scored beside it, never priced (`shadow_score`)' }),
  count: Type.Integer(),
  mean: Type.Number(),
  // Percentiles by nearest rank, as InfluxDB's PERCENTILE: the value at rank round(n·p/100);
  // null when that rank is below 1 (p10 of fewer than 5 scores).
  p10: Nullable(Type.Number()),
  p50: Nullable(Type.Number()),
  p90: Nullable(Type.Number()),
})
export type DriftBucket = Static<typeof DriftBucket>

export const ScoreDrift = strict({ from: Type.String(), to: Type.String(), interval: Interval, buckets: Type.Array(DriftBucket) })
export type ScoreDrift = Static<typeof ScoreDrift>

/** A stored score: the champion's or a shadow's. */
export interface StoredScore { policyId: string; subject: Subject; model: string; time: number; value: number }

/** A shadow score and the champion's for the same policy, subject and time. */
export const ScorePair = strict({ policyId: Type.String(), time: Type.String(), model: Type.String(), champion: Type.Number(), shadow: Type.Number() })
export type ScorePair = Static<typeof ScorePair>

/** How one shadow model's scores compare with one champion's, over the pairs of a period. */
export const ShadowComparison = strict({
  subject: Subject,
  shadowModel: Type.String(),
  championModel: Type.String(),
  pairs: Type.Integer(),
  meanChampion: Type.Number(),
  meanShadow: Type.Number(),
  meanDiff: Type.Number({ description: 'Shadow minus champion' }),
  meanAbsDiff: Type.Number(),
  correlation: Nullable(Type.Number({ description: "Pearson's; null with fewer than two pairs or when either side does not vary" })),
  policies: Type.Integer({ description: 'Policies with a pair' }),
  shareOver10: Type.Number({ description: 'The share of those whose latest pair differs by more than 10 points: whom a promotion would move most' }),
})
export type ShadowComparison = Static<typeof ShadowComparison>

export const ShadowReport = strict({ from: Type.String(), to: Type.String(), models: Type.Array(ShadowComparison), sample: Type.Array(ScorePair) })
export type ShadowReport = Static<typeof ShadowReport>

/** At most this many pairs go to the scatter plot. */
export const SAMPLE_SIZE = 500
const BIG_DIFF = 10

const subjectWhere = (subject?: Subject) => (subject ? ` AND subject = ${quoteString(subject)}` : '')
const numberOrNull = (x: unknown) => (x === null || x === undefined ? null : Number(x))
const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length

/**
 * InfluxDB 1.x's `percentile(field, p)`: the value at nearest rank ⌊n·p/100 + 0.5⌋ of the sorted
 * values, null when that rank is 0 (p10 of fewer than 5 values).
 */
export function percentile(sorted: readonly number[], p: number): number | null {
  const i = Math.floor(sorted.length * p / 100 + 0.5) - 1
  return i < 0 || i >= sorted.length ? null : sorted[i]!
}

/**
 * Per time bucket, subject and model: how many scores, their mean and p10/p50/p90, champions' and
 * shadows' alike. Computed here from the scores themselves, not by InfluxDB: a percentile of
 * several InfluxDBs' percentiles is not the percentile of their scores (partitions.ts), and the
 * sorted values give the same sums whichever InfluxDB each came from.
 */
export async function scoreDrift(influx: Influx, period: Period, interval: Interval, subject?: Subject): Promise<ScoreDrift> {
  const series = await influx.query(`SELECT value FROM ${qualified('score')}, ${qualified('shadow_score')} WHERE ${timeWhere(period)}${subjectWhere(subject)} GROUP BY subject, model`)
  const width = INTERVAL_MS[interval]
  const groups = new Map<string, { time: number; subject: Subject; model: string; role: DriftBucket['role']; values: number[] }>()
  for (const s of series) {
    const [subject, model, role] = [(s.tags?.subject ?? '') as Subject, s.tags?.model ?? '', s.name === 'shadow_score' ? 'shadow' as const : 'champion' as const]
    for (const [t, v] of s.values) {
      const time = Math.floor(Number(t) / width) * width
      const key = `${time}\n${subject}\n${model}\n${role}`
      const group = groups.get(key) ?? groups.set(key, { time, subject, model, role, values: [] }).get(key)!
      group.values.push(Number(v))
    }
  }
  const buckets = [...groups.values()].map(({ time, subject, model, role, values }): DriftBucket => {
    const sorted = values.sort((a, b) => a - b)
    return { time: iso(time), subject, model, role, count: sorted.length, mean: mean(sorted), p10: percentile(sorted, 10), p50: percentile(sorted, 50), p90: percentile(sorted, 90) }
  })
  buckets.sort((a, b) => a.time.localeCompare(b.time) || a.subject.localeCompare(b.subject) || a.role.localeCompare(b.role) || a.model.localeCompare(b.model))
  return { from: iso(period.from), to: iso(period.to), interval, buckets }
}

/** Every champion and shadow score of the period, each paired with the other side in code (InfluxQL has no join). */
export async function shadowReport(influx: Influx, period: Period, subject?: Subject): Promise<ShadowReport> {
  const series = await influx.query(`SELECT value FROM ${qualified('score')}, ${qualified('shadow_score')} WHERE ${timeWhere(period)}${subjectWhere(subject)} GROUP BY policy_id, subject, model`)
  const rows = (name: string) => series.filter((s) => s.name === name).flatMap((s) => s.values.map((v): StoredScore => ({
    policyId: s.tags?.policy_id ?? '', subject: (s.tags?.subject ?? '') as Subject, model: s.tags?.model ?? '', time: Number(v[0]), value: Number(v[1]),
  })))
  return { from: iso(period.from), to: iso(period.to), ...compareShadows(rows('score'), rows('shadow_score')) }
}

/**
 * Pairs each shadow score with the champion's of the same policy, subject and time, and compares
 * them per subject, shadow and champion (a promotion within the period changes the champion). The
 * scatter sample is spread evenly over the pairs in time order.
 */
export function compareShadows(champions: readonly StoredScore[], shadows: readonly StoredScore[]): Pick<ShadowReport, 'models' | 'sample'> {
  const key = (s: StoredScore) => `${s.policyId}\n${s.subject}\n${s.time}`
  const champion = new Map(champions.map((s) => [key(s), s]))
  const pairs = shadows.flatMap((s) => {
    const c = champion.get(key(s))
    return c ? [{ shadow: s, champion: c }] : []
  }).sort((a, b) => a.shadow.time - b.shadow.time || a.shadow.policyId.localeCompare(b.shadow.policyId) || a.shadow.model.localeCompare(b.shadow.model))

  const groups = new Map<string, typeof pairs>()
  for (const p of pairs) {
    const g = `${p.shadow.subject}\n${p.shadow.model}\n${p.champion.model}`
    groups.set(g, [...(groups.get(g) ?? []), p])
  }
  const models = [...groups.values()].map((g): ShadowComparison => {
    const c = g.map((p) => p.champion.value), s = g.map((p) => p.shadow.value)
    const latest = new Map<string, number>() // in time order: the last pair of a policy stays
    for (const p of g) latest.set(p.shadow.policyId, p.shadow.value - p.champion.value)
    return {
      subject: g[0]!.shadow.subject,
      shadowModel: g[0]!.shadow.model,
      championModel: g[0]!.champion.model,
      pairs: g.length,
      meanChampion: mean(c),
      meanShadow: mean(s),
      meanDiff: mean(g.map((p) => p.shadow.value - p.champion.value)),
      meanAbsDiff: mean(g.map((p) => Math.abs(p.shadow.value - p.champion.value))),
      correlation: correlation(c, s),
      policies: latest.size,
      shareOver10: [...latest.values()].filter((d) => Math.abs(d) > BIG_DIFF).length / latest.size,
    }
  }).sort((a, b) => a.subject.localeCompare(b.subject) || a.shadowModel.localeCompare(b.shadowModel) || a.championModel.localeCompare(b.championModel))

  const picked = pairs.length <= SAMPLE_SIZE ? pairs : Array.from({ length: SAMPLE_SIZE }, (_, i) => pairs[Math.floor((i * pairs.length) / SAMPLE_SIZE)]!)
  const sample = picked.map((p) => ({ policyId: p.shadow.policyId, time: iso(p.shadow.time), model: p.shadow.model, champion: p.champion.value, shadow: p.shadow.value }))
  return { models, sample }
}

/** Pearson's correlation; null when it is not defined. */
export function correlation(xs: readonly number[], ys: readonly number[]): number | null {
  if (xs.length < 2) return null
  const mx = mean(xs), my = mean(ys)
  let sxy = 0, sxx = 0, syy = 0
  xs.forEach((x, i) => {
    sxy += (x - mx) * (ys[i]! - my)
    sxx += (x - mx) ** 2
    syy += (ys[i]! - my) ** 2
  })
  return sxx === 0 || syy === 0 ? null : sxy / Math.sqrt(sxx * syy)
}

export const driftTable = (d: ScoreDrift): Table => ({
  columns: ['time', 'subject', 'model', 'role', 'count', 'mean', 'p10', 'p50', 'p90'],
  rows: d.buckets.map((b) => [b.time, b.subject, b.model, b.role, b.count, b.mean, b.p10, b.p50, b.p90]),
})
export const shadowTable = (r: ShadowReport): Table => ({
  columns: ['subject', 'shadow_model', 'champion_model', 'pairs', 'mean_champion', 'mean_shadow', 'mean_diff', 'mean_abs_diff', 'correlation', 'policies', 'share_over_10'],
  rows: r.models.map((m) => [m.subject, m.shadowModel, m.championModel, m.pairs, m.meanChampion, m.meanShadow, m.meanDiff, m.meanAbsDiff, m.correlation, m.policies, m.shareOver10]),
})

// ---------------------------------------------------------------------------------------------
// Ingest health

/** Message counts since the service started. */
export const IngestTotals = strict({ received: Type.Number(), stored: Type.Number(), rejected: Type.Number(), duplicates: Type.Number() })
export type IngestTotals = Static<typeof IngestTotals>

/** One sampler interval: messages a second over it, ending at `time`. */
export const RatePoint = strict({ time: Type.String(), seconds: Type.Number(), received: Type.Number(), stored: Type.Number(), rejected: Type.Number(), duplicates: Type.Number() })
export type RatePoint = Static<typeof RatePoint>

/** Quantiles of a histogram over a window, seconds, interpolated within its buckets; null without observations in it. */
export const Quantiles = strict({ count: Type.Number(), p50: Nullable(Type.Number()), p99: Nullable(Type.Number()) })
export type Quantiles = Static<typeof Quantiles>

export const IngestHealth = strict({
  at: Type.String(),
  totals: IngestTotals,
  rejections: Type.Array(strict({ reason: Type.String(), count: Type.Number() }), { description: 'Most frequent first' }),
  journalPendingLines: Type.Number(),
  quarantined: Type.Array(strict({ reason: Type.String(), lines: Type.Number() }), { description: 'Lines InfluxDB refused for good and ingest moved to UBIQ_DATA_DIR/dead-letter/, by kind of refusal, most first (issue #20)' }),
  backpressure: Type.Boolean(),
  devicesClockSkewed: Type.Number(),
  deviceLag: { ...Quantiles, description: 'Receive time minus device time, over the last 5 minutes (#23: since start, an hour of catch-up read as an outage long after)' },
  storeLatency: { ...Quantiles, description: "Receipt to InfluxDB's confirmation, over the last 5 minutes" },
  sampleSeconds: Type.Number(),
  windowSeconds: Type.Number({ description: 'How far back the rates go' }),
  rates: Type.Array(RatePoint, { description: 'Oldest first, over the last 15 minutes' }),
})
export type IngestHealth = Static<typeof IngestHealth>

/** A histogram bucket as Prometheus has it: observations at most `le`, cumulative. */
export interface Bucket { le: number; count: number }

const SAMPLE_MS = 5000
const WINDOW_MS = 15 * 60_000
/** Lag and latency figures are over this long: current, not since the start. */
export const RECENT_MS = 5 * 60_000

/**
 * The q-quantile (0–1) of a histogram, as Prometheus' histogram_quantile: linear within the bucket
 * holding the rank, from 0 for the first; in the +Inf bucket, the highest finite bound (nothing
 * says how far above it). null without observations.
 */
export function histogramQuantile(buckets: readonly Bucket[], q: number): number | null {
  const total = buckets.at(-1)?.count ?? 0
  if (total === 0) return null
  const rank = q * total
  const i = buckets.findIndex((b) => b.count >= rank)
  const b = buckets[i]!
  if (b.le === Infinity) return buckets[i - 1]?.le ?? null
  const lower = buckets[i - 1] ?? { le: 0, count: 0 }
  return lower.le + ((b.le - lower.le) * (rank - lower.count)) / (b.count - lower.count)
}

/** What Registry.getMetricsAsJSON gives (prom-client does not export the type). */
export type Metrics = Awaited<ReturnType<Registry['getMetricsAsJSON']>>
const metric = (m: Metrics, name: string) => m.find((x) => x.name === name)?.values ?? []
const total = (m: Metrics, name: string) => metric(m, name).reduce((n, v) => n + v.value, 0)
const totalsOf = (m: Metrics): IngestTotals => ({
  received: total(m, 'ubiq_ingest_messages_received_total'),
  stored: total(m, 'ubiq_ingest_messages_stored_total'),
  rejected: total(m, 'ubiq_ingest_messages_rejected_total'),
  duplicates: total(m, 'ubiq_ingest_duplicates_total'),
})
/** A histogram's cumulative buckets, lowest bound first. */
const bucketsOf = (m: Metrics, name: string): Bucket[] => metric(m, name)
  .filter((v) => (v as { metricName?: string }).metricName === `${name}_bucket`)
  .map((v) => ({ le: v.labels.le === '+Inf' ? Infinity : Number(v.labels.le), count: v.value }))
  .sort((a, b) => a.le - b.le)

/** The counters and histograms ubiq's own figures are differences of, at one time. */
export interface Sample { at: number; totals: IngestTotals; lag: Bucket[]; store: Bucket[] }
export const sampleOf = (m: Metrics, at: number): Sample => ({ at, totals: totalsOf(m), lag: bucketsOf(m, 'ubiq_ingest_device_lag_seconds'), store: bucketsOf(m, 'ubiq_ingest_store_latency_seconds') })

/**
 * What happened in the last `ms` before `now` (a sample): the difference from the latest sample at
 * least that old (the oldest, early on), as Prometheus' increase() over a range. Histograms'
 * buckets are differences too, so their quantiles are of the window alone.
 */
export function recent(samples: readonly Sample[], now: Sample, ms = RECENT_MS): { totals: IngestTotals; lag: Bucket[]; store: Bucket[] } {
  const base = [...samples].reverse().find((s) => s.at <= now.at - ms) ?? samples[0] ?? now
  const minus = (a: Bucket[], b: Bucket[]) => a.map((x, i) => ({ le: x.le, count: x.count - (b[i]?.count ?? 0) }))
  const totals = Object.fromEntries(Object.entries(now.totals).map(([k, v]) => [k, v - base.totals[k as keyof IngestTotals]])) as unknown as IngestTotals
  return { totals, lag: minus(now.lag, base.lag), store: minus(now.store, base.store) }
}
const quantiles = (buckets: Bucket[]): Quantiles => ({ count: buckets.at(-1)?.count ?? 0, p50: histogramQuantile(buckets, 0.5), p99: histogramQuantile(buckets, 0.99) })

/** Ingest's health now, from the registry; `samples` (oldest first) give the rates and the last 5 minutes' lag and latency. */
export function ingestHealth(m: Metrics, samples: readonly Sample[], now = Date.now()): IngestHealth {
  const rates = samples.slice(1).map((s, i): RatePoint => {
    const prev = samples[i]!, seconds = (s.at - prev.at) / 1000
    const rate = (k: keyof IngestTotals) => (s.totals[k] - prev.totals[k]) / seconds
    return { time: iso(s.at), seconds, received: rate('received'), stored: rate('stored'), rejected: rate('rejected'), duplicates: rate('duplicates') }
  })
  const last = recent(samples, sampleOf(m, now))
  return {
    at: iso(now),
    totals: totalsOf(m),
    rejections: metric(m, 'ubiq_ingest_messages_rejected_total')
      .map((v) => ({ reason: String(v.labels.reason), count: v.value }))
      .sort((a, b) => b.count - a.count || a.reason.localeCompare(b.reason)),
    journalPendingLines: total(m, 'ubiq_ingest_journal_pending_lines'),
    quarantined: metric(m, 'ubiq_ingest_lines_quarantined_total')
      .map((v) => ({ reason: String(v.labels.reason), lines: v.value }))
      .sort((a, b) => b.lines - a.lines || a.reason.localeCompare(b.reason)),
    backpressure: total(m, 'ubiq_ingest_backpressure') > 0,
    devicesClockSkewed: total(m, 'ubiq_ingest_devices_clock_skewed'),
    deviceLag: quantiles(last.lag),
    storeLatency: quantiles(last.store),
    sampleSeconds: SAMPLE_MS / 1000,
    windowSeconds: WINDOW_MS / 1000,
    rates,
  }
}

/**
 * Samples the registry every 5 s, keeping the last 15 minutes (rates and the recent figures are
 * their differences); `onSample` runs after each sample (the alert rules). Stopped with the app.
 */
export function sampleMetrics(app: App, metrics: Registry, onSample: (samples: readonly Sample[]) => void = () => {}): readonly Sample[] {
  const samples: Sample[] = []
  const sample = async () => {
    try {
      samples.push(sampleOf(await metrics.getMetricsAsJSON(), Date.now()))
      if (samples.length > WINDOW_MS / SAMPLE_MS + 1) samples.shift()
      onSample(samples)
    } catch (err) {
      app.log.error({ err: (err as Error).message }, 'monitoring: cannot sample the metrics')
    }
  }
  void sample()
  // unref: the sampler alone keeps no process alive; onClose stops it with the server.
  const sampler = setInterval(() => void sample(), SAMPLE_MS).unref()
  app.addHook('onClose', async () => clearInterval(sampler))
  return samples
}

export const rejectionTable = (h: IngestHealth): Table => ({ columns: ['reason', 'count'], rows: h.rejections.map((r) => [r.reason, r.count]) })
export const rateTable = (h: IngestHealth): Table => ({
  columns: ['time', 'seconds', 'received_per_s', 'stored_per_s', 'rejected_per_s', 'duplicates_per_s'],
  rows: h.rates.map((r) => [r.time, r.seconds, r.received, r.stored, r.rejected, r.duplicates]),
})

// ---------------------------------------------------------------------------------------------
// Routes and pages

const SubjectName = { ...Subject, description: 'one subject; default all' }
const ModelsQuery = { subject: Type.Optional(SubjectName), ...PeriodQuery }
const DriftQuery = Type.Object({ ...ModelsQuery, interval: IntervalQuery }, { additionalProperties: false })
const ShadowQuery = Type.Object(ModelsQuery, { additionalProperties: false })
const HealthQuery = Type.Object({
  format: Format,
  table: Type.Optional(Type.Union([Type.Literal('rejections'), Type.Literal('rates')], { description: 'with format=csv: which table' })),
}, { additionalProperties: false })

const page = (name: string) => readFileSync(new URL(`./public/${name}`, import.meta.url), 'utf8')
const modelsPage = page('models.html')
const ingestPage = page('ingest.html')

/**
 * Registers the models' drift and shadow routes and page, and with `samples` (the metrics
 * sampler's, sampleMetrics: where ingest runs) ingest's health route and page; `who` checks a
 * request's bearer token.
 */
export function registerMonitoring(app: App, deps: { influx: Influx; metrics: Registry; samples?: readonly Sample[] }, who: (req: FastifyRequest) => Principal): void {
  const { samples } = deps
  const tableRoute = tableRoutes(app, who)
  tableRoute('/api/v1/models/drift', 'Score drift: per time bucket, subject and model (champions and shadows), the count, mean and p10/p50/p90 (nearest rank; null below rank 1) of the scores (analyst token; ?format=csv)', DriftQuery, ScoreDrift,
    (q) => inBuckets(q, q.interval ?? '1d', (p) => scoreDrift(deps.influx, p, q.interval ?? '1d', q.subject)),
    (d, q) => ({ name: `drift-${q.subject ?? 'all'}-${d.interval}`, table: driftTable(d) }))
  tableRoute('/api/v1/models/shadow', 'Champion against shadow: each shadow score paired with the champion\'s of the same policy, subject and time; per shadow and champion model the pairs, means, mean (absolute) difference, correlation and the share of policies whose latest scores differ by more than 10 points; a scatter sample of up to 500 pairs (analyst token; ?format=csv: the comparison)', ShadowQuery, ShadowReport,
    (q) => inPeriod(q, (p) => shadowReport(deps.influx, p, q.subject)),
    (r, q) => ({ name: `shadow-${q.subject ?? 'all'}`, table: shadowTable(r) }))

  app.get('/analyst/models', { schema: { hide: true } }, (_req, reply) => reply.type('text/html; charset=utf-8').send(modelsPage))
  if (!samples) return
  tableRoute('/api/v1/ingest/health', "Ingest now: message totals since start, rejections by reason, journal lines InfluxDB has yet to confirm, lines InfluxDB refused and ingest quarantined (by kind), backpressure, devices with skewed clocks, device lag and store latency p50/p99 (seconds, over the last 5 minutes), and the rates (messages a second) of each 5 s over the last 15 minutes (analyst token; ?format=csv&table=rejections|rates)", HealthQuery, IngestHealth,
    async (q) => (q.format === 'csv' && !q.table ? 'format=csv needs table=rejections or table=rates' : ingestHealth(await deps.metrics.getMetricsAsJSON(), samples)),
    (h, q) => (q.table === 'rates' ? { name: 'ingest-rates', table: rateTable(h) } : { name: 'ingest-rejections', table: rejectionTable(h) }))

  app.get('/analyst/ingest', { schema: { hide: true } }, (_req, reply) => reply.type('text/html; charset=utf-8').send(ingestPage))
}
