import t from 'tap'
import { fileURLToPath } from 'node:url'
import { from, lastValueFrom, map, toArray } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import type { Reading } from '../ingest/index.ts'
import { healthPersonas, liveHealth, type HealthOptions, type HealthPersonaName } from '../edge-sim/index.ts'
import {
  DAY_MS, defaultHealthConfig as cfg, emptyHealthDay, healthAccumulator, healthAnomalies, healthDayLine, healthDaysFromSeries, healthFeatures,
  scoreHealth, type DailyHealth, type PolicyOutput,
} from './health.ts'
import { loadModel } from './model.ts'
import { healthFrequency } from './models/index.ts'
import { scoreBatch } from './score.ts'

const T0 = Date.UTC(2026, 0, 1)
const H = 3_600_000
const MIN = 60_000

const reading = (kind: string, ts: number, fields: Reading['fields'], policyId = 'pol-1', deviceId = 'watch-1'): Reading =>
  ({ deviceId, policyId, kind, subject: 'health', seq: 0, ts, receivedAt: ts, fields })
const hr = (ts: number, hr_bpm: number, resting = true) => reading('hr', ts, { hr_bpm, resting })
const days = (o: PolicyOutput<DailyHealth>[]) => o.flatMap((x) => (x.kind === 'day' ? [x.day] : []))
const events = (o: PolicyOutput<DailyHealth>[]) => o.flatMap((x) => (x.kind === 'event' ? [x.event] : []))
/** A closed day with the given resting rate, steps and sleep (the sums a day of such readings gives). */
const day = (i: number, p: { rest?: number; steps?: number; sleep_h?: number; bedtime_h?: number; points?: number; streak?: number; hr_n?: number; hrSd?: number } = {}): DailyHealth => {
  const n = p.hr_n ?? 100, mean = p.rest ?? 60, sd = p.hrSd ?? 8
  return {
    ...emptyHealthDay(T0 + i * DAY_MS), steps: p.steps ?? 8000, hr_n: n, hr_sum_bpm: n * mean, hr_sumsq_bpm2: n * (mean * mean + sd * sd), rest_n: n, rest_sum_bpm: n * mean,
    sleep_s: (p.sleep_h ?? 0) * 3600, main_sleep_s: (p.sleep_h ?? 0) * 3600, bedtime_h: p.bedtime_h ?? 11, points: p.points ?? 3, goal_streak_days: p.streak ?? 0,
  }
}

t.test('a day of readings: sums, active minutes, resting rate, sleep and its bedtime, points and streak; it closes when the next day starts', (t) => {
  const acc = healthAccumulator(cfg, 'pol-1')
  const rs = [
    // Slept 23:00 → 06:30 (7.5 h): sent at waking, it counts on the waking day.
    reading('sleep', T0 + 6.5 * H, { duration_s: 7.5 * 3600 }),
    hr(T0 + 7 * H, 58), hr(T0 + 7 * H + 5 * MIN, 62),
    // A workout: three readings at ≥ 110 bpm, each standing for the time since the previous reading,
    // at most maxHrGap_s (10 min): 10 (after the quiet afternoon) + 5 + 5 minutes…
    hr(T0 + 18 * H, 130, false), hr(T0 + 18 * H + 5 * MIN, 150, false), hr(T0 + 18 * H + 10 * MIN, 140, false),
    // …and 10 more for one after a 2 h gap.
    hr(T0 + 20 * H + 10 * MIN, 120, false),
    reading('steps', T0 + 12 * H, { steps_count: 6000, interval_s: 900 }), reading('steps', T0 + 19 * H, { steps_count: 4500, interval_s: 900 }),
    reading('spo2', T0 + 3 * H, { spo2_pct: 96 }), reading('spo2', T0 + 4 * H, { spo2_pct: 98 }),
  ]
  t.same(rs.flatMap((r) => acc.push(r)), [], 'nothing closes within the day')
  const out = acc.push(hr(T0 + DAY_MS + H, 60))
  t.equal(out.length, 1)
  const [d] = days(out)
  t.match(d, {
    day_ms: T0, steps: 10_500, active_min: 30, hr_n: 6, rest_n: 2, rest_sum_bpm: 120, sleep_s: 27_000, main_sleep_s: 27_000, bedtime_h: 11,
    spo2_n: 2, spo2_sum_pct: 194, points: 5, goal_streak_days: 1,
  })
  const input = out[0]!.kind === 'day' ? out[0]!.input : undefined
  t.match(input, { policyId: 'pol-1', subject: 'health', window: { from: T0, to: T0 + DAY_MS }, exposure: { days: 1 } })
  t.match(input?.features, { steps_per_day: 10_500, active_min_per_day: 30, resting_hr_bpm: 60, sleep_h: 7.5, sleep_deficit_h: 0, spo2_pct: 97, goal_streak_days: 1, activity_points_per_week: 35 })
  t.notOk('resting_hr_trend_bpm' in input!.features, 'no trend from one day: left out (the model takes the baseline), never NaN')
  t.end()
})

