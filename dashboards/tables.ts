/**
 * What the analyst's routes share (issue #7): a table is JSON by default and CSV with
 * `?format=csv` (analysts export every table), most of them over a period the query names, and
 * only an analyst's token opens them.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox'
import type { FastifyInstance, FastifyReply, FastifyRequest, RawReplyDefaultExpression, RawRequestDefaultExpression, RawServerDefault } from 'fastify'
import type { Logger } from 'pino'
import { mustBeAnalyst, type Principal } from './auth.ts'
import { errors } from './schemas.ts'

/** The dashboards' server, as the route modules get it. */
export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger>

/** A CSV cell: null and undefined are empty. */
export type Cell = string | number | boolean | null | undefined
/** A table for CSV: a header and rows. */
export interface Table { columns: readonly string[]; rows: readonly (readonly Cell[])[] }

/** Excel reads a CSV file as UTF-8 (a "−", a "²") only when it starts with a byte order mark. */
export const BOM = '\ufeff'

/**
 * A number as a CSV cell: to 12 significant digits, which drops what binary arithmetic adds
 * (57.487500000000004 is 57.4875) and keeps every digit a measurement has (a position's 7 decimals).
 */
export const csvNumber = (x: number) => (Number.isInteger(x) || !Number.isFinite(x) ? String(x) : String(Number(x.toPrecision(12))))

/** One RFC 4180 CSV line, CRLF included: cells quoted where they need it; null and undefined are empty. */
export function csvLine(cells: readonly Cell[]): string {
  return cells.map((x) => {
    const s = x === null || x === undefined ? '' : typeof x === 'number' ? csvNumber(x) : String(x)
    return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s
  }).join(',') + '\r\n'
}

/** RFC 4180 CSV, as every CSV ubiq writes: a byte order mark, a header line, CRLF line ends, cells quoted where they need it. */
export const toCsv = (table: Table): string => BOM + [table.columns, ...table.rows].map(csvLine).join('')

/** Answers with `table` as a CSV file named `name`.csv. */
export const sendCsv = (reply: FastifyReply, name: string, table: Table) =>
  reply.type('text/csv; charset=utf-8').header('content-disposition', `attachment; filename="${name}.csv"`).send(toCsv(table))

/** ms; from inclusive, to exclusive. */
export interface Period { from: number; to: number }

/** The length of a time bucket, aligned to UTC: a minute and 10 minutes for the last hours (#23), an hour, a day. */
export const Interval = Type.Union([Type.Literal('1m'), Type.Literal('10m'), Type.Literal('1h'), Type.Literal('1d')])
export type Interval = Static<typeof Interval>

export const DAY_MS = 24 * 3600_000
/** Each interval in ms: a bucket starts at a multiple of it since the epoch, as InfluxDB's GROUP BY time() aligns them. */
export const INTERVAL_MS: Record<Interval, number> = { '1m': 60_000, '10m': 600_000, '1h': 3600_000, '1d': DAY_MS }
/** At most this many buckets a series: a year of hourly ones (8,784). */
export const MAX_BUCKETS = 10_000

export const iso = (ms: number) => new Date(ms).toISOString()
/** The InfluxQL condition for the points of a period. */
export const timeWhere = (p: Period) => `time >= ${p.from}ms AND time < ${p.to}ms`

/**
 * The period a query names, or why it names none: until `to` (default now), from `from` (default
 * `defaultMs` before `to`), at most `maxMs` long. By default 30 days, at most 366 (a year of hourly
 * buckets is 8,784 rows per subject).
 */
export function periodOf(q: { from?: string; to?: string }, { defaultMs = 30 * DAY_MS, maxMs = 366 * DAY_MS } = {}, now = Date.now()): Period | string {
  const to = q.to ? Date.parse(q.to) : now
  const from = q.from ? Date.parse(q.from) : to - defaultMs
  if (from >= to) return 'from must be before to'
  if (to - from > maxMs) return `the period is at most ${maxMs / DAY_MS} days`
  return { from, to }
}

/** `load` over the period the query names (the default one), or why it names none. */
export const inPeriod = <B>(q: { from?: string; to?: string }, load: (p: Period) => Promise<B>): Promise<B | string> => {
  const p = periodOf(q)
  return typeof p === 'string' ? Promise.resolve(p) : load(p)
}

/** `load` over the query's period cut into buckets of `interval`, or why not: at most MAX_BUCKETS of them. */
export const inBuckets = <B>(q: { from?: string; to?: string }, interval: Interval, load: (p: Period) => Promise<B>): Promise<B | string> =>
  inPeriod<B | string>(q, (p) => (Math.ceil((p.to - p.from) / INTERVAL_MS[interval]) > MAX_BUCKETS
    ? Promise.resolve(`the period holds more than ${MAX_BUCKETS} buckets of ${interval}: choose a longer interval or a shorter period`)
    : load(p)))

/**
 * Times InfluxDB can hold and JavaScript can read: years 1970–2261 (nanoseconds in an int64 end in
 * 2262) and no leap second (Date.parse gives NaN for :60). Both gave a 500 and an error-log line
 * (#20); the schema refuses them with a 400 instead.
 */
export const TIME_PATTERN = '^(19[7-9][0-9]|2[01][0-9][0-9]|22[0-5][0-9]|226[01])-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-5][0-9]'
export const Time = Type.String({ format: 'date-time', pattern: TIME_PATTERN, description: 'ISO 8601, years 1970–2261' })
export const Format = Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('csv')], { default: 'json', description: 'json, or csv: the same table as CSV with a header line' }))
/** The query of a table over the default period. */
export const PeriodQuery = {
  from: Type.Optional({ ...Time, description: 'from this time (inclusive), ISO 8601; default 30 days before `to`' }),
  to: Type.Optional({ ...Time, description: 'until this time (exclusive), ISO 8601; default now' }),
  format: Format,
}
export const IntervalQuery = Type.Optional({ ...Interval, default: '1d', description: 'bucket length, aligned to UTC' })

/**
 * Registers analysts' tables on `app`; `who` checks a request's bearer token. Each is JSON of
 * schema `response`, or with ?format=csv the table `csv` makes of it; `load` gives the body, or
 * what is wrong with the query (400).
 */
export const tableRoutes = (app: App, who: (req: FastifyRequest) => Principal) =>
  <Q extends TSchema, R extends TSchema>(path: string, description: string, querystring: Q, response: R, load: (q: Static<Q>) => Promise<Static<R> | string>, csv: (body: Static<R>, q: Static<Q>) => { name: string; table: Table }) =>
    app.get<{ Querystring: Static<Q> }>(path, { schema: { description, querystring, response: { 200: response, ...errors } } }, async (req, reply) => {
      mustBeAnalyst(who(req))
      const body = await load(req.query)
      if (typeof body === 'string') return reply.code(400).send({ error: 'bad_request', message: body })
      if ((req.query as { format?: string }).format !== 'csv') return body
      const { name, table } = csv(body, req.query)
      return sendCsv(reply, name, table)
    })
