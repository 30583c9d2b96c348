/**
 * Health features and alerts from a policyholder's wearable (issue #5, "Health and home"): per UTC
 * day, steps, active minutes, resting heart rate, sleep and SpO2; over the last 30 and 90 days, the
 * features the health model scores; and two anomalies, a sustained rise of the resting heart rate
 * (a health alert, urgent) and implausibly regular ("scripted") data.
 *
 * Pure and event-time: days, features and events follow from the readings' device time alone, so a
 * replay gives the same results. Per policy there is one open day and at most `keepDays` closed
 * ones, each a few sums. The closed days are stored (InfluxDB `health_day`); after a restart or an
 * idle expiry a policy comes back from them and from its stored readings of the day still open,
 * replayed (`DayHistory`). Days hold sums, not means, so a day closed early (idle expiry,
 * shutdown) reopens when a later reading of it comes, and closes again complete.
 *
 * The per-policy machinery (`dayBook`, `perPolicy`) is shared with home.ts.
 */
import { filter, map, type Observable, type OperatorFunction, type SchedulerLike } from 'rxjs'
import { toLine, type Reading, type Series, type Subject } from '../ingest/index.ts'
import { policyEvent, type DetectedEvidence, type HealthEventType, type PolicyEvent } from './events.ts'
import type { ScoreInput } from './score.ts'
import { perKey, restored, type Restore } from './per-key.ts'
import { DAY_MS } from './driving.ts'

export { DAY_MS }

const HOUR_MS = 3_600_000
/** Start of the UTC day of `ts`, ms. */
export const startOfDay = (ts: number) => ts - (((ts % DAY_MS) + DAY_MS) % DAY_MS)

// ─── shared per-policy machinery ────────────────────────────────────────────────────────────────

/** What a per-policy accumulator emits: an event, or a closed day (to store) with the score input it gives. */
export type PolicyOutput<D> =
  | { kind: 'event'; event: PolicyEvent }
  /**
   * A day closed by a later reading, or (`open`) the day a policy's state held when it left memory
   * (an idle expiry, a stop): stored as it stood, read back as the open day when the policy returns
   * (scoring.ts), and scored only once complete. Scoring it as it stood would price a part of the
   * day, and its full score, with the same end, would then be dropped as already priced (#20 item 5).
   */
  | { kind: 'day'; policyId: string; day: D; input: ScoreInput; open?: true }

/** One policy's state, fed its readings in device-time order. */
export interface PolicyAccumulator<D> {
  push(r: Reading): PolicyOutput<D>[]
  /** Ends what is open (idle expiry, shutdown): the open day closes; a later reading of that day reopens it. */
  flush(): PolicyOutput<D>[]
  /** Features at `now` (ms) from the closed days. */
  features(now: number): Record<string, number>
  /** The closed days kept, oldest first. */
  readonly days: readonly D[]
}

/**
 * Where a policy's state comes from when it (re)appears, after a restart or an idle expiry: its
 * stored closed days, and the stored readings of the day still open (replayed, their outputs
 * discarded: they went out in the run that took them). The open day needs its readings, not its
 * stored sums: what a sensor reads holds until its next reading (home exposure), and that state
 * is not in the sums.
 */
export type DayHistory<D> = Restore<{ days: readonly D[]; earlier: readonly Reading[] }>

/**
 * A policy's open day and its closed days, kept to `keepDays`. `day(ts)` is the day a reading at
 * `ts` counts in, closing the open day first when `ts` is in a later one. A reading older than the
 * open day (another device's late reading) counts in the open day: nothing is dropped, only the
 * split between two days is approximate.
 */
export function dayBook<D extends { day_ms: number }>(stored: readonly D[], keepDays: number, empty: (day_ms: number) => D, onClose: (d: D) => void) {
  const days = [...stored].sort((a, b) => a.day_ms - b.day_ms)
  const trim = () => {
    while (days.length > 0 && days[0]!.day_ms <= days.at(-1)!.day_ms - keepDays * DAY_MS) days.shift()
  }
  trim()
  let open: D | undefined
  function close() {
    if (!open) return
    days.push(open)
    open = undefined
    trim()
    onClose(days.at(-1)!)
  }
  function day(ts: number): D {
    const day_ms = Math.max(startOfDay(ts), open?.day_ms ?? days.at(-1)?.day_ms ?? -Infinity)
    if (open && day_ms > open.day_ms) close()
    if (!open) open = days.at(-1)?.day_ms === day_ms ? days.pop()! : empty(day_ms)
    return open
  }
  return { days, day, close }
}

