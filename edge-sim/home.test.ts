/** Statistics of the simulated homes: cadence, freezing pipes, leak and smoke rates, the scenarios. */
import t from 'tap'
import type { SensorReading } from './device-streams.ts'
import { liveHome, type HomeEvent, type HomeOptions } from './home.ts'
import { homePersonas, type HomePersonaName } from './personas.ts'

const DAY = 86_400_000
const start = Date.UTC(2026, 0, 1)
type Body = Record<string, number | boolean>
const body = (r: SensorReading) => r.body as Body

function live(persona: HomePersonaName, seed: number, opts: Partial<HomeOptions> = {}) {
  const events: HomeEvent[] = []
  const readings = [...liveHome({ persona, seed }, { startTs: start, days: 28, ...opts }, (e) => events.push(e))]
  return { readings, events }
}

t.test('every sensor reports at its cadence, in time order, and pairs its changes', async (t) => {
  const { readings } = live('well-kept', 1)
  t.ok(readings.every((r, i) => i === 0 || r.ts >= readings[i - 1]!.ts), 'time order')
  const climate = readings.filter((r) => r.kind === 'climate')
  t.equal(climate.length, 28 * 96, 'climate every 15 minutes')
  t.ok(climate.every((r, i) => i === 0 || r.ts - climate[i - 1]!.ts === 900_000))
  for (const kind of ['leak', 'smoke', 'contact']) {
    const heartbeats = readings.filter((r) => r.kind === kind && r.ts % 3_600_000 === 1_800_000)
    t.ok(heartbeats.length >= 28 * 24, `${kind}: a heartbeat every hour`)
  }
  t.ok(readings.filter((r) => r.kind === 'valve').length >= 28 * 4, 'valve state every 6 hours')
  const doors = readings.filter((r) => r.kind === 'contact' && r.ts % 3_600_000 !== 1_800_000).map((r) => body(r).open)
  t.ok(doors.length > 28 * 2 && doors.every((open, i) => open === (i % 2 === 0)), `${doors.length / 2} door openings, each closed again`)
  const battery = readings.filter((r) => r.kind === 'leak').map((r) => body(r).battery_pct as number)
  t.ok(battery.at(-1)! < battery[0]! && battery[0]! - battery.at(-1)! < 5, 'batteries run down slowly')
})

t.test('pipes freeze in a freeze-prone home in winter, never in a well-kept one', async (t) => {
  const temps = (persona: HomePersonaName, seed: number, startTs: number) =>
    [...liveHome({ persona, seed }, { startTs, days: 28 })].filter((r) => r.kind === 'climate').map((r) => body(r).temp_c as number)
  const winterProne = [1, 2, 3].flatMap((seed) => temps('freeze-prone', seed, start))
  const winterKept = [1, 2, 3].flatMap((seed) => temps('well-kept', seed, start))
  const summerProne = temps('freeze-prone', 1, Date.UTC(2026, 6, 1))
  const below2 = winterProne.filter((x) => x < 2).length / winterProne.length
  t.ok(below2 > 0.02, `freeze-prone: ${(below2 * 100).toFixed(1)}% of January below 2 °C at the pipes (min ${Math.min(...winterProne)})`)
  t.ok(Math.min(...winterKept) > 10, `well-kept: never below ${Math.min(...winterKept)} °C`)
  t.ok(Math.min(...summerProne) > 5, `freeze-prone in July: no lower than ${Math.min(...summerProne)} °C`)

  const frozen: HomeEvent[] = []
  for (let seed = 1; seed <= 6; seed++) frozen.push(...live('freeze-prone', seed).events.filter((e) => e.cause === 'frozen pipe'))
  t.ok(frozen.length > 0, `${frozen.length} burst pipes in 6 freeze-prone homes' Januaries`)
})

t.test('leaks and smoke alarms happen at the personas\' rates', async (t) => {
  // Eight homes each for a quarter (two home-years); counts are Poisson, checked within 4σ.
  const years = (8 * 91) / 365.25
  const count = (persona: HomePersonaName, type: HomeEvent['type']) => {
    let n = 0
    for (let seed = 1; seed <= 8; seed++) {
      const events: HomeEvent[] = []
      for (const _ of liveHome({ persona, seed }, { startTs: Date.UTC(2026, 3, 1), days: 91 }, (e) => events.push(e)));
      n += events.filter((e) => e.type === type && e.cause !== 'frozen pipe').length
    }
    return n
  }
  const seen: Record<string, number> = {}
  for (const [persona, type, perYear] of [
    ['leaky-plumbing', 'leak', homePersonas['leaky-plumbing'].leaksPerYear],
    ['well-kept', 'leak', homePersonas['well-kept'].leaksPerYear],
    ['smoker', 'smoke', homePersonas.smoker.smokeAlarmsPerYear],
    ['well-kept', 'smoke', homePersonas['well-kept'].smokeAlarmsPerYear],
  ] as const) {
    const expected = perYear * years
    const n = (seen[`${persona} ${type}`] = count(persona, type))
    t.ok(Math.abs(n - expected) <= 4 * Math.sqrt(expected) + 1, `${persona}: ${n} ${type} events in ${years.toFixed(1)} home-years (expected ${expected.toFixed(1)})`)
  }
  t.ok(seen['leaky-plumbing leak']! > 4 * seen['well-kept leak']! + 4, 'leaky plumbing leaks far more than a well-kept home')
  t.ok(seen['smoker smoke']! > 4 * seen['well-kept smoke']! + 4, 'a smoker\'s alarm sounds far more often')
})

