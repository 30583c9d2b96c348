/**
 * A wearable on a simulated person (issue #4: "circadian heart rate, sleep, steps"): heart rate
 * every few minutes, steps per 15 minutes, SpO2 hourly at night, and a sleep session when they
 * wake, from their health persona, its trend over the weeks, and an optional anomaly (an
 * infection: resting heart rate up, SpO2 down).
 *
 * The person is simulated minute by minute: asleep or awake, walking or not, working out. Heart
 * rate follows from that: resting rate, a circadian swing (lowest around 04:00), and the effort
 * of the minute.
 */
import { between, deriveSeed, normal, seededRandom } from './random.ts'
import { healthPersonas, type HealthPersonaName } from './personas.ts'
import { DAY_MS } from './trips.ts'
import type { SensorReading } from './device-streams.ts'

/** A simulated wearable's owner: their health persona and seed. */
export interface Wearer {
  persona: HealthPersonaName
  seed: number
}

/** The span to simulate, the heart-rate cadence and the anomaly scenario. */
export interface HealthOptions {
  startTs: number
  days: number
  /** Seconds between heart-rate readings (a multiple of 60). Default 300. */
  hrEvery_s?: number
  /** Scenario: resting heart rate up and SpO2 down from `fromTs` for `days` days. */
  anomaly?: { fromTs: number; days: number; hrJump_bpm?: number; spo2Drop_pct?: number }
}

const MIN_MS = 60_000
const WEEK_MS = 7 * DAY_MS
const MAX_HR = 185
/** How much of the day's walking falls in each hour (commutes, lunch, evening). */
const ACTIVITY = [0, 0, 0, 0, 0, 0, 0.3, 1.4, 1.6, 0.8, 0.7, 0.9, 1.5, 1.2, 0.8, 0.8, 0.9, 1.5, 1.6, 1.1, 0.8, 0.5, 0.3, 0.1]
const ACTIVITY_SUM = ACTIVITY.reduce((a, b) => a + b, 0)
const CADENCE = 105 // steps per minute of walking

/** The wearable's readings, in time order, from `startTs` (rounded down to the minute) for `days` days. */
export function* liveHealth(wearer: Wearer, opts: HealthOptions): Generator<SensorReading> {
  const p = healthPersonas[wearer.persona]
  const every = Math.max(1, Math.round((opts.hrEvery_s ?? 300) / 60))
  const start = Math.floor(opts.startTs / MIN_MS) * MIN_MS
  const end = start + opts.days * DAY_MS
  const rand = seededRandom(deriveSeed(wearer.seed, 0x4ea1))
  const anomaly = opts.anomaly
  const inAnomaly = (t: number) => anomaly !== undefined && t >= anomaly.fromTs && t < anomaly.fromTs + anomaly.days * DAY_MS

  /** The night that starts on the evening of `day` (days since the epoch). */
  const night = (day: number) => {
    const r = seededRandom(deriveSeed(wearer.seed, 0x5ee9, day))
    const bedTs = day * DAY_MS + Math.round((22.75 + normal(r, 0, 0.6)) * 3_600_000)
    const duration_s = Math.round(Math.min(10.5, Math.max(3.5, normal(r, ...p.sleep_h))) * 3600)
    const awake_s = Math.round(duration_s * between(r, 0.04, 0.12))
    const deep_s = Math.round(duration_s * (between(r, 0.12, 0.2) + (p.workoutsPerWeek >= 3 ? 0.03 : 0)))
    const rem_s = Math.round(duration_s * between(r, 0.18, 0.25))
    return { day, bedTs, wakeTs: bedTs + duration_s * 1000, body: { duration_s, deep_s, rem_s, light_s: duration_s - awake_s - deep_s - rem_s, awake_s } }
  }
  /** The day's plan: a steps target and maybe a workout. */
  const dayPlan = (day: number, weeks: number) => {
    const r = seededRandom(deriveSeed(wearer.seed, 0xd4e, day))
    const steps = p.stepsPerDay * Math.max(0.2, 1 + p.stepsTrendPerWeek * weeks) * Math.exp(normal(r, 0, 0.25))
    const workout = r() < p.workoutsPerWeek / 7 ? day * DAY_MS + Math.round(between(r, 17, 19.5) * 3_600_000) : -Infinity
    // A workout's steps (45 min at about 160 a minute) are part of the day's, not extra.
    const walking = workout > 0 ? Math.max(0.2 * steps, steps - 45 * 160) : steps
    return { day, target: walking, workoutFrom: workout, workoutTo: workout + 45 * MIN_MS }
  }

  let sleep = night(Math.floor(start / DAY_MS) - 1)
  let plan = dayPlan(Math.floor(start / DAY_MS), 0)
  let steps = 0
  for (let t = start, minute = 0; t < end; t += MIN_MS, minute++) {
    if (t >= sleep.wakeTs) {
      // The session is sent when they wake (its `ts`); the next night is the coming evening's.
      if (sleep.bedTs >= start) yield { kind: 'sleep', ts: sleep.wakeTs, body: sleep.body }
      sleep = night(sleep.day + 1)
    }
    const day = Math.floor(t / DAY_MS)
    const weeks = (t - start) / WEEK_MS
    if (day !== plan.day) plan = dayPlan(day, weeks)
    const asleep = t >= sleep.bedTs && t < sleep.wakeTs
    const hour = (t % DAY_MS) / 3_600_000
    const workout = t >= plan.workoutFrom && t < plan.workoutTo
    // Walking minutes at the day's target spread over the waking hours by the activity profile.
    const walk = Math.min(0.9, (plan.target / CADENCE / 60) * (ACTIVITY[Math.floor(hour)]! / ACTIVITY_SUM))
    const stepsNow = asleep ? 0 : workout ? Math.round(between(rand, 150, 170)) : rand() < walk ? Math.round(between(rand, 80, 120)) : 0
    steps += stepsNow

    const resting = p.restingHr_bpm + p.restingHrTrend_bpmPerWeek * weeks + (inAnomaly(t) ? (anomaly!.hrJump_bpm ?? 15) : 0)
    const circadian = 3 * Math.sin((2 * Math.PI * (hour - 10)) / 24) // lowest at 04:00, highest at 16:00
    if (minute % every === 0) {
      const effort = workout ? 0.7 * (MAX_HR - resting) : 0.25 * stepsNow
      const hr = asleep ? resting - 4 + 0.5 * circadian + normal(rand, 0, 1.5) : resting + 5 + circadian + effort + normal(rand, 0, 3)
      yield { kind: 'hr', ts: t, body: { hr_bpm: Math.round(Math.min(220, Math.max(35, hr))), resting: asleep || stepsNow === 0 } }
    }
    if (minute % 15 === 14 && !asleep) {
      yield { kind: 'steps', ts: t, body: { steps_count: steps, interval_s: 900 } }
      steps = 0
    } else if (minute % 15 === 14) steps = 0
    if (asleep && minute % 60 === 30) {
      const spo2 = p.spo2_pct + p.spo2TrendPerWeek * weeks - 0.4 - (inAnomaly(t) ? (anomaly!.spo2Drop_pct ?? 4) : 0) + normal(rand, 0, 0.6)
      yield { kind: 'spo2', ts: t, body: { spo2_pct: Math.round(Math.min(100, Math.max(70, spo2))) } }
    }
  }
}
