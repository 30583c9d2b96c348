/**
 * A policy's history as the REST API gives it (issue #7), read back from what scoring and pricing
 * store in InfluxDB: scores with their reasons, premium changes with theirs, trips with the events
 * in them (evidence included), and the events of every subject. Newest first.
 */
import { quoteString, type Influx, type Series, type Subject } from '../ingest/index.ts'

export interface Range {
  /** ms; from inclusive, to exclusive. */
  from?: number
  to?: number
  limit: number
}

type Row = Record<string, unknown>

/** Series rows as objects; `time` is ms (the client asks for epoch=ms). */
const rows = (series: readonly Series[]): Row[] =>
  series.flatMap((s) => s.values.map((v) => Object.fromEntries(s.columns.map((c, i) => [c, v[i]]).filter(([, x]) => x !== null))))

const where = (policyId: string, r: Omit<Range, 'limit'>, extra: Record<string, string | undefined> = {}) =>
  [`policy_id = ${quoteString(policyId)}`,
    ...Object.entries(extra).filter(([, v]) => v !== undefined).map(([k, v]) => `${k} = ${quoteString(v!)}`),
    ...(r.from !== undefined ? [`time >= ${r.from}ms`] : []),
    ...(r.to !== undefined ? [`time < ${r.to}ms`] : [])].join(' AND ')

const select = async (influx: Influx, measurement: string, policyId: string, r: Range, extra?: Record<string, string | undefined>) =>
  rows(await influx.query(`SELECT * FROM ${measurement} WHERE ${where(policyId, r, extra)} ORDER BY time DESC LIMIT ${r.limit}`))

/** Every policy with a score or a premium stored. */
export async function storedPolicies(influx: Influx): Promise<string[]> {
  const series = await influx.query('SHOW TAG VALUES FROM score, premium WITH KEY = policy_id')
  return [...new Set(series.flatMap((s) => s.values.map((v) => String(v[1]))))]
}

const iso = (ms: unknown) => new Date(Number(ms)).toISOString()
const fixed = new Set(['time', 'policy_id', 'subject', 'model', 'value', 'window_from', 'days', 'distance_km', 'moving_s', 'night_s', 'reasons'])

export async function scoreHistory(influx: Influx, policyId: string, subject: Subject | undefined, r: Range) {
  return (await select(influx, 'score', policyId, r, { subject })).map((x) => ({
    subject: x.subject as Subject,
    value: x.value as number,
    model: x.model as string,
    window: { from: x.window_from !== undefined ? iso(x.window_from) : undefined, to: iso(x.time) },
    exposure: {
      days: x.days as number,
      ...Object.fromEntries((['distance_km', 'moving_s', 'night_s'] as const).filter((k) => typeof x[k] === 'number').map((k) => [k, x[k] as number])),
    },
    features: Object.fromEntries(Object.entries(x).filter(([k, v]) => !fixed.has(k) && typeof v === 'number')),
    reasons: typeof x.reasons === 'string' ? JSON.parse(x.reasons) : [],
    ...(typeof x.consent === 'string' ? { consent: JSON.parse(x.consent) } : {}),
  }))
}

export async function premiumHistory(influx: Influx, policyId: string, subject: Subject | undefined, r: Range) {
  return (await select(influx, 'premium', policyId, r, { subject })).map((x) => ({
    subject: x.subject as Subject,
    effectiveFrom: iso(x.time),
    factor: x.factor as number,
    previousFactor: x.previous_factor as number | undefined,
    premium: x.premium as number,
    credibility: x.credibility as number,
    ruleset: x.ruleset as string,
    hash: x.hash as string,
    reasons: typeof x.reasons === 'string' ? JSON.parse(x.reasons) : [],
  }))
}

const eventOf = (x: Row) => {
  const { time, end_ms, policy_id, device_id, subject, type, urgent, source, ...evidence } = x
  return { type: type as string, subject: subject as Subject, deviceId: device_id as string, urgent: urgent === true, from: iso(time), to: iso(end_ms ?? time), evidence: { source, ...evidence } }
}

export async function eventHistory(influx: Influx, policyId: string, filter: { subject?: Subject; type?: string }, r: Range) {
  return (await select(influx, 'event', policyId, r, filter)).map(eventOf)
}

/**
 * Trips, newest first, each with the driving events that ended in it on its device: an event is
 * counted by the trip that completes it, and one such as continuous driving starts trips before.
 */
export async function tripHistory(influx: Influx, policyId: string, r: Range) {
  const trips = await select(influx, 'trip', policyId, r)
  if (trips.length === 0) return []
  const first = Math.min(...trips.map((t) => Number(t.time)))
  const last = Math.max(...trips.map((t) => Number(t.end_ms ?? t.time)))
  const events = rows(await influx.query(`SELECT * FROM event WHERE ${where(policyId, { from: first - EVENT_LOOKBACK_MS, to: last + 1 }, { subject: 'driving' })} ORDER BY time ASC`))
  return trips.map((t) => {
    const from = Number(t.time), to = Number(t.end_ms ?? t.time)
    const mine = events.filter((e) => e.device_id === t.device_id && Number(e.end_ms ?? e.time) >= from && Number(e.end_ms ?? e.time) <= to)
    return {
      deviceId: t.device_id as string,
      from: iso(from),
      to: iso(to),
      ended: t.ended as string,
      distance_km: t.distance_km as number,
      duration_s: t.duration_s as number,
      night_s: t.night_s as number,
      speeding_s: t.speeding_s as number,
      phone_s: t.phone_s as number,
      max_speed_kmh: t.max_speed_kmh as number,
      events: mine.map(eventOf),
    }
  })
}

/** How long before its trip's end an event may start (continuous driving across short stops). */
const EVENT_LOOKBACK_MS = 24 * 3600_000
