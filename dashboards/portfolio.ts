/**
 * The analyst's portfolio (issue #7): across every policy, how the latest scores are distributed,
 * how premiums moved over time and when events happen (by type and hour of day), aggregated by
 * InfluxDB from what scoring and pricing store there, and the page that charts them (/analyst).
 *
 * Every table is JSON by default and CSV with `?format=csv` (analysts export every table). The
 * routes need an analyst's token; the page, like the policyholder's, holds no data and is public.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { qualified, quoteIdent, quoteString, Subject, type Influx, type Series } from '../ingest/index.ts'
import type { Principal } from './auth.ts'
import { Nullable, strict } from './schemas.ts'
import { Format, inBuckets, inPeriod, Interval, IntervalQuery, iso, PeriodQuery, tableRoutes, timeWhere, type App, type Period, type Table } from './tables.ts'

/** One score bin: policies whose latest score is in [from, to), the last one [90, 100]. */
export const ScoreBin = strict({ from: Type.Number(), to: Type.Number(), count: Type.Integer() })
export type ScoreBin = Static<typeof ScoreBin>

/** The distribution of each policy's latest score of one subject. */
export const ScoreDistribution = strict({
  subject: Subject,
  n: Type.Integer({ description: 'Policies with a score of the subject' }),
  mean: Nullable(Type.Number({ description: 'null without scores' })),
  median: Nullable(Type.Number()),
  bins: Type.Array(ScoreBin),
  lowest: Type.Array(strict({ policyId: Type.String(), value: Type.Number() }), { description: 'The policies with the lowest latest scores, lowest first: where a drill-down starts' }),
})
export type ScoreDistribution = Static<typeof ScoreDistribution>

/** Premium changes of one subject in one time bucket. */
export const PremiumBucket = strict({ time: Type.String(), subject: Subject, count: Type.Integer(), meanFactor: Type.Number() })
export type PremiumBucket = Static<typeof PremiumBucket>

export const PremiumChanges = strict({ from: Type.String(), to: Type.String(), interval: Interval, buckets: Type.Array(PremiumBucket) })
export type PremiumChanges = Static<typeof PremiumChanges>

/** Events per type in each hour of the day (0–23) in a time zone, over a period. */
export const EventsByHour = strict({ from: Type.String(), to: Type.String(), zone: Type.String({ description: 'The IANA time zone of the hours' }), types: Type.Array(Type.String()), hours: Type.Array(strict({ hour: Type.Integer(), counts: Type.Record(Type.String(), Type.Integer()) })) })
export type EventsByHour = Static<typeof EventsByHour>

const BIN_WIDTH = 10
const LOWEST = 10

