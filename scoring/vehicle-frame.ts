/**
 * The vehicle frame of a phone mounted at any angle (issue #19, "Phones in any mount"): turns the
 * contract's `imu_device` readings (accelerometer with gravity and gyroscope, in the phone's own
 * frame) into `imu` readings in a level vehicle frame, z up, x forward, y left, gravity removed, so
 * the IMU detectors (manoeuvres, phone handling, crash) work on them unchanged. Streaming and causal:
 * per device a handful of running sums, O(1) work per sample.
 *
 * How it works.
 * - Gravity: a low-pass filter of the accelerometer (a car's own accelerations average out over
 *   time, gravity does not). The filter pauses while the car manoeuvres (the short-term mean
 *   acceleration departs from the gravity estimate), so braking and turns do not tilt it. A second,
 *   unpaused mean that leaves turns out is its fallback when it stays paused too long (it settled
 *   while the car was pulling away). Both start over when the phone is moved in its mount (the
 *   gyroscope shows a rotation about a horizontal axis no car makes) or after a gap in the stream.
 * - Level frame: z is the gravity direction; the acceleration and the rotation rate are projected
 *   on it and on two horizontal axes, so the yaw rate is the gyroscope's component about gravity.
 * - Forward: with GPS, the horizontal acceleration averaged over each GPS second is regressed on the
 *   GPS speed change dv/dt of that second, on straight road; the direction that explains dv/dt is
 *   forward. Without GPS, the main axis of horizontal acceleration on straight road (cars
 *   accelerate and brake along it; the lateral acceleration of the rare straight-road swerve is
 *   weaker), signed so that the stronger peaks are decelerations: cars brake harder (up to 8–10 m/s²)
 *   than they accelerate (under 3–4 m/s²). Until one is known, x and y are a fixed but arbitrary
 *   horizontal pair: the horizontal magnitude, the vertical and the yaw rate are right already,
 *   which is all the manoeuvre, phone-handling and crash detectors use. The reading says which with
 *   `frame_forward`.
 */
import type { Reading } from '../ingest/index.ts'

/** A vector in the phone's frame. */
export type Vec3 = [number, number, number]

