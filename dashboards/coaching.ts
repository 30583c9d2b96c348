/**
 * The policyholder's summary (#23): per subject, the score's trend over weeks, where the policy
 * stands in the portfolio ("better than 62% of drivers"), the premium outlook ("after 50 more km
 * like your last ones …") and coaching tips, all in words made here, once: the API gives them and
 * the page shows them as given. The words of each feature are in one catalogue, `COACHING`.
 */
import { Type, type Static } from '@sinclair/typebox'
import { qualified, quoteString, Subject, type Influx, type Series } from '../ingest/index.ts'
import type { WhatIf } from '../pricing/index.ts'
import type { Reason, Score } from '../scoring/index.ts'
import { Nullable, strict } from './schemas.ts'

/** How a feature's value reads: a rate as a figure, a share (0–1) in percent. */
type Shown = 'figure' | 'percent'
interface Coaching {
  /** What a person changes, in their words (the simulator offers it by this name). */
  label: string
  shown: Shown
  /** "You …" with the policy's value (`{v}`) and its unit. */
  you: string
  /** What most policyholders do, with the typical value (`{b}`). */
  most: string
  /** What to do when it lowers the score. */
  tip: string
}

/**
 * Every model feature in words, keyed by feature name (scoring/models/*: driving-frequency,
 * health-frequency, home-frequency). A feature without an entry is said with its reason's own text.
 */
export const COACHING: Record<string, Coaching> = {
  harsh_braking_per_hour: { label: 'hard braking', shown: 'figure', you: 'You braked hard {v} times per hour of driving', most: 'most drivers do so {b} times', tip: 'Leave more distance to the car ahead and look further down the road, so you can slow down early.' },
  harsh_acceleration_per_hour: { label: 'hard acceleration', shown: 'figure', you: 'You accelerated hard {v} times per hour of driving', most: 'most drivers do so {b} times', tip: 'Press the accelerator gently when pulling away; it saves fuel too.' },
  harsh_lateral_per_hour: { label: 'hard cornering and lane changes', shown: 'figure', you: 'You cornered or changed lanes hard {v} times per hour of driving', most: 'most drivers do so {b} times', tip: 'Slow down before the bend, not in it, and signal early before changing lanes.' },
  speeding_share: { label: 'speeding', shown: 'percent', you: 'You drove above the speed limit {v} of the time', most: 'most drivers {b}', tip: 'Keep to the limit, especially in towns; cruise control or a speed limiter helps.' },
  phone_min_per_hour: { label: 'phone in hand while driving', shown: 'figure', you: 'You handled your phone {v} min per hour of driving', most: 'most drivers {b} min', tip: 'Put the phone out of reach or in a holder, and turn on do-not-disturb while driving.' },
  accel_share: { label: 'time accelerating hard', shown: 'percent', you: 'You accelerated hard {v} of your driving time', most: 'most drivers {b}', tip: 'Build up speed gradually; anticipate the traffic ahead.' },
  braking_share: { label: 'time braking hard', shown: 'percent', you: 'You braked hard {v} of your driving time', most: 'most drivers {b}', tip: 'Ease off the accelerator early and let the car slow down before braking.' },
  cornering_share: { label: 'time cornering hard', shown: 'percent', you: 'You cornered hard {v} of your driving time', most: 'most drivers {b}', tip: 'Take bends more slowly and steer smoothly.' },
  long_accel_rms_ms2: { label: 'sudden speed changes', shown: 'figure', you: 'Your speed changed with a force of {v} m/s² on average', most: 'most drivers {b} m/s²', tip: 'Drive more smoothly: gentle on the accelerator and the brake.' },
  lat_accel_rms_ms2: { label: 'sideways forces', shown: 'figure', you: 'You swayed sideways with {v} m/s² on average', most: 'most drivers {b} m/s²', tip: 'Steer smoothly and take corners and roundabouts more slowly.' },
  steps_per_day: { label: 'daily steps', shown: 'figure', you: 'You walked {v} steps a day', most: 'most members {b}', tip: 'A 20-minute walk adds about 2,000 steps; take the stairs where you can.' },
  active_min_per_day: { label: 'active minutes', shown: 'figure', you: 'You were active {v} min a day', most: 'most members {b} min', tip: 'Aim for 30 active minutes a day: brisk walking, cycling or sport all count.' },
  resting_hr_bpm: { label: 'resting heart rate', shown: 'figure', you: 'Your resting heart rate was {v} bpm', most: 'most members {b} bpm', tip: 'Regular exercise and good sleep lower the resting heart rate over weeks.' },
  resting_hr_trend_bpm: { label: 'resting heart rate trend', shown: 'figure', you: 'Your resting heart rate changed by {v} bpm (last 30 days against 90)', most: 'for most members it stays at {b}', tip: 'A rising resting heart rate can mean stress, illness or too little sleep: rest more, and see a doctor if it keeps rising.' },
  sleep_deficit_h: { label: 'short sleep', shown: 'figure', you: 'Your sleep fell short of 7 h a night by {v} h on average', most: 'for most members by {b} h', tip: 'Go to bed at the same time each night and keep screens out of the bedroom.' },
  sleep_sd_h: { label: 'irregular sleep', shown: 'figure', you: 'Your sleep varied by {v} h from night to night', most: 'most members {b} h', tip: 'Keep regular bed and wake-up times, weekends included.' },
  leaks_per_year: { label: 'water leaks', shown: 'figure', you: 'Your home had {v} water leaks a year', most: 'most homes {b}', tip: 'Check the hoses of the washing machine and dishwasher, and fit a shut-off valve.' },
  smoke_events_per_year: { label: 'smoke alarms', shown: 'figure', you: 'Your smoke alarms went off {v} times a year', most: 'most homes {b}', tip: 'Never leave cooking unattended and keep the extractor hood clean.' },
  freeze_hours_per_30d: { label: 'pipes near freezing', shown: 'figure', you: 'Your pipes were near freezing {v} h in 30 days', most: 'most homes {b} h', tip: 'Keep the heating at 12 °C or more in cold weather and insulate exposed pipes.' },
  humidity_share: { label: 'humidity above 70%', shown: 'percent', you: 'Your home was humid (above 70%) {v} of the time', most: 'most homes {b}', tip: 'Air rooms daily for ten minutes and use the extractor fan when showering or cooking.' },
  offline_share: { label: 'sensors offline', shown: 'percent', you: 'Your home sensors were offline {v} of the time', most: 'most homes {b}', tip: 'Keep the hub plugged in and within reach of your Wi-Fi.' },
  low_battery_days: { label: 'low sensor batteries', shown: 'figure', you: 'Your sensors ran on low batteries {v} days in 30', most: 'most homes {b}', tip: 'Replace sensor batteries as soon as the app says they are low.' },
  valve_response_s: { label: 'valve shut-off time', shown: 'figure', you: 'Your water valve took {v} s to shut off', most: 'most homes {b} s', tip: 'Test the shut-off valve every few months so it closes quickly.' },
  co_ppm_mean: { label: 'carbon monoxide', shown: 'figure', you: 'Carbon monoxide in your home averaged {v} ppm', most: 'most homes {b} ppm', tip: 'Have boilers and stoves serviced every year and keep vents clear.' },
}

