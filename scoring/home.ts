/**
 * Home features and events from a policy's smart-home hub (issue #5, "Health and home"): leaks and
 * smoke (urgent, one event per episode, sent with the reading that starts it), freeze risk and
 * humidity exposure from the climate sensor, sensor health (low battery, offline time: gaps longer
 * than a sensor's heartbeat), how fast the main valve shuts after a leak, and the background level
 * of carbon monoxide at the smoke/CO alarm (indoor smoking, a badly vented boiler).
 *
 * Same shape as health.ts: pure and event-time, one open day and at most `keepDays` closed days of
 * sums per policy, stored as InfluxDB `home_day`. After a restart the open day is rebuilt by
 * replaying its stored readings (health.ts `DayHistory`), and with it the sensors' last readings;
 * a sensor last heard on an earlier day starts afresh, so a leak still wet across midnight and a
 * restart is reported again.
 */
import type { Observable, OperatorFunction, SchedulerLike } from 'rxjs'
import type { Reading, Series } from '../ingest/index.ts'
import { policyEvent, type DetectedEvidence, type HomeEventType } from './events.ts'
import { DAY_MS, dayBook, dayLine, daysFromSeries, finite, perPolicy, sum, type DayHistory, type PolicyAccumulator, type PolicyOutput } from './health.ts'

/** Thresholds and windows of the home features and events. */
export interface HomeConfig {
  /** Freeze risk below this at the pipes, °C: water freezes at 0, and colder spots along a pipe than at the sensor leave a margin. */
  freeze_c: number
  /** A `freeze_risk` event for a spell below `freeze_c` at least this long, h. */
  freezeEvent_h: number
  /**
   * A `freeze_warning` (urgent, #24) while the pipes are still above `freeze_c` but within
   * `freezeNear_c` of it and falling toward it, to reach it within `freezeLead_h` at the rate of the
   * last `freezeTrend_h` (a least-squares line through its readings): time to heat the house or
   * drain the pipes, where `freeze_risk` comes only once the spell is over. A drop that outran the
   * readings warns at the first reading below. Again only once the pipes have been `freezeRearm_c`
   * above `freeze_c`. (The band keeps a heated house's night setback, 20 → 16 °C in minutes, from
   * warning: a trend through sensor noise only means something near the threshold.)
   */
  freezeLead_h: number
  freezeTrend_h: number
  freezeNear_c: number
  freezeRearm_c: number
  /**
   * A `co_alarm` (urgent, #24) when the smoke/CO alarm reads at least this much carbon monoxide
   * without smoke, ppm: a faulty boiler or a generator indoors kills without a fire. 50 ppm is where
   * EN 50291 alarms must sound within 60–90 min and UL 2034 within 4 h; the WHO's 8-hour guideline
   * is about 9 ppm. Again only once the level has dropped below it.
   */
  coAlarm_ppm: number
  /** Humidity exposure above this, % RH: mould grows on surfaces held above 70–80% (WHO damp and mould guidelines). */
  humid_pct: number
  /** A `humidity_exposure` event for a spell above `humid_pct` at least this long, h. */
  humidEvent_h: number
  /** Climate readings further apart than this are not integrated (the time between is unknown), s. */
  maxClimateGap_s: number
  /** Battery below this is low, % (most sensors warn at 10–20%). */
  lowBattery_pct: number
  /** Each kind's heartbeat, s (docs/device-contract.md; the hub sends climate every 15 min, the others hourly, the valve every 6 h); unlisted kinds: `heartbeat_s.default`. */
  heartbeat_s: Readonly<Record<string, number>> & { default: number }
  /** A sensor is offline when a gap exceeds this many heartbeats (one missed heartbeat is radio noise); the excess over one heartbeat counts. */
  offlineAfter: number
  /** A `sensor_offline` event for a gap at least this long, h (sent when the sensor is back). */
  offlineEvent_h: number
  /** The valve shut-off the evidence compares against, s: within a minute limits the water to what a pipe spills in that time. */
  valveTarget_s: number
  /** Closed days kept, and the short window (low-battery days), days. */
  keepDays: number
  shortDays: number
  /** Rates per year and per 30 days use at least this many days, so one early leak is not annualised from a few days. */
  minDays: number
}