/** Thresholds and time constants; in seconds and m/s², so one config works at any rate from 10 to 200 Hz. */
export interface VehicleFrameConfig {
  /**
   * Time constant of the gravity low-pass filter, s: long against a manoeuvre (a braking lasts
   * 1–4 s), short against a road's change of slope; the pause during manoeuvres does the rest.
   */
  gravity_s: number
  /** Time constant of the short-term mean acceleration compared with gravity, s: averages out engine and road vibration (10–30 Hz). */
  mean_s: number
  /** The gravity filter pauses while the short-term mean departs from it by more than this, m/s² (about 2°): cruising stays under it, manoeuvres reach 1 and more. */
  gate_ms2: number
  /**
   * A second low-pass of the accelerometer, not paused by manoeuvres, s: it starts over with the
   * gravity estimate and is its fallback, the mean since the (re)start until it is this long. A
   * car's own acceleration averages to its speed change over the window (a minute: a stop-to-stop
   * stretch of town driving, near zero), and turns are left out (below).
   */
  fallback_s: number
  /** The fallback takes samples only while the rotation rate is under this, rad/s: not in turns, whose centripetal acceleration lasts and would tilt it. */
  fallbackMaxTurn_rads: number
  /** After a (re)start, gravity is the fallback's mean since then for this long, s: long enough for the phone to come to rest in its mount. */
  settle_s: number
  /**
   * Rotation about horizontal axes, integrated over `moved_s`, that means the phone was moved in
   * its mount, rad: a car pitches and rolls a few degrees at most (braking dive, body roll), a
   * bump for milliseconds; a hand turns a phone tens of degrees in a second.
   */
  moved_rad: number
  moved_s: number
  /**
   * Paused this long without a break, s, the gravity estimate is taken to be wrong (it settled while
   * the car was manoeuvring, or the mount changed slowly, which the gyroscope misses) and is replaced
   * by the fallback when they differ: manoeuvres, even back to back (an overtaking, then a turn),
   * rarely last this long.
   */
  maxPaused_s: number
  /** A gap in device time longer than this starts over, s: the phone may have left its mount (parking, a call). */
  maxGap_s: number
  /**
   * A gravity estimate weaker than this has no direction to level by, m/s² (a phone at rest reads
   * 9.81): an accelerometer reading zero at start-up, a phone in free fall. Its samples are handed on
   * as no motion (zeros) and the frame starts over with the next sample that has one (#20: an
   * all-zero batch made every axis NaN, and the device's IMU events and trip sums with it).
   */
  minGravity_ms2: number
  /** GPS fixes less accurate than this are not used, m: a warm-up or urban-canyon fix's speed jumps (issue #19, input hygiene). */
  gpsMaxAccuracy_m: number
  /** GPS seconds count for the forward axis when their |dv/dt| is at least this, m/s²: below, GPS speed noise (about 0.1–0.2 m/s) dominates. */
  gpsMinDv_ms2: number
  /** ... and the mean |yaw rate| over the second is at most this, rad/s: in a turn the centripetal acceleration would bend the fit. */
  gpsMaxYaw_rads: number
  /** GPS seconds needed before the forward axis is taken from them. */
  gpsMin: number
  /** The GPS fit forgets with this many qualifying seconds' memory, so a phone turned in its mount is followed. */
  gpsMemory: number
  /** Without GPS: the smoothed horizontal acceleration that counts for the main axis, m/s² (a manoeuvre, not cruising noise) ... */
  axisMin_ms2: number
  /** ... on straight road only: smoothed |yaw rate| at most this, rad/s (turns' centripetal acceleration is lateral). */
  axisMaxYaw_rads: number
  /** Time constant of the smoothing of both, s. */
  axisSmooth_s: number
  /** Seconds of such acceleration before the main axis is trusted. */
  axisMin_s: number
  /** Ratio of the main axis's variance to the other's before it is trusted: otherwise no axis dominates. */
  axisMinRatio: number
}

/** Defaults; checked on the driver behaviour dataset's trips turned into a tilted phone (vehicle-frame.test.ts). */
export const defaultVehicleFrameConfig: VehicleFrameConfig = {
  gravity_s: 10,
  mean_s: 0.25,
  gate_ms2: 0.3,
  fallback_s: 60,
  fallbackMaxTurn_rads: 0.05,
  settle_s: 2,
  moved_rad: 0.6,
  moved_s: 1,
  maxPaused_s: 20,
  maxGap_s: 10,
  minGravity_ms2: 2,
  gpsMaxAccuracy_m: 25,
  gpsMinDv_ms2: 0.5,
  gpsMaxYaw_rads: 0.1,
  gpsMin: 5,
  gpsMemory: 60,
  axisMin_ms2: 1,
  axisMaxYaw_rads: 0.05,
  axisSmooth_s: 0.25,
  axisMin_s: 10,
  axisMinRatio: 2,
}

/** An orthonormal basis, in the phone's frame: the vehicle frame's axes. */
export interface Basis {
  x: Vec3
  y: Vec3
  z: Vec3
}

