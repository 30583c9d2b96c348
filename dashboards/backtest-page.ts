/**
 * The analyst's backtest and fairness page (issue #7): the rating plan and the champion models run
 * over the reference portfolio (`ubiq backtest`'s numbers), served as JSON, each table as CSV, and
 * charted at /analyst/backtest. The backtest itself comes in as a function: the dashboards show
 * it, the pipeline decides what it runs on and how long it keeps the result.
 */
import { readFileSync } from 'node:fs'
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { Subject } from '../ingest/index.ts'
import type { BacktestCount, BacktestSummary } from '../pricing/index.ts'
import { mustBeAnalyst, type Principal } from './auth.ts'
import { sendCsv, type App, type Table } from './tables.ts'
import { errors, strict } from './schemas.ts'

/** A subject's limits by name: first those that bound any way, then each limit pricing's reasons name. */
export const limitsOf = (s: BacktestSummary['subjects'][number]): [string, BacktestCount][] =>
  [['below minimum exposure', s.belowMinimum], ['any limit', s.limited.any], ['any floor', s.limited.floor], ['any cap', s.limited.cap], ...Object.entries(s.limited.by)]

/** A number, or an empty cell for one the portfolio could not give (no true frequencies: NaN). */
const cell = (x: number) => (Number.isFinite(x) ? x : null)

/** The tables behind the page, as their CSV holds them. */
export const backtestTables = {
  deciles: (b: BacktestSummary): Table => ({
    columns: ['subject', 'decile', 'policies', 'min_score', 'max_score', 'mean_score', 'mean_premium', 'expected_claims_per_year', 'drawn_claims_per_year', 'relative_loss_ratio', 'relative_drawn_loss_ratio'],
    rows: b.subjects.flatMap((s) => s.deciles.map((d) => [s.subject, d.decile, d.policies, d.minScore, d.maxScore, d.meanScore, d.meanPremium, cell(d.expectedPerYear), d.claimsPerYear, cell(d.relativeLossRatio), d.relativeDrawnLossRatio])),
  }),
  /** Per subject, how many policies a limit held back (and those whose factor stays 1 below the minimum exposure). */
  limits: (b: BacktestSummary): Table => ({
    columns: ['subject', 'limit', 'policies', 'share'],
    rows: b.subjects.flatMap((s) => limitsOf(s).map(([limit, c]) => [s.subject, limit, c.policies, c.share])),
  }),
  /** Fairness: each group's premium against its true risk, both relative to the subject's mean. */
  groups: (b: BacktestSummary): Table => ({
    columns: ['subject', 'attribute', 'rated_by_plan', 'value', 'policies', 'premium_relative', 'expected_relative', 'mean_premium', 'expected_claims_per_year', 'relative_loss_ratio'],
    rows: b.subjects.flatMap((s) => s.groups.flatMap((g) => g.values.map((v) => [
      s.subject, g.attribute, String(g.ratedByPlan), v.value, v.policies, v.premiumRelative, cell(v.expectedRelative), v.meanPremium, cell(v.expectedPerYear), cell(v.relativeLossRatio),
    ]))),
  }),
}

const BacktestQuery = Type.Object({
  format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('csv')], { default: 'json', description: 'json: the whole summary; csv: one table, named by `table`' })),
  table: Type.Optional(Type.Union([Type.Literal('deciles'), Type.Literal('limits'), Type.Literal('groups')], { description: 'with format=csv: deciles (loss ratio by score decile), limits (shares held at limits) or groups (premium and true risk by region and persona)' })),
}, { additionalProperties: false })

/**
 * The backtest's summary (pricing/backtest.ts BacktestSummary): its run at the top; each subject's
 * tables are described by the route and the CSV tables, not re-declared here (they carry the plan).
 */
const Summary = strict({
  plan: Type.String({ description: '`name@version` of the plan backtested' }),
  currency: Type.String(),
  effectiveFrom: Type.String(),
  at: Type.Number({ description: 'When the plan was applied, ms' }),
  models: Type.Array(Type.String()),
  dataDays: Type.Number(),
  subjects: Type.Array(Type.Object({ subject: Subject }, { additionalProperties: true, description: "per subject: policies, premium and factor distributions, the plan's limits hit, score deciles, and groups by region and persona" })),
  skipped: Type.Array(strict({ subject: Subject, reason: Type.String() }), { description: 'Subjects not backtested, and why' }),
})

const page = readFileSync(new URL('./public/backtest.html', import.meta.url), 'utf8')

/** Registers the backtest route and page; without `backtest` the route says the server runs none. */
export function registerBacktest(app: App, backtest: (() => Promise<BacktestSummary>) | undefined, who: (req: FastifyRequest) => Principal): void {
  app.get<{ Querystring: Static<typeof BacktestQuery> }>('/api/v1/backtest', {
    schema: {
      description: "The rating plan and the champion models over the reference portfolio, as `ubiq backtest` reports it: per subject, loss ratio by score decile, shares held at the plan's limits, premium against true risk by region and persona (analyst token; ?format=csv&table=deciles|limits|groups)",
      querystring: BacktestQuery,
      response: { 200: Summary, ...errors },
    },
  }, async (req, reply) => {
    mustBeAnalyst(who(req))
    const { format, table } = req.query
    if (format === 'csv' && !table) return reply.code(400).send({ error: 'bad_request', message: 'format=csv needs table=deciles, limits or groups' })
    if (!backtest) return reply.code(404).send({ error: 'no_backtest', message: 'this server runs no backtest' })
    const b = await backtest()
    if (format !== 'csv') return b
    return sendCsv(reply, `backtest-${table}`, backtestTables[table!](b))
  })
  app.get('/analyst/backtest', { schema: { hide: true } }, (_req, reply) => reply.type('text/html; charset=utf-8').send(page))
}
