/**
 * The analyst's drill-down into one policy (issue #7): the raw readings of the policy's devices on
 * a timeline, downsampled by InfluxDB, and the page (/analyst/policy) that charts them with the
 * policy's events as markers and its scores with their reasons.
 *
 * Raw readings are stored per device, not per policy (ingest's storeReadings): the device
 * registry says which devices are the policy's. Positions are never served, and the route is for
 * analysts only: a policyholder sees scores, events and premiums, not the stream behind them.
 *
 * The analyst looks here for the evidence behind a policy's prices, so the consent that governs
 * the view is the one for pricing (#21): a stream the policy has withdrawn from pricing is not
 * served, whatever other purpose keeps it stored (coaching, claims). Asked for by name, it is
 * refused (403 no_consent); otherwise it is left out, and `withheld` says which and why.
 */
import { readFileSync } from 'node:fs'
import { Type, type Static } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import { analystFields, ID_PATTERN, POSITION_FIELDS, qualified, quoteIdent, quoteString, type ConsentStore, type Influx, type Series } from '../ingest/index.ts'
import { mustBeAnalyst, type Principal } from './auth.ts'
import { DAY_MS, periodOf, sendCsv, Time, type App, type Table } from './tables.ts'
import { errors, strict } from './schemas.ts'

/** A device registered to a policy, and the streams it may send. */
export const PolicyDevice = strict({
  deviceId: Type.String(),
  kinds: Type.Readonly(Type.Array(Type.String())),
  registeredAt: Type.Optional(Type.String({ description: 'When the device was registered (ISO 8601), if the registry says' })),
})
export type PolicyDevice = Static<typeof PolicyDevice>

export interface DrilldownDeps {
  influx: Influx
  /** The policy's devices, from the device registry; none: the policy is unknown. */
  devicesOf?(policyId: string): readonly PolicyDevice[]
  /** Consent as it stands: only streams granted for pricing are served. */
  consents: Pick<ConsentStore, 'allows'>
}

/** One field of one device's stream: [time ms, mean] per bucket, oldest first. */
export const ReadingSeries = strict({ deviceId: Type.String(), kind: Type.String(), field: Type.String(), points: Type.Array(Type.Tuple([Type.Number(), Type.Number()])) })
export type ReadingSeries = Static<typeof ReadingSeries>

export const PolicyReadings = strict({
  policyId: Type.String(),
  from: Type.String(),
  to: Type.String(),
  interval: Type.String({ description: "Each point is the mean of the field's readings over one bucket this long, timed at the bucket's start (aligned to the epoch)" }),
  intervalMs: Type.Number(),
  devices: Type.Array(PolicyDevice),
  series: Type.Array(ReadingSeries),
  withheld: Type.Array(strict({ kind: Type.String(), reason: Type.String() }), { description: 'The streams asked for that are not served, and why (consent)' }),
})
export type PolicyReadings = Static<typeof PolicyReadings>

/**
 * The numeric fields a stream's readings carry (a batched stream: its sample columns), positions
 * left out: no feature an analyst reads off this route needs a raw position (distance and speeding
 * are in trips and events), so privacy by design leaves them out. Declared with the catalogue, as
 * the data inventory says who reads what.
 */
export const servedFields = analystFields

/** At most this many points per field: a month of 1 Hz readings stays a few hundred kB. */
export const MAX_POINTS = 1000
const S = 1000
/** Bucket lengths to choose from: the shortest that keeps a period within MAX_POINTS buckets. */
const STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200].map((s) => s * S)
/** Without `from`: a week before `to`. Raw readings are the heaviest thing InfluxDB holds: a request reads at most a month of them. */
const PERIOD = { defaultMs: 7 * DAY_MS, maxMs: 31 * DAY_MS }

/** The shortest step that cuts [from, to) into at most MAX_POINTS epoch-aligned buckets. */
export function stepFor(from: number, to: number): number {
  return STEPS.find((s) => Math.ceil(to / s) - Math.floor(from / s) <= MAX_POINTS) ?? STEPS.at(-1)!
}
const duration = (ms: number) => (ms % 3600_000 === 0 ? `${ms / 3600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / S}s`)

/** The streams and fields a query asks for among the policy's devices, or what is wrong with it. */
function selection(devices: readonly PolicyDevice[], q: { device?: string; kind?: string; field?: string }) {
  if (q.device && !devices.some((d) => d.deviceId === q.device)) return `device ${q.device} is not registered to this policy`
  if (q.field && POSITION_FIELDS.has(q.field)) return `${q.field} is a position: positions are never served`
  const byKind = new Map<string, string[]>()
  for (const d of devices) {
    if (q.device && d.deviceId !== q.device) continue
    for (const kind of d.kinds) if (!q.kind || kind === q.kind) byKind.set(kind, [...(byKind.get(kind) ?? []), d.deviceId])
  }
  const streams = [...byKind].map(([kind, deviceIds]) => ({ kind, deviceIds, fields: servedFields(kind).filter((f) => !q.field || f === q.field) })).filter((s) => s.fields.length > 0)
  if (streams.length === 0) return `no numeric field${q.field ? ` ${q.field}` : ''} in ${q.kind ? `stream ${q.kind} of` : 'the streams of'} ${q.device ?? "the policy's devices"}`
  return streams
}

