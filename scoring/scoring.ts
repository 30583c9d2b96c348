/**
 * The scoring service. Driving readings → trips and driving events (per device) → 30/90-day
 * features (per policy) → an ONNX score with reasons after every trip. Health and home readings →
 * daily aggregates (stored as `health_day` / `home_day`) and their events → a score per closed day. Events are published on
 * `ubiq/v1/events/{policyId}` as they are detected and stored in InfluxDB (measurement `event`);
 * trips are stored (measurement `trip`) and are what a policy's features are rebuilt from when it
 * comes back after a restart or after idling out of memory. A trip open when the service stops is
 * neither cut nor stored: the next run replays the device's stored readings since its last trip
 * (see `trackTrips`), so scores after a restart are those of an uninterrupted run. Scores go to
 * `ubiq/v1/scores/{policyId}` and InfluxDB (measurement `score`).
 */
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import { asyncScheduler, concatMap, debounceTime, EMPTY, filter, groupBy, map, merge, mergeMap, share, type Observable, type OperatorFunction, type SchedulerLike } from 'rxjs'
import { consentedFor, qualified, quoteString, readingsFromSeries, sensors, toLine, topics, type ConsentStore, type Influx, type Reading, type Series, type Subject } from '../ingest/index.ts'
import { defaultHealthConfig, healthDayLine, startOfDay, healthDaysFromSeries, scoreHealth, type DayHistory, type PolicyOutput } from './health.ts'
import { defaultHomeConfig, homeDayLine, homeDaysFromSeries, scoreHome } from './home.ts'
import { addTrip, DAY_MS, drivingScoreInput, packDays, unpackDays, withHiddenDriving, restoreDays, tripFields, windowStart, type DrivingDay, type PackedDays } from './driving.ts'
import type { Detector, PolicyEvent } from './events.ts'
import { scoreLine, scoreWith, type ActiveModels, type BatchConfig, type Score, type ScoreInput } from './score.ts'
import { forgotten } from './per-key.ts'
import { trackTrips, type OpenTripSource, type TrackFix, type Trip, type TripArea, type TripConfig } from './trips.ts'

/** How far back a device's open trip is looked for after a restart: longer trips restart where the lookback begins. */
export const OPEN_TRIP_LOOKBACK_MS = 12 * 3600_000

export interface ScoringDeps {
  readings$: Observable<Reading>
  /** Where events and scores are published: the MQTT client, or a worker's NATS connection (#25). */
  mqtt: { publish(topic: string, message: string, opts: { qos: 1 }): unknown }
  influx: Influx
  /** The models in use now (the model registry's): asked once per micro-batch. */
  models: () => ActiveModels
  /** A policy's registered devices (whose stored readings rebuild its open day after a restart). */
  policyDevices(policyId: string): readonly string[]
  logger: Logger
  metrics: Registry
  trips: TripConfig
  /** A vehicle device's own detectors (manoeuvres, speeding, phone handling, crash). */
  detectors(deviceId: string, policyId: string): Detector[]
  batch: BatchConfig
  /** A device silent this long has ended its trip and leaves memory, ms. */
  deviceIdleMs: number
  /** A policy with no trip for this long leaves memory (and is rebuilt from InfluxDB when it returns), ms. */
  policyIdleMs: number
  /**
   * Consent (ingest/consent.ts): only readings of streams granted for pricing are scored, live or
   * read back from InfluxDB, and each score names the streams withdrawn within its window. Without
   * it, every reading is scored.
   */
  consents?: Pick<ConsentStore, 'allows' | 'notes'>
  /**
   * How much of [fromMs, toMs) the policy had location (or all telemetry) paused, ms
   * (ingest/privacy.ts): a trip's moving time with location paused is its `paused_s`, and the
   * driving a pause of all telemetry hid is estimated into the score's privacy note.
   */
  pausedMs?(policyId: string, scope: 'location' | 'all', fromMs: number, toMs: number): number
  /**
   * Erased policies (#21 item 5): each one's state, and its devices', is dropped at once, and
   * nothing of it is written or published from then on (default: none).
   */
  erased$?: Observable<{ policyId: string; deviceIds: readonly string[] }>
  /** Whether the policy is still enrolled: what scoring gives of one that is not (erased meanwhile) goes nowhere (default: every policy is). */
  enrolled?(policyId: string): boolean
  /**
   * Devices and policies this process no longer owns (a worker's partition moved to another,
   * #25): their state is dropped without being written, as an erased policy's; whoever owns them
   * next rebuilds it from InfluxDB, as after a restart.
   */
  handedOver$?: Observable<{ policyIds: readonly string[]; deviceIds: readonly string[] }>
  /**
   * How closed trips reach their policy's stage (driving score): by default straight on. A worker
   * (#25) sends them through the policy stream and gives back the trips of the policy partitions
   * it owns, from every worker's devices.
   */
  policyTrips?: (trips$: Observable<Trip>) => Observable<Trip>
}

