/**
 * Crashes, urgent: an event is returned by the very `push()` that shows the crash, never held for a
 * later reading. Two sources, one event per crash:
 *
 * - the device's own `crash` message (it saw the impulse at its full sensor rate): trusted as is;
 * - an IMU impulse: a run of samples whose horizontal acceleration |(ax, ay)| stays at or above
 *   `edge_ms2` (1.5 g, above anything driving does: the hardest braking is about 1 g) is a crash
 *   when all of these hold:
 *   - its peak reaches `impulse_ms2` (4 g);
 *   - it lasts at least `minPulse_s` and at least `minSamples` samples. A car's crash pulse lasts
 *     50–150 ms; a knock on the phone, a glitch or a phone hitting something hard lasts a few ms
 *     and shows as one sample. So the rule depends on the rate: at 100 Hz two samples (20 ms) make
 *     a pulse, at 200 Hz four; at 10 Hz two samples means a pulse of 0.1–0.2 s, and a short hard hit
 *     can fall between samples. Such crashes are left to the device's crash message, and to its
 *     crash recorder's full-rate window, which is judged like any IMU batch when it comes;
 *   - the speed it changes, the pulse's integral |Σ(ax, ay)|·Δt, is at least `minDeltaV_kmh`: a
 *     car cannot lose more speed than it had, so parking bumps stay out; a car hit while standing
 *     still gains speed and counts (rear-ended at a light is a common crash, so no speed band gates
 *     this rule);
 *   - the phone was not falling just before: a dropped phone is in free fall (its specific force
 *     |(ax, ay, az + g)| near 0, i.e. linear acceleration ≈ (0, 0, −g)) for at least `freeFall_s`
 *     (a 5 cm drop), then hits the floor; a pulse within `dropLookback_s` after a free fall is
 *     that impact. (A car that goes airborne before it crashes is missed by this rule: its device
 *     message still reports it.)
 *
 * Plausible or nothing (issue #20): a pulse whose Δv, duration or peak no car crash has (over
 * `maxDeltaV_kmh`, `maxPulse_s`, `maxPeak_ms2`) is a sensor fault or forged data, not an event: a
 * batch at 0.001 Hz, before the contract bounded the rate, made a crash of Δv 509,116 km/h lasting
 * 2,000 s that reached MQTT, InfluxDB and the policyholder's feed.
 *
 * One crash, one event: a crash within `dedupe_s` of device time of one already reported by this
 * device (its own message, the live IMU batch, the crash recorder's upload of the same seconds, a
 * second impact of the same collision) is the same crash, and only the first report is published.
 * The event's evidence carries `window`: the horizontal and vertical accelerations from `pre_s`
 * before the pulse to the end of the batch that holds it, as rows [t_ms from the pulse's start, ax,
 * ay, az] (m/s²), kept in a bounded buffer of the last `pre_s` of samples.
 */
import { Type, type Static } from '@sinclair/typebox'
import type { Reading } from '../ingest/index.ts'
import { defaultsOf, threshold } from './thresholds.ts'
import { policyEvent, type DetectedEvidence, type Detector, type DrivingEvent } from './events.ts'

const G_MS2 = 9.80665

