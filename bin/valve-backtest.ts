/**
 * The valve backtest (#24 item 5): a simulated portfolio of homes, each lived twice over the same
 * days with the same leaks (edge-sim/home.ts draws them apart from the valve), once with no
 * shut-off (the water runs until someone comes, 2–12 h) and once with ubiq's close_valve (the valve
 * shuts `commandDelay_s` after the probe gets wet). The commanded homes' readings go through
 * scoring's own home accumulator: a leak counts as stopped only if it raised the urgent `leak`
 * event that sends close_valve (bin/pipeline.ts) and its valve's report gave a `valve_shutoff`, or
 * the valve reported itself still shut by an earlier leak's command; any other leak runs as
 * without the command.
 *
 * Claims: edge-sim's ground truth (edge-sim/claims.ts) draws home claims from a persona rate, not
 * from leaks, so it cannot say which leak a valve saves. A stated damage model instead: a leak is a
 * claim when more than `claimLitres` ran (an assumption, shown at several thresholds), and each
 * claim costs Triple-I's average water damage and freezing claim, USD 11,650 (Insurance
 * Information Institute, ISO/Verisk data 2016–2020, when about 1 in 60 insured homes had such a
 * claim a year).
 *
 * `npm run backtest:valves [-- --homes N --days D --delay S]` prints the figures.
 */
import { fileURLToPath } from 'node:url'
import { homePersonas, liveHome, type HomeEvent, type HomeOptions } from '../edge-sim/index.ts'
import type { Reading } from '../ingest/index.ts'
import { defaultHomeConfig, homeAccumulator } from '../scoring/index.ts'

/** Triple-I's average water damage and freezing claim, USD (ISO/Verisk, 2016–2020). */
export const WATER_CLAIM_USD = 11_650

export interface ValveBacktestOptions {
  /** Homes, the personas in turn (well-kept, leaky plumbing, freeze-prone, smoker). */
  homes: number
  days: number
  startTs: number
  /** From the probe getting wet to the valve shut on ubiq's command, s. */
  commandDelay_s: number
  /** The damage model's thresholds: a leak of more than this many litres is a claim. */
  claimLitres: readonly number[]
  seed?: number
}

/** One arm of the comparison, summed over the portfolio. */
export interface ValveArm {
  leaks: number
  /** Leaks the valve stopped on command (0 without). */
  stopped: number
  litres: number
  /** Minutes the water ran. */
  running_min: number
  /** Claims at each of `claimLitres`, in order. */
  claims: number[]
}

export interface ValveBacktest {
  options: ValveBacktestOptions
  without: ValveArm
  with: ValveArm & { /** The valve_shutoff events' response, leak to closed, s: median and largest. */ response_s: { median: number; max: number } }
}

const emptyArm = (n: number): ValveArm => ({ leaks: 0, stopped: 0, litres: 0, running_min: 0, claims: Array(n).fill(0) })

/** Runs the backtest; deterministic for the same options. */
export function valveBacktest(opts: ValveBacktestOptions): ValveBacktest {
  const personas = Object.values(homePersonas)
  const without = emptyArm(opts.claimLitres.length)
  const commanded = emptyArm(opts.claimLitres.length)
  const responses: number[] = []
  const count = (arm: ValveArm, e: HomeEvent, stopped: boolean) => {
    arm.leaks++
    if (stopped) arm.stopped++
    arm.litres += e.litres!
    arm.running_min += (e.stoppedTs! - e.ts) / 60_000
    opts.claimLitres.forEach((l, i) => (arm.claims[i]! += e.litres! > l ? 1 : 0))
  }
  for (let i = 0; i < opts.homes; i++) {
    const home = { persona: personas[i % personas.length]!.name, seed: (opts.seed ?? 1) * 100_000 + i }
    const base: HomeOptions = { startTs: opts.startTs, days: opts.days }
    const leaksOf = (valve: HomeOptions['valve'], onReading: (r: Reading) => void = () => {}) => {
      const leaks: HomeEvent[] = []
      let seq = 0
      for (const r of liveHome(home, { ...base, valve, commandDelay_s: opts.commandDelay_s }, (e) => e.type === 'leak' && leaks.push(e))) {
        onReading({ deviceId: 'home', policyId: 'p', kind: r.kind, subject: 'home', seq: seq++, ts: r.ts, receivedAt: r.ts, fields: r.body as Reading['fields'] })
      }
      return leaks
    }
    const open = leaksOf('none')
    // Scoring's accumulator over the commanded home: which leaks raised close_valve, and were shut.
    const acc = homeAccumulator(defaultHomeConfig, 'p')
    const raised = new Set<number>(), shut = new Set<number>(), alreadyShut = new Set<number>()
    let valveOpen = true
    const shutLeaks = leaksOf('command', (r) => {
      if (r.kind === 'valve') valveOpen = r.fields.valve_open === true
      if (r.kind === 'leak' && r.fields.leak_detected === true && !valveOpen) alreadyShut.add(r.ts)
      for (const o of acc.push(r)) {
        if (o.kind !== 'event') continue
        if (o.event.type === 'leak' && o.event.urgent) raised.add(o.event.from)
        if (o.event.type === 'valve_shutoff') (shut.add(o.event.from), responses.push(o.event.evidence.response_s as number))
      }
    })
    if (shutLeaks.length !== open.length) throw new Error(`home ${i}: ${shutLeaks.length} leaks with the valve, ${open.length} without: the simulation should give the same`)
    open.forEach((e, k) => {
      count(without, e, false)
      // Shut on its own close_valve, or still shut by an earlier leak's (a cold spell bursts pipes again before the plumber reopens it).
      const stopped = (raised.has(e.ts) && shut.has(e.ts)) || alreadyShut.has(e.ts)
      count(commanded, stopped ? shutLeaks[k]! : e, stopped)
    })
  }
  responses.sort((a, b) => a - b)
  return { options: opts, without, with: { ...commanded, response_s: { median: responses[Math.floor(responses.length / 2)] ?? 0, max: responses.at(-1) ?? 0 } } }
}

