import t from 'tap'
import { fileURLToPath } from 'node:url'
import { map } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import type { Reading } from '../ingest/index.ts'
import { homePersonas, liveHome, type HomeEvent, type HomeOptions, type HomePersonaName } from '../edge-sim/index.ts'
import { DAY_MS, type PolicyOutput } from './health.ts'
import { defaultHomeConfig as cfg, emptyHomeDay, homeAccumulator, homeDayLine, homeDaysFromSeries, homeFeatures, scoreHome, type HomeDay } from './home.ts'
import { loadModel } from './model.ts'
import { homeFrequency } from './models/index.ts'
import { scoreBatch } from './score.ts'

const T0 = Date.UTC(2026, 0, 1)
const H = 3_600_000
const MIN = 60_000

const reading = (kind: string, ts: number, fields: Reading['fields'], deviceId = 'hub-1', policyId = 'pol-1'): Reading =>
  ({ deviceId, policyId, kind, subject: 'home', seq: 0, ts, receivedAt: ts, fields })
const climate = (ts: number, temp_c: number, humidity_pct = 50) => reading('climate', ts, { temp_c, humidity_pct })
const events = (o: PolicyOutput<HomeDay>[]) => o.flatMap((x) => (x.kind === 'event' ? [x.event] : []))
const closed = (o: PolicyOutput<HomeDay>[]) => o.flatMap((x) => (x.kind === 'day' ? [x.day] : []))
/** Runs readings through one accumulator and flushes. */
const run = (rs: Reading[]) => {
  const acc = homeAccumulator(cfg, 'pol-1')
  return [...rs.flatMap((r) => acc.push(r)), ...acc.flush()]
}
/** Climate readings every 15 minutes from `from`, one per value. */
const every15 = (from: number, values: [number, number][]) => values.map(([temp, rh], i) => climate(from + i * 15 * MIN, temp, rh))

t.test('climate: time below 3 °C and above 70% RH, and an event for each spell long enough', (t) => {
  const table: [string, Reading[], Partial<HomeDay>, [string, number, number, number][]][] = [
    // 5 °C, then 2.5 °C for 10 readings (15 min … 2 h 30), then 4 °C: below for 2.5 h.
    ['a 2.5 h cold spell', every15(T0, [[5, 50], ...Array<[number, number]>(10).fill([2.5, 50]), [4, 50]]), { climate_s: 165 * 60, freeze_s: 150 * 60, humid_s: 0 }, [['freeze_risk', 15, 165, 2.5]]],
    ['a 1.5 h cold spell: hours, no event', every15(T0, [[5, 50], ...Array<[number, number]>(6).fill([1, 50]), [4, 50]]), { freeze_s: 90 * 60 }, []],
    // Across midnight: the quarter hour before the next day's first reading counts in neither day
    // (a day counts from each sensor's first reading in it), the event spans both.
    ['25 h above 70% RH', every15(T0, [[20, 60], ...Array<[number, number]>(100).fill([20, 75]), [20, 60]]), { humid_s: 25 * 3600 - 900, freeze_s: 0 }, [['humidity_exposure', 15, 15 + 25 * 60, 75]]],
    // Spells still open at the end (flush) end at their last reading.
    ['a cold spell open at the end', every15(T0, [[5, 50], ...Array<[number, number]>(10).fill([-1, 50])]), { freeze_s: 135 * 60 }, [['freeze_risk', 15, 150, -1]]],
    // A 3 h gap: nothing integrated across it, the spell ends at its last reading before it.
    ['a gap in a cold spell', [...every15(T0, Array<[number, number]>(9).fill([0, 50])), ...every15(T0 + 5 * H, Array<[number, number]>(9).fill([0, 50]))], { climate_s: 2 * 8 * 15 * 60, freeze_s: 2 * 8 * 15 * 60 }, [['freeze_risk', 0, 120, 0], ['freeze_risk', 300, 420, 0]]],
  ]
  for (const [name, rs, sums, want] of table) {
    const out = run(rs)
    // Summed over the days the readings span.
    const total = Object.fromEntries(Object.keys(sums).map((k) => [k, closed(out).reduce((a, d) => a + d[k as keyof HomeDay], 0)]))
    t.same(total, sums, `${name}: ${JSON.stringify(sums)}`)
    t.same(events(out).filter((e) => e.type !== 'freeze_warning').map((e) => [e.type, (e.from - T0) / MIN, (e.to - T0) / MIN, e.evidence.peak]), want, `${name}: events`)
  }
  t.end()
})