/** Thresholds; durations in seconds, so one config works at any rate from 10 to 200 Hz. Accelerations m/s². */
export const CrashConfig = Type.Object({
  impulse_ms2: threshold(39.2, 'Peak horizontal acceleration of a crash pulse, m/s² (4 g)'),
  edge_ms2: threshold(14.7, 'Horizontal acceleration at which a pulse starts and ends, m/s² (1.5 g, above anything driving does): its duration and Δv are measured from here'),
  minPulse_s: threshold(0.02, 'Shortest crash pulse, s (a car\'s lasts 50–150 ms; a knock on the phone a few ms)'),
  minSamples: threshold(2, 'Fewest samples in a crash pulse (a single sample is a spike, whatever the rate)'),
  minDeltaV_kmh: threshold(8, 'Least speed change across a crash pulse, km/h (parking bumps stay under it)'),
  // The device contract's own ceilings for a device's crash report (ingest/sensors/crash.ts): no
  // two cars close at more than 300 km/h in traffic, and 2,000 m/s² is beyond any recorder's range.
  maxDeltaV_kmh: threshold(300, 'Most speed change a crash can have, km/h (no two cars close faster in traffic): beyond it a pulse is a fault, not an event'),
  // Crash pulses last 50–150 ms into rigid obstacles and up to about 300 ms into soft ones; 2 s
  // leaves room for several impacts of one collision in one pulse.
  maxPulse_s: threshold(2, 'Longest crash pulse, s (up to ~0.3 s into soft obstacles; room for several impacts): beyond it a fault'),
  maxPeak_ms2: threshold(2000, 'Highest crash peak, m/s² (beyond any crash recorder\'s range): beyond it a fault'),
  freeFall_ms2: threshold(3, 'Specific force below which the phone is falling, m/s²'),
  freeFall_s: threshold(0.1, 'How long a phone must fall to be a dropped phone, s (a 5 cm drop)'),
  dropLookback_s: threshold(1.5, 'A pulse this soon after a free fall is the dropped phone landing, s'),
  pre_s: threshold(2, 'Samples kept before the pulse for the crash event\'s window, s'),
  dedupe_s: threshold(5, 'Reports of a crash within this much device time of a reported one are the same crash, s'),
  maxGap_s: threshold(2, 'A gap in device time longer than this (or time going back) restarts the crash detector\'s IMU state, s'),
})
export type CrashConfig = Static<typeof CrashConfig>

/** Defaults: crash pulses per the sensor contract and crash-recorder practice (≥ 4 g, 50–150 ms). */
export const defaultCrashConfig: CrashConfig = defaultsOf(CrashConfig)

/** An open run of samples above `edge_ms2`. */
interface Pulse {
  fromMs: number
  lastMs: number
  samples: number
  peak_ms2: number
  sumAx: number
  sumAy: number
  /** Already reported at the end of a batch it outlasted. */
  reported: boolean
}

