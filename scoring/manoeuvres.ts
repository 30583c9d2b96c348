/**
 * Harsh manoeuvres from a phone's IMU stream: braking and acceleration (longitudinal), turns and
 * lane changes (lateral). Streaming and causal: per device, a few running sums and one open
 * episode, O(1) work per sample; an event is emitted once its episode has been quiet for
 * `mergeGap_s`.
 *
 * How it works. The horizontal acceleration |(ax, ay)| and the yaw rate gz are smoothed by trailing
 * moving averages. An *episode* starts when the smoothed acceleration reaches `active_ms2` and lasts
 * until it has stayed below that for `mergeGap_s`, so the parts of one manoeuvre (a braking and the
 * rebound when the car stops, a launch and its gear change, the out and back of a swerve) make one
 * event. The episode's peak yaw rate tells a turn from a straight-line event: no phone mounting or
 * heading is needed, which a windshield phone does not give reliably.
 *
 * Classes: a high peak yaw rate with a high peak acceleration is a harsh turn or lane change; a low
 * yaw rate with a high peak is a harsh braking. Accelerations are weaker (a car pulls under
 * 3 m/s²) and phones show them oddly: Android's linear acceleration absorbs sustained acceleration
 * into its gravity estimate, so a launch appears as a surge, a near-zero dip, and an opposite surge
 * at the gear change. A harsh launch is therefore told by its shape: from rest, a surge of at least
 * `launch_ms2` and an episode of at least `launch_s` (first gear held long).
 */
import { filter, of, type OperatorFunction, type SchedulerLike } from 'rxjs'
import { Type, type Static } from '@sinclair/typebox'
import type { Reading } from '../ingest/index.ts'
import { policyEvent, type DrivingEvent, type DrivingEventType } from './events.ts'
import { MovingAverage } from './moving-average.ts'
import { perKey } from './per-key.ts'
import { defaultsOf, threshold } from './thresholds.ts'

/**
 * Thresholds and windows of the detector. Windows are in seconds, not samples, so one config works
 * at any rate from 10 to 200 Hz; accelerations are m/s², yaw rates rad/s. Defaults tuned on the
 * driver behaviour dataset (a windshield phone at 50 Hz, see the README there).
 */
export const ManoeuvreConfig = Type.Object({
  smooth_s: threshold(0.5, 'Trailing moving average over the acceleration and yaw rate, s: long enough to average out engine and road vibration (several m/s² at 10–30 Hz), short enough to keep a 1 s braking\'s peak'),
  active_ms2: threshold(1.0, 'Smoothed horizontal acceleration that opens (and keeps open) a manoeuvre episode, m/s²: above normal cruising (< 1 m/s²)'),
  mergeGap_s: threshold(3.5, 'Quiet time that ends a manoeuvre episode, s: bridges a braking\'s rebound, the clutch dip of a gear change (up to ~3 s after a hard launch) and the out and back of an overtaking or an obstacle swerve (ISO 3888\'s double lane change)'),
  maxEpisode_s: threshold(12, 'Longest manoeuvre episode, s: on bumpy roads the acceleration hardly drops below the active level, and without a limit back-to-back manoeuvres would make one event'),
  lateralYaw_rads: threshold(0.25, 'Peak smoothed yaw rate that makes an episode lateral, rad/s: lane changes reach 0.3–0.4, turns 0.5–0.8, straight-line braking and acceleration stay under 0.1'),
  lateral_ms2: threshold(3.0, 'Peak acceleration of a harsh turn or lane change, m/s² (≈0.3 g: normal turns stay under 2.5)'),
  longitudinal_ms2: threshold(3.0, 'Peak acceleration of a harsh braking (or a violent acceleration), m/s² (≈0.3 g)'),
  // A harsh launch: from rest, hard acceleration held long. Cars accelerate at under 3 m/s², so a
  // peak threshold alone cannot tell a hard launch from a brisk one; an aggressive launch keeps the
  // throttle open through first gear to a higher speed, so its episode (launch, clutch dip, shift)
  // lasts longer. From rest: the same pattern while moving is mostly not a launch (speed bumps).
  launch_ms2: threshold(2.0, 'A harsh launch\'s smoothed acceleration, m/s² (cars pull under 3 m/s², so its length tells it from a brisk one)'),
  launch_s: threshold(4.3, 'A harsh launch\'s shortest episode, s (an aggressive launch holds first gear longer)'),
  launchFromRest_s: threshold(4, 'A harsh launch starts within this long of a standstill, s'),
  still_ms2: threshold(0.3, 'Standstill: vibration (standard deviation of the raw horizontal acceleration over the smoothing window) below this, m/s²; an idling engine shakes a windshield phone far less (≈0.1) than the road does at any speed (≥0.35)'),
  maxGap_s: threshold(2, 'A gap in device time longer than this resets the manoeuvre detector (no interpolation across it), s'),
})
export type ManoeuvreConfig = Static<typeof ManoeuvreConfig>

/** Defaults tuned on the driver behaviour dataset (a windshield phone at 50 Hz, see the README there). */
export const defaultManoeuvreConfig: ManoeuvreConfig = defaultsOf(ManoeuvreConfig)

/** What an open episode has seen so far. */
interface Episode {
  fromMs: number
  /** Last time the acceleration was above `active_ms2`. */
  lastActiveMs: number
  peak_ms2: number
  peakYaw_rads: number
  /** It started soon after a standstill. */
  fromRest: boolean
}