/**
 * Stage: one `subject`'s readings of many policies → each policy's events and closed days. One
 * accumulator per policy, built from its stored days (`history`) when it first appears; its readings
 * wait in order meanwhile. A policy with no reading for `idleMs` leaves memory, after flushing.
 * An accumulator that throws is `onError`'s: that policy's is dropped, the others run on (perKey).
 */
export function perPolicy<D>(
  subject: Subject,
  create: (policyId: string, days: readonly D[]) => PolicyAccumulator<D>,
  idleMs: number,
  history?: DayHistory<D>,
  scheduler?: SchedulerLike,
  onError?: (err: unknown, policyId: string) => void,
  forget$?: Observable<string>,
): OperatorFunction<Reading, PolicyOutput<D>> {
  return (readings$) => readings$.pipe(
    filter((r) => r.subject === subject),
    perKey({
      key: (r) => r.policyId,
      create: (first) => restored(history, first, first.policyId, { days: [], earlier: [] }).pipe(map(({ days, earlier }) => {
        const acc = create(first.policyId, days)
        for (const r of earlier) acc.push(r)
        return acc
      })),
      push: (acc, r) => acc.push(r),
      end: (acc) => acc.flush().map((o) => (o.kind === 'day' ? { ...o, open: true as const } : o)),
      idleMs,
      scheduler,
      onError,
      forget$,
    }),
  )
}

/** Stored days back from InfluxQL series (`SELECT * FROM <measurement> WHERE policy_id = …`, epoch ms): `time` is `day_ms`, fields by name. */
export function daysFromSeries<D extends { day_ms: number }>(series: readonly Series[], empty: (day_ms: number) => D): D[] {
  return series.flatMap((s) => s.values.map((row) => {
    const d = empty(Number(row[s.columns.indexOf('time')]))
    s.columns.forEach((c, i) => {
      if (c in d && c !== 'day_ms' && typeof row[i] === 'number') (d as Record<string, number>)[c] = row[i]
    })
    return d
  }))
}

/** A stored day as an InfluxDB line, tagged with its policy, at the start of the day. */
export const dayLine = (measurement: string, policyId: string, d: { day_ms: number }) => {
  const { day_ms, ...fields } = d as Record<string, number>
  return toLine(measurement, { policy_id: policyId }, fields, day_ms!)
}

// ─── health ─────────────────────────────────────────────────────────────────────────────────────

/** Thresholds and windows of the health features and anomalies. */
export interface HealthConfig {
  /**
   * Heart rate from which time counts as active, bpm: moderate intensity starts at about 64% of the
   * maximum heart rate (ACSM), 110 bpm for a maximum of 172 (220 − age at 48). The wearable does
   * not know the wearer's age, so one threshold for all.
   */
  activeHr_bpm: number
  /** Each heart-rate reading stands for the time since the previous one, up to this, s (a gap is not activity). */
  maxHrGap_s: number
  /** Activity points a day earns from steps and from active minutes (the larger counts), wellness-programme tiers: [at least, points]. */
  stepPoints: readonly (readonly [number, number])[]
  activePoints: readonly (readonly [number, number])[]
  /** Sleep below this counts as deficit, h (7 h: AASM/SRS adult recommendation). */
  sleepTarget_h: number
  /** Closed days kept (the long window), and the short window, days. */
  keepDays: number
  shortDays: number
  /** The resting-heart-rate trend (short window − long window) needs this many days with a resting rate. */
  minTrendDays: number
  /**
   * Sustained resting-heart-rate rise: the mean of the last `riseDays` days at least `rise_bpm` over
   * the baseline (the kept days before them), with at least `minRiseDays` and `minBaselineDays`
   * days of data. An infection or overtraining raises it by 5–15 bpm for days; day-to-day noise is
   * 1–3 bpm, so a week's mean 10 bpm up is rare without a cause.
   */
  riseDays: number
  rise_bpm: number
  minRiseDays: number
  minBaselineDays: number
  /**
   * Scripted data: `scriptedDays` consecutive days whose step counts differ by at most
   * `stepsSpread` of their mean (real days vary by 20–30%), or a day of at least `minHrReadings`
   * heart rates whose standard deviation is under `hrSd_bpm` (a living heart varies by more than
   * that over a day: sleep, circadian swing, effort).
   */
  scriptedDays: number
  stepsSpread: number
  minHrReadings: number
  hrSd_bpm: number
  /**
   * A `low_spo2` health alert (urgent, #24) when SpO2 stays below `lowSpo2_pct` for at least
   * `lowSpo2_s`: below 90% is hypoxaemia (WHO pulse oximetry manual; BTS oxygen guideline), and one
   * reading alone is often a loose sensor. Readings further apart than `maxSpo2Gap_s` start afresh.
   */
  lowSpo2_pct: number
  lowSpo2_s: number
  maxSpo2Gap_s: number
}

