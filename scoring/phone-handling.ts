/**
 * Phone handling while driving, from the phone's IMU stream. Streaming and causal: per device, one
 * running mean, the last known speed and one open episode, O(1) work per sample; an event is
 * emitted once its episode has been quiet for `mergeGap_s`.
 *
 * How it works. A phone in a mount, a cradle or a pocket turns with the car, which on a road turns
 * about the vertical (yaw, gz); pitch and roll of a car stay small and brief (bumps, braking dive).
 * A phone picked up and handled swings about the horizontal axes as well, for seconds on end. So
 * the signal is the rotation rate about the horizontal axes, √(gx² + gy²), as a root mean square
 * over a trailing `smooth_s` window (bumps and single jolts average out; a hand's swings do not).
 * An episode is open while that rate is at least `rate_rads` and the vehicle moves; it ends after
 * `mergeGap_s` below it (a hand holding still for a moment is the same handling) and is an event
 * when it lasted at least `min_s`.
 *
 * Moving. Speed comes from the device's own `obd` and `gps` readings (their `speed_kmh`), the
 * latest one at most `speedMaxAge_s` old. Without one (an IMU-only phone, or a gap in OBD and GPS)
 * the vehicle is taken as moving: a phone SDK streams IMU only while it records a trip, so handling
 * at a red light is then counted too. The event says which case it was: `minSpeed_kmh` (the lowest
 * speed seen during the episode) is present only when the speed was known throughout.
 */
import { Type, type Static } from '@sinclair/typebox'
import { policyEvent, type Detector, type DrivingEvent } from './events.ts'
import { MovingAverage } from './moving-average.ts'
import { defaultsOf, threshold } from './thresholds.ts'

/** Thresholds and windows; in seconds, not samples, so one config works at any rate from 10 to 200 Hz. Defaults checked on simulated trips (phone-handling.test.ts measures the quality). */
export const PhoneHandlingConfig = Type.Object({
  smooth_s: threshold(1.5, 'Trailing window of the RMS rotation rate for phone handling, s: longer than a bump or a jolt, shorter than a glance at the screen'),
  rate_rads: threshold(0.35, 'RMS rotation rate about the horizontal axes that counts as phone handling, rad/s: a mounted phone stays under 0.1, a hand\'s swings reach 0.5–2'),
  min_s: threshold(3, 'Shortest phone handling that is an event, s: picking up, reading, typing; not a quick nudge of the mount'),
  mergeGap_s: threshold(2, 'Quiet time that ends a phone handling episode, s'),
  minSpeed_kmh: threshold(10, 'Speed at or above which the vehicle moves, for phone handling, km/h (creeping in a queue is not counted)'),
  speedMaxAge_s: threshold(5, 'How long an obd or gps speed stays valid for phone handling, s (they come at 1 Hz)'),
  maxGap_s: threshold(2, 'A gap in device time longer than this ends a phone handling episode and resets the filter, s'),
})
export type PhoneHandlingConfig = Static<typeof PhoneHandlingConfig>

/** Defaults, checked on simulated trips (see phone-handling.test.ts for the measured quality). */
export const defaultPhoneHandlingConfig: PhoneHandlingConfig = defaultsOf(PhoneHandlingConfig)

/** What an open episode has seen so far. */
interface Episode {
  fromMs: number
  lastActiveMs: number
  peak_rads: number
  /** Lowest known speed while active; undefined once a sample's speed was unknown. */
  minSpeed_kmh: number | undefined
}

/** One device's detector: feed its readings (`imu`, and `obd`/`gps` for the speed) in device-time order. */
export function phoneHandlingDetector(cfg: PhoneHandlingConfig, deviceId: string, policyId: string): Detector {
  let rate_hz = 0
  /** Trailing mean of gx² + gy². */
  let meanSquare = new MovingAverage(1)
  let lastMs: number | undefined
  let speed: { kmh: number; ms: number } | undefined
  let episode: Episode | undefined

  function reset(newRate_hz: number) {
    rate_hz = newRate_hz
    meanSquare = new MovingAverage(Math.round(cfg.smooth_s * rate_hz))
    lastMs = undefined
  }

  function close(out: DrivingEvent[]) {
    const e = episode
    episode = undefined
    if (!e) return
    const duration_s = (e.lastActiveMs - e.fromMs) / 1000
    if (duration_s < cfg.min_s) return
    out.push(policyEvent('phone_handling', policyId, deviceId, Math.round(e.fromMs), Math.round(e.lastActiveMs), {
      source: 'imu', peak: round3(e.peak_rads), threshold: cfg.rate_rads,
      duration_s: round3(duration_s), samples: Math.round(duration_s * rate_hz) + 1, rate_hz,
      ...(e.minSpeed_kmh === undefined ? {} : { minSpeed_kmh: e.minSpeed_kmh }),
    }))
  }

  function sample(tMs: number, gx: number, gy: number, out: DrivingEvent[]) {
    const rms_rads = Math.sqrt(Math.max(0, meanSquare.push(gx * gx + gy * gy)))
    lastMs = tMs
    if (episode && tMs - episode.lastActiveMs > cfg.mergeGap_s * 1000) close(out)
    const known = speed && tMs - speed.ms <= cfg.speedMaxAge_s * 1000 ? speed.kmh : undefined
    // Unknown speed counts as moving (see the header); a full window only, so a start-up transient cannot open an episode.
    if (!meanSquare.full || rms_rads < cfg.rate_rads || (known !== undefined && known < cfg.minSpeed_kmh)) return
    if (!episode) episode = { fromMs: tMs, lastActiveMs: tMs, peak_rads: 0, minSpeed_kmh: known }
    episode.lastActiveMs = tMs
    episode.peak_rads = Math.max(episode.peak_rads, rms_rads)
    episode.minSpeed_kmh = known === undefined || episode.minSpeed_kmh === undefined ? undefined : Math.min(episode.minSpeed_kmh, known)
  }

  return {
    push(r) {
      const out: DrivingEvent[] = []
      if ((r.kind === 'obd' || r.kind === 'gps') && typeof r.fields.speed_kmh === 'number') speed = { kmh: r.fields.speed_kmh, ms: r.ts }
      const rate = Number(r.fields.rate_hz)
      if (r.kind !== 'imu' || !r.samples || !(rate > 0)) return out
      // Time already judged (a re-sent batch, a crash recorder's upload of the seconds before a crash): skip it.
      if (lastMs !== undefined && r.ts <= lastMs) return out
      if (rate !== rate_hz || lastMs === undefined || r.ts - lastMs > cfg.maxGap_s * 1000) {
        close(out)
        reset(rate)
      }
      const step_ms = 1000 / rate
      r.samples.forEach((row, j) => sample(r.ts + j * step_ms, row[3] ?? 0, row[4] ?? 0, out))
      return out
    },
    flush() {
      const out: DrivingEvent[] = []
      close(out)
      return out
    },
  }
}

const round3 = (x: number) => Math.round(x * 1000) / 1000
