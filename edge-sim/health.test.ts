/** Statistics of the simulated wearables: circadian heart rate, steps, sleep, SpO2, trends, anomaly. */
import t from 'tap'
import type { SensorReading } from './device-streams.ts'
import { liveHealth, type HealthOptions } from './health.ts'
import { healthPersonas, type HealthPersonaName } from './personas.ts'

const DAY = 86_400_000
const start = Date.UTC(2026, 1, 2)
const WEEKS = 8
type Body = Record<string, number | boolean>

const runs = new Map<string, SensorReading[]>()
function live(persona: HealthPersonaName, opts: Partial<HealthOptions> = {}, seed = 5): SensorReading[] {
  const key = `${persona}:${seed}:${JSON.stringify(opts)}`
  if (!runs.has(key)) runs.set(key, [...liveHealth({ persona, seed }, { startTs: start, days: WEEKS * 7, ...opts })])
  return runs.get(key)!
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const hourOf = (ts: number) => (ts % DAY) / 3_600_000
const hr = (rs: SensorReading[], keep: (r: SensorReading) => boolean = () => true) =>
  rs.filter((r) => r.kind === 'hr' && keep(r)).map((r) => (r.body as Body).hr_bpm as number)
/** Heart rate while asleep: what a wearable takes as the resting rate. */
const sleepingHr = (rs: SensorReading[], from: number, to: number) =>
  hr(rs, (r) => r.ts >= from && r.ts < to && (hourOf(r.ts) >= 1.5 && hourOf(r.ts) < 5))

t.test('readings are in time order, within the contract, at their cadence', async (t) => {
  for (const persona of Object.keys(healthPersonas) as HealthPersonaName[]) {
    const rs = live(persona)
    t.ok(rs.every((r, i) => i === 0 || r.ts >= rs[i - 1]!.ts), `${persona}: time order`)
    const hrs = rs.filter((r) => r.kind === 'hr')
    t.equal(hrs.length, WEEKS * 7 * 288, `${persona}: heart rate every 5 minutes`)
    t.ok(hr(rs).every((b) => b >= 35 && b <= 220), 'heart rate 35–220 bpm')
    const steps = rs.filter((r) => r.kind === 'steps').map((r) => r.body as Body)
    t.ok(steps.every((b) => b.interval_s === 900 && (b.steps_count as number) >= 0 && (b.steps_count as number) <= 900 * 3), 'steps per 15 minutes, at most a run\'s cadence')
  }
  t.equal(live('active', { hrEvery_s: 60, days: 2 }).filter((r) => r.kind === 'hr').length, 2 * 1440, 'heart rate every minute when asked')
})

t.test('heart rate is circadian: lowest in the small hours, asleep; up with activity', async (t) => {
  for (const persona of Object.keys(healthPersonas) as HealthPersonaName[]) {
    const rs = live(persona)
    const night = mean(hr(rs, (r) => hourOf(r.ts) >= 2 && hourOf(r.ts) < 5))
    const afternoon = mean(hr(rs, (r) => hourOf(r.ts) >= 14 && hourOf(r.ts) < 18))
    t.ok(afternoon - night > 8, `${persona}: ${night.toFixed(0)} bpm at 02–05, ${afternoon.toFixed(0)} at 14–18`)
    const resting = mean(hr(rs, (r) => (r.body as Body).resting === true && hourOf(r.ts) >= 10 && hourOf(r.ts) < 20))
    const moving = mean(hr(rs, (r) => (r.body as Body).resting === false))
    t.ok(moving - resting > 15, `${persona}: ${resting.toFixed(0)} bpm at rest by day, ${moving.toFixed(0)} moving`)
  }
})

t.test('personas: resting heart rate, steps and sleep are separated as designed', async (t) => {
  const firstWeek = (persona: HealthPersonaName) => {
    const rs = live(persona)
    const steps = rs.filter((r) => r.kind === 'steps' && r.ts < start + 7 * DAY).reduce((s, r) => s + ((r.body as Body).steps_count as number), 0) / 7
    const sleep = rs.filter((r) => r.kind === 'sleep').map((r) => ((r.body as Body).duration_s as number) / 3600)
    return { resting: mean(sleepingHr(rs, start, start + 7 * DAY)), steps, sleep: mean(sleep) }
  }
  const s = Object.fromEntries((Object.keys(healthPersonas) as HealthPersonaName[]).map((p) => [p, firstWeek(p)])) as Record<HealthPersonaName, ReturnType<typeof firstWeek>>
  t.comment(Object.entries(s).map(([p, x]) => `${p}: ${x.resting.toFixed(1)} bpm asleep, ${x.steps.toFixed(0)} steps/day, ${x.sleep.toFixed(1)} h sleep`).join('; '))
  for (const [p, x] of Object.entries(s) as [HealthPersonaName, ReturnType<typeof firstWeek>][]) {
    const designed = healthPersonas[p]
    // Asleep: 4 bpm under the resting rate, the circadian low on top.
    t.ok(Math.abs(x.resting - (designed.restingHr_bpm - 5.5)) < 2.5, `${p}: resting rate near the designed ${designed.restingHr_bpm}`)
    t.ok(Math.abs(x.steps / designed.stepsPerDay - 1) < 0.35, `${p}: steps near the designed ${designed.stepsPerDay}/day`)
  }
  t.ok(s.active.resting + 10 < s.sedentary.resting, 'active rests slower than sedentary')
  t.ok(s.active.steps > 2.5 * s.sedentary.steps, 'and walks far more')
  t.ok(s.active.sleep > s.sedentary.sleep + 0.5, 'and sleeps longer')
})

t.test('trends over the weeks: improving gets better, deteriorating worse', async (t) => {
  const change = (persona: HealthPersonaName) => {
    const rs = live(persona)
    const last = start + (WEEKS - 1) * 7 * DAY
    const steps = (from: number) => rs.filter((r) => r.kind === 'steps' && r.ts >= from && r.ts < from + 7 * DAY).reduce((s, r) => s + ((r.body as Body).steps_count as number), 0)
    return { hr: mean(sleepingHr(rs, last, last + 7 * DAY)) - mean(sleepingHr(rs, start, start + 7 * DAY)), steps: steps(last) / steps(start) }
  }
  const [improving, deteriorating, active] = [change('improving'), change('deteriorating'), change('active')]
  t.comment(`week ${WEEKS} against week 1: improving ${improving.hr.toFixed(1)} bpm, steps ×${improving.steps.toFixed(2)}; deteriorating ${deteriorating.hr.toFixed(1)} bpm, steps ×${deteriorating.steps.toFixed(2)}`)
  t.ok(improving.hr < -2.5 && improving.steps > 1.15, 'improving: resting rate down, steps up')
  t.ok(deteriorating.hr > 2.5 && deteriorating.steps < 0.85, 'deteriorating: resting rate up, steps down')
  t.ok(Math.abs(active.hr) < 1 && Math.abs(active.steps - 1) < 0.25, 'active: steady')
})

t.test('one sleep session a night, sent on waking, with stages that add up', async (t) => {
  const rs = live('sedentary')
  const sessions = rs.filter((r) => r.kind === 'sleep')
  t.ok(sessions.length >= WEEKS * 7 - 1 && sessions.length <= WEEKS * 7, `${sessions.length} sessions in ${WEEKS * 7} days`)
  for (const r of sessions) {
    const b = r.body as Record<string, number>
    if (b.deep_s! + b.rem_s! + b.light_s! + b.awake_s! !== b.duration_s || b.duration_s! < 3.5 * 3600 || b.duration_s! > 10.5 * 3600) t.fail(`session ${JSON.stringify(b)}`)
    const wake = hourOf(r.ts)
    if (wake < 2 || wake > 11) t.fail(`wakes at ${wake.toFixed(1)} h`)
    // Asleep from ts − duration to ts: no steps counted in there.
    const asleepSteps = rs.filter((s) => s.kind === 'steps' && s.ts > r.ts - b.duration_s! * 1000 + 900_000 && s.ts < r.ts)
    if (asleepSteps.length) t.fail('steps while asleep')
  }
  const spo2 = rs.filter((r) => r.kind === 'spo2').map((r) => (r.body as Body).spo2_pct as number)
  t.ok(spo2.length > WEEKS * 7 * 4, `${spo2.length} SpO2 readings, hourly at night`)
  t.ok(Math.min(...spo2) >= 90 && Math.max(...spo2) <= 100 && Math.abs(mean(spo2) - 95.8) < 1, `SpO2 ${Math.min(...spo2)}–${Math.max(...spo2)} %, mean ${mean(spo2).toFixed(1)}`)
})

t.test('a health anomaly: resting heart rate jumps and SpO2 drops, for its days only', async (t) => {
  const from = start + 14 * DAY
  const rs = live('active', { anomaly: { fromTs: from, days: 5 } })
  const base = live('active')
  const during = mean(sleepingHr(rs, from, from + 5 * DAY))
  const before = mean(sleepingHr(rs, from - 7 * DAY, from))
  const after = mean(sleepingHr(rs, from + 6 * DAY, from + 13 * DAY))
  t.ok(during - before > 12, `resting rate ${before.toFixed(1)} → ${during.toFixed(1)} bpm`)
  t.ok(Math.abs(after - before) < 1.5, `and back to ${after.toFixed(1)} after`)
  const spo2 = (rs: SensorReading[], a: number, b: number) => mean(rs.filter((r) => r.kind === 'spo2' && r.ts >= a && r.ts < b).map((r) => (r.body as Body).spo2_pct as number))
  t.ok(spo2(base, from, from + 5 * DAY) - spo2(rs, from, from + 5 * DAY) > 3, `SpO2 ${spo2(base, from, from + 5 * DAY).toFixed(1)} → ${spo2(rs, from, from + 5 * DAY).toFixed(1)} %`)
  t.same(rs.filter((r) => r.ts < from), base.filter((r) => r.ts < from), 'nothing changes before it')
})

t.test('the same seed lives the same; another seed does not', async (t) => {
  t.same(live('improving', { days: 3 }, 8), [...liveHealth({ persona: 'improving', seed: 8 }, { startTs: start, days: 3 })])
  t.not(JSON.stringify(live('improving', { days: 3 }, 8)), JSON.stringify(live('improving', { days: 3 }, 9)))
})