/** A number as a person reads it: whole from 100, one decimal from 1, two below; a share in percent. */
const said = (x: number, shown: Shown): string => {
  if (shown === 'percent') return `${said(x * 100, 'figure')}%`
  const a = Math.abs(x)
  return a >= 100 ? Math.round(x).toLocaleString('en-US') : a >= 1 || a === 0 ? String(Number(x.toFixed(1))) : String(Number(x.toFixed(2)))
}

/** A score reason as a sentence with a tip; a reason that raises the score is praised instead. */
export function tipOf(r: Reason): string {
  const c = COACHING[r.code]
  if (!c) return r.text
  const fact = `${c.you.replace('{v}', said(r.value, c.shown))}; ${c.most.replace('{b}', said(r.baseline, c.shown))}.`
  return r.impact < 0 ? `${fact} ${c.tip}` : `${fact} That helps your score: keep it up.`
}

/** How much more observation the outlook continues with, per subject, and its unit. */
const MORE: Record<Subject, { more: number; unit: string; like: string }> = {
  driving: { more: 50, unit: 'km', like: 'driven like your last ones' },
  health: { more: 7, unit: 'days', like: 'like your last ones' },
  home: { more: 7, unit: 'days', like: 'like your last ones' },
}
/** A policy needs this many other policies with a score of the subject before it is told where it stands: fewer, and a percentile would say too much about each of them. */
export const MIN_PEERS = 10
/** Weeks of score trend. */
const WEEKS = 12

export const Summary = strict({
  policyId: Type.String(),
  subjects: Type.Array(strict({
    subject: Subject,
    weeks: Type.Array(strict({ week: Type.String({ description: 'the Monday (00:00 UTC) the week starts' }), score: Type.Number({ description: 'the last score of the week' }) }), { description: `the last ${WEEKS} weeks with a score, oldest first` }),
    betterThan: Nullable(Type.Integer({ description: `percent of the portfolio's other policies whose latest score of the subject is lower; null with fewer than ${MIN_PEERS} of them` })),
    tips: Type.Array(strict({ code: Type.String(), text: Type.String(), points: Type.Number({ description: 'score points the reason moves the score by: below 0, it costs points' }) }), { description: "each of the latest score's reasons as a sentence with a tip, the one that costs most points first" }),
    outlook: Nullable(strict({
      more: Type.Number(), unit: Type.String(), premium: Type.Number(), currency: Type.String(),
      text: Type.String({ description: 'the premium after `more` km (driving) or days like the last ones, with the credibility weighting explained' }),
    })),
    changes: Type.Array(strict({ feature: Type.String(), label: Type.String() }), { description: 'what the simulator offers to change, in words' }),
  })),
})
export type Summary = Static<typeof Summary>

