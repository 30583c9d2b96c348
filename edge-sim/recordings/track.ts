/**
 * A recorded trip in one shape, whatever file it came from (generic CSV, GPX, the shipped dataset),
 * and its device messages: what a live phone of the contract would have published while driving
 * it (issue #19, "Import recorded trips").
 *
 * Readers fill a `Track` with times relative to the recording's first reading; `trackMessages`
 * places it in device time and numbers it. The one place that knows the contract's kinds is here.
 */
import { haversine_km, topics, type LatLon } from '../../ingest/device-contract.ts'
import type { DeviceMessage } from '../device-streams.ts'

/** Standard gravity, m/s² (a `g` unit, and what a level phone's accelerometer reads on z at rest). */
export const G_MS2 = 9.80665
/** A fix's accuracy when the recording states none: a typical phone fix in the open, m. */
export const DEFAULT_ACCURACY_M = 10

/** One GNSS fix, `t` ms from the recording's start. */
export interface Fix {
  t: number
  lat_deg: number
  lon_deg: number
  accuracy_m: number
  speed_kmh?: number
  /** Course over ground, degrees clockwise from true north. */
  heading_deg?: number
  alt_m?: number
}

/**
 * The frame of recorded accelerations and rotations:
 * - `earth`: x east, y north, z up, gravity removed (the contract's `imu`);
 * - `device`: the phone's own axes, gravity included (the contract's `imu_device`);
 * - `vehicle`: x forward, y left, z up, gravity removed (a logger aligned with the car).
 */
export type Frame = 'earth' | 'device' | 'vehicle'
export const frames: readonly Frame[] = ['earth', 'device', 'vehicle']

/** IMU samples on a fixed-rate grid: row k at `t0 + k·1000/rateHz` ms; `undefined` where the recording has a gap. */
export interface ImuGrid {
  rateHz: number
  t0: number
  frame: Frame
  /** ax, ay, az (m/s²), gx, gy, gz (rad/s) in `frame`. */
  rows: (number[] | undefined)[]
  /** False when the recording has no gyroscope: rotation is then taken from the GPS course (see trackMessages). */
  gyro: boolean
}

/** A labelled interval, seconds from the recording's start (the dataset's groundTruth.csv rule). */
export interface TrackLabel {
  label: string
  startS: number
  endS: number
}

export interface Track {
  /** Where it came from (file or folder name), for messages and default ids. */
  name: string
  /** Wall-clock time of t = 0, ms since the epoch, when the recording has one; undefined for a relative clock. */
  epochMs?: number
  fixes: Fix[]
  imu?: ImuGrid
  /** Send ignition on at the first reading and off at the last (a phone app that knows the trip). */
  ignition: boolean
  labels: TrackLabel[]
  /** Rows the reader left out, and why (e.g. "gps: 12 rows without a fix"). */
  skipped: string[]
}

/** Last reading's time, ms from the start. */
export function trackEnd(track: Track): number {
  const imuEnd = track.imu ? track.imu.t0 + ((track.imu.rows.length - 1) * 1000) / track.imu.rateHz : 0
  return Math.max(track.fixes.at(-1)?.t ?? 0, imuEnd)
}

const DAY_MS = 86_400_000

/**
 * Device time of the track's t = 0, so that it ends no later than `now` (ingest refuses future
 * timestamps, and a device's clock never runs ahead of the real one). A recording with wall-clock
 * time moves by whole days, keeping its time of day (night driving is a feature); a relative one
 * ends at `now`.
 */
export function placeTrack(track: Track, now: number): number {
  const end = trackEnd(track)
  if (track.epochMs === undefined) return now - end
  return track.epochMs + Math.floor((now - (track.epochMs + end)) / DAY_MS) * DAY_MS
}

/** Great-circle distance, m. */
export const distance_m = (a: LatLon, b: LatLon): number => haversine_km(a, b) * 1000

/** Initial bearing from a to b, degrees clockwise from north, [0, 360). */
export function bearing_deg(a: LatLon, b: LatLon): number {
  const rad = Math.PI / 180
  const y = Math.sin((b.lon_deg - a.lon_deg) * rad) * Math.cos(b.lat_deg * rad)
  const x = Math.cos(a.lat_deg * rad) * Math.sin(b.lat_deg * rad) - Math.sin(a.lat_deg * rad) * Math.cos(b.lat_deg * rad) * Math.cos((b.lon_deg - a.lon_deg) * rad)
  return ((Math.atan2(y, x) / rad) % 360 + 360) % 360
}