t.test('points: the best tier of steps or active minutes; the streak counts consecutive goal days', (t) => {
  const table: [string, { steps: number; active_min: number }, number][] = [
    ['nothing', { steps: 6999, active_min: 29 }, 0],
    ['7,000 steps', { steps: 7000, active_min: 0 }, 3],
    ['10,000 steps', { steps: 10_000, active_min: 0 }, 5],
    ['12,500 steps', { steps: 12_500, active_min: 0 }, 8],
    ['30 active minutes beat 7,000 steps', { steps: 7000, active_min: 30 }, 5],
    ['60 active minutes', { steps: 0, active_min: 60 }, 8],
  ]
  for (const [name, sums, points] of table) {
    const acc = healthAccumulator(cfg, 'p', [{ ...emptyHealthDay(T0 - DAY_MS), goal_streak_days: 4, points: 3 }])
    acc.push(reading('steps', T0 + H, { steps_count: sums.steps, interval_s: 900 }))
    // Active minutes from readings ≥ 110 bpm every 5 minutes (the first stands for no time: none before it).
    for (let m = 0; m <= sums.active_min && sums.active_min > 0; m += 5) acc.push(hr(T0 + 2 * H + m * MIN, 120, false))
    const d = days(acc.flush())[0]!
    t.equal(d.points, points, `${name}: ${points} points`)
    t.equal(d.goal_streak_days, points > 0 ? 5 : 0, `${name}: the streak of 4 goes on or breaks`)
  }
  const afterGap = healthAccumulator(cfg, 'p', [{ ...emptyHealthDay(T0 - 2 * DAY_MS), goal_streak_days: 4, points: 3 }])
  afterGap.push(reading('steps', T0 + H, { steps_count: 9000, interval_s: 900 }))
  t.equal(days(afterGap.flush())[0]!.goal_streak_days, 1, 'a day without data breaks the streak')
  t.end()
})

t.test('features: levels over 30 days, the resting-rate trend against 90, sleep spread, current streak', (t) => {
  // 90 days: resting 60 bpm for the first 60, 63 for the last 30; sleep 6 h and 8 h alternating.
  const ds = Array.from({ length: 90 }, (_, i) => day(i, { rest: i < 60 ? 60 : 63, sleep_h: i % 2 ? 8 : 6, steps: 1000 * (i % 3), points: i % 3 === 2 ? 3 : 0, streak: i === 89 ? 1 : 0 }))
  const now = T0 + 90 * DAY_MS
  const f = healthFeatures(cfg, ds, now)
  t.same(f, {
    steps_per_day: 1000, active_min_per_day: 0, resting_hr_bpm: 63, resting_hr_trend_bpm: 2, sleep_h: 7, sleep_deficit_h: 0.5, sleep_sd_h: 1,
    bedtime_sd_h: 0, goal_streak_days: 1, activity_points_per_week: 7,
  }, 'no SpO2 readings: no spo2_pct')
  t.equal(healthFeatures(cfg, ds, now + DAY_MS).goal_streak_days, 0, 'a streak whose last day is not yesterday is over')
  t.notOk('resting_hr_trend_bpm' in healthFeatures(cfg, ds.slice(-44), now), 'the trend needs 45 days')
  t.end()
})