/** Starts scoring; scores$, events$ and trips$ are hot and shared. */
export function startScoring(deps: ScoringDeps): { scores$: Observable<Score>; events$: Observable<PolicyEvent>; trips$: Observable<Trip> } {
  const log = deps.logger.child({ stage: 'scoring' })
  const scored = new Counter({ name: 'ubiq_scores_total', help: 'Scores produced', labelNames: ['subject'], registers: [deps.metrics] })
  const shadowed = new Counter({ name: 'ubiq_shadow_scores_total', help: 'Scores by shadow models (stored as shadow_score, never priced)', labelNames: ['model'], registers: [deps.metrics] })
  const failures = new Counter({ name: 'ubiq_model_failures_total', help: 'Model calls that failed', registers: [deps.metrics] })
  const detected = new Counter({ name: 'ubiq_events_total', help: 'Events detected', labelNames: ['type'], registers: [deps.metrics] })
  const tripCount = new Counter({ name: 'ubiq_trips_total', help: 'Trips closed', labelNames: ['ended'], registers: [deps.metrics] })
  const restoreFailures = new Counter({ name: 'ubiq_history_restore_failures_total', help: 'Reads of stored history from InfluxDB that failed (a driving policy retries with its next trip; an open trip or day starts afresh)', registers: [deps.metrics] })
  const keyFailures = new Counter({ name: 'ubiq_scoring_key_failures_total', help: "A device's or policy's state that threw: dropped (it starts afresh with its next value) while the others run on", labelNames: ['stage'], registers: [deps.metrics] })
  /**
   * A bug in one device's or policy's state costs that key, never the stream (#20: it ended trips$
   * and scores$, and the process with them). The stack says where; the key, whose; the values that
   * made it throw stay out of the log (they may be positions or heart rates).
   */
  const keyFailed = (stage: 'trips' | 'health' | 'home' | 'driving_score') => (err: unknown, key: string) => {
    keyFailures.inc({ stage })
    log.error({ err, failedStage: stage, key }, 'a device\'s or policy\'s scoring state threw: dropped, the others run on')
  }

  // A stream the policy withdrew from pricing is not scored (#21), whether its readings arrive now
  // or are read back to rebuild a state: a stream kept for coaching or claims is still stored.
  const priced: (r: Reading) => boolean = deps.consents ? consentedFor(deps.consents, 'pricing') : () => true
  /** A trip's moving time in privacy mode: its share of the trip's span that location was paused (privacy mode). */
  const pausedOf = (trip: Trip) => {
    const ms = trip.to > trip.from ? deps.pausedMs?.(trip.policyId, 'location', trip.from, trip.to) ?? 0 : 0
    return ms > 0 ? Math.round((trip.moving_s * ms) / (trip.to - trip.from) * 1000) / 1000 : 0
  }
  // An erased policy's state goes at once; what was in flight when it went (a score in a
  // micro-batch, a trip whose history was being read) is dropped on its way out (#21 item 5).
  const erased$ = (deps.erased$ ?? EMPTY).pipe(share())
  const handedOver$ = (deps.handedOver$ ?? EMPTY).pipe(share())
  const forgetPolicies$ = merge(erased$.pipe(map((e) => e.policyId)), handedOver$.pipe(mergeMap((h) => h.policyIds))).pipe(share())
  const forgetDevices$ = merge(erased$, handedOver$).pipe(mergeMap((e) => e.deviceIds), share())
  const enrolled = <T extends { policyId: string }>(x: T) => deps.enrolled?.(x.policyId) ?? true
  // Every stage below reads the same stream: one subscription upstream (one reorder buffer).
  const readings$ = deps.readings$.pipe(filter((r) => enrolled(r) && priced(r)), share())
  /**
   * Stored readings of `subject` from `devices` since `sinceMs` (exclusive) and up to `untilMs` if given, as readings of `first`'s
   * policy, of streams it may be priced on. The condition is on tags and time only: InfluxDB's
   * in-memory index answers a field condition (it was `seq < …`) with every series of the
   * measurement, copied and sorted per query, so each device's first reading cost O(all series)
   * and a 100k-device fleet took InfluxDB to 22 GB (#25 item 4).
   */
  const storedReadings = async (first: Reading, subject: Subject, devices: readonly string[], sinceMs: number, untilMs?: number) => {
    if (devices.length === 0) return []
    const kinds = sensors.filter((s) => s.subject === subject).map((s) => qualified(s.kind)).join(', ')
    const ofDevices = devices.map((d) => `device_id = ${quoteString(d)}`).join(' OR ')
    return readingsFromSeries(await deps.influx.of(first.policyId).query(`SELECT * FROM ${kinds} WHERE (${ofDevices}) AND time > ${sinceMs}ms${untilMs === undefined ? '' : ` AND time <= ${untilMs}ms`}`), first.policyId).filter(priced)
  }

  // A device's open trip comes back after a restart from its stored readings since its last trip.
  const openTrips: OpenTripSource = {
    async read(first) {
      const device = `device_id = ${quoteString(first.deviceId)}`
      const lookback = `time > ${first.ts - OPEN_TRIP_LOOKBACK_MS}ms`
      const [last] = await deps.influx.of(first.policyId).query(`SELECT last(end_ms) FROM ${qualified('trip')} WHERE ${device} AND ${lookback} AND time <= ${first.ts}ms`)
      const since = Number(last?.values[0]?.[1] ?? first.ts - OPEN_TRIP_LOOKBACK_MS)
      // Its own earlier messages (by seq: a device's clock may step back); later ones are not yet this stream's.
      const stored = await storedReadings(first, 'driving', [first.deviceId], since)
      return stored.filter((r) => r.seq < first.seq)
    },
    onError(err, deviceId) {
      restoreFailures.inc()
      log.error({ err, deviceId }, 'cannot read the device\'s open trip from InfluxDB; its trip restarts here')
    },
  }
  const driving$ = readings$.pipe(trackTrips(deps.trips, deps.detectors, deps.deviceIdleMs, openTrips, asyncScheduler, keyFailed('trips'), forgetDevices$), filter((o) => enrolled('event' in o ? o.event : o.trip)), share())
  const detected$ = driving$.pipe(filter((o) => 'event' in o), share())
  const events$ = detected$.pipe(map((o): PolicyEvent => o.event), share())
  // A crash's track is kept for the claim (the `claims` policy) when the trip's positions are gone (#21).
  detected$.subscribe((o) => o.crashTrack && deps.influx.write(crashTrackLines(o.event, o.crashTrack)))
  const closed$ = driving$.pipe(
    filter((o): o is { trip: Trip; area?: TripArea } => 'trip' in o),
    map((o) => ({ ...o, trip: { ...o.trip, paused_s: pausedOf(o.trip) } })),
    share(),
  )
  const trips$ = closed$.pipe(map((o) => o.trip), share())
  closed$.subscribe(({ trip, area }) => {
    tripCount.inc({ ended: trip.ended })
    deps.influx.write([
      toLine('trip', { policy_id: trip.policyId, device_id: trip.deviceId, ended: trip.ended, source: trip.source }, tripFields(trip), trip.from),
      // Where it went, coarsened: what outlives its positions (#21).
      ...(area ? [toLine('trip_area', { policy_id: trip.policyId, device_id: trip.deviceId }, { cells: Object.entries(area).map(([cell, s]) => `${cell}:${s}`).join(' ') }, trip.from)] : []),
    ])
  })

  const readHistory = async (policyId: string, beforeTs: number): Promise<DrivingDay[]> => {
    const series = await deps.influx.of(policyId).query(`SELECT * FROM ${qualified('trip')} WHERE policy_id = ${quoteString(policyId)} AND time >= ${windowStart(beforeTs)}ms AND time < ${beforeTs}ms`)
    const rows = series.flatMap((s) => s.values.map((v) => ({
      from: Number(v[0]),
      fields: Object.fromEntries(s.columns.map((c, i) => [c, typeof v[i] === 'number' ? v[i] : null])) as Record<string, number | null>,
    })))
    return restoreDays(rows.sort((a, b) => a.from - b.from))
  }

  // Health and home: when a policy first appears, its closed days come back from InfluxDB (the last
  // `keepDays` stored), and its open day from the readings of that day its devices sent before
  // (replayed). The last stored day counts as open: a stop or an idle expiry stores it as it stands.
  const days = <D extends { day_ms: number }>(subject: Subject, measurement: string, keepDays: number, parse: (s: readonly Series[]) => D[]): DayHistory<D> => ({
    async read(first) {
      const stored = parse(await deps.influx.of(first.policyId).query(`SELECT * FROM ${qualified(measurement)} WHERE policy_id = ${quoteString(first.policyId)} ORDER BY time DESC LIMIT ${keepDays}`))
      const openFrom = Math.max(startOfDay(first.ts) - DAY_MS, ...stored.map((d) => d.day_ms))
      const earlier = await storedReadings(first, subject, deps.policyDevices(first.policyId), openFrom - 1, first.ts)
      return {
        // A first reading older than the open day (a late upload) replays nothing: the stored days all stay.
        days: stored.filter((d) => d.day_ms < openFrom || d.day_ms > first.ts),
        // Before `first`: earlier in time, or earlier from its own device at the same time.
        earlier: earlier.filter((r) => r.ts < first.ts || (r.deviceId === first.deviceId && r.seq < first.seq)),
      }
    },
    onError: (err, policyId) => {
      restoreFailures.inc()
      log.error({ err, policyId, measurement }, 'cannot read the policy\'s days from InfluxDB; it starts without them')
    },
  })
  const health$ = readings$.pipe(scoreHealth(defaultHealthConfig, deps.policyIdleMs, days('health', 'health_day', defaultHealthConfig.keepDays, healthDaysFromSeries), asyncScheduler, keyFailed('health'), forgetPolicies$), filter((o) => enrolled(o.kind === 'event' ? o.event : o)), share())
  const home$ = readings$.pipe(scoreHome(defaultHomeConfig, deps.policyIdleMs, days('home', 'home_day', defaultHomeConfig.keepDays, homeDaysFromSeries), asyncScheduler, keyFailed('home'), forgetPolicies$), filter((o) => enrolled(o.kind === 'event' ? o.event : o)), share())
  health$.subscribe((o) => o.kind === 'day' && deps.influx.write([healthDayLine(o.policyId, o.day)]))
  home$.subscribe((o) => o.kind === 'day' && deps.influx.write([homeDayLine(o.policyId, o.day)]))
  const living$: Observable<PolicyOutput<unknown>> = merge(health$, home$)

  const drivingInputs$ = (deps.policyTrips?.(trips$) ?? trips$).pipe(
    drivingScoreInputs(readHistory, deps.policyIdleMs, (err, policyId) => {
      restoreFailures.inc()
      log.error({ err, policyId }, 'cannot read the policy\'s trips from InfluxDB; its score waits for its next trip')
    }, asyncScheduler, keyFailed('driving_score'), forgetPolicies$),
    map((input) => withHiddenDriving(input, deps.pausedMs?.(input.policyId, 'all', input.window.from, input.window.to) ?? 0)),
  )
  // A day stored as it stood when its policy left memory is scored once complete (PolicyOutput).
  const livingInputs$ = living$.pipe(filter((o): o is Extract<PolicyOutput<unknown>, { kind: 'day' }> => o.kind === 'day' && !o.open), map((o) => o.input))
  const allEvents$ = merge(events$, living$.pipe(filter((o) => o.kind === 'event'), map((o) => o.event))).pipe(share())
  allEvents$.subscribe((e) => {
    detected.inc({ type: e.type })
    deps.mqtt.publish(topics.events(e.policyId), JSON.stringify(e), { qos: 1 })
    deps.influx.write([eventLine(e)])
  })
  const scores$ = merge(drivingInputs$, livingInputs$).pipe(
    scoreWith(deps.models, deps.batch, (err) => {
      failures.inc()
      log.error({ err }, 'model call failed')
    }, (shadowScores) => {
      // Stored beside the champion's, never published or priced: for comparing before a promotion.
      for (const s of shadowScores) shadowed.inc({ model: s.model })
      deps.influx.write(shadowScores.map((s) => toLine('shadow_score', { policy_id: s.policyId, subject: s.subject, model: s.model }, { value: s.value }, s.window.to)))
    }),
    map((s) => {
      const consent = deps.consents?.notes(s.policyId, s.subject, s.window.from)
      return consent?.length ? { ...s, consent } : s
    }),
    filter(enrolled),
    share(),
  )
  scores$.subscribe((s) => {
    scored.inc({ subject: s.subject })
    deps.mqtt.publish(topics.scores(s.policyId), JSON.stringify(s), { qos: 1 })
    deps.influx.write([scoreLine(s)])
  })
  return { scores$, events$: allEvents$, trips$ }
}