export const defaultHealthConfig: HealthConfig = {
  activeHr_bpm: 110,
  maxHrGap_s: 600,
  stepPoints: [[12_500, 8], [10_000, 5], [7_000, 3]],
  activePoints: [[60, 8], [30, 5]],
  sleepTarget_h: 7,
  keepDays: 90,
  shortDays: 30,
  minTrendDays: 45,
  riseDays: 7,
  rise_bpm: 10,
  minRiseDays: 5,
  minBaselineDays: 14,
  scriptedDays: 7,
  stepsSpread: 0.01,
  minHrReadings: 24,
  hrSd_bpm: 1,
  lowSpo2_pct: 90,
  lowSpo2_s: 1800,
  // The wearable measures hourly at night (docs/device-contract.md): two readings in a row.
  maxSpo2Gap_s: 2 * 3600,
}

/** A policy's wearable data on one UTC day: sums, so a day can be reopened and added to. Stored as InfluxDB `health_day`. */
export interface DailyHealth {
  /** Start of the UTC day, ms. */
  day_ms: number
  steps: number
  /** Minutes at or above `activeHr_bpm`. */
  active_min: number
  /** Heart-rate readings, their sum and sum of squares (the day's spread). */
  hr_n: number
  hr_sum_bpm: number
  hr_sumsq_bpm2: number
  /** Readings the wearable marked resting and their sum: the day's resting heart rate is their mean. */
  rest_n: number
  rest_sum_bpm: number
  /** Sleep of the sessions that ended this day; the longest one's duration and bedtime (hours after noon UTC the day before: midnight is 12). */
  sleep_s: number
  main_sleep_s: number
  bedtime_h: number
  spo2_n: number
  spo2_sum_pct: number
  /** Set when the day closes: its activity points, and the goal days in a row ending with it (a goal day earns points). */
  points: number
  goal_streak_days: number
}

/** A day with nothing in it yet. */
export const emptyHealthDay = (day_ms: number): DailyHealth => ({
  day_ms, steps: 0, active_min: 0, hr_n: 0, hr_sum_bpm: 0, hr_sumsq_bpm2: 0, rest_n: 0, rest_sum_bpm: 0,
  sleep_s: 0, main_sleep_s: 0, bedtime_h: 0, spo2_n: 0, spo2_sum_pct: 0, points: 0, goal_streak_days: 0,
})

/** A closed day as an InfluxDB line (measurement `health_day`, tag `policy_id`, at the day's start). */
export const healthDayLine = (policyId: string, d: DailyHealth) => dayLine('health_day', policyId, d)
/** Stored days back from `SELECT * FROM health_day WHERE policy_id = …` (epoch ms). */
export const healthDaysFromSeries = (series: readonly Series[]) => daysFromSeries(series, emptyHealthDay)