t.test('a valve reading older than the leak, or than the valve\'s newest reading, is no response to it (#20)', (t) => {
  const shutoffs = (rs: Reading[]) => events(run(rs)).filter((e) => e.type === 'valve_shutoff').map((e) => [(e.from - T0) / 1000, (e.to - T0) / 1000, e.evidence.response_s])
  t.same(shutoffs([
    reading('leak', T0 + H, { leak_detected: true }),
    reading('valve', 1, { valve_open: false }), // a device clock at 1970: shut long before the leak
    reading('valve', T0 + H + 10_000, { valve_open: true }),
    reading('valve', T0 + H + 30_000, { valve_open: false }),
  ]), [[3600, 3630, 30]], 'the valve shut 30 s after the leak, and only that')
  t.same(shutoffs([
    reading('valve', T0 + H + 60_000, { valve_open: true }),
    reading('leak', T0 + H, { leak_detected: true }),
    reading('valve', T0 + H + 30_000, { valve_open: false }), // older than the valve\'s newest reading, which said open
    reading('valve', T0 + H + 90_000, { valve_open: false }),
  ]), [[3600, 3690, 90]], 'the valve\'s state follows its newest reading')
  t.end()
})

t.test('a leak: one urgent event when it starts, the valve\'s response, nothing more until it is dry and wet again', (t) => {
  const rs = [
    reading('valve', T0, { valve_open: true }),
    reading('leak', T0 + H, { leak_detected: true, battery_pct: 80 }),
    reading('valve', T0 + H + 45_000, { valve_open: false }),
    reading('leak', T0 + H + 10 * MIN, { leak_detected: true, battery_pct: 80 }), // a heartbeat while wet
    reading('leak', T0 + H + 20 * MIN, { leak_detected: false, battery_pct: 80 }),
    reading('valve', T0 + 6 * H, { valve_open: false }), // still shut: no response to anything
    reading('valve', T0 + 8 * H, { valve_open: true }),
    reading('leak', T0 + 9 * H, { leak_detected: true, battery_pct: 80 }),
    reading('leak', T0 + 9 * H + 5 * MIN, { leak_detected: false, battery_pct: 80 }), // dry before the valve shut
    reading('valve', T0 + 10 * H, { valve_open: false }), // a shut-off long after: not a response to that leak
    reading('smoke', T0 + 12 * H, { smoke_detected: true, co_ppm: 30 }),
    reading('smoke', T0 + 12 * H + 60_000, { smoke_detected: true, co_ppm: 35 }),
    reading('smoke', T0 + 13 * H, { smoke_detected: false, co_ppm: 3 }),
    reading('smoke', T0 + 14 * H, { smoke_detected: false, co_ppm: 4 }),
  ]
  // (The leak probe's quiet hours between these readings make sensor_offline events: not what this is about.)
  const out = run(rs).filter((o) => o.kind !== 'event' || o.event.type !== 'sensor_offline')
  t.same(events(out).map((e) => [e.type, e.urgent, (e.from - T0) / 1000, (e.to - T0) / 1000]), [
    ['leak', true, 3600, 3600], ['valve_shutoff', false, 3600, 3645], ['leak', true, 9 * 3600, 9 * 3600], ['smoke', true, 12 * 3600, 12 * 3600],
  ])
  t.match(events(out)[1]!.evidence, { source: 'valve', response_s: 45, peak: 45, threshold: cfg.valveTarget_s, unit: 's' })
  t.match(events(out)[3]!.evidence, { source: 'smoke', co_ppm: 30 })
  t.match(closed(out)[0], { leaks: 2, smokes: 1, valve_n: 1, valve_s: 45, co_n: 2, co_ppm: 7 }, 'carbon monoxide from the readings outside the alarm only')
  t.end()
})