/**
 * Stage: trips of many policies → each policy's driving features after each trip. A policy's days
 * are read from `history` when it first appears (after a restart, or after idling out for
 * `idleMs`); its trips wait in order meanwhile. When the history cannot be read the trip is not
 * scored (a score from partial history would be wrong) and the read is retried with the next trip.
 * A policy whose days throw is `onKeyError`'s (without it, the stream's error): its days are
 * dropped and read again with its next trip, and the other policies run on (as perKey does).
 */
export function drivingScoreInputs(
  history: (policyId: string, beforeTs: number) => Promise<DrivingDay[]>,
  idleMs: number,
  onError: (err: unknown, policyId: string) => void,
  scheduler: SchedulerLike = asyncScheduler,
  onKeyError?: (err: unknown, policyId: string) => void,
  forget$?: Observable<string>,
): OperatorFunction<Trip, ScoreInput> {
  return (trips$) => trips$.pipe(
    // A forgotten policy's days go with its group; nothing is flushed from them.
    groupBy((t) => t.policyId, { duration: (g) => merge(g.pipe(debounceTime(idleMs, scheduler)), forgotten(forget$, g.key)) }),
    mergeMap((policy$) => {
      let days: PackedDays | undefined // packed between trips: a policy waits with them for up to idleMs
      return policy$.pipe(
        concatMap(async (trip): Promise<ScoreInput[]> => {
          if (!days) {
            try {
              days = packDays(await history(trip.policyId, trip.from))
            } catch (err) {
              onError(err, trip.policyId)
              return []
            }
          }
          try {
            const next = addTrip(unpackDays(days), trip)
            days = packDays(next)
            return [drivingScoreInput(next, trip)]
          } catch (err) {
            if (!onKeyError) throw err
            days = undefined
            onKeyError(err, trip.policyId)
            return []
          }
        }),
        mergeMap((inputs) => inputs),
      )
    }),
  )
}

/** A crash's track as InfluxDB lines (`crash_track`, in the `claims` policy): each fix at its time, with the crash's. */
function crashTrackLines(e: PolicyEvent, track: readonly TrackFix[]): string[] {
  return track.map(({ ts, ...fix }) => toLine('crash_track', { policy_id: e.policyId, device_id: e.deviceId }, { ...fix, crash_ms: e.from }, ts, ['crash_ms']))
}

/**
 * An event as an InfluxDB line: its numeric evidence as fields, and the unit of its peak and
 * threshold (read back without it, "peak 6.4" says nothing; #23). A crash's sample window stays on MQTT.
 */
function eventLine(e: PolicyEvent): string {
  const fields: Record<string, number | boolean | string> = { urgent: e.urgent, end_ms: e.to, unit: e.evidence.unit }
  for (const [k, v] of Object.entries(e.evidence)) if (typeof v === 'number') fields[k] = v
  return toLine('event', { policy_id: e.policyId, device_id: e.deviceId, subject: e.subject, type: e.type, source: e.evidence.source }, fields, e.from, ['samples', 'end_ms'])
}