/** Triple-I: about 1 in 60 insured homes has a water damage or freezing claim a year (2016–2020). */
export const WATER_CLAIMS_PER_HOME_YEAR = 1 / 60

/**
 * The figures in words, as `npm run backtest:valves` prints them. The simulated homes leak far more
 * often than insured homes claim (leaky plumbing 10 leaks a year, frozen pipes in a cold spell), so
 * claims are given per leak, and projected on Triple-I's frequency: an upper bound, as if every
 * water damage and freezing claim were a leak a shut-off valve can stop.
 */
export function valveReport(b: ValveBacktest): string {
  const { homes, days, commandDelay_s, claimLitres } = b.options
  const years = (homes * days) / 365.25
  const n = (x: number) => Math.round(x).toLocaleString('en-US')
  const share = (k: number, of: number) => `${Math.round((100 * k) / Math.max(1, of))}%`
  const rows = [
    ['leaks', n(b.without.leaks), n(b.with.leaks)],
    ['stopped by close_valve', '–', `${n(b.with.stopped)} (${share(b.with.stopped, b.with.leaks)})`],
    ['water run, litres', n(b.without.litres), n(b.with.litres)],
    ['water running, minutes', n(b.without.running_min), n(b.with.running_min)],
    ...claimLitres.map((l, i) => [`leaks over ${n(l)} L (claims)`, `${n(b.without.claims[i]!)} (${share(b.without.claims[i]!, b.without.leaks)})`, `${n(b.with.claims[i]!)} (${share(b.with.claims[i]!, b.with.leaks)})`]),
  ]
  const table = ['| | without | with close_valve |', '|---|---|---|', ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n')
  const avoided = claimLitres.map((l, i) => {
    const w = b.without.claims[i]!, k = w - b.with.claims[i]!
    const perHome = WATER_CLAIMS_PER_HOME_YEAR * (k / Math.max(1, w)) * WATER_CLAIM_USD
    return `- over ${n(l)} L: ${n(k)} of ${n(w)} claims avoided (${share(k, w)}); on Triple-I's 1 in 60 homes a year at USD ${n(WATER_CLAIM_USD)}, at most USD ${n(perHome)} a home-year`
  }).join('\n')
  return `Valve backtest: ${homes} simulated homes × ${days} days (${years.toFixed(1)} home-years, ${(b.without.leaks / years).toFixed(1)} leaks a home-year), personas in turn; close_valve ${commandDelay_s} s after the probe gets wet.
${table}

Saved: ${n(b.without.litres - b.with.litres)} litres (${n((b.without.litres - b.with.litres) / Math.max(1, b.without.leaks))} a leak), ${n(b.without.running_min - b.with.running_min)} minutes of running water (${n((b.without.running_min - b.with.running_min) / Math.max(1, b.without.leaks))} a leak).
valve_shutoff as scoring measured it: median ${b.with.response_s.median.toFixed(1)} s, largest ${b.with.response_s.max.toFixed(1)} s from leak to closed.
Claims avoided (damage model: a leak over the threshold is a claim):
${avoided}
`
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name: string, fallback: number) => {
    const i = process.argv.indexOf(`--${name}`)
    const v = i < 0 ? fallback : Number(process.argv[i + 1])
    if (!(v > 0)) throw new Error(`--${name} needs a number above 0`)
    return v
  }
  const days = arg('days', 365)
  const start = Date.parse('2026-01-01T00:00:00Z')
  process.stdout.write(valveReport(valveBacktest({ homes: arg('homes', 48), days, startTs: start, commandDelay_s: arg('delay', 10), claimLitres: [10, 100, 1000] })))
}