t.test('a water leak: the probe gets wet, the valve shuts, the probe dries, the valve reopens', async (t) => {
  const leakAt = start + 3 * DAY + 10 * 3_600_000
  const { readings, events } = live('well-kept', 4, { leakAt })
  const scenario = events.find((e) => e.cause === 'scenario')!
  t.equal(scenario.ts, leakAt)
  const after = readings.filter((r) => r.ts >= leakAt && (r.kind === 'leak' || r.kind === 'valve'))
  const wet = after.find((r) => r.kind === 'leak')!
  t.equal(wet.ts, leakAt)
  t.equal(body(wet).leak_detected, true)
  const shut = after.find((r) => r.kind === 'valve' && body(r).valve_open === false)!
  t.ok(shut.ts - leakAt >= 20_000 && shut.ts - leakAt <= 90_000, `valve shut ${(shut.ts - leakAt) / 1000} s after`)
  // The reading at the scenario's end, found by time, so that the checks below can fail.
  const dry = after.find((r) => r.kind === 'leak' && r.ts === scenario.endTs)!
  t.equal(body(dry).leak_detected, false, 'dry at the scenario\'s end')
  t.ok(dry.ts - leakAt >= 10 * 60_000 && dry.ts - leakAt <= 40 * 60_000, 'dry 10–40 minutes later')
  const heartbeats = after.filter((r) => r.kind === 'leak' && r.ts > leakAt && r.ts < dry.ts)
  t.ok(heartbeats.every((r) => body(r).leak_detected === true), 'heartbeats during the leak say wet')
  const reopened = after.find((r) => r.kind === 'valve' && body(r).valve_open === true && r.ts > shut.ts)!
  t.ok(reopened.ts - leakAt >= 2 * 3_600_000 && reopened.ts - leakAt <= 12 * 3_600_000, 'valve reopened 2–12 h later')
})

t.test('a smoke alarm sounds, with CO, and stops', async (t) => {
  const smokeAt = start + 5 * DAY + 19 * 3_600_000
  const { readings } = live('well-kept', 4, { smokeAt })
  const alarms = readings.filter((r) => r.kind === 'smoke' && r.ts >= smokeAt && r.ts < smokeAt + 3_600_000)
  t.equal(body(alarms[0]!).smoke_detected, true)
  t.equal(alarms[0]!.ts, smokeAt)
  t.ok((body(alarms[0]!).co_ppm as number) >= 5, 'with carbon monoxide')
  const clear = alarms.find((r) => body(r).smoke_detected === false)!
  t.ok(clear.ts - smokeAt >= 2 * 60_000 && clear.ts - smokeAt <= 10 * 60_000, `quiet again after ${((clear.ts - smokeAt) / 60_000).toFixed(1)} min`)
})

t.test('the same seed, the same home; another seed, another', async (t) => {
  t.same(live('smoker', 2).readings, live('smoker', 2).readings)
  t.not(JSON.stringify(live('smoker', 2).readings), JSON.stringify(live('smoker', 3).readings))
})

t.test('homes with a commanded valve, or none, have the same leaks; the command stops the water, and the litres saved show (#24)', async (t) => {
  const opts = { persona: 'leaky-plumbing' as const, seed: 7, days: 120 }
  const run = (valve: HomeOptions['valve']) => live(opts.persona, opts.seed, { days: opts.days, valve, commandDelay_s: 10 })
  const [self, commanded, none] = [run('self'), run('command'), run('none')]
  const leaks = (r: typeof self) => r.events.filter((e) => e.type === 'leak')
  t.ok(leaks(none).length >= 2, `${leaks(none).length} leaks in ${opts.days} days`)
  t.same(leaks(commanded).map((e) => e.ts), leaks(none).map((e) => e.ts), 'the same leaks at the same times')
  t.same(self.readings.filter((r) => r.kind === 'climate'), none.readings.filter((r) => r.kind === 'climate'), 'and the same other readings')
  t.ok(leaks(commanded).every((e) => e.stoppedTs! - e.ts === 10_000), 'on command, the water stops when the valve closes')
  t.notOk(none.readings.some((r) => r.kind === 'valve' && body(r).valve_open === false), 'without a shut-off the valve never closes')
  t.ok(leaks(none).every((e) => e.stoppedTs! - e.ts >= 2 * 3_600_000), '…and the water runs until someone comes, 2 h or more')
  const litres = (r: typeof self) => leaks(r).reduce((a, e) => a + e.litres!, 0)
  t.ok(litres(commanded) * 100 < litres(none), `litres: ${litres(commanded)} with the command, ${litres(none)} without`)
  const wet_min = (r: typeof self) => leaks(r).reduce((a, e) => a + (e.endTs - e.ts) / 60_000, 0)
  t.ok(wet_min(commanded) < wet_min(none), `wet minutes: ${Math.round(wet_min(commanded))} with the command, ${Math.round(wet_min(none))} without`)
})