t.test('sensor health: offline time beyond two missed heartbeats, an event for 6 h; low battery once per episode', (t) => {
  const leak = (ts: number, battery_pct: number) => reading('leak', ts, { leak_detected: false, battery_pct })
  const out = run([
    leak(T0, 50), leak(T0 + H, 50),
    leak(T0 + 2.5 * H, 50), // 1.5 h: one missed heartbeat, not offline
    leak(T0 + 5 * H, 14), // 2.5 h: offline for 1.5 h; battery low
    leak(T0 + 6 * H, 13), // still low: no second event
    leak(T0 + 14 * H, 90), // 8 h: offline for 7 h, an event; a new battery
    leak(T0 + 15 * H, 10), // low again: a new episode
  ])
  t.same(events(out).map((e) => [e.type, (e.from - T0) / H, (e.to - T0) / H, e.evidence.peak]), [
    ['low_battery', 5, 5, 14], ['sensor_offline', 6, 14, 8 * 3600], ['low_battery', 15, 15, 10],
  ])
  t.match(closed(out)[0], { sensor_s: 15 * 3600, offline_s: (1.5 + 7) * 3600, low_battery: 1 })
  const twoKinds = run([reading('valve', T0, { valve_open: true }), reading('valve', T0 + 6 * H, { valve_open: true }), climate(T0, 20), climate(T0 + 15 * MIN, 20)])
  t.match(closed(twoKinds)[0], { offline_s: 0, sensor_s: 6 * 3600 + 15 * 60 }, 'each kind by its own heartbeat: a valve every 6 h is online')
  t.end()
})

t.test('features: rates per year over at least 30 days, shares, low-battery days in 30, mean valve response', (t) => {
  const day = (i: number, p: Partial<HomeDay> = {}): HomeDay => ({ ...emptyHomeDay(T0 + i * DAY_MS), climate_s: 86_400, sensor_s: 5 * 86_400, ...p })
  const now = (n: number) => T0 + n * DAY_MS
  const table: [string, HomeDay[], number, Record<string, number>][] = [
    ['a quiet home', [day(0), day(1)], 2, { leaks_per_year: 0, smoke_events_per_year: 0, freeze_hours_per_30d: 0, humidity_share: 0, offline_share: 0, low_battery_days: 0 }],
    ['one leak in 10 days counts as one in 30', [day(0, { leaks: 1, valve_n: 1, valve_s: 40 }), ...Array.from({ length: 9 }, (_, i) => day(i + 1))], 10, { leaks_per_year: 12.1667, valve_response_s: 40 }],
    ['mean background carbon monoxide', [day(0, { co_n: 24, co_ppm: 96 }), day(1, { co_n: 24, co_ppm: 0 })], 2, { co_ppm_mean: 2 }],
    ['two leaks in 73 days', Array.from({ length: 73 }, (_, i) => day(i, { leaks: i % 40 === 0 ? 1 : 0 })), 73, { leaks_per_year: 10 }],
    ['90 days kept', Array.from({ length: 120 }, (_, i) => day(i, { smokes: i < 30 ? 1 : 0, freeze_s: i % 2 ? 3600 : 0, humid_s: 8640, offline_s: 86.4, low_battery: i >= 100 ? 1 : 0 })), 120,
      { smoke_events_per_year: 0, freeze_hours_per_30d: 15, humidity_share: 0.1, offline_share: 0.0002, low_battery_days: 20 }],
  ]
  for (const [name, ds, n, want] of table) t.match(homeFeatures(cfg, ds, now(n)), want, name)
  t.notOk('valve_response_s' in homeFeatures(cfg, [day(0)], now(1)), 'no shut-off: no valve feature (the model takes its baseline)')
  t.notOk('co_ppm_mean' in homeFeatures(cfg, [day(0)], now(1)), 'no CO reading: no CO feature')
  t.end()
})

t.test('a day as an InfluxDB line and back', (t) => {
  const d = { ...emptyHomeDay(T0), leaks: 1, climate_s: 86_400, freeze_s: 1800.5, valve_n: 1, valve_s: 42 }
  const line = homeDayLine('pol-1', d)
  t.equal(line, `home_day,policy_id=pol-1 leaks=1,smokes=0,climate_s=86400,freeze_s=1800.5,humid_s=0,sensor_s=0,offline_s=0,low_battery=0,valve_n=1,valve_s=42,co_n=0,co_ppm=0 ${T0}`)
  const fields = Object.fromEntries(line.split(' ')[1]!.split(',').map((kv) => kv.split('=')).map(([k, v]) => [k!, Number(v)]))
  t.same(homeDaysFromSeries([{ name: 'home_day', columns: ['time', ...Object.keys(fields), 'policy_id'], values: [[T0, ...Object.values(fields), 'pol-1']] }]), [d])
  t.end()
})

