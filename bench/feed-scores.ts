/**
 * bench:feed's scores: made here, not by scoring (10,000 scores a second would need far more
 * telemetry than one machine carries), with reasons and features of the usual size. Each carries
 * in `window.to` the moment it was due (a high-resolution wall time), for the clients to measure
 * delivery from: a busy event loop that holds the emitter up shows as latency, as it would hold up
 * scoring.
 */
import type { Score } from '../scoring/index.ts'

export const CLIENTS = Number(process.env.BENCH_FEED_CLIENTS ?? 1000)
export const RATE = Number(process.env.BENCH_FEED_RATE ?? 10_000)
export const policies = Array.from({ length: CLIENTS }, (_, i) => `bench-feed-${i}`)

export function scoreFor(policyId: string, n: number, to: number): Score {
  const reason = (code: string, label: string, unit: string, value: number, baseline: number, impact: number) => ({ code, label, unit, value, baseline, impact, text: `${label} ${value} ${unit} (typical ${baseline}): ${impact} points` })
  return {
    policyId, subject: 'driving', value: 50 + (n % 50), model: 'driving-frequency@3',
    reasons: [reason('harsh_braking_per_hour', 'harsh braking', 'per hour', 4.1, 3, -6), reason('phone_min_per_hour', 'phone handling', 'min per hour', 1.2, 0.1, -2), reason('speeding_share', 'speeding', '% of time', 1, 3, 4)],
    window: { from: to - 30 * 86_400_000, to }, exposure: { days: 30, distance_km: 812, moving_s: 72_000, night_s: 8_640 },
    features: { harsh_braking_per_hour: 4.1, phone_min_per_hour: 1.2, speeding_share: 0.01, night_share: 0.12, km_per_day: 27 },
  }
}

/** Hands out `RATE` scores a second, round robin over the policies, until stopped; how many. */
export function emitter(hand: (score: Score) => void): { stop(): number } {
  const t0 = performance.now()
  let sent = 0
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) / 1000) * RATE)
    for (; sent < due; sent++) hand(scoreFor(policies[sent % CLIENTS]!, sent, performance.timeOrigin + t0 + (sent * 1000) / RATE))
  }, 2)
  return { stop: () => (clearInterval(timer), sent) }
}