/**
 * Fills speed and course where the recording has none, from the positions on either side (a
 * central difference: what the fix's own Doppler speed would be, not the last second's average).
 * Course only where the vehicle moved at least 2 m, as standing still has no course.
 */
export function deriveMotion(fixes: readonly Fix[]): Fix[] {
  return fixes.map((f, i) => {
    const a = fixes[Math.max(0, i - 1)]!
    const b = fixes[Math.min(fixes.length - 1, i + 1)]!
    const dt = (b.t - a.t) / 1000
    const d = distance_m(a, b)
    const out = { ...f }
    if (out.speed_kmh === undefined && dt > 0) out.speed_kmh = round((d / dt) * 3.6, 2)
    if (out.heading_deg === undefined && d >= 2) out.heading_deg = round(bearing_deg(a, b), 1)
    return out
  })
}

/**
 * IMU samples (ms times, rows) resampled onto a fixed grid by linear interpolation between the
 * samples on either side, as edge-sim/replay.ts does for the dataset; grid points with no sample
 * within `maxGapMs` on both sides are gaps, not invented. `rows` must be in time order.
 */
export function resample(t: readonly number[], rows: readonly number[][], rateHz: number, maxGapMs = 1000): Pick<ImuGrid, 't0' | 'rows'> {
  const t0 = t[0]!
  const step = 1000 / rateHz
  const n = Math.floor((t.at(-1)! - t0) / step) + 1
  const out: (number[] | undefined)[] = []
  let k = 0
  for (let i = 0; i < n; i++) {
    const at = t0 + i * step
    while (k < t.length - 2 && t[k + 1]! <= at) k++
    const [ta, tb] = [t[k]!, t[k + 1] ?? t[k]!]
    if (tb - ta > maxGapMs && at > ta && at < tb) {
      out.push(undefined)
      continue
    }
    const w = tb > ta ? Math.min(1, Math.max(0, (at - ta) / (tb - ta))) : 0
    out.push(rows[k]!.map((v, j) => v + ((rows[k + 1] ?? rows[k]!)[j]! - v) * w))
  }
  return { t0, rows: out }
}

/** The median rate of time-ordered sample times, Hz, rounded to a whole number. */
export function medianRate(t: readonly number[]): number {
  const dts = t.slice(1).map((v, i) => v - t[i]!).filter((d) => d > 0).sort((a, b) => a - b)
  return dts.length ? Math.round(1000 / dts[Math.floor(dts.length / 2)]!) : 0
}

/** Course (degrees) at time t, interpolated between the fixes that have one (shortest way round), held at the ends. */
function courseAt(fixes: readonly Fix[]) {
  const withCourse = fixes.filter((f) => f.heading_deg !== undefined)
  return (t: number): number | undefined => {
    if (withCourse.length === 0) return undefined
    // The last fix at or before t (binary search: callers ask around a sample, back and forth).
    let [lo, hi] = [0, withCourse.length - 1]
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1
      if (withCourse[mid]!.t <= t) lo = mid
      else hi = mid - 1
    }
    const a = withCourse[lo]!
    const b = withCourse[lo + 1] ?? a
    if (t <= a.t || b === a) return a.heading_deg!
    if (t >= b.t) return b.heading_deg!
    const d = ((b.heading_deg! - a.heading_deg! + 540) % 360) - 180
    return (a.heading_deg! + (d * (t - a.t)) / (b.t - a.t) + 360) % 360
  }
}

export interface MessageOptions {
  deviceId: string
  /** Device time of the track's t = 0, ms (placeTrack). */
  startTs: number
  /** The first message's seq; the rest count up by one in sending order. */
  firstSeq: number
}

/**
 * The track as the contract's device messages, in sending order: `gps` per fix, `imu` (earth frame)
 * or `imu_device` (the phone's frame, gravity included) one batch a second, and `status` ignition
 * on and off around it when the track says so.
 *
 * Vehicle-frame samples turn into the earth frame by the GPS course (forward = (sin ψ, cos ψ) east,
 * north; left = (−cos ψ, sin ψ)); without any course they go as `imu_device` of a level mount,
 * gravity (+1 g) added on z. Without a gyroscope, the yaw rate comes from the course's change and
 * the other rotations are 0, so that turns still read as turns.
 */