const dot = (a: Vec3, b: Vec3) => a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
const norm = (a: Vec3) => Math.sqrt(dot(a, a))
const cross = (a: Vec3, b: Vec3): Vec3 => [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
const scale = (a: Vec3, k: number): Vec3 => [a[0] * k, a[1] * k, a[2] * k]
/** The part of `a` perpendicular to the unit vector `u`. */
const reject = (a: Vec3, u: Vec3): Vec3 => { const k = dot(a, u); return [a[0] - k * u[0], a[1] - k * u[1], a[2] - k * u[2]] }

/**
 * The level basis with z along `up` and x along `reference` projected on the horizontal plane; y = z × x
 * (left when x is forward). `reference` must not be parallel to `up`.
 */
export function levelBasis(up: Vec3, reference: Vec3): Basis {
  const z = scale(up, 1 / norm(up))
  const h = reject(reference, z)
  const x = scale(h, 1 / norm(h))
  return { x, y: cross(z, x), z }
}

/** A phone-frame vector's coordinates in basis `b`. */
export const toBasis = (b: Basis, v: Vec3): Vec3 => [dot(b.x, v), dot(b.y, v), dot(b.z, v)]

/** The phone-frame vector whose coordinates in basis `b` are `w`. */
export const fromBasis = (b: Basis, w: Vec3): Vec3 => [
  b.x[0] * w[0] + b.y[0] * w[1] + b.z[0] * w[2],
  b.x[1] * w[0] + b.y[1] * w[1] + b.z[1] * w[2],
  b.x[2] * w[0] + b.y[2] * w[1] + b.z[2] * w[2],
]

/** The phone axis least aligned with `up`: a horizontal reference that stays well defined. */
function phoneAxis(up: Vec3): Vec3 {
  const a = up.map(Math.abs)
  const i = a[0]! <= a[1]! && a[0]! <= a[2]! ? 0 : a[1]! <= a[2]! ? 1 : 2
  const e: Vec3 = [0, 0, 0]
  e[i] = 1
  return e
}

/** The 100 ms bins of horizontal acceleration kept for pairing with GPS fixes: 10 s. */
const BIN_MS = 100
const BINS = 100
const BIN_FIELDS = 6

/** What the estimator holds now, in the phone's frame (for tests and evidence). */
export interface FrameEstimate {
  /** Gravity's direction and size as the accelerometer reads it (up, about 9.81 m/s²); undefined before the first sample. */
  gravity: Vec3 | undefined
  /** The forward axis (unit, horizontal), undefined until estimated. */
  forward: Vec3 | undefined
  /** Where `forward` came from. */
  forwardFrom: 'gps' | 'axis' | undefined
}

/**
 * One device's estimator: feed it the device's readings in device-time order. `imu_device` readings
 * come back as `imu` readings in the level vehicle frame (fields: `rate_hz`, and `frame_forward`,
 * true once x is the estimated forward axis); every other reading comes back unchanged. `gps`
 * readings with `speed_kmh` teach it the forward axis.
 */
export function vehicleFrame(cfg: VehicleFrameConfig = defaultVehicleFrameConfig): { push(r: Reading): Reading; frame(): FrameEstimate } {
  /** GNSS fixes with speed waiting for the IMU to cover them (the first 5 before any IMU). */
  const pendingFixes: Fix[] = []
  // The estimator is made at the first imu_device batch: most devices (a car's dongle, a watch)
  // never send one, and its state and closures were about 4 KiB a device (#25).
  let estimator: ReturnType<typeof frameEstimator> | undefined
  return {
    push(r) {
      if (r.kind === 'gps' && typeof r.fields.speed_kmh === 'number' && !(Number(r.fields.accuracy_m) > cfg.gpsMaxAccuracy_m)) {
        if (pendingFixes.length < 5) pendingFixes.push({ ms: r.ts, speed_mps: r.fields.speed_kmh / 3.6 })
        estimator?.pairFixes()
        return r
      }
      const rate = Number(r.fields.rate_hz)
      if (r.kind !== 'imu_device' || !r.samples || !(rate > 0)) return r
      estimator ??= frameEstimator(cfg, pendingFixes)
      return estimator.imu(r, rate)
    },
    frame: () => estimator?.frame() ?? { gravity: undefined, forward: undefined, forwardFrom: undefined },
  }
}

interface Fix {
  ms: number
  speed_mps: number
}

/** vehicleFrame's estimator, from its first imu_device batch on; it takes `pendingFixes` (vehicleFrame's) from the front as the IMU covers them. */
function frameEstimator(cfg: VehicleFrameConfig, pendingFixes: Fix[]) {
  // Gravity (low-pass of the accelerometer, undefined until the first sample), its fallback, the
  // short-term mean acceleration, and the leaky integral of the rotation about horizontal axes.
  let g: Vec3 | undefined
  let fallback: Vec3 = [0, 0, 0]
  /** Samples in the fallback since the (re)start. */
  let fallbackN = 0
  let mean: Vec3 = [0, 0, 0]
  let turned: Vec3 = [0, 0, 0]
  let settleUntil = 0
  let pausedSince: number | undefined
  let lastMs: number | undefined
  /** Fixed horizontal reference while the forward axis is unknown. */
  let reference: Vec3 = [1, 0, 0]

  // Forward from GPS: Σ dv/dt · a_h (phone frame) over qualifying GPS seconds, fading with gpsMemory.
  let gpsSum: Vec3 = [0, 0, 0]
  let gpsCount = 0
  // Made at the first settled IMU sample: most devices (a car's dongle, a watch) never send an
  // imu_device stream, and 100 bins are 3 KiB a device (#25). Per slot: bin, Σx, Σy, Σz, Σ|yaw|, n.
  let bins: Float64Array | undefined
  let lastFix: Fix | undefined

  // Forward without GPS: smoothed horizontal acceleration and yaw rate; second and third moments of
  // the qualifying ones (phone frame, symmetric: 6 and 10 distinct terms) and their duration.
  let smooth: Vec3 = [0, 0, 0]
  let smoothYaw = 0
  let m2 = new Float64Array(6)
  let m3 = new Float64Array(10)
  let axisTime_s = 0

  let forward: Vec3 | undefined
  let forwardFrom: FrameEstimate['forwardFrom']

  function forgetForward() {
    gpsSum = [0, 0, 0]
    gpsCount = 0
    m2 = new Float64Array(6)
    m3 = new Float64Array(10)
    axisTime_s = 0
    forward = undefined
    forwardFrom = undefined
    lastFix = undefined
    pendingFixes.length = 0
    bins = undefined
  }

  /** Starts over: gravity is the fallback's mean since now for settle_s, the forward axis is learnt again. */
  function restart(tMs: number) {
    fallbackN = 0
    settleUntil = tMs + cfg.settle_s * 1000
    pausedSince = undefined
    turned = [0, 0, 0]
    forgetForward()
  }

  /** The level basis for gravity `up`: x forward when known, else along the fixed reference. */
  function basis(up: Vec3): Basis {
    const n = norm(up)
    // (Both are unit vectors; one close to vertical, after gravity drifted a long way without a restart, cannot give x.)
    if (forward && Math.abs(dot(forward, up)) <= 0.9 * n) return levelBasis(up, forward)
    if (Math.abs(dot(reference, up)) > 0.9 * n) reference = phoneAxis(up)
    return levelBasis(up, reference)
  }

  /** Updates the state with one sample; returns it in the vehicle frame. */
  function sample(tMs: number, dt: number, a: Vec3, w: Vec3): number[] {
    if (!g) {
      if (norm(a) < cfg.minGravity_ms2) return [0, 0, 0, 0, 0, 0]
      g = [...a]
      mean = [...a]
      reference = phoneAxis(g)
      restart(tMs)
    }
    const k = (tau: number) => 1 - Math.exp(-dt / tau)
    const km = k(cfg.mean_s)
    mean = [mean[0] + (a[0] - mean[0]) * km, mean[1] + (a[1] - mean[1]) * km, mean[2] + (a[2] - mean[2]) * km]
    const up = scale(g, 1 / norm(g))

    // Moved in the mount: a rotation about horizontal axes that no car makes.
    const kt = Math.exp(-dt / cfg.moved_s)
    const wh = reject(w, up)
    turned = [turned[0] * kt + wh[0] * dt, turned[1] * kt + wh[1] * dt, turned[2] * kt + wh[2] * dt]
    if (norm(turned) > cfg.moved_rad) restart(tMs)

    // The fallback: the mean since the (re)start, then a low-pass of time constant fallback_s.
    if (fallbackN === 0 || norm(w) <= cfg.fallbackMaxTurn_rads) {
      const kf = Math.max(k(cfg.fallback_s), 1 / ++fallbackN)
      fallback = [fallback[0] + (a[0] - fallback[0]) * kf, fallback[1] + (a[1] - fallback[1]) * kf, fallback[2] + (a[2] - fallback[2]) * kf]
    }
    const settling = tMs < settleUntil
    const off = norm([mean[0] - g[0], mean[1] - g[1], mean[2] - g[2]])
    if (settling) g = [...fallback]
    else if (off <= cfg.gate_ms2) {
      const kg = k(cfg.gravity_s)
      g = [g[0] + (a[0] - g[0]) * kg, g[1] + (a[1] - g[1]) * kg, g[2] + (a[2] - g[2]) * kg]
      pausedSince = undefined
    } else {
      pausedSince ??= tMs
      if (tMs - pausedSince > cfg.maxPaused_s * 1000) {
        if (norm([fallback[0] - g[0], fallback[1] - g[1], fallback[2] - g[2]]) > cfg.gate_ms2) g = [...fallback]
        pausedSince = undefined
      }
    }

    if (norm(g) < cfg.minGravity_ms2) {
      g = undefined
      return [0, 0, 0, 0, 0, 0]
    }
    const b = basis(g)
    const gSize = norm(g)
    const yaw = dot(w, b.z)
    const ah = reject(a, b.z)
    if (!settling) learn(tMs, dt, ah, yaw, b)
    return [dot(a, b.x), dot(a, b.y), dot(a, b.z) - gSize, dot(w, b.x), dot(w, b.y), yaw]
  }

  /** Feeds the forward-axis estimators with one settled sample's horizontal acceleration `ah` and yaw rate. */
  function learn(tMs: number, dt: number, ah: Vec3, yaw: number, b: Basis) {
    const bin = Math.floor(tMs / BIN_MS)
    bins ??= new Float64Array(BINS * BIN_FIELDS).fill(-1)
    const at = (bin % BINS) * BIN_FIELDS
    if (bins[at] !== bin) bins.set([bin, 0, 0, 0, 0, 0], at)
    bins[at + 1]! += ah[0]; bins[at + 2]! += ah[1]; bins[at + 3]! += ah[2]
    bins[at + 4]! += Math.abs(yaw)
    bins[at + 5]! += 1

    const ks = 1 - Math.exp(-dt / cfg.axisSmooth_s)
    smooth = [smooth[0] + (ah[0] - smooth[0]) * ks, smooth[1] + (ah[1] - smooth[1]) * ks, smooth[2] + (ah[2] - smooth[2]) * ks]
    smoothYaw += (Math.abs(yaw) - smoothYaw) * ks
    if (norm(smooth) >= cfg.axisMin_ms2 && smoothYaw <= cfg.axisMaxYaw_rads) {
      const [x, y, z] = smooth
      const second = [x * x, y * y, z * z, x * y, x * z, y * z]
      const third = [x * x * x, y * y * y, z * z * z, x * x * y, x * x * z, y * y * x, y * y * z, z * z * x, z * z * y, x * y * z]
      for (let i = 0; i < 6; i++) m2[i]! += second[i]! * dt
      for (let i = 0; i < 10; i++) m3[i]! += third[i]! * dt
      axisTime_s += dt
      if (forwardFrom !== 'gps' && axisTime_s >= cfg.axisMin_s) axisForward(b)
    }
  }

  /** The main axis of the qualifying horizontal accelerations, signed so that its stronger tail is braking. */
  function axisForward(b: Basis) {
    const c = (u: Vec3, v: Vec3) => u[0] * v[0] * m2[0]! + u[1] * v[1] * m2[1]! + u[2] * v[2] * m2[2]! + (u[0] * v[1] + u[1] * v[0]) * m2[3]! + (u[0] * v[2] + u[2] * v[0]) * m2[4]! + (u[1] * v[2] + u[2] * v[1]) * m2[5]!
    const [cxx, cyy, cxy] = [c(b.x, b.x), c(b.y, b.y), c(b.x, b.y)]
    const theta = Math.atan2(2 * cxy, cxx - cyy) / 2
    const spread = Math.hypot((cxx - cyy) / 2, cxy)
    const [major, minor] = [(cxx + cyy) / 2 + spread, (cxx + cyy) / 2 - spread]
    if (major < cfg.axisMinRatio * Math.max(minor, 1e-12)) return
    const u: Vec3 = fromBasis(b, [Math.cos(theta), Math.sin(theta), 0])
    const [x, y, z] = u
    const skew = m3[0]! * x * x * x + m3[1]! * y * y * y + m3[2]! * z * z * z + 3 * (m3[3]! * x * x * y + m3[4]! * x * x * z + m3[5]! * y * y * x + m3[6]! * y * y * z + m3[7]! * z * z * x + m3[8]! * z * z * y) + 6 * m3[9]! * x * y * z
    forward = skew <= 0 ? u : scale(u, -1)
    forwardFrom = 'axis'
  }

  /** Pairs GPS fixes with the IMU seconds between them once the IMU has covered them. */
  function pairFixes() {
    while (pendingFixes.length && lastMs !== undefined && pendingFixes[0]!.ms <= lastMs) {
      const fix = pendingFixes.shift()!
      const prev = lastFix
      lastFix = fix
      // GPS comes at 1 Hz; a longer gap's mean acceleration says little about one speed change.
      if (!prev || fix.ms - prev.ms > 2000 || fix.ms <= prev.ms || !g) continue
      const sum: Vec3 = [0, 0, 0]
      let yaw = 0, n = 0
      for (let bin = Math.ceil(prev.ms / BIN_MS); bin < Math.ceil(fix.ms / BIN_MS) && bins; bin++) {
        const at = (bin % BINS) * BIN_FIELDS
        if (bins[at] !== bin) continue
        sum[0] += bins[at + 1]!; sum[1] += bins[at + 2]!; sum[2] += bins[at + 3]!
        yaw += bins[at + 4]!
        n += bins[at + 5]!
      }
      const dv = (fix.speed_mps - prev.speed_mps) / ((fix.ms - prev.ms) / 1000)
      if (n === 0 || Math.abs(dv) < cfg.gpsMinDv_ms2 || yaw / n > cfg.gpsMaxYaw_rads) continue
      const keep = 1 - 1 / cfg.gpsMemory
      gpsSum = [gpsSum[0] * keep + (dv * sum[0]) / n, gpsSum[1] * keep + (dv * sum[1]) / n, gpsSum[2] * keep + (dv * sum[2]) / n]
      gpsCount++
      const h = reject(gpsSum, scale(g, 1 / norm(g)))
      if (gpsCount >= cfg.gpsMin && norm(h) > 0) {
        forward = scale(h, 1 / norm(h))
        forwardFrom = 'gps'
      }
    }
  }

  return {
    pairFixes,
    /** An imu_device batch of `rate` Hz, in the level vehicle frame. */
    imu(r: Reading, rate: number): Reading {
      const step = 1000 / rate
      // Time already seen (a re-sent batch): converted with the frame as it is, not learnt from again.
      const replay = lastMs !== undefined && r.ts <= lastMs
      if (!replay && lastMs !== undefined && r.ts - lastMs > cfg.maxGap_s * 1000) {
        g = undefined
        lastMs = undefined
      }
      const samples = r.samples!.map((row, j) => {
        const a: Vec3 = [row[0] ?? 0, row[1] ?? 0, row[2] ?? 0]
        const w: Vec3 = [row[3] ?? 0, row[4] ?? 0, row[5] ?? 0]
        if (replay && g) {
          const b = basis(g)
          return [dot(a, b.x), dot(a, b.y), dot(a, b.z) - norm(g), dot(w, b.x), dot(w, b.y), dot(w, b.z)]
        }
        const t = r.ts + j * step
        const out = sample(t, 1 / rate, a, w)
        lastMs = t
        return out
      })
      if (!replay) pairFixes()
      return { ...r, kind: 'imu', fields: { ...r.fields, frame_forward: forward !== undefined }, samples }
    },
    frame: (): FrameEstimate => ({ gravity: g && [...g], forward: forward && [...forward], forwardFrom }),
  }
}