export const defaultHomeConfig: HomeConfig = {
  freeze_c: 3,
  freezeEvent_h: 2,
  freezeLead_h: 3,
  freezeTrend_h: 2,
  freezeNear_c: 3,
  freezeRearm_c: 3,
  coAlarm_ppm: 50,
  humid_pct: 70,
  humidEvent_h: 24,
  maxClimateGap_s: 7200,
  lowBattery_pct: 15,
  heartbeat_s: { climate: 900, leak: 3600, smoke: 3600, contact: 3600, valve: 21_600, default: 3600 },
  offlineAfter: 2,
  offlineEvent_h: 6,
  valveTarget_s: 60,
  keepDays: 90,
  shortDays: 30,
  minDays: 30,
}

/** A policy's home on one UTC day: counts and seconds, so a day can be reopened and added to. Stored as InfluxDB `home_day`. */
export interface HomeDay {
  /** Start of the UTC day, ms. */
  day_ms: number
  /** Leak and smoke episodes that started this day. */
  leaks: number
  smokes: number
  /** Time covered by climate readings, and the part of it below `freeze_c` and above `humid_pct`, s. */
  climate_s: number
  freeze_s: number
  humid_s: number
  /** Time between a sensor's readings, summed over sensors, and the part of it offline, s. */
  sensor_s: number
  offline_s: number
  /** 1 when a sensor reported a low battery this day. */
  low_battery: number
  /** Valve shut-offs after a leak, and their response times summed, s. */
  valve_n: number
  valve_s: number
  /** Carbon monoxide readings of the smoke/CO alarm outside alarms, and their sum, ppm. */
  co_n: number
  co_ppm: number
}

/** A day with nothing in it yet. */
export const emptyHomeDay = (day_ms: number): HomeDay => ({ day_ms, leaks: 0, smokes: 0, climate_s: 0, freeze_s: 0, humid_s: 0, sensor_s: 0, offline_s: 0, low_battery: 0, valve_n: 0, valve_s: 0, co_n: 0, co_ppm: 0 })
/** A closed day as an InfluxDB line (measurement `home_day`, tag `policy_id`, at the day's start). */
export const homeDayLine = (policyId: string, d: HomeDay) => dayLine('home_day', policyId, d)
/** Stored days back from `SELECT * FROM home_day WHERE policy_id = …` (epoch ms). */
export const homeDaysFromSeries = (series: readonly Series[]) => daysFromSeries(series, emptyHomeDay)

/** Home features at `now` (ms) from the days before it. */
export function homeFeatures(cfg: HomeConfig, days: readonly HomeDay[], now: number): Record<string, number> {
  const kept = days.filter((d) => d.day_ms < now && d.day_ms >= now - cfg.keepDays * DAY_MS)
  const total = (k: keyof HomeDay) => sum(kept.map((d) => d[k]))
  const span = Math.max(kept.length, cfg.minDays)
  const climate_s = total('climate_s'), sensor_s = total('sensor_s'), valve_n = total('valve_n'), co_n = total('co_n')
  return finite({
    leaks_per_year: (total('leaks') * 365) / span,
    smoke_events_per_year: (total('smokes') * 365) / span,
    freeze_hours_per_30d: (total('freeze_s') / 3600) * (30 / span),
    humidity_share: climate_s > 0 ? total('humid_s') / climate_s : undefined,
    offline_share: sensor_s > 0 ? total('offline_s') / sensor_s : undefined,
    low_battery_days: sum(kept.filter((d) => d.day_ms >= now - cfg.shortDays * DAY_MS).map((d) => d.low_battery)),
    valve_response_s: valve_n > 0 ? total('valve_s') / valve_n : undefined,
    co_ppm_mean: co_n > 0 ? total('co_ppm') / co_n : undefined,
  })
}