t.test('anomalies: a week 10 bpm over the baseline; near-identical steps; a flat heart rate', (t) => {
  const now = (ds: DailyHealth[]) => ds.at(-1)!.day_ms + DAY_MS
  const table: [string, DailyHealth[], { rise: boolean; scripted?: string }][] = [
    ['30 days at 60, 7 at 70', [...Array.from({ length: 30 }, (_, i) => day(i, { steps: 5000 + 100 * i })), ...Array.from({ length: 7 }, (_, i) => day(30 + i, { rest: 70, steps: 9000 - 300 * i }))], { rise: true }],
    ['30 days at 60, 7 at 69.9', [...Array.from({ length: 30 }, (_, i) => day(i, { steps: 5000 + 100 * i })), ...Array.from({ length: 7 }, (_, i) => day(30 + i, { rest: 69.9, steps: 9000 - 300 * i }))], { rise: false }],
    ['only 4 of the last 7 days', [...Array.from({ length: 30 }, (_, i) => day(i, { steps: 5000 + 100 * i })), ...[0, 2, 4, 6].map((i) => day(30 + i, { rest: 80, steps: 9000 - 300 * i }))], { rise: false }],
    ['13 baseline days', [...Array.from({ length: 13 }, (_, i) => day(i, { steps: 5000 + 100 * i })), ...Array.from({ length: 7 }, (_, i) => day(13 + i, { rest: 80, steps: 9000 - 300 * i }))], { rise: false }],
    ['7 days of 8,000 ± 20 (0.5% apart)', Array.from({ length: 7 }, (_, i) => day(i, { steps: 8000 + (i % 2 ? 20 : -20) })), { rise: false, scripted: 'steps' }],
    ['7 days of 8,000 ± 41 (over 1% apart): real enough', Array.from({ length: 7 }, (_, i) => day(i, { steps: 8000 + (i % 2 ? 41 : -41) })), { rise: false }],
    ['6 days of 8,000 and a missing one', [0, 1, 2, 4, 5, 6, 7].map((i) => day(i, { steps: 8000 })), { rise: false }],
    ['a day of heart rates within 0.5 bpm', [day(0, { steps: 8000, hrSd: 0.5 })], { rise: false, scripted: 'hr' }],
    ['the same with only 23 readings', [day(0, { steps: 8000, hrSd: 0.5, hr_n: 23 })], { rise: false }],
  ]
  for (const [name, ds, want] of table) {
    const got = healthAnomalies(cfg, ds, now(ds))
    t.equal(!!got.rise, want.rise, `${name}: rise ${want.rise}`)
    t.equal(got.scripted?.source, want.scripted, `${name}: scripted ${want.scripted ?? 'no'}`)
  }
  const rise = healthAnomalies(cfg, table[0]![1], T0 + 37 * DAY_MS).rise!
  t.match(rise, { from: T0 + 30 * DAY_MS, source: 'hr', peak: 70, threshold: 70, baseline_bpm: 60, days: 7, duration_s: 7 * 86_400 })
  t.end()
})

t.test('an anomaly fires once per episode, as an urgent health event, and not again after a restore', (t) => {
  const baseline = Array.from({ length: 30 }, (_, i) => day(i, { steps: 5000 + 100 * i }))
  const acc = healthAccumulator(cfg, 'pol-1', baseline)
  const out: PolicyOutput<DailyHealth>[] = []
  // Ten days resting at 75 (readings of each day; the next day's first reading closes it).
  for (let i = 30; i <= 40; i++) for (const h of [1, 2, 3]) out.push(...acc.push(hr(T0 + i * DAY_MS + h * H, 75)))
  const alerts = events(out)
  t.equal(alerts.length, 1, 'one event for the whole episode')
  t.match(alerts[0], { policyId: 'pol-1', deviceId: 'watch-1', subject: 'health', type: 'resting_hr_rise', urgent: true })
  t.ok(alerts[0]!.to <= T0 + 36 * DAY_MS, `seen within a week of the rise (after day ${(alerts[0]!.to - T0) / DAY_MS})`)
  t.equal(days(out).length, 10, 'ten days closed, to store')
  const restored = healthAccumulator(cfg, 'pol-1', [...baseline, ...days(out)])
  t.same(events([...restored.push(hr(T0 + 41 * DAY_MS, 75)), ...restored.push(hr(T0 + 42 * DAY_MS, 75))]), [], 'the episode was already open when stored')
  t.end()
})

t.test('a day flushed early reopens with a later reading of it, and closes again complete', (t) => {
  const acc = healthAccumulator(cfg, 'pol-1')
  acc.push(reading('steps', T0 + 9 * H, { steps_count: 4000, interval_s: 900 }))
  const first = days(acc.flush())
  t.equal(first[0]?.steps, 4000, 'idle expiry closes the day so far')
  // The service stores that day and rebuilds the policy from it when it comes back.
  const back = healthAccumulator(cfg, 'pol-1', first)
  back.push(reading('steps', T0 + 20 * H, { steps_count: 5000, interval_s: 900 }))
  const again = days(back.push(reading('steps', T0 + DAY_MS + H, { steps_count: 10, interval_s: 900 })))
  t.same(again.map((d) => [d.day_ms, d.steps, d.points]), [[T0, 9000, 3]], 'one day, both parts')
  t.equal(back.days.length, 1)
  t.end()
})