/** One device's detector: feed IMU readings in device-time order; returns the events each reading completes. */
export function manoeuvreDetector(cfg: ManoeuvreConfig, deviceId: string, policyId: string): { push(r: Reading): DrivingEvent[]; flush(): DrivingEvent[] } {
  let rate_hz = 0
  let ax!: MovingAverage, ay!: MovingAverage, ax2!: MovingAverage, ay2!: MovingAverage, gz!: MovingAverage
  let lastMs: number | undefined
  /** Last time the car was seen standing still. */
  let stillMs: number | undefined
  let episode: Episode | undefined

  function reset(newRate_hz: number) {
    rate_hz = newRate_hz
    const n = Math.round(cfg.smooth_s * rate_hz)
    ax = new MovingAverage(n)
    ay = new MovingAverage(n)
    ax2 = new MovingAverage(n)
    ay2 = new MovingAverage(n)
    gz = new MovingAverage(n)
    lastMs = undefined
    stillMs = undefined
  }

  /** Closes the open episode; its event when it was harsh. */
  function close(out: DrivingEvent[]) {
    const e = episode
    episode = undefined
    if (!e) return
    const duration_s = (e.lastActiveMs - e.fromMs) / 1000
    const judged = classify(cfg, e, duration_s)
    if (!judged) return
    out.push(policyEvent(judged.type, policyId, deviceId, Math.round(e.fromMs), Math.round(e.lastActiveMs), {
        source: 'imu',
        peak: round3(e.peak_ms2),
        threshold: judged.threshold,
        peakYaw_rads: round3(e.peakYaw_rads),
        duration_s: round3(duration_s),
        samples: Math.round(duration_s * rate_hz) + 1,
        rate_hz,
    }))
  }

  function sample(tMs: number, row: readonly number[], out: DrivingEvent[]) {
    const [x = 0, y = 0] = row
    const mx = ax.push(x), my = ay.push(y)
    const h_ms2 = Math.hypot(mx, my)
    const yaw_rads = Math.abs(gz.push(row[5] ?? 0))
    // Vibration: standard deviation of the raw horizontal acceleration about its mean, same window.
    const vibration_ms2 = Math.sqrt(Math.max(0, ax2.push(x * x) - mx * mx + ay2.push(y * y) - my * my))
    if (ax.full && vibration_ms2 < cfg.still_ms2) stillMs = tMs
    if (episode && (tMs - episode.lastActiveMs > cfg.mergeGap_s * 1000 || tMs - episode.fromMs > cfg.maxEpisode_s * 1000)) close(out)
    if (h_ms2 >= cfg.active_ms2) {
      episode ??= { fromMs: tMs, lastActiveMs: tMs, peak_ms2: 0, peakYaw_rads: 0, fromRest: stillMs !== undefined && tMs - stillMs <= cfg.launchFromRest_s * 1000 }
      episode.lastActiveMs = tMs
      episode.peak_ms2 = Math.max(episode.peak_ms2, h_ms2)
    }
    // The yaw rate counts while the episode is open, quiet parts included: a turn's apex can come
    // between two acceleration peaks (braking into it, accelerating out).
    if (episode) episode.peakYaw_rads = Math.max(episode.peakYaw_rads, yaw_rads)
    lastMs = tMs
  }

  return {
    push(r) {
      const out: DrivingEvent[] = []
      const samples = r.samples
      const rate = Number(r.fields.rate_hz)
      if (!samples || !(rate > 0)) return out
      const stepMs = 1000 / rate
      // A new rate, a gap or time going back: what the filters hold no longer describes the car now.
      if (rate !== rate_hz || lastMs === undefined || r.ts - lastMs > cfg.maxGap_s * 1000 || r.ts <= lastMs) {
        close(out)
        reset(rate)
      }
      for (let j = 0; j < samples.length; j++) sample(r.ts + j * stepMs, samples[j]!, out)
      return out
    },
    flush() {
      const out: DrivingEvent[] = []
      close(out)
      return out
    },
  }
}

/** The event type of a finished episode and the threshold it crossed, or undefined when it was not harsh. */
function classify(cfg: ManoeuvreConfig, e: Episode, duration_s: number): { type: DrivingEventType; threshold: number } | undefined {
  if (e.peakYaw_rads >= cfg.lateralYaw_rads) return e.peak_ms2 >= cfg.lateral_ms2 ? { type: 'harsh_lateral', threshold: cfg.lateral_ms2 } : undefined
  if (e.peak_ms2 >= cfg.longitudinal_ms2) return { type: 'harsh_longitudinal', threshold: cfg.longitudinal_ms2 }
  if (e.fromRest && e.peak_ms2 >= cfg.launch_ms2 && duration_s >= cfg.launch_s) return { type: 'harsh_longitudinal', threshold: cfg.launch_ms2 }
  return undefined
}

/**
 * Stage: IMU readings of many devices → their harsh driving events. One detector per device; a
 * device with no reading for `idleMs` is dropped from memory, after emitting what it still held.
 */
export function detectManoeuvres(cfg: ManoeuvreConfig, idleMs: number, scheduler?: SchedulerLike): OperatorFunction<Reading, DrivingEvent> {
  return (readings$) => readings$.pipe(
    filter((r) => r.kind === 'imu' && r.samples !== undefined),
    perKey({
      key: (r) => r.deviceId,
      create: (first) => of(manoeuvreDetector(cfg, first.deviceId, first.policyId)),
      push: (detector, r) => detector.push(r),
      end: (detector) => detector.flush(),
      idleMs,
      scheduler,
    }),
  )
}

const round3 = (x: number) => Math.round(x * 1000) / 1000
