/**
 * A smart-home hub in a simulated home (issue #4: "well-kept, leaky plumbing, freeze-prone,
 * smoker"; scenarios "water leak, smoke alarm"). Its sensors send on change and as an hourly
 * heartbeat (docs/device-contract.md): climate at the pipes every 15 minutes, the front door's
 * contact, the leak probe, the smoke/CO alarm and the main water valve, which shuts itself when
 * the probe gets wet.
 *
 * The pipes' temperature is the outdoor temperature plus the share of the heating's lift that
 * the insulation keeps there: a freeze-prone house in a cold spell drops below 2 °C, and that is
 * when its pipes burst. Events are generated per day, then sent in time order; an event that
 * outlasts its day (a leak at midnight) is carried over to the next.
 */
import { between, deriveSeed, normal, poisson, seededRandom } from './random.ts'
import { homePersonas, type HomePersona, type HomePersonaName } from './personas.ts'
import { DAY_MS } from './trips.ts'
import type { SensorReading } from './device-streams.ts'
import type { CommandMessage } from '../ingest/device-contract.ts'

/** A simulated home: its persona and seed. */
export interface Household {
  persona: HomePersonaName
  seed: number
}

/** The span to simulate and the leak and smoke scenarios. */
export interface HomeOptions {
  startTs: number
  days: number
  /** Scenario: a water leak starting at this time. */
  leakAt?: number
  /** Scenario: a smoke alarm at this time. */
  smokeAt?: number
  /** Scenario (#24): carbon monoxide without smoke from this time, a faulty boiler: 60–150 ppm for an hour, reported every 5 minutes. */
  coAt?: number
  /**
   * How the main valve answers a leak (#24): `self`, a shut-off kit that closes it on its own
   * within 20–90 s (the default); `command`, when ubiq's close_valve arrives, `commandDelay_s`
   * after the probe gets wet; `none`, no shut-off: the water runs until someone comes, 2–12 h
   * later. The same home has the same leaks whichever it is, so the water saved can be compared.
   */
  valve?: 'self' | 'command' | 'none'
  /** With `valve: 'command'`: from the probe getting wet to the valve closing on ubiq's command, s (default 10). */
  commandDelay_s?: number
}

/** A leak or smoke alarm, as it happened. */
export interface HomeEvent {
  type: 'leak' | 'smoke' | 'co'
  cause: 'wear' | 'frozen pipe' | 'smoking' | 'scenario'
  ts: number
  endTs: number
  /** A leak: when the water stopped running (the valve shut, or someone came), and how much ran, L. */
  stoppedTs?: number
  litres?: number
}

const HOUR_MS = 3_600_000
const MIN_MS = 60_000

/** What happens in the home at a time: a state change, or a sensor reporting. */
type Action = { ts: number; order: number; run: (state: HomeState) => SensorReading | undefined }

interface HomeState {
  leak: boolean
  valveOpen: boolean
  smoke: boolean
  open: boolean
  /** Carbon monoxide of a CO scenario while it lasts, ppm (otherwise the home's background). */
  co_ppm?: number
}