t.test('at most 90 days are kept, whatever has been stored', (t) => {
  const acc = healthAccumulator(cfg, 'p', Array.from({ length: 200 }, (_, i) => day(i)))
  t.equal(acc.days.length, 90)
  t.equal(acc.days[0]!.day_ms, T0 + 110 * DAY_MS)
  acc.push(hr(T0 + 200 * DAY_MS, 60))
  acc.flush()
  t.equal(acc.days.length, 90)
  t.equal(acc.days[0]!.day_ms, T0 + 111 * DAY_MS)
  t.end()
})

t.test('a day as an InfluxDB line and back', (t) => {
  const d = { ...day(3, { rest: 61.5, sleep_h: 7.25, steps: 12_345 }), spo2_n: 3, spo2_sum_pct: 290 }
  const line = healthDayLine('pol 1', d)
  t.match(line, /^health_day,policy_id=pol\\ 1 steps=12345,active_min=0,hr_n=100,/)
  t.ok(line.endsWith(` ${T0 + 3 * DAY_MS}`), 'at the start of the day')
  // What InfluxQL returns for it: time in ms, the tag, every field.
  const fields = Object.fromEntries(line.split(' ')[2]!.split(',').map((kv) => kv.split('=')).map(([k, v]) => [k!, Number(v)]))
  const columns = ['time', 'policy_id', ...Object.keys(fields)]
  t.same(healthDaysFromSeries([{ name: 'health_day', columns, values: [[T0 + 3 * DAY_MS, 'pol 1', ...Object.values(fields)]] }]), [d])
  t.end()
})

t.test('marbles: a day is scored when the next one starts, and an idle policy is flushed idleMs after its last reading', (t) => {
  const scheduler = new TestScheduler((actual, expected) => t.same(actual, expected))
  scheduler.run(({ cold, expectObservable }) => {
    const source = cold('a b 98ms c 20s |', {
      a: hr(T0 + H, 60), b: hr(T0 + DAY_MS + H, 61), c: reading('steps', T0 + DAY_MS + 2 * H, { steps_count: 100, interval_s: 900 }),
    })
    const out = source.pipe(scoreHealth(cfg, 10_000, undefined, scheduler), map((o) => (o.kind === 'day' ? `${o.input.policyId} ${new Date(o.day.day_ms).toISOString().slice(0, 10)}` : o.event.type)))
    expectObservable(out).toBe('- x 10098ms y 10000ms |', { x: 'pol-1 2026-01-01', y: 'pol-1 2026-01-02' })
  })
  t.end()
})

t.test('the stage rebuilds a returning policy from its stored days; its readings wait in order', async (t) => {
  const stored = Array.from({ length: 10 }, (_, i) => day(i, { steps: 20_000 }))
  const reads: string[] = []
  const history = { read: async ({ policyId }: Reading) => (reads.push(policyId), policyId === 'pol-1' ? { days: stored, earlier: [] } : Promise.reject(new Error('influx down'))), onError: (_: unknown, policyId: string) => reads.push(`failed ${policyId}`) }
  const rs = [10, 11].flatMap((i) => [reading('steps', T0 + i * DAY_MS + H, { steps_count: 1000, interval_s: 900 }), reading('steps', T0 + i * DAY_MS + H, { steps_count: 1000, interval_s: 900 }, 'pol-2')])
  const out = await lastValueFrom(from(rs).pipe(scoreHealth(cfg, 60_000, history), toArray()))
  const inputs = out.flatMap((o) => (o.kind === 'day' ? [o.input] : []))
  t.same(reads, ['pol-1', 'pol-2', 'failed pol-2'], 'read once per policy; a failed read is reported')
  t.same(inputs.filter((i) => i.policyId === 'pol-1').map((i) => [i.exposure.days, i.features.steps_per_day]), [[11, 18272.7], [12, 16833.3]], 'its 10 stored days at 20,000 steps count')
  t.same(inputs.filter((i) => i.policyId === 'pol-2').map((i) => i.exposure.days), [1, 2], 'without its history, pol-2 starts afresh')
})

/** A wearer's simulated readings through one accumulator. */
function simulate(persona: HealthPersonaName, seed: number, opts: HealthOptions) {
  const acc = healthAccumulator(cfg, `${persona}-${seed}`)
  const out: PolicyOutput<DailyHealth>[] = []
  let seq = 0
  for (const r of liveHealth({ persona, seed }, opts)) {
    out.push(...acc.push({ deviceId: `watch-${seed}`, policyId: `${persona}-${seed}`, kind: r.kind, subject: 'health', seq: seq++, ts: r.ts, receivedAt: r.ts, fields: r.body as Reading['fields'] }))
  }
  return [...out, ...acc.flush()]
}

