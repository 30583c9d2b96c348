/**
 * A policy's history as the REST API gives it (issue #7), read back from what scoring and pricing
 * store in InfluxDB: scores with their reasons, premium changes with theirs, trips with the events
 * in them (evidence included), and the events of every subject. Newest first. And its standing
 * (latest score and premium per subject), for the feed of a policy it does not hold in memory.
 */
import { Type, type Static } from '@sinclair/typebox'
import { ConsentNote, qualified, quoteString, seriesRows, Subject, subjectList, type Influx } from '../ingest/index.ts'
import { premiumFromRow, PriceReason } from '../pricing/index.ts'
import { Reason, scoreFromRow, Score } from '../scoring/index.ts'
import type { FeedBody } from './feed.ts'
import { strict } from './schemas.ts'
import type { Cell } from './tables.ts'

export interface Range {
  /** ms; from inclusive, to exclusive. */
  from?: number
  to?: number
  limit: number
}

/** A stored point: its columns by name (tags included), nulls left out; `time` is ms. */
export type Row = Record<string, unknown>

const where = (policyId: string, r: Omit<Range, 'limit'>, extra: Record<string, string | undefined> = {}) =>
  [`policy_id = ${quoteString(policyId)}`,
    ...Object.entries(extra).filter(([, v]) => v !== undefined).map(([k, v]) => `${k} = ${quoteString(v!)}`),
    ...(r.from !== undefined ? [`time >= ${r.from}ms`] : []),
    ...(r.to !== undefined ? [`time < ${r.to}ms`] : [])].join(' AND ')

const select = async (influx: Influx, measurement: string, policyId: string, r: Range, extra?: Record<string, string | undefined>) =>
  seriesRows(await influx.of(policyId).query(`SELECT * FROM ${qualified(measurement)} WHERE ${where(policyId, r, extra)} ORDER BY time DESC LIMIT ${r.limit}`))

/** Every policy with a score or a premium stored. */
export async function storedPolicies(influx: Influx): Promise<string[]> {
  // From the series, not SHOW TAG VALUES: InfluxDB 1.6 goes on listing an erased policy's id there
  // after its series are dropped (#21 item 5). Ids are letters, digits, _ and -: nothing escaped.
  const series = await influx.query(`SHOW SERIES FROM ${qualified('score')}, ${qualified('premium')}`)
  return [...new Set(series.flatMap((s) => s.values.map((v) => /[,]policy_id=([^,]+)/.exec(String(v[0]))?.[1]).filter((p) => p !== undefined)))]
}

const iso = (ms: unknown) => new Date(Number(ms)).toISOString()

/** A stored score as the API gives it: its window in ISO 8601. */
export const StoredScore = strict({
  subject: Subject,
  value: Type.Number(),
  model: Type.String(),
  window: strict({ from: Type.Optional(Type.String()), to: Type.String() }),
  exposure: Score.properties.exposure,
  features: Type.Record(Type.String(), Type.Number()),
  reasons: Type.Array(Reason),
  consent: Type.Optional(Type.Array(ConsentNote)),
})
export const scoreOf = (x: Row): Static<typeof StoredScore> => {
  const s = scoreFromRow(x)
  return { subject: s.subject, value: s.value, model: s.model, window: { from: s.window.from !== undefined ? iso(s.window.from) : undefined, to: iso(s.window.to) }, exposure: s.exposure, features: s.features, reasons: s.reasons, ...(s.consent ? { consent: s.consent } : {}) }
}

export async function scoreHistory(influx: Influx, policyId: string, subject: Subject | undefined, r: Range) {
  return (await select(influx, 'score', policyId, r, { subject })).map(scoreOf)
}

/** A stored premium change as the API gives it. */
export const StoredPremium = strict({
  subject: Subject,
  effectiveFrom: Type.String(),
  factor: Type.Number(),
  previousFactor: Type.Number(),
  premium: Type.Number(),
  credibility: Type.Number(),
  ruleset: Type.String(),
  hash: Type.String(),
  reasons: Type.Array(PriceReason),
})
export const premiumOf = (x: Row): Static<typeof StoredPremium> => {
  const p = premiumFromRow(x)
  return { subject: p.subject, effectiveFrom: p.effectiveFrom, factor: p.factor, previousFactor: p.previousFactor, premium: p.premium, credibility: p.credibility, ruleset: p.ruleset, hash: p.hash, reasons: p.reasons }
}

export async function premiumHistory(influx: Influx, policyId: string, subject: Subject | undefined, r: Range) {
  return (await select(influx, 'premium', policyId, r, { subject })).map(premiumOf)
}

/**
 * The policy's latest stored score and premium per subject, as the feed sends them: its standing
 * when the feed does not hold it (after a restart, or once the feed has forgotten an idle policy).
 */