/** The readings of `devices` in [from, to): per device, stream and field, the mean of each bucket; `withheld` streams left out. */
export async function policyReadings(
  influx: Influx, policyId: string, devices: readonly PolicyDevice[], from: number, to: number, q: { device?: string; kind?: string; field?: string } = {}, withheld: ReadonlySet<string> = new Set(),
): Promise<PolicyReadings | string> {
  const selected = selection(devices, q)
  if (typeof selected === 'string') return selected
  const streams = selected.filter((s) => !withheld.has(s.kind))
  const step = stepFor(from, to)
  // One statement per stream, in one request: InfluxDB averages, the server only reshapes.
  const statements = streams.map((s) => `SELECT ${s.fields.map((f) => `mean(${quoteIdent(f)}) AS ${quoteIdent(f)}`).join(', ')} FROM ${qualified(s.kind)}`
    + ` WHERE (${s.deviceIds.map((id) => `device_id = ${quoteString(id)}`).join(' OR ')}) AND time >= ${from}ms AND time < ${to}ms`
    + ` GROUP BY time(${step / S}s), device_id fill(none)`)
  const result: Series[] = streams.length === 0 ? [] : await influx.of(policyId).query(statements.join('; '))
  const series = result.flatMap((s) => s.columns.slice(1).filter((f) => !POSITION_FIELDS.has(f)).map((field) => {
    const j = s.columns.indexOf(field)
    return {
      deviceId: s.tags?.device_id ?? '',
      kind: s.name,
      field,
      points: s.values.filter((v) => v[j] !== null).map((v): [number, number] => [Number(v[0]), Number(v[j])]),
    }
  })).filter((s) => s.points.length > 0)
  series.sort((a, b) => a.deviceId.localeCompare(b.deviceId) || a.kind.localeCompare(b.kind) || a.field.localeCompare(b.field))
  return {
    policyId, from: new Date(from).toISOString(), to: new Date(to).toISOString(), interval: duration(step), intervalMs: step,
    devices: devices.map((d) => ({ deviceId: d.deviceId, kinds: [...d.kinds] })), series,
    withheld: selected.filter((s) => withheld.has(s.kind)).map((s) => ({ kind: s.kind, reason: noConsent(policyId, s.kind) })),
  }
}

/** Why a stream is not served: the analyst's view is for pricing, and the policy withdrew the stream from it. */
const noConsent = (policyId: string, kind: string) => `policy ${policyId} has withdrawn consent to use stream ${kind} for pricing, the purpose of this view: not served`

/** The readings as one CSV table: a line per point, in series order, oldest first. */
export const readingsTable = (r: PolicyReadings): Table => ({
  columns: ['time', 'device_id', 'kind', 'field', 'mean'],
  rows: r.series.flatMap((s) => s.points.map(([time, mean]) => [new Date(time).toISOString(), s.deviceId, s.kind, s.field, mean])),
})

const Name = (description: string) => Type.Optional(Type.String({ pattern: '^[a-z0-9_]{1,64}$', description }))
const ReadingsQuery = Type.Object({
  from: Type.Optional({ ...Time, description: 'from this time (inclusive), ISO 8601; default 7 days before `to`' }),
  to: Type.Optional({ ...Time, description: 'until this time (exclusive), ISO 8601; default now; at most 31 days after `from`' }),
  device: Type.Optional(Type.String({ pattern: ID_PATTERN, description: "one of the policy's devices; default all of them" })),
  kind: Name('one stream (sensor kind), e.g. obd; default all'),
  field: Name('one field, e.g. speed_kmh; default every numeric field'),
  format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('csv')], { default: 'json', description: 'json, or csv: a line per point (time, device_id, kind, field, mean)' })),
}, { additionalProperties: false })

const page = readFileSync(new URL('./public/policy.html', import.meta.url), 'utf8')

/** Registers the readings route and the drill-down page; `who` checks a request's bearer token. */
export function registerDrilldown(app: App, deps: DrilldownDeps, who: (req: FastifyRequest) => Principal): void {
  app.get<{ Params: { policy: string }; Querystring: Static<typeof ReadingsQuery> }>('/api/v1/policies/:policy/readings', {
    schema: {
      description: "The raw readings of the policy's devices over a period (analyst token only): per device, stream and numeric field, "
        + `the mean per bucket, at most ${MAX_POINTS} buckets (1 s to 2 h long, as the period needs). Positions (${[...POSITION_FIELDS].join(', ')}) are never served: no analyst's question here needs them. `
        + 'Nor is a stream the policy has withdrawn from pricing (the purpose of this view): asked for by name, 403 no_consent; otherwise left out and listed in `withheld` with why. ?format=csv: a line per point',
      params: Type.Object({ policy: Type.String({ pattern: ID_PATTERN, description: 'policy id' }) }),
      querystring: ReadingsQuery,
      response: { 200: PolicyReadings, ...errors },
    },
  }, async (req, reply) => {
    mustBeAnalyst(who(req))
    const { policy } = req.params, q = req.query
    const devices = deps.devicesOf?.(policy) ?? []
    if (devices.length === 0) return reply.code(404).send({ error: 'unknown_policy', message: `no device is registered to policy ${policy}` })
    const withheld = new Set(devices.flatMap((d) => d.kinds).filter((kind) => !deps.consents.allows(policy, kind, 'pricing')))
    if (q.kind && withheld.has(q.kind)) return reply.code(403).send({ error: 'no_consent', message: noConsent(policy, q.kind) })
    const period = periodOf(q, PERIOD)
    const body = typeof period === 'string' ? period : await policyReadings(deps.influx, policy, devices, period.from, period.to, q, withheld)
    if (typeof body === 'string') return reply.code(400).send({ error: 'bad_request', message: body })
    if (q.format !== 'csv') return body
    const name = ['readings', policy, q.device, q.kind, q.field].filter(Boolean).join('-')
    return sendCsv(reply, name, readingsTable(body))
  })
  app.get('/analyst/policy', { schema: { hide: true } }, (_req, reply) => reply.type('text/html; charset=utf-8').send(page))
}