/** The hub's readings in time order from `startTs` for `days` days; `onEvent` gets each leak and smoke alarm. */
export function* liveHome(home: Household, opts: HomeOptions, onEvent?: (e: HomeEvent) => void): Generator<SensorReading> {
  const p = homePersonas[home.persona]
  const rand = seededRandom(deriveSeed(home.seed, 0x40e))
  const end = opts.startTs + opts.days * DAY_MS
  const state: HomeState = { leak: false, valveOpen: true, smoke: false, open: false }
  const battery0 = { leak: between(rand, 60, 100), smoke: between(rand, 60, 100), climate: between(rand, 60, 100), contact: between(rand, 60, 100) }
  // Sensors lose about 3 % a month.
  const battery = (sensor: keyof typeof battery0, ts: number) => Math.round(Math.max(5, battery0[sensor] - ((ts - opts.startTs) / DAY_MS) * 0.1))
  let pending: Action[] = []
  let order = 0
  const at = (ts: number, run: Action['run']) => pending.push({ ts: Math.round(ts), order: order++, run })

  /** At `ts`, the state changes and the sensor that saw it reports. */
  const change = (ts: number, update: Partial<HomeState>, reading: (ts: number) => SensorReading) =>
    at(ts, (s) => {
      Object.assign(s, update)
      return reading(Math.round(ts))
    })
  const valve = opts.valve ?? 'self'
  const leak = (ts: number, cause: HomeEvent['cause']) => {
    // The same draws whatever the valve does: the home's other readings stay the same.
    const drying = between(rand, 10, 40) * MIN_MS
    const selfShut = ts + between(rand, 20, 90) * 1000
    const plumber = ts + between(rand, 2, 12) * HOUR_MS
    // A leak of wear seeps, a burst pipe gushes (L/min); without a shut-off it runs until someone comes.
    const leakRand = seededRandom(deriveSeed(home.seed, 0xf10, Math.round(ts)))
    const flow_lpm = cause === 'frozen pipe' ? between(leakRand, 5, 15) : between(leakRand, 0.5, 5)
    const stopTs = valve === 'self' ? selfShut : valve === 'command' ? ts + (opts.commandDelay_s ?? 10) * 1000 : plumber
    // The probe dries a while after the water stops (with the valve's own kit, within 10–40 min of the start, as before #24).
    const dryTs = valve === 'self' ? ts + drying : stopTs + drying
    change(ts, { leak: true }, (ts) => ({ kind: 'leak', ts, body: { leak_detected: true, battery_pct: battery('leak', ts) } }))
    // The valve shuts (on its own, or on ubiq's command) and stops the water…
    if (valve !== 'none') change(stopTs, { valveOpen: false }, (ts) => ({ kind: 'valve', ts, body: { valve_open: false } }))
    change(dryTs, { leak: false }, (ts) => ({ kind: 'leak', ts, body: { leak_detected: false, battery_pct: battery('leak', ts) } }))
    // …and is opened again once the plumber has been.
    if (valve !== 'none') change(plumber, { valveOpen: true }, (ts) => ({ kind: 'valve', ts, body: { valve_open: true } }))
    onEvent?.({ type: 'leak', cause, ts: Math.round(ts), endTs: Math.round(dryTs), stoppedTs: Math.round(stopTs), litres: Math.round(flow_lpm * (stopTs - ts) / MIN_MS) })
  }
  const smoke = (ts: number, cause: HomeEvent['cause']) => {
    const clearTs = ts + between(rand, 2, 10) * MIN_MS
    const co_ppm = r1(between(rand, 5, 40))
    change(ts, { smoke: true }, (ts) => ({ kind: 'smoke', ts, body: { smoke_detected: true, co_ppm, battery_pct: battery('smoke', ts) } }))
    change(clearTs, { smoke: false }, (ts) => ({ kind: 'smoke', ts, body: { smoke_detected: false, co_ppm: r1(p.co_ppm), battery_pct: battery('smoke', ts) } }))
    onEvent?.({ type: 'smoke', cause, ts: Math.round(ts), endTs: Math.round(clearTs) })
  }
  const carbonMonoxide = (ts: number) => {
    const coRand = seededRandom(deriveSeed(home.seed, 0xc0, Math.round(ts)))
    const peak = between(coRand, 60, 150)
    // It builds up over the first quarter hour, holds, and clears when the boiler is switched off.
    for (let m = 0; m <= 60; m += 5) {
      at(ts + m * MIN_MS, (s) => {
        s.co_ppm = m === 60 ? undefined : r1(peak * Math.min(1, (m + 5) / 20))
        return { kind: 'smoke', ts: Math.round(ts + m * MIN_MS), body: { smoke_detected: s.smoke, co_ppm: s.co_ppm ?? r1(p.co_ppm), battery_pct: battery('smoke', ts) } }
      })
    }
    onEvent?.({ type: 'co', cause: 'scenario', ts: Math.round(ts), endTs: Math.round(ts + 60 * MIN_MS) })
  }
  const door = (ts: number) => {
    change(ts, { open: true }, (ts) => ({ kind: 'contact', ts, body: { open: true, battery_pct: battery('contact', ts) } }))
    change(ts + between(rand, 10, 60) * 1000, { open: false }, (ts) => ({ kind: 'contact', ts, body: { open: false, battery_pct: battery('contact', ts) } }))
  }

  for (let day = Math.floor(opts.startTs / DAY_MS); day * DAY_MS < end; day++) {
    const d0 = day * DAY_MS
    const weather = normal(rand, 0, 3.5) // this day's departure from the season, °C
    for (let ts = d0; ts < d0 + DAY_MS; ts += 15 * MIN_MS) {
      const pipes = pipeTemp_c(p, ts, weather)
      at(ts, () => ({ kind: 'climate', ts, body: { temp_c: r1(pipes + normal(rand, 0, 0.2)), humidity_pct: r1(p.humidity_pct + normal(rand, 0, 3)), battery_pct: battery('climate', ts) } }))
      if (pipes < 2 && rand() < p.freezeLeak) leak(ts + rand() * 15 * MIN_MS, 'frozen pipe')
    }
    for (let h = 0; h < 24; h++) {
      const ts = d0 + h * HOUR_MS + 30 * MIN_MS // heartbeats at half past, away from the climate readings
      at(ts, (s) => ({ kind: 'leak', ts, body: { leak_detected: s.leak, battery_pct: battery('leak', ts) } }))
      at(ts, (s) => {
        const background = r1(Math.max(0, p.co_ppm + normal(rand, 0, 0.5))) // drawn whatever the CO, so the other readings stay the same
        return { kind: 'smoke', ts, body: { smoke_detected: s.smoke, co_ppm: s.co_ppm ?? background, battery_pct: battery('smoke', ts) } }
      })
      at(ts, (s) => ({ kind: 'contact', ts, body: { open: s.open, battery_pct: battery('contact', ts) } }))
      if (h % 6 === 0) at(ts, (s) => ({ kind: 'valve', ts, body: { valve_open: s.valveOpen } }))
    }
    // Out in the morning, back in the evening, and a few more comings and goings.
    const weekday = new Date(d0).getUTCDay() % 6 !== 0
    if (weekday) [7.8, 18.2].forEach((h) => door(d0 + (h + normal(rand, 0, 0.4)) * HOUR_MS))
    for (let i = Math.floor(between(rand, 1, 4)); i > 0; i--) door(d0 + between(rand, 8, 22) * HOUR_MS)
    for (let i = poisson(rand, p.leaksPerYear / 365); i > 0; i--) leak(d0 + rand() * DAY_MS, 'wear')
    for (let i = poisson(rand, p.smokeAlarmsPerYear / 365); i > 0; i--) smoke(d0 + between(rand, 7, 23.5) * HOUR_MS, 'smoking')
    if (opts.leakAt !== undefined && opts.leakAt >= d0 && opts.leakAt < d0 + DAY_MS) leak(opts.leakAt, 'scenario')
    if (opts.smokeAt !== undefined && opts.smokeAt >= d0 && opts.smokeAt < d0 + DAY_MS) smoke(opts.smokeAt, 'scenario')
    if (opts.coAt !== undefined && opts.coAt >= d0 && opts.coAt < d0 + DAY_MS) carbonMonoxide(opts.coAt)

    // Send what happened today, in time order; carry the rest.
    pending.sort((a, b) => a.ts - b.ts || a.order - b.order)
    const cut = pending.findIndex((a) => a.ts >= d0 + DAY_MS)
    const today = cut < 0 ? pending : pending.slice(0, cut)
    pending = cut < 0 ? [] : pending.slice(cut)
    for (const action of today) {
      const reading = action.run(state)
      if (reading && reading.ts >= opts.startTs && reading.ts < end) yield reading
    }
  }
}