export async function storedStanding(influx: Influx, policyId: string): Promise<FeedBody[]> {
  const latest = async (measurement: string) => seriesRows(await influx.of(policyId).query(`SELECT * FROM ${qualified(measurement)} WHERE policy_id = ${quoteString(policyId)} GROUP BY subject ORDER BY time DESC LIMIT 1`))
  const [scores, premiums] = await Promise.all([latest('score'), latest('premium')])
  const made: [number, FeedBody][] = [
    ...scores.map(scoreFromRow).map((score): [number, FeedBody] => [score.window.to, { type: 'score', score }]),
    ...premiums.map(premiumFromRow).map((premium): [number, FeedBody] => [Date.parse(premium.effectiveFrom), { type: 'premium', premium }]),
  ]
  // In the order they were made, as the feed sent them.
  return made.sort(([a], [b]) => a - b).map(([, body]) => body)
}

/** A stored event as the API gives it: its times in ISO 8601, its evidence as stored (fields, tags). */
export const StoredEvent = strict({
  type: Type.String(),
  subject: Subject,
  deviceId: Type.String(),
  urgent: Type.Boolean(),
  from: Type.String(),
  to: Type.String(),
  evidence: Type.Object({ source: Type.String() }, { additionalProperties: Type.Union([Type.Number(), Type.String(), Type.Boolean()]) }),
})
export const eventOf = (x: Row): Static<typeof StoredEvent> => {
  const { time, end_ms, policy_id, device_id, subject, type, urgent, source, ...evidence } = x
  return { type: type as string, subject: subject as Subject, deviceId: device_id as string, urgent: urgent === true, from: iso(time), to: iso(end_ms ?? time), evidence: { source: source as string, ...evidence } }
}

export async function eventHistory(influx: Influx, policyId: string, filter: { subject?: Subject; type?: string }, r: Range) {
  return (await select(influx, 'event', policyId, r, filter)).map(eventOf)
}

/**
 * Trips, newest first, each with the driving events that ended in it on its device: an event is
 * counted by the trip that completes it, and one such as continuous driving starts trips before.
 */
export async function tripHistory(influx: Influx, policyId: string, r: Range) {
  return withEvents(influx, policyId, await select(influx, 'trip', policyId, r))
}

/** A stored trip as the API gives it, with its events; a measure it was stored without is left out. */
export const StoredTrip = strict({
  deviceId: Type.String(),
  from: Type.String(),
  to: Type.String(),
  ended: Type.Optional(Type.String({ description: 'why the trip ended' })),
  distance_km: Type.Optional(Type.Number()),
  duration_s: Type.Optional(Type.Number()),
  night_s: Type.Optional(Type.Number()),
  speeding_s: Type.Optional(Type.Number()),
  phone_s: Type.Optional(Type.Number()),
  max_speed_kmh: Type.Optional(Type.Number()),
  events: Type.Array(StoredEvent),
})