/** The day's resting heart rate, bpm, if the wearable marked any reading resting. */
const restingHr = (d: DailyHealth) => (d.rest_n > 0 ? d.rest_sum_bpm / d.rest_n : undefined)
/** Points a day earns: the best tier its steps or its active minutes reach. */
const pointsOf = (cfg: HealthConfig, d: DailyHealth) => Math.max(
  0, ...cfg.stepPoints.filter(([min]) => d.steps >= min).map(([, p]) => p), ...cfg.activePoints.filter(([min]) => d.active_min >= min).map(([, p]) => p),
)

/** Health features at `now` (ms) from the days before it: the short window for levels, the long one for the trend. */
export function healthFeatures(cfg: HealthConfig, days: readonly DailyHealth[], now: number): Record<string, number> {
  const long = days.filter((d) => d.day_ms < now && d.day_ms >= now - cfg.keepDays * DAY_MS)
  const short = long.filter((d) => d.day_ms >= now - cfg.shortDays * DAY_MS)
  const sleep_h = short.filter((d) => d.sleep_s > 0).map((d) => d.sleep_s / 3600)
  const rest30 = short.map(restingHr), rest90 = defined(long.map(restingHr))
  const last = long.at(-1)
  return finite({
    steps_per_day: mean(short.map((d) => d.steps)),
    active_min_per_day: mean(short.map((d) => d.active_min)),
    resting_hr_bpm: mean(defined(rest30)),
    resting_hr_trend_bpm: rest90.length >= cfg.minTrendDays ? mean(defined(rest30))! - mean(rest90)! : undefined,
    sleep_h: mean(sleep_h),
    sleep_deficit_h: mean(sleep_h.map((h) => Math.max(0, cfg.sleepTarget_h - h))),
    sleep_sd_h: sd(sleep_h),
    bedtime_sd_h: sd(short.filter((d) => d.main_sleep_s > 0).map((d) => d.bedtime_h)),
    spo2_pct: mean(short.filter((d) => d.spo2_n > 0).map((d) => d.spo2_sum_pct / d.spo2_n)),
    // A streak is only current if its last day is yesterday (the day before `now`).
    goal_streak_days: last ? (last.day_ms === now - DAY_MS ? last.goal_streak_days : 0) : undefined,
    activity_points_per_week: short.length > 0 ? (sum(short.map((d) => d.points)) * 7) / short.length : undefined,
  })
}

/** The anomalies the kept days show at `now`: their evidence, or undefined. */
export function healthAnomalies(cfg: HealthConfig, days: readonly DailyHealth[], now: number): { rise?: DetectedEvidence<HealthEventType> & { from: number }; scripted?: DetectedEvidence<HealthEventType> & { from: number } } {
  const recentFrom = now - cfg.riseDays * DAY_MS
  const recent = days.filter((d) => d.day_ms >= recentFrom && d.day_ms < now && d.rest_n > 0)
  const baseline = days.filter((d) => d.day_ms < recentFrom && d.rest_n > 0)
  let rise: (DetectedEvidence<HealthEventType> & { from: number }) | undefined
  if (recent.length >= cfg.minRiseDays && baseline.length >= cfg.minBaselineDays) {
    const r = mean(defined(recent.map(restingHr)))!, b = mean(defined(baseline.map(restingHr)))!
    if (r - b >= cfg.rise_bpm) {
      rise = { from: recent[0]!.day_ms, source: 'hr', peak: round1(r), threshold: round1(b + cfg.rise_bpm), baseline_bpm: round1(b), duration_s: (now - recent[0]!.day_ms) / 1000, days: recent.length, samples: sum(recent.map((d) => d.rest_n)) }
    }
  }
  let scripted: (DetectedEvidence<HealthEventType> & { from: number }) | undefined
  const run = days.slice(-cfg.scriptedDays)
  const consecutive = run.length === cfg.scriptedDays && run.every((d, i) => d.steps > 0 && (i === 0 || d.day_ms - run[i - 1]!.day_ms === DAY_MS))
  const stepsMean = mean(run.map((d) => d.steps))!
  const spread = consecutive ? (Math.max(...run.map((d) => d.steps)) - Math.min(...run.map((d) => d.steps))) / stepsMean : Infinity
  const lastDay = days.at(-1)
  const hrSd = lastDay && lastDay.hr_n >= cfg.minHrReadings ? Math.sqrt(Math.max(0, lastDay.hr_sumsq_bpm2 / lastDay.hr_n - (lastDay.hr_sum_bpm / lastDay.hr_n) ** 2)) : Infinity
  if (spread <= cfg.stepsSpread) {
    scripted = { from: run[0]!.day_ms, source: 'steps', peak: round3(spread), threshold: cfg.stepsSpread, duration_s: (now - run[0]!.day_ms) / 1000, days: run.length }
  } else if (hrSd < cfg.hrSd_bpm) {
    scripted = { from: lastDay!.day_ms, source: 'hr', peak: round3(hrSd), threshold: cfg.hrSd_bpm, duration_s: DAY_MS / 1000, samples: lastDay!.hr_n }
  }
  return { rise, scripted }
}