t.test('marbles: a leak is sent in the frame of its reading; an idle policy\'s day is closed idleMs after its last reading', (t) => {
  const scheduler = new TestScheduler((actual, expected) => t.same(actual, expected))
  scheduler.run(({ cold, expectObservable }) => {
    const source = cold('c 4ms l 20s |', { c: climate(T0, 20), l: reading('leak', T0 + MIN, { leak_detected: true }) })
    const out = source.pipe(scoreHome(cfg, 10_000, undefined, scheduler), map((o) => (o.kind === 'day' ? `day ${o.day.leaks} leak` : `${o.event.type} urgent=${o.event.urgent}`)))
    expectObservable(out).toBe('5ms x 9999ms d 10000ms |', { x: 'leak urgent=true', d: 'day 1 leak' })
  })
  t.end()
})

/** A home's simulated readings through one accumulator, with what really happened. */
function simulate(persona: HomePersonaName, seed: number, opts: HomeOptions) {
  const acc = homeAccumulator(cfg, `${persona}-${seed}`)
  const truth: HomeEvent[] = []
  const out: PolicyOutput<HomeDay>[] = []
  let seq = 0
  for (const r of liveHome({ persona, seed }, opts, (e) => truth.push(e))) {
    out.push(...acc.push({ deviceId: `hub-${seed}`, policyId: `${persona}-${seed}`, kind: r.kind, subject: 'home', seq: seq++, ts: r.ts, receivedAt: r.ts, fields: r.body as Reading['fields'] }))
  }
  return { out: [...out, ...acc.flush()], truth }
}

t.test('edge-sim homes: the well-kept home scores above every riskier persona', async (t) => {
  const model = await loadModel(homeFrequency, fileURLToPath(new URL(`./models/${homeFrequency.file}`, import.meta.url)))
  const mean: Partial<Record<HomePersonaName, number>> = {}
  for (const persona of Object.keys(homePersonas) as HomePersonaName[]) {
    const runs = [1, 2, 3].map((seed) => simulate(persona, seed, { startTs: T0, days: 120 }).out)
    const scores = await scoreBatch(model, runs.map((o) => o.flatMap((x) => (x.kind === 'day' ? [x.input] : [])).at(-1)!))
    mean[persona] = scores.reduce((a, s) => a + s.value, 0) / scores.length
  }
  t.comment(Object.entries(mean).map(([p, s]) => `${p} (relativity ${homePersonas[p as HomePersonaName].relativity}): ${s.toFixed(1)}`).join(', '))
  for (const p of ['leaky-plumbing', 'freeze-prone', 'smoker'] as const) t.ok(mean['well-kept']! > mean[p]!, `well-kept scores above ${p}`)
})

t.test('edge-sim scenarios: the leak and the smoke alarm each make exactly one urgent event at their time; the valve\'s response is measured', (t) => {
  const leakAt = T0 + 3 * DAY_MS + 14 * H + 7 * MIN, smokeAt = T0 + 5 * DAY_MS + 19 * H
  const { out, truth } = simulate('well-kept', 2, { startTs: T0, days: 7, leakAt, smokeAt })
  t.same(truth.map((e) => [e.type, e.cause]), [['leak', 'scenario'], ['smoke', 'scenario']], 'the sim made only the scenario\'s leak and smoke')
  const es = events(out).filter((e) => e.type !== 'sensor_offline')
  t.same(es.filter((e) => e.urgent).map((e) => [e.type, e.from]), [['leak', leakAt], ['smoke', smokeAt]])
  const valve = es.find((e) => e.type === 'valve_shutoff')
  t.ok(valve && valve.from === leakAt && valve.evidence.response_s as number >= 20 && valve.evidence.response_s as number <= 90, `the valve shut ${valve?.evidence.response_s} s after the leak (the sim: 20–90 s)`)
  t.same(events(out).filter((e) => e.type === 'sensor_offline'), [], 'the hub never missed two heartbeats')
  t.end()
})