/** Stored trips as the API gives them, each with the driving events that ended in it (see tripHistory). */
export async function withEvents(influx: Influx, policyId: string, trips: readonly Row[]): Promise<Static<typeof StoredTrip>[]> {
  if (trips.length === 0) return []
  const first = Math.min(...trips.map((t) => Number(t.time)))
  const last = Math.max(...trips.map((t) => Number(t.end_ms ?? t.time)))
  const events = seriesRows(await influx.of(policyId).query(`SELECT * FROM ${qualified('event')} WHERE ${where(policyId, { from: first - EVENT_LOOKBACK_MS, to: last + 1 }, { subject: 'driving' })} ORDER BY time ASC`))
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

/** A table's columns, each with what it means (the export's README says it). */
export type Columns = readonly (readonly [name: string, meaning: string])[]
const TRIP_COLUMNS: Columns = [
  ['device_id', 'the vehicle or phone'], ['from_utc', 'start'], ['to_utc', 'end'],
  ['ended', 'what ended it: ignition off, standing still, silence …'], ['distance_km', 'distance, km'], ['duration_s', 'duration, s'],
  ['night_s', 'time driven at night (22:00–05:00 by the sun), s'], ['speeding_s', 'time above the speed limit, s'], ['phone_s', 'time handling the phone, s'],
  ['max_speed_kmh', 'highest speed, km/h'], ['events', 'driving events that ended in the trip (each in events.csv)'],
]
const EVENT_COLUMNS: Columns = [
  ['from_utc', 'start'], ['to_utc', 'end'], ['subject', subjectList], ['type', 'what happened, e.g. harsh_braking, leak, resting_hr_rise'],
  ['device_id', 'the device whose readings show it'], ['urgent', 'sent at once (crash, leak, smoke, health alert)'], ['source', 'the stream it was found in'],
  ['evidence', 'the measurements behind it (peak, threshold, unit, duration …), JSON'],
]
const SCORE_COLUMNS: Columns = [
  ['window_from_utc', 'start of the data scored'], ['window_to_utc', 'end of the data scored; the score\'s time'], ['subject', subjectList],
  ['value', '0–100, higher is safer; 50 is a typical policyholder'], ['model', 'the model that scored, name@version'], ['days', 'days of data behind it'],
  ['distance_km', 'km driven behind it (driving)'], ['moving_s', 'time moving behind it, s (driving)'], ['night_s', 'time driven at night behind it, s (driving)'],
  ['reasons', 'the reasons, in plain words, separated by " | " (scores.json has each with its feature, value, typical value and points)'],
]
const PREMIUM_COLUMNS: Columns = [
  ['effective_from_utc', 'when the change took effect'], ['subject', `the cover: ${subjectList}`], ['factor', 'what the base premium is multiplied by'],
  ['previous_factor', 'the factor before'], ['premium', 'the premium, a year, in the rating plan\'s currency'], ['credibility', 'how much of the score counts (0–1), by the data behind it'],
  ['ruleset', 'the rating plan, name@version'], ['hash', 'this change in the audit log\'s hash chain'],
  ['reasons', 'the reasons, in plain words, separated by " | " (premiums.json has them whole)'],
]
const texts = (x: { reasons: { text: string }[] }) => x.reasons.map((r) => r.text).join(' | ')

/**
 * The policy's history as tables, the same for the export's CSV files and the history routes'
 * ?format=csv: each table's columns, and a row's cells from what the API gives.
 */
export const historyTables = {
  trips: { columns: TRIP_COLUMNS, cells: (t: Awaited<ReturnType<typeof withEvents>>[number]): Cell[] => [t.deviceId, t.from, t.to, t.ended, t.distance_km, t.duration_s, t.night_s, t.speeding_s, t.phone_s, t.max_speed_kmh, t.events.length] },
  events: {
    columns: EVENT_COLUMNS,
    cells: (e: ReturnType<typeof eventOf>): Cell[] => {
      const { source, ...evidence } = e.evidence
      return [e.from, e.to, e.subject, e.type, e.deviceId, e.urgent, source as Cell, JSON.stringify(evidence)]
    },
  },
  scores: { columns: SCORE_COLUMNS, cells: (s: ReturnType<typeof scoreOf>): Cell[] => [s.window.from, s.window.to, s.subject, s.value, s.model, s.exposure.days, s.exposure.distance_km, s.exposure.moving_s, s.exposure.night_s, texts(s)] },
  premiums: { columns: PREMIUM_COLUMNS, cells: (p: ReturnType<typeof premiumOf>): Cell[] => [p.effectiveFrom, p.subject, p.factor, p.previousFactor, p.premium, p.credibility, p.ruleset, p.hash, texts(p)] },
}

/** How long before its trip's end an event may start (continuous driving across short stops). */
const EVENT_LOOKBACK_MS = 24 * 3600_000

/** Rows a query reads at most: a page of 10,000 rows is a JSON body of a few MB at the most. */
const PAGE_ROWS = 10_000

/**
 * Every row of `measurement` that meets `condition` within [from, to) (either end open), oldest
 * first, a page at a time: what a whole policy's history or a device's stream may hold is more
 * than one answer should. A page ends before its last instant (rows of several series may share
 * it), and the next starts there. `influx` is one InfluxDB (`Influx.of` the policy): pages of several
 * would not follow one another.
 */
export async function* pagesOf(influx: Influx, measurement: string, condition: string, period: { from?: number; to?: number }, pageRows = PAGE_ROWS): AsyncGenerator<Row[]> {
  const select = (time: string[], limit: string) =>
    `SELECT * FROM ${qualified(measurement)} WHERE ${[condition, ...time].join(' AND ')}${limit}`
  const until = period.to !== undefined ? [`time < ${period.to}ms`] : []
  for (let from = period.from; ;) {
    const page = seriesRows(await influx.query(select([...(from !== undefined ? [`time >= ${from}ms`] : []), ...until], ` ORDER BY time ASC LIMIT ${pageRows}`)))
    if (page.length < pageRows) {
      if (page.length > 0) yield page
      return
    }
    const last = Number(page.at(-1)!.time)
    const before = page.filter((r) => Number(r.time) < last)
    // A page all at one instant (more series than a page holds): that instant whole, then what follows.
    yield before.length > 0 ? before : seriesRows(await influx.query(select([`time = ${last}ms`], '')))
    from = before.length > 0 ? last : last + 1
  }
}