/**
 * One policy's health state: feed its wearable readings (hr, steps, sleep, spo2) in device-time
 * order. A day closes when a reading of a later day comes (or on flush); each closed day comes out
 * with the policy's score input at its end, after any anomaly it starts. An anomaly fires once per
 * episode: again only after it has ended. `stored` rebuilds a policy from its stored days.
 */
export function healthAccumulator(cfg: HealthConfig, policyId: string, stored: readonly DailyHealth[] = []): PolicyAccumulator<DailyHealth> {
  let out: PolicyOutput<DailyHealth>[] = []
  let lastHrTs: number | undefined
  /** The spell of SpO2 below lowSpo2_pct: since when, its lowest, its last reading, and whether it was alerted. */
  let lowSpo2: { from: number; last: number; lowest: number; alerted: boolean } | undefined
  /** The device behind each kind, for the events' deviceId. */
  const deviceOf: Record<string, string> = {}
  const book = dayBook(stored, cfg.keepDays, emptyHealthDay, (d) => {
    const prev = book.days.at(-2)
    d.points = pointsOf(cfg, d)
    d.goal_streak_days = d.points > 0 ? (prev?.day_ms === d.day_ms - DAY_MS ? prev.goal_streak_days : 0) + 1 : 0
    const now = d.day_ms + DAY_MS
    const found = healthAnomalies(cfg, book.days, now)
    if (found.rise && !raised.rise) out.push(event('resting_hr_rise', deviceOf.hr, now, found.rise))
    if (found.scripted && !raised.scripted) out.push(event('scripted_data', deviceOf[found.scripted.source], now, found.scripted))
    raised = { rise: !!found.rise, scripted: !!found.scripted }
    out.push({ kind: 'day', policyId, day: { ...d }, input: { policyId, subject: 'health', window: { from: book.days[0]!.day_ms, to: now }, exposure: { days: book.days.length }, features: healthFeatures(cfg, book.days, now) } })
  })
  // Restored: what was already open is not raised again.
  const last = book.days.at(-1)
  const restored = last ? healthAnomalies(cfg, book.days, last.day_ms + DAY_MS) : {}
  let raised = { rise: !!restored.rise, scripted: !!restored.scripted }

  function event(type: HealthEventType, deviceId: string | undefined, now: number, { from, ...evidence }: DetectedEvidence<HealthEventType> & { from: number }): PolicyOutput<DailyHealth> {
    // A resting-heart-rate rise and low SpO2 are health alerts (urgent in the event catalogue); scripted data is for the insurer.
    return { kind: 'event', event: policyEvent(type, policyId, deviceId ?? Object.values(deviceOf)[0] ?? '', from, now, evidence) }
  }
  /** Follows the spell of low SpO2; alerts once when it has lasted lowSpo2_s (in device-time order: an older reading is history). */
  function spo2(r: Reading, pct: number) {
    if (lowSpo2 && r.ts < lowSpo2.last) return
    if (pct >= cfg.lowSpo2_pct || (lowSpo2 && r.ts - lowSpo2.last > cfg.maxSpo2Gap_s * 1000)) lowSpo2 = undefined
    if (pct >= cfg.lowSpo2_pct) return
    lowSpo2 ??= { from: r.ts, last: r.ts, lowest: pct, alerted: false }
    lowSpo2.last = r.ts
    lowSpo2.lowest = Math.min(lowSpo2.lowest, pct)
    const lasted_s = (r.ts - lowSpo2.from) / 1000
    if (lowSpo2.alerted || lasted_s < cfg.lowSpo2_s) return
    lowSpo2.alerted = true
    out.push(event('low_spo2', r.deviceId, r.ts, { from: lowSpo2.from, source: 'spo2', peak: lowSpo2.lowest, threshold: cfg.lowSpo2_pct, duration_s: lasted_s }))
  }
  const take = () => {
    const o = out
    out = []
    return o
  }

  return {
    days: book.days,
    push(r) {
      const f = r.fields
      const d = book.day(r.ts)
      deviceOf[r.kind] = r.deviceId
      if (r.kind === 'hr' && typeof f.hr_bpm === 'number') {
        const hr = f.hr_bpm
        d.hr_n++
        d.hr_sum_bpm += hr
        d.hr_sumsq_bpm2 += hr * hr
        if (f.resting === true) {
          d.rest_n++
          d.rest_sum_bpm += hr
        }
        if (hr >= cfg.activeHr_bpm && lastHrTs !== undefined) d.active_min += Math.min(Math.max(0, r.ts - lastHrTs), cfg.maxHrGap_s * 1000) / 60_000
        lastHrTs = Math.max(r.ts, lastHrTs ?? r.ts)
      } else if (r.kind === 'steps' && typeof f.steps_count === 'number') {
        d.steps += f.steps_count
      } else if (r.kind === 'sleep' && typeof f.duration_s === 'number') {
        // A session is sent when it ends: it counts on the day of waking.
        d.sleep_s += f.duration_s
        if (f.duration_s > d.main_sleep_s) {
          d.main_sleep_s = f.duration_s
          const bed = r.ts - f.duration_s * 1000 - 12 * HOUR_MS
          d.bedtime_h = round3((bed - startOfDay(bed)) / HOUR_MS)
        }
      } else if (r.kind === 'spo2' && typeof f.spo2_pct === 'number') {
        d.spo2_n++
        d.spo2_sum_pct += f.spo2_pct
        spo2(r, f.spo2_pct)
      }
      return take()
    },
    flush() {
      book.close()
      return take()
    },
    features: (now) => healthFeatures(cfg, book.days, now),
  }
}