t.test('edge-sim wearers: scores rank the personas by their known risk; none raises an anomaly', async (t) => {
  const model = await loadModel(healthFrequency, fileURLToPath(new URL(`./models/${healthFrequency.file}`, import.meta.url)))
  const personas = (Object.keys(healthPersonas) as HealthPersonaName[]).sort((a, b) => healthPersonas[a].relativity - healthPersonas[b].relativity)
  const mean: Record<string, number> = {}
  for (const persona of personas) {
    const runs = [1, 2, 3].map((seed) => simulate(persona, seed, { startTs: T0, days: 90 }))
    t.same(runs.flatMap(events), [], `${persona}: no anomaly events`)
    const scores = await scoreBatch(model, runs.map((o) => o.flatMap((x) => (x.kind === 'day' ? [x.input] : [])).at(-1)!))
    mean[persona] = scores.reduce((a, s) => a + s.value, 0) / scores.length
  }
  t.comment(personas.map((p) => `${p} (relativity ${healthPersonas[p].relativity}): ${mean[p]!.toFixed(1)}`).join(', '))
  personas.slice(1).forEach((p, i) => t.ok(mean[personas[i]!]! > mean[p]!, `${personas[i]} scores above ${p}`))
})

t.test('edge-sim anomaly scenario: a 15 bpm rise for 10 days raises one resting_hr_rise alert within a week', (t) => {
  const from = T0 + 40 * DAY_MS
  const out = simulate('active', 1, { startTs: T0, days: 60, anomaly: { fromTs: from, days: 10 } })
  const alerts = events(out)
  t.same(alerts.map((e) => e.type), ['resting_hr_rise'])
  t.ok(alerts[0]!.to > from && alerts[0]!.to <= from + 7 * DAY_MS, `raised ${(alerts[0]!.to - from) / DAY_MS} days into it`)
  t.ok(alerts[0]!.evidence.peak - (alerts[0]!.evidence.baseline_bpm as number) >= cfg.rise_bpm)
  t.end()
})

t.test('low SpO2 (#24): below 90% for half an hour is an urgent health alert, once a spell; one low reading or a gap is not', (t) => {
  const spo2 = (ts: number, spo2_pct: number): Reading => ({ deviceId: 'watch-1', policyId: 'pol-1', kind: 'spo2', subject: 'health', seq: 0, ts, receivedAt: ts, fields: { spo2_pct } })
  const alerts = (values: [number, number][]) => {
    const acc = healthAccumulator(cfg, 'pol-1')
    return events([...values.flatMap(([min, pct]) => acc.push(spo2(T0 + min * 60_000, pct))), ...acc.flush()]).map((e) => [e.type, e.urgent, (e.from - T0) / 60_000, (e.to - T0) / 60_000, e.evidence.peak])
  }
  t.same(alerts([[0, 95], [60, 88], [120, 87], [180, 89], [240, 95], [300, 88], [360, 86]]), [['low_spo2', true, 60, 120, 87], ['low_spo2', true, 300, 360, 86]], 'each spell alerts once, when it has lasted 30 min')
  t.same(alerts([[0, 95], [60, 85], [120, 95]]), [], 'one low reading (a loose sensor) is no alert')
  t.same(alerts([[0, 88], [300, 88]]), [], 'readings 5 h apart are no sustained spell')
  t.end()
})

t.test('edge-sim: a sedentary wearer whose SpO2 drops 8 points for three nights raises low_spo2 in the first of them; none without the drop', (t) => {
  const from = T0 + 20 * DAY_MS
  const alerts = events(simulate('sedentary', 2, { startTs: T0, days: 30, anomaly: { fromTs: from, days: 3, hrJump_bpm: 0, spo2Drop_pct: 8 } })).filter((e) => e.type === 'low_spo2')
  t.ok(alerts.length >= 1 && alerts.length <= 3, `${alerts.length} alerts, at most one a night`)
  t.ok(alerts.every((e) => e.urgent && e.from >= from && e.to < from + 3 * DAY_MS && (e.evidence.peak as number) < 90), 'urgent, in the drop, below 90%')
  t.ok(alerts[0]!.to - from < DAY_MS, `the first ${((alerts[0]!.to - from) / 3_600_000).toFixed(1)} h into it`)
  t.same(events(simulate('sedentary', 2, { startTs: T0, days: 30 })).filter((e) => e.type === 'low_spo2'), [], 'the same wearer without the drop: none')
  t.end()
})