/** One device's detector: feed its readings (`crash` and `imu`) in the order they arrive. */
export function crashDetector(cfg: CrashConfig, deviceId: string, policyId: string): Detector {
  /** Device times of the crashes reported, newest last (a few: enough to dedupe late uploads). */
  const reported: number[] = []
  let rate_hz = 0
  let lastMs: number | undefined
  /**
   * The last `pre_s` of samples, flat: t_ms, ax, ay, az, t_ms, … (an array a sample took 80 bytes
   * more: 4 KiB a device at 25 Hz, #25).
   */
  let history: number[] = []
  let pulse: Pulse | undefined
  let fallFromMs: number | undefined
  let lastFallMs: number | undefined

  const event = (fromMs: number, toMs: number, evidence: DetectedEvidence<'crash'>): DrivingEvent =>
    policyEvent('crash', policyId, deviceId, Math.round(fromMs), Math.round(toMs), evidence)

  /** True (and remembered) when no crash was reported within `dedupe_s` of `tMs`. */
  function isNew(tMs: number): boolean {
    if (reported.some((t) => Math.abs(t - tMs) <= cfg.dedupe_s * 1000)) return false
    reported.push(tMs)
    if (reported.length > 8) reported.shift()
    return true
  }

  /** The pulse's event, when it is a crash not yet reported; `batch` is the batch's [t_ms, ax, ay, az] rows. */
  function judge(p: Pulse, batch: readonly number[][]): DrivingEvent | undefined {
    const duration_s = p.samples / rate_hz
    const deltaV_kmh = (Math.hypot(p.sumAx, p.sumAy) / rate_hz) * 3.6
    const dropped = lastFallMs !== undefined && p.fromMs - lastFallMs <= cfg.dropLookback_s * 1000
    if (p.peak_ms2 < cfg.impulse_ms2 || p.samples < cfg.minSamples || duration_s < cfg.minPulse_s || deltaV_kmh < cfg.minDeltaV_kmh || dropped) return undefined
    if (deltaV_kmh > cfg.maxDeltaV_kmh || duration_s > cfg.maxPulse_s || p.peak_ms2 > cfg.maxPeak_ms2) return undefined
    if (!isNew(p.fromMs)) return undefined
    const window = [...rowsOf(history), ...batch].filter((row) => row[0]! >= p.fromMs - cfg.pre_s * 1000).map(([t, ...a]) => [Math.round(t! - p.fromMs), ...a])
    return event(p.fromMs, p.lastMs, {
      source: 'imu', peak: round3(p.peak_ms2), threshold: cfg.impulse_ms2,
      duration_s: round3(duration_s), samples: p.samples, rate_hz, delta_v_kmh: round3(deltaV_kmh), window,
    })
  }

  function imu(r: Reading, rate: number, out: DrivingEvent[]) {
    // A new rate, a gap or time going back (a crash recorder's upload): the state no longer fits.
    if (rate !== rate_hz || lastMs === undefined || r.ts <= lastMs || r.ts - lastMs > cfg.maxGap_s * 1000) {
      rate_hz = rate
      history = []
      pulse = fallFromMs = lastFallMs = undefined
    }
    const step_ms = 1000 / rate
    const batch = r.samples!.map((row, j): [number, number, number, number] => [r.ts + j * step_ms, row[0] ?? 0, row[1] ?? 0, row[2] ?? 0])
    for (const [t, ax, ay, az] of batch) {
      // Free fall: near-zero specific force, held for freeFall_s (each sample stands for 1/rate s).
      if (Math.hypot(ax, ay, az + G_MS2) < cfg.freeFall_ms2) {
        fallFromMs ??= t
        if (t + step_ms - fallFromMs >= cfg.freeFall_s * 1000) lastFallMs = t
      } else fallFromMs = undefined
      const h_ms2 = Math.hypot(ax, ay)
      if (h_ms2 >= cfg.edge_ms2) {
        pulse ??= { fromMs: t, lastMs: t, samples: 0, peak_ms2: 0, sumAx: 0, sumAy: 0, reported: false }
        pulse.lastMs = t
        pulse.samples++
        pulse.peak_ms2 = Math.max(pulse.peak_ms2, h_ms2)
        pulse.sumAx += ax
        pulse.sumAy += ay
      } else if (pulse) {
        const e = pulse.reported ? undefined : judge(pulse, batch)
        if (e) out.push(e)
        pulse = undefined
      }
    }
    // A pulse still going at the end of the batch is judged on what it has shown so far: waiting
    // for the next batch would delay the alert by a second.
    if (pulse && !pulse.reported) {
      const e = judge(pulse, batch)
      if (e) out.push(e)
      pulse.reported = e !== undefined
    }
    lastMs = batch.at(-1)?.[0]
    history = [...rowsOf(history), ...batch].filter((row) => row[0]! > lastMs! - cfg.pre_s * 1000).flat()
  }

  const detector: Detector = {
    push(r) {
      const out: DrivingEvent[] = []
      const rate = Number(r.fields.rate_hz)
      if (r.kind === 'imu' && r.samples?.length && rate > 0) imu(r, rate, out)
      else if (r.kind === 'crash' && isNew(r.ts)) {
        // The device applied its own threshold, which its message does not carry: 0 here.
        const { peak_accel_ms2, delta_v_kmh, direction_deg } = r.fields
        out.push(event(r.ts, r.ts, {
          source: 'crash', peak: Number(peak_accel_ms2), threshold: 0, duration_s: 0,
          ...(typeof delta_v_kmh === 'number' ? { delta_v_kmh } : {}),
          ...(typeof direction_deg === 'number' ? { direction_deg } : {}),
        }))
      }
      return out
    },
    // Nothing waits: a pulse is judged by the push that shows it.
    flush: () => [],
    // The recorder's window comes after the live stream has moved on; duplicates are dropped above.
    late: (r) => detector.push(r),
  }
  return detector
}

const round3 = (x: number) => Math.round(x * 1000) / 1000

/** Flat samples of `width` values as rows. */
const rowsOf = (flat: readonly number[], width = 4) => Array.from({ length: flat.length / width }, (_, i) => flat.slice(i * width, (i + 1) * width))