/** What the hub last said through one sensor (device and kind). */
interface Sensor {
  lastTs: number
  /** Leak or smoke detected; for the valve, shut. */
  on: boolean
  low: boolean
  temp_c?: number
  humidity_pct?: number
  /** Open spells below `freeze_c` and above `humid_pct`: since when, the extreme, the last reading in it. */
  cold?: Spell
  damp?: Spell
  /** Climate: the readings of the last `freezeTrend_h` (the trend), and whether a freeze warning is out. */
  recent?: { ts: number; temp_c: number }[]
  freezeWarned?: boolean
  /** Smoke/CO alarm: a CO alarm is out. */
  coAlarm?: boolean
}
interface Spell {
  from: number
  to: number
  peak: number
}

/**
 * One policy's home state: feed its hub's readings (leak, smoke, climate, contact, valve) in
 * device-time order. Leak and smoke events leave with the reading that starts them; freeze and
 * humidity spells and offline gaps when they end; a day closes when a reading of a later day comes
 * (or on flush) and comes out with the policy's score input at its end.
 */
export function homeAccumulator(cfg: HomeConfig, policyId: string, stored: readonly HomeDay[] = []): PolicyAccumulator<HomeDay> {
  let out: PolicyOutput<HomeDay>[] = []
  const sensors = new Map<string, Sensor>()
  /** The leak the valve has not yet answered: its start. */
  let leakFrom: number | undefined
  const book = dayBook(stored, cfg.keepDays, emptyHomeDay, (d) => {
    const now = d.day_ms + DAY_MS
    out.push({ kind: 'day', policyId, day: { ...d }, input: { policyId, subject: 'home', window: { from: book.days[0]!.day_ms, to: now }, exposure: { days: book.days.length }, features: homeFeatures(cfg, book.days, now) } })
  })

  const event = (type: HomeEventType, deviceId: string, from: number, to: number, evidence: DetectedEvidence<HomeEventType>) =>
    out.push({ kind: 'event', event: policyEvent(type, policyId, deviceId, from, to, evidence) })

  /** Ends a freeze or humidity spell; its event when it lasted long enough. */
  function endSpell(type: 'freeze_risk' | 'humidity_exposure', deviceId: string, s: Spell | undefined) {
    const hours = s ? (s.to - s.from) / 3_600_000 : 0
    if (!s || hours < (type === 'freeze_risk' ? cfg.freezeEvent_h : cfg.humidEvent_h)) return
    const threshold = type === 'freeze_risk' ? cfg.freeze_c : cfg.humid_pct
    event(type, deviceId, s.from, s.to, { source: 'climate', peak: s.peak, threshold, duration_s: (s.to - s.from) / 1000 })
  }

  /** Extends a spell while its condition holds; ends it at this reading when it stops. */
  function spell(type: 'freeze_risk' | 'humidity_exposure', r: Reading, open: Spell | undefined, value: number | undefined, holds: boolean, worst: (a: number, b: number) => number): Spell | undefined {
    if (holds && value !== undefined) {
      open ??= { from: r.ts, to: r.ts, peak: value }
      open.to = r.ts
      open.peak = worst(open.peak, value)
      return open
    }
    if (open) endSpell(type, r.deviceId, { ...open, to: r.ts })
    return undefined
  }

  /** Warns once while the pipes fall toward freezing (or are below already); re-arms once they are well above. */
  function freezeWarning(s: Sensor, r: Reading, temp_c: number) {
    s.recent = [...(s.recent ?? []).filter((x) => x.ts >= r.ts - cfg.freezeTrend_h * 3_600_000 && x.ts < r.ts), { ts: r.ts, temp_c }]
    if (temp_c >= cfg.freeze_c + cfg.freezeRearm_c) s.freezeWarned = false
    if (s.freezeWarned || temp_c > cfg.freeze_c + cfg.freezeNear_c) return
    const falling_c_per_h = slopePerHour(s.recent)
    const eta_h = temp_c < cfg.freeze_c ? 0 : falling_c_per_h < 0 ? (temp_c - cfg.freeze_c) / -falling_c_per_h : Infinity
    if (eta_h > cfg.freezeLead_h) return
    s.freezeWarned = true
    event('freeze_warning', r.deviceId, r.ts, r.ts, { source: 'climate', peak: temp_c, threshold: cfg.freeze_c, duration_s: Math.round(eta_h * 3600), falling_c_per_h: Math.round(falling_c_per_h * 100) / 100, samples: s.recent.length })
  }

  function climate(d: HomeDay, s: Sensor, r: Reading) {
    const dt_s = (r.ts - s.lastTs) / 1000
    const inDay_s = s.lastTs >= d.day_ms ? dt_s : 0 // see push
    if (dt_s > cfg.maxClimateGap_s) {
      // A gap: spells end at their last reading, nothing is bridged.
      endSpell('freeze_risk', r.deviceId, s.cold)
      endSpell('humidity_exposure', r.deviceId, s.damp)
      s.cold = s.damp = undefined
    } else if (dt_s > 0 && s.temp_c !== undefined) {
      // The time since the previous reading counts at the previous reading's values.
      d.climate_s += inDay_s
      if (s.temp_c < cfg.freeze_c) d.freeze_s += inDay_s
      if (s.humidity_pct !== undefined && s.humidity_pct > cfg.humid_pct) d.humid_s += inDay_s
    }
    s.temp_c = typeof r.fields.temp_c === 'number' ? r.fields.temp_c : undefined
    s.humidity_pct = typeof r.fields.humidity_pct === 'number' ? r.fields.humidity_pct : undefined
    if (s.temp_c !== undefined && r.ts >= s.lastTs) freezeWarning(s, r, s.temp_c)
    s.cold = spell('freeze_risk', r, s.cold, s.temp_c, s.temp_c! < cfg.freeze_c, Math.min)
    s.damp = spell('humidity_exposure', r, s.damp, s.humidity_pct, s.humidity_pct! > cfg.humid_pct, Math.max)
  }

  return {
    days: book.days,
    push(r) {
      const f = r.fields
      const d = book.day(r.ts)
      const key = `${r.deviceId}/${r.kind}`
      const known = sensors.get(key)
      const s: Sensor = known ?? { lastTs: r.ts, on: false, low: false }
      sensors.set(key, s)
      const gap_s = (r.ts - s.lastTs) / 1000
      // A day's sums count from each sensor's first reading in the day: they then follow from the
      // day's own readings alone, so a restart that replays them (DayHistory) rebuilds it exactly.
      const inDay_s = s.lastTs >= d.day_ms ? gap_s : 0
      const heartbeat_s = cfg.heartbeat_s[r.kind] ?? cfg.heartbeat_s.default
      if (gap_s > 0) {
        d.sensor_s += inDay_s
        const offline = gap_s > cfg.offlineAfter * heartbeat_s
        if (offline) d.offline_s += Math.max(0, inDay_s - heartbeat_s)
        if (offline && gap_s >= cfg.offlineEvent_h * 3600) event('sensor_offline', r.deviceId, s.lastTs, r.ts, { source: r.kind, peak: gap_s, threshold: cfg.offlineEvent_h * 3600, duration_s: gap_s, heartbeat_s })
      }
      if (typeof f.battery_pct === 'number') {
        const low = f.battery_pct < cfg.lowBattery_pct
        if (low) d.low_battery = 1
        if (low && !s.low) event('low_battery', r.deviceId, r.ts, r.ts, { source: r.kind, peak: f.battery_pct, threshold: cfg.lowBattery_pct, duration_s: 0 })
        s.low = low
      }
      if (r.kind === 'leak' || r.kind === 'smoke') {
        // One event per episode, urgent, with the reading that starts it; the episode ends when the sensor reports clear.
        const on = (r.kind === 'leak' ? f.leak_detected : f.smoke_detected) === true
        if (on && !s.on) {
          if (r.kind === 'leak') {
            d.leaks++
            leakFrom = r.ts
          } else d.smokes++
          const co: Record<string, number> = typeof f.co_ppm === 'number' ? { co_ppm: f.co_ppm } : {}
          event(r.kind, r.deviceId, r.ts, r.ts, { source: r.kind, peak: 1, threshold: 1, duration_s: 0, ...co })
        }
        if (!on && s.on && r.kind === 'leak') leakFrom = undefined
        // The background level (smoking, a poorly vented boiler), not the alarm's own peak.
        if (r.kind === 'smoke' && !on && typeof f.co_ppm === 'number') {
          d.co_n++
          d.co_ppm += f.co_ppm
          // Carbon monoxide without smoke: no fire, still deadly (a smoke alarm's own event carries its CO).
          const high = f.co_ppm >= cfg.coAlarm_ppm
          if (high && !s.coAlarm) event('co_alarm', r.deviceId, r.ts, r.ts, { source: 'smoke', peak: f.co_ppm, threshold: cfg.coAlarm_ppm, duration_s: 0 })
          s.coAlarm = high
        }
        s.on = on
      } else if (r.kind === 'valve' && typeof f.valve_open === 'boolean' && !(known && r.ts < s.lastTs)) {
        // The valve's state follows its newest reading (an older one, a late upload or a clock set
        // back, is history), and a shut-off taken before the leak began is no response to it: the
        // fuzz harness (#20) got a valve_shutoff of −1.8e9 s from a reading dated 1970.
        const shut = !f.valve_open
        if (shut && !s.on && leakFrom !== undefined && r.ts >= leakFrom) {
          const response_s = (r.ts - leakFrom) / 1000
          d.valve_n++
          d.valve_s += response_s
          event('valve_shutoff', r.deviceId, leakFrom, r.ts, { source: 'valve', peak: response_s, threshold: cfg.valveTarget_s, duration_s: response_s, response_s })
          leakFrom = undefined
        }
        s.on = shut
      } else if (r.kind === 'climate') climate(d, s, r)
      s.lastTs = Math.max(s.lastTs, r.ts)
      const o = out
      out = []
      return o
    },
    flush() {
      for (const [key, s] of sensors) {
        const deviceId = key.slice(0, key.lastIndexOf('/'))
        endSpell('freeze_risk', deviceId, s.cold)
        endSpell('humidity_exposure', deviceId, s.damp)
      }
      book.close()
      const o = out
      out = []
      return o
    },
    features: (now) => homeFeatures(cfg, book.days, now),
  }
}