export function trackMessages(track: Track, opts: MessageOptions): DeviceMessage[] {
  const course = courseAt(track.fixes)
  const hasCourse = track.fixes.some((f) => f.heading_deg !== undefined)
  const out: (Omit<DeviceMessage, 'seq' | 'payload'> & { body: Record<string, unknown> })[] = []
  const add = (kind: string, t: number, body: Record<string, unknown>, sendT = t) =>
    out.push({ deviceId: opts.deviceId, kind, topic: topics.device(opts.deviceId, kind), ts: Math.round(opts.startTs + t), sendAt: Math.round(opts.startTs + sendT), body })

  for (const f of track.fixes) {
    add('gps', f.t, {
      lat_deg: round(f.lat_deg, 7), lon_deg: round(f.lon_deg, 7), accuracy_m: round(f.accuracy_m, 1),
      ...(f.speed_kmh === undefined ? {} : { speed_kmh: round(f.speed_kmh, 2) }),
      ...(f.heading_deg === undefined ? {} : { heading_deg: round(f.heading_deg, 1) }),
      ...(f.alt_m === undefined ? {} : { alt_m: round(f.alt_m, 1) }),
    })
  }
  const imu = track.imu
  if (imu) {
    const step = 1000 / imu.rateHz
    const toEarth = imu.frame === 'earth' || (imu.frame === 'vehicle' && hasCourse)
    const kind = toEarth ? 'imu' : 'imu_device'
    const rad = Math.PI / 180
    const row = (r: number[], t: number): number[] => {
      let [ax, ay, az, gx, gy, gz] = r as [number, number, number, number, number, number]
      if (!imu.gyro) {
        // Yaw rate from the course: clockwise course change is a negative (right-hand, z up) rotation.
        const [c0, c1] = [course(t - 500), course(t + 500)]
        gz = c0 === undefined || c1 === undefined ? 0 : -((((c1 - c0 + 540) % 360) - 180) * rad)
        gx = gy = 0
      }
      if (imu.frame === 'vehicle' && hasCourse) {
        const psi = course(t)! * rad
        const [s, c] = [Math.sin(psi), Math.cos(psi)]
        ;[ax, ay] = [ax * s - ay * c, ax * c + ay * s]
        ;[gx, gy] = [gx * s - gy * c, gx * c + gy * s]
      } else if (imu.frame === 'vehicle') az += G_MS2 // a level mount: the vehicle's axes are the phone's
      return [ax, ay, az, gx, gy, gz].map((v) => round(v, 6))
    }
    // One batch a second of consecutive grid rows; a gap starts a new batch at its own time.
    let batch: number[][] = []
    let first = 0
    const send = () => {
      if (batch.length) add(kind, imu.t0 + first * step, { rate_hz: imu.rateHz, samples: batch }, imu.t0 + (first + batch.length - 1) * step)
      batch = []
    }
    imu.rows.forEach((r, k) => {
      if (!r) return send()
      if (batch.length === 0) first = k
      batch.push(row(r, imu.t0 + k * step))
      if (batch.length >= imu.rateHz) send()
    })
    send()
  }
  if (track.ignition && out.length) {
    // On with the first reading, off with the last sample (a batch's last sample is its send time).
    const from = out.reduce((t, m) => Math.min(t, m.ts), Infinity) - opts.startTs
    const to = out.reduce((t, m) => Math.max(t, m.sendAt), -Infinity) - opts.startTs
    add('status', from, { ignition_on: true })
    add('status', to, { ignition_on: false })
  }
  // Sending order: by send time; at a tie ignition on first, off last (stable sort keeps the rest).
  const rank = (m: { kind: string; body: Record<string, unknown> }) => (m.kind === 'status' ? (m.body.ignition_on ? -1 : 1) : 0)
  out.sort((a, b) => a.sendAt - b.sendAt || rank(a) - rank(b))
  return out.map(({ body, ...m }, i) => {
    const seq = opts.firstSeq + i
    return { ...m, seq, payload: JSON.stringify({ seq, ts: m.ts, ...body }) }
  })
}

const round = (x: number, digits: number) => Math.round(x * 10 ** digits) / 10 ** digits