/**
 * What a simulated hub answers to a command on `ubiq/v1/cmd/{deviceId}/{command}` received at
 * `now` (#24), as the device contract asks: past its expiry, an `expired` acknowledgement and
 * nothing done; close_valve shuts the valve (the water stops), is acknowledged `done`, and the
 * valve reports itself closed; a command it does not know is refused.
 */
export function obeyCommand(command: Pick<CommandMessage, 'id' | 'command' | 'expiresAt'>, now: number): SensorReading[] {
  if (now > command.expiresAt) return [{ kind: 'ack', ts: now, body: { id: command.id, status: 'expired' } }]
  if (command.command !== 'close_valve') return [{ kind: 'ack', ts: now, body: { id: command.id, status: 'refused', detail: `no ${command.command} here` } }]
  return [{ kind: 'ack', ts: now, body: { id: command.id, status: 'done' } }, { kind: 'valve', ts: now + 1, body: { valve_open: false } }]
}

/**
 * Temperature at the pipes: outdoors (a season coldest in mid-January, a day coldest at 05:00,
 * and the day's weather) plus the insulation's share of the heating's lift (20 °C by day, 16 at night).
 */
export function pipeTemp_c(p: HomePersona, ts: number, weather: number): number {
  const dayOfYear = (ts % (365.25 * DAY_MS)) / DAY_MS
  const hour = (ts % DAY_MS) / HOUR_MS
  const outdoor = 11 - 7 * Math.cos((2 * Math.PI * (dayOfYear - 15)) / 365.25) - 4 * Math.cos((2 * Math.PI * (hour - 5)) / 24) + weather
  const setpoint = hour >= 6.5 && hour < 23 ? 20 : 16
  return outdoor + p.insulation * (setpoint - outdoor)
}

const r1 = (x: number) => Math.round(x * 10) / 10