const median = (sorted: readonly number[]) => {
  const mid = sorted.length >> 1
  return sorted.length === 0 ? null : sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Each policy's latest score of `subject`, as a histogram of 10-point bins with n, mean and median. */
export async function scoreDistribution(influx: Influx, subject: Subject): Promise<ScoreDistribution> {
  const series = await influx.query(`SELECT last(value) AS value FROM ${qualified('score')} WHERE subject = ${quoteString(subject)} GROUP BY policy_id`)
  return distributionOf(subject, series.flatMap((s) => s.values.map((v) => ({ policyId: s.tags?.policy_id ?? '', value: Number(v[s.columns.indexOf('value')]) }))))
}

/** The distribution of the policies' scores `latest` (one a policy). */
export function distributionOf(subject: Subject, latest: readonly { policyId: string; value: number }[]): ScoreDistribution {
  const values = latest.map((x) => x.value).sort((a, b) => a - b)
  const bins = Array.from({ length: 100 / BIN_WIDTH }, (_, i) => ({ from: i * BIN_WIDTH, to: (i + 1) * BIN_WIDTH, count: 0 }))
  // 100 belongs to the last bin, [90, 100]; scores are 0–100, the clamp only guards the array.
  for (const v of values) bins[Math.max(0, Math.min(bins.length - 1, Math.floor(v / BIN_WIDTH)))]!.count++
  return {
    subject,
    n: values.length,
    mean: values.length ? values.reduce((a, b) => a + b, 0) / values.length : null,
    median: median(values),
    bins,
    lowest: [...latest].sort((a, b) => a.value - b.value || a.policyId.localeCompare(b.policyId)).slice(0, LOWEST),
  }
}

/**
 * Premium adjustments per time bucket (UTC-aligned) and subject: how many, and their mean factor.
 * A bucket may come from each of several InfluxDBs (partitions.ts): counts add, means weigh by them.
 */
export async function premiumChanges(influx: Influx, period: Period, interval: Interval): Promise<PremiumChanges> {
  const series = await influx.query(`SELECT count(factor) AS n, mean(factor) AS mean_factor FROM ${qualified('premium')} WHERE ${timeWhere(period)} GROUP BY time(${interval}), subject fill(none)`)
  const byBucket = new Map<string, PremiumBucket>()
  for (const s of series) {
    for (const v of s.values) {
      const b: PremiumBucket = { time: iso(Number(v[0])), subject: (s.tags?.subject ?? '') as Subject, count: Number(v[s.columns.indexOf('n')]), meanFactor: Number(v[s.columns.indexOf('mean_factor')]) }
      const key = `${b.time} ${b.subject}`, seen = byBucket.get(key)
      byBucket.set(key, seen ? { ...b, count: seen.count + b.count, meanFactor: (seen.meanFactor * seen.count + b.meanFactor * b.count) / (seen.count + b.count) } : b)
    }
  }
  const buckets = [...byBucket.values()].sort((a, b) => a.time.localeCompare(b.time) || a.subject.localeCompare(b.subject))
  return { from: iso(period.from), to: iso(period.to), interval, buckets }
}

/**
 * Events per type and hour of the day of their start in time zone `zone` (an analyst reads "night"
 * in their own, #23). InfluxQL 1.x has no hour-of-day function: InfluxDB counts per hour of the
 * period (buckets aligned to UTC hours) and the hours are folded into the zone's day here, at most
 * 24 × 366 rows per type. A zone whose offset is not whole hours (India's +5:30) puts each UTC
 * hour in the hour of the zone it starts in. Counts of the same hour from several InfluxDBs add up.
 */
export async function eventsByHour(influx: Influx, period: Period, zone = 'UTC'): Promise<EventsByHour> {
  const hourIn = new Intl.DateTimeFormat('en-GB', { timeZone: zone, hour: 'numeric', hourCycle: 'h23' })
  // end_ms is on every stored event (scoring's eventLine).
  const series: Series[] = await influx.query(`SELECT count(end_ms) AS n FROM ${qualified('event')} WHERE ${timeWhere(period)} GROUP BY time(1h), ${quoteIdent('type')} fill(none)`)
  const types = [...new Set(series.map((s) => s.tags?.type ?? ''))].sort()
  const hours = Array.from({ length: 24 }, (_, hour) => ({ hour, counts: Object.fromEntries(types.map((type) => [type, 0])) as Record<string, number> }))
  for (const s of series) {
    for (const v of s.values) hours[Number(hourIn.format(Number(v[0])))]!.counts[s.tags?.type ?? '']! += Number(v[s.columns.indexOf('n')])
  }
  return { from: iso(period.from), to: iso(period.to), zone, types, hours }
}

/** The tables the routes' CSV holds: score bins; premium buckets; hours of the day by event type. */
export const scoreTable = (d: ScoreDistribution): Table => ({ columns: ['from', 'to', 'count'], rows: d.bins.map((b) => [b.from, b.to, b.count]) })
export const premiumTable = (p: PremiumChanges): Table => ({ columns: ['time', 'subject', 'count', 'mean_factor'], rows: p.buckets.map((b) => [b.time, b.subject, b.count, b.meanFactor]) })
export const eventTable = (e: EventsByHour): Table => ({ columns: ['hour', ...e.types], rows: e.hours.map((h) => [h.hour, ...e.types.map((t) => h.counts[t]!)]) })

const ScoresQuery = Type.Object({ subject: Subject, format: Format }, { additionalProperties: false })
const PremiumsQuery = Type.Object({ ...PeriodQuery, interval: IntervalQuery }, { additionalProperties: false })
const EventsQuery = Type.Object({ ...PeriodQuery, zone: Type.Optional(Type.String({ default: 'UTC', pattern: '^[A-Za-z0-9_+/-]{1,64}$', description: 'IANA time zone of the hours of the day, e.g. Europe/Paris; default UTC' })) }, { additionalProperties: false })

/** Whether `zone` is a time zone this server knows. */
const knownZone = (zone: string) => {
  try {
    new Intl.DateTimeFormat('en', { timeZone: zone })
    return true
  } catch {
    return false
  }
}

const file = (url: URL | string) => readFileSync(url, 'utf8')
const page = file(new URL('./public/analyst.html', import.meta.url))
// uPlot (MIT) served from node_modules: the pages load nothing from elsewhere.
const uplotJs = file(createRequire(import.meta.url).resolve('uplot/dist/uPlot.iife.min.js'))
const uplotCss = file(createRequire(import.meta.url).resolve('uplot/dist/uPlot.min.css'))
// What every analyst page shares: its style, and the module its script imports.
const analystJs = file(new URL('./public/analyst.js', import.meta.url))
const analystCss = file(new URL('./public/analyst.css', import.meta.url))

/** Registers the portfolio routes, the analyst page and the assets of every analyst page; `who` checks a request's bearer token. */
export function registerPortfolio(app: App, influx: Influx, who: (req: FastifyRequest) => Principal): void {
  const tableRoute = tableRoutes(app, who)
  tableRoute('/api/v1/portfolio/scores', "The distribution of every policy's latest score of a subject: 10-point bins, n, mean, median, the lowest scores (analyst token; ?format=csv: the bins)", ScoresQuery, ScoreDistribution,
    (q) => scoreDistribution(influx, q.subject), (d, q) => ({ name: `scores-${q.subject}`, table: scoreTable(d) }))
  tableRoute('/api/v1/portfolio/premiums', 'Premium changes over time: per bucket and subject, how many adjustments and their mean factor (analyst token; ?format=csv)', PremiumsQuery, PremiumChanges,
    (q) => inBuckets(q, q.interval ?? '1d', (p) => premiumChanges(influx, p, q.interval ?? '1d')), (p, q) => ({ name: `premiums-${q.interval ?? '1d'}`, table: premiumTable(p) }))
  tableRoute('/api/v1/portfolio/events', "Events per type and hour of the day of the event's start, in ?zone (default UTC) (analyst token; ?format=csv)", EventsQuery, EventsByHour,
    (q) => (knownZone(q.zone ?? 'UTC') ? inPeriod(q, (p) => eventsByHour(influx, p, q.zone)) : Promise.resolve(`unknown time zone ${q.zone}: an IANA name, e.g. Europe/Paris`)), (e) => ({ name: 'events-by-hour', table: eventTable(e) }))

  const serve = (path: string, type: string, body: string, cacheControl?: string) =>
    app.get(path, { schema: { hide: true } }, (_req, reply) => {
      if (cacheControl) reply.header('cache-control', cacheControl)
      return reply.type(type).send(body)
    })
  serve('/analyst', 'text/html; charset=utf-8', page)
  // uPlot changes only with its package: a day in the browser's cache. The analyst's assets change
  // with ubiq, as the pages that use them, which are not cached either.
  serve('/assets/uplot.js', 'text/javascript; charset=utf-8', uplotJs, 'public, max-age=86400')
  serve('/assets/uplot.css', 'text/css; charset=utf-8', uplotCss, 'public, max-age=86400')
  serve('/assets/analyst.js', 'text/javascript; charset=utf-8', analystJs)
  serve('/assets/analyst.css', 'text/css; charset=utf-8', analystCss)
}