/** Stage: readings of many policies (any subject) → health events and closed days with their score inputs. */
export function scoreHealth(cfg: HealthConfig, idleMs: number, history?: DayHistory<DailyHealth>, scheduler?: SchedulerLike, onError?: (err: unknown, policyId: string) => void, forget$?: Observable<string>): OperatorFunction<Reading, PolicyOutput<DailyHealth>> {
  return perPolicy('health', (policyId, days) => healthAccumulator(cfg, policyId, days), idleMs, history, scheduler, onError, forget$)
}

// ─── small numeric helpers ──────────────────────────────────────────────────────────────────────

export const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0)
export const mean = (xs: readonly number[]) => (xs.length > 0 ? sum(xs) / xs.length : undefined)
/** Standard deviation (population), from three values on. */
const sd = (xs: readonly number[]) => {
  const m = mean(xs)
  return xs.length >= 3 ? Math.sqrt(mean(xs.map((x) => (x - m!) ** 2))!) : undefined
}
const defined = (xs: readonly (number | undefined)[]) => xs.filter((x): x is number => x !== undefined)
/** Only finite features, to 6 significant digits: a feature without data is left out (the model takes its baseline), and nothing non-finite is stored or scored. */
export const finite = (features: Record<string, number | undefined>): Record<string, number> =>
  Object.fromEntries(Object.entries(features).filter((e): e is [string, number] => e[1] !== undefined && Number.isFinite(e[1])).map(([k, v]) => [k, Number(v.toPrecision(6))]))
const round1 = (x: number) => Math.round(x * 10) / 10
const round3 = (x: number) => Math.round(x * 1000) / 1000