/** The outlook in words: the premium after more of the same, and why credibility moves it. */
export function outlookText(subject: Subject, w: WhatIf): string {
  const { more, unit, like } = MORE[subject]
  const pct = (z: number) => `${Math.round(z * 100)}%`
  const money = (x: number) => `${x.toFixed(2)} ${w.currency}`
  const after = `After ${more} more ${unit} ${like}, your premium would be ${money(w.changed.premium)} a year (now ${money(w.now.premium)}).`
  if (w.changed.credibility === 0) return `${after} ${w.changed.reasons[0]?.text ?? ''}`.trim()
  const seen = `${said(w.now.exposure, 'figure')} ${unit}`
  const minimum = w.now.reasons.find((r) => r.code === 'exposure')?.baseline
  const weight = w.now.credibility >= 1
    ? `Your own ${subject} already counts in full (${seen} observed), so more of the same keeps your premium where your behaviour puts it.`
    : w.now.credibility === 0
    ? `So far ${seen} observed: the plan needs ${minimum} ${unit} before your own ${subject} counts, so your premium stays as it is. After ${more} more ${unit}, it counts for ${pct(w.changed.credibility)} of the change from the base premium, the rest is the typical policyholder's; the more we observe, the more it counts.`
    : `So far ${seen} observed: your own ${subject} counts for ${pct(w.now.credibility)} of the change from the base premium, the rest is the typical policyholder's. The more we observe, the more your own behaviour counts: after ${more} more ${unit}, ${pct(w.changed.credibility)}.`
  const limit = w.changed.reasons.find((r) => / (cap|floor)$/.test(r.code))
  return `${after} ${weight}${limit ? ` The plan limits how fast a premium moves: ${limit.text}.` : ''}`
}

/** How long the portfolio's latest scores are reused, ms: reading them is one query over every policy's series, too much for every page load. */
const PORTFOLIO_TTL_MS = 60_000

/**
 * The summary of each subject a policy has a score of (`latest`: its latest score per subject),
 * with the portfolio's latest scores read at most once every PORTFOLIO_TTL_MS.
 */
export function summarizer(influx: Influx, whatIf: (score: Score, changes: unknown) => Promise<WhatIf | undefined>, now = Date.now) {
  let portfolio: { at: number; read: Promise<Series[]> } | undefined
  const portfolioScores = () => {
    if (!portfolio || now() - portfolio.at > PORTFOLIO_TTL_MS) {
      // Each policy's latest score per subject (what the analyst's distribution counts); only counts leave this module.
      const read = influx.query(`SELECT last(value) AS value FROM ${qualified('score')} GROUP BY policy_id, subject`)
      read.catch(() => (portfolio = undefined))
      portfolio = { at: now(), read }
    }
    return portfolio.read
  }
  return async (policyId: string, latest: readonly Score[]): Promise<Summary> => {
    const [trend, scores] = await Promise.all([
      influx.of(policyId).query(`SELECT last(value) AS score FROM ${qualified('score')} WHERE policy_id = ${quoteString(policyId)} AND time > now() - ${WEEKS}w GROUP BY time(1w, 4d), subject fill(none)`),
      portfolioScores(),
    ])
    const subjects = await Promise.all(latest.map(async (score) => {
      const weeks = trend.filter((s) => s.tags?.subject === score.subject).flatMap((s) => s.values.map((v) => ({ week: new Date(Number(v[0])).toISOString(), score: Number(v[1]) })))
      const others = scores.filter((s) => s.tags?.subject === score.subject && s.tags.policy_id !== policyId).map((s) => Number(s.values[0]?.[1]))
      const betterThan = others.length < MIN_PEERS ? null : Math.floor((100 * others.filter((v) => v < score.value).length) / others.length)
      const w = await whatIf(score, { more: MORE[score.subject].more }).catch(() => undefined)
      return {
        subject: score.subject,
        weeks,
        betterThan,
        tips: [...score.reasons].sort((a, b) => a.impact - b.impact).map((r) => ({ code: r.code, text: tipOf(r), points: r.impact })),
        outlook: w ? { more: MORE[score.subject].more, unit: MORE[score.subject].unit, premium: w.changed.premium, currency: w.currency, text: outlookText(score.subject, w) } : null,
        // What the model prices (each of its features has a reason), in the catalogue's words.
        changes: score.reasons.filter((r) => r.code in score.features).map((r) => ({ feature: r.code, label: COACHING[r.code]?.label ?? r.label })),
      }
    }))
    return { policyId, subjects }
  }
}