t.test('freeze warning (#24): while the pipes fall toward 3 °C, hours before the spell, not after it; once until they are well above again', (t) => {
  // From 8 °C down 0.5 °C an hour, then back up: at 4.5 °C the line reaches 3 °C in 3 h.
  const temps = [...Array.from({ length: 41 }, (_, i) => 8 - i * 0.125), ...Array.from({ length: 41 }, (_, i) => 3 + i * 0.25)]
  const es = events(run(temps.map((c, i) => climate(T0 + i * 15 * MIN, c))))
  const warning = es.filter((e) => e.type === 'freeze_warning')
  t.same(warning.map((e) => [e.urgent, (e.to - T0) / H, e.evidence.peak, e.evidence.duration_s / 3600, e.evidence.falling_c_per_h]), [[true, 7, 4.5, 3, -0.5]], 'one urgent warning at 4.5 °C, 3 h ahead, falling 0.5 °C/h')
  // A heated house's night setback: 20 → 16 °C within the hour, far from freezing.
  t.same(events(run(every15(T0, [[20, 50], [19, 50], [17.5, 50], [16, 50], [16, 50], [16, 50]]))), [], 'a setback far above freezing warns of nothing')
  // A drop that outran the readings: warned at the first reading below.
  t.same(events(run(every15(T0, [[6, 50], [6, 50], [6, 50], [1, 50]]))).filter((e) => e.type === 'freeze_warning').map((e) => e.evidence.peak), [1])
  t.end()
})

t.test('edge-sim: a freeze-prone home in January is warned of each freeze spell by its first reading below 3 °C, mostly ahead; a well-kept one never', (t) => {
  for (const seed of [1, 2, 3]) {
    const es = events(simulate('freeze-prone', seed, { startTs: T0, days: 30 }).out)
    const warnings = es.filter((e) => e.type === 'freeze_warning')
    const spells = es.filter((e) => e.type === 'freeze_risk')
    const lead_min = spells.map((s) => (s.from - Math.max(...warnings.filter((w) => w.to <= s.from).map((w) => w.to))) / MIN)
    t.ok(spells.length > 5 && lead_min.every((m) => m >= 0), `seed ${seed}: each of ${spells.length} freeze spells warned by its start (minutes ahead: ${lead_min.join(', ')})`)
    t.ok(lead_min.filter((m) => m > 0).length >= 0.75 * spells.length, 'at least three in four ahead of it')
    t.same(events(simulate('well-kept', seed, { startTs: T0, days: 30 }).out).filter((e) => e.type === 'freeze_warning'), [], `seed ${seed}: a well-kept home, none`)
  }
  t.end()
})

t.test('CO without smoke (#24): an urgent co_alarm at the first reading at 50 ppm or more, once an episode; a smoke alarm\'s CO is its own event', (t) => {
  const smoke = (min: number, smoke_detected: boolean, co_ppm: number) => reading('smoke', T0 + min * MIN, { smoke_detected, co_ppm })
  t.same(events(run([smoke(0, false, 2), smoke(5, false, 60), smoke(10, false, 120), smoke(15, false, 10), smoke(20, false, 55), smoke(25, true, 80)])).map((e) => [e.type, e.urgent, (e.from - T0) / MIN, e.evidence.peak]),
    [['co_alarm', true, 5, 60], ['co_alarm', true, 20, 55], ['smoke', true, 25, 1]])
  const coAt = T0 + 4 * DAY_MS + 7 * H
  const { out, truth } = simulate('well-kept', 2, { startTs: T0, days: 7, coAt })
  t.same(truth.map((e) => e.type), ['co'], 'the sim: a boiler fault, no smoke')
  const alarms = events(out).filter((e) => e.urgent)
  t.same(alarms.map((e) => e.type), ['co_alarm'], 'one urgent co_alarm, no smoke event')
  t.ok(alarms[0]!.from >= coAt && alarms[0]!.from <= coAt + 20 * MIN, `${(alarms[0]!.from - coAt) / MIN} min into it, at ${alarms[0]!.evidence.peak} ppm`)
  t.end()
})