/** The least-squares slope of temperatures over time, °C/h (0 with fewer than three readings: too few to tell a trend from noise). */
function slopePerHour(xs: readonly { ts: number; temp_c: number }[]): number {
  if (xs.length < 3) return 0
  const t0 = xs[0]!.ts
  const mt = sum(xs.map((x) => (x.ts - t0) / 3_600_000)) / xs.length
  const mc = sum(xs.map((x) => x.temp_c)) / xs.length
  const cov = sum(xs.map((x) => ((x.ts - t0) / 3_600_000 - mt) * (x.temp_c - mc)))
  const vt = sum(xs.map((x) => ((x.ts - t0) / 3_600_000 - mt) ** 2))
  return vt > 0 ? cov / vt : 0
}

/** Stage: readings of many policies (any subject) → home events (leak and smoke in their reading's frame) and closed days with their score inputs. */
export function scoreHome(cfg: HomeConfig, idleMs: number, history?: DayHistory<HomeDay>, scheduler?: SchedulerLike, onError?: (err: unknown, policyId: string) => void, forget$?: Observable<string>): OperatorFunction<Reading, PolicyOutput<HomeDay>> {
  return perPolicy('home', (policyId, days) => homeAccumulator(cfg, policyId, days), idleMs, history, scheduler, onError, forget$)
}
