/**
 * Trips from a vehicle device's stream, and the driving events inside them.
 *
 * A trip starts at ignition on (a `status` message) or, for devices without one (phones), when the
 * vehicle moves; it ends at ignition off, after `stopGap_s` standing still without an ignition
 * signal, after a crash, or when the device has been silent for `maxGap_s` (the last reading ends
 * it). Trips shorter than `minTrip_s` or `minTrip_km` are not trips (a car moved in a driveway).
 *
 * Speed comes from OBD when the device sends it, else from GPS. Distance integrates speed between
 * samples up to `maxSpeedGap_s` apart; across a longer GPS dropout (a tunnel) it takes the straight
 * line between the fixes on either side, which a tunnel's road nearly is.
 *
 * Per device, the tracker owns one of each detector (manoeuvres, speeding, phone handling, crash)
 * and adds the speed-based ones that need no IMU: harsh braking and acceleration from the speed
 * change (which also stand in for the IMU's `harsh_longitudinal` whenever speed is around it, as
 * speed says which of the two it was), harsh lateral acceleration from GPS heading change, night
 * driving and continuous driving. Every event a trip's readings
 * produce is counted in the trip when it closes, because closing a trip flushes the detectors.
 */
import { defer, filter, map, tap, type Observable, type OperatorFunction, type SchedulerLike } from 'rxjs'
import { geohash, haversine_km, type Reading } from '../ingest/index.ts'
import { policyEvent, type DetectedEvidence, type Detector, type DrivingEvent, type DrivingEventType } from './events.ts'
import { perKey, restored, type Restore } from './per-key.ts'
import { vehicleFrame } from './vehicle-frame.ts'

/** How trips are cut and the speed-based events detected. */
export interface TripConfig {
  /** At or above this the vehicle moves, km/h. */
  moving_kmh: number
  /** Standing still this long ends a trip on devices without an ignition signal, s. */
  stopGap_s: number
  /** A device silent this long has ended its trip at its last reading, s. */
  maxGap_s: number
  /** Speed samples further apart than this are not integrated (a dropout), s. */
  maxSpeedGap_s: number
  minTrip_s: number
  minTrip_km: number
  /**
   * Harsh braking and acceleration from 1 Hz speed, m/s², per speed source and speed band (bands
   * are upper bounds in km/h, last is open). Insurers' dongle programmes flag a hard brake at about
   * 7–8 mph per second (3.1–3.6 m/s²), and road design takes 3.4 m/s² as the deceleration most
   * drivers stop at in comfort (AASHTO's stopping sight distance), so harsh is above it. A phone's
   * GNSS speed is Doppler-measured, not differenced from positions; until recordings of both
   * sources on one car show it reads a braking differently, it has the wheels' threshold, so one
   * manoeuvre is one event whichever device saw it (scoring/phone-mount.test.ts). A lower GNSS
   * threshold (2.5 m/s²) made ordinary stops harsh: 11 in two 2 km simulated trips of a driver
   * whose stops stay under 2.5 m/s².
   */
  harsh: Readonly<Record<'obd' | 'gps', readonly { below_kmh: number; braking_ms2: number; acceleration_ms2: number }[]>>
  /**
   * Which GNSS fixes give a speed to trust. A phone's first fixes after a cold start (speed 0 at
   * an accuracy of 30–2,000 m, then the true speed) and multipath jumps are not driving: a fix
   * less accurate than `maxAccuracy_m` (a phone in a car reads 3–10 m under open sky, up to about
   * 20 in towns) is not used for speed, and a change of speed faster than `maxAccel_ms2` (no car
   * brakes harder than about 1 g on dry tarmac, and none accelerates near it) is a jump: the
   * speed-change detectors start again after it. So is a turn whose acceleration across the track
   * (speed × yaw rate, from the heading or the IMU) is beyond the same bound: no car corners harder
   * either (#20: two fixes 1 ms apart, 180° apart, made a harsh_lateral of 43,600 m/s²).
   */
  gpsTrust: { maxAccuracy_m: number; maxAccel_ms2: number }
  /**
   * Driving dynamics, how hard the car is driven, counted over every trusted 1 Hz speed sample
   * while moving at `minSpeed_kmh` or more: longitudinal acceleration from the speed change,
   * lateral as speed × yaw rate (the GNSS heading's change above `lateralMin_kmh`, else the
   * IMU's rotation about the vertical over that second). Seconds above the limits count, by speed
   * band (upper bounds in km/h): ordinary drivers keep within an envelope of about 0.15 g
   * longitudinal and 0.25 g lateral in town that narrows with speed (Bosetti, Da Lio & Saroldi
   * 2014, "On the human control of vehicles: an experimental study of acceleration"; comfort
   * limits of 0.1–0.15 g in road design), so time beyond it says how hard, not how far.
   */
  dynamics: { minSpeed_kmh: number; bands: readonly { below_kmh: number; long_ms2: number; lat_ms2: number }[] }
  /** Lateral acceleration v·dψ/dt from GPS heading, m/s², above `lateralMin_kmh` (heading is noise when slow). */
  lateral_ms2: number
  lateralMin_kmh: number
  /** Readings this far behind the device's last one, s, and this many of them in a row, outvote its clock (a device cannot hide its driving behind one reading dated ahead, #20). */
  clockJump_s: number
  clockVotes: number
  /** An IMU stream this long without any speed or ignition is a phone's trip of its own (a phone that sends no speed), s. */
  imuOnlyAfter_s: number
  /** Local night, solar hours [from, to) (longitude/15 from UTC; without a fix, UTC). */
  night_h: readonly [number, number]
  /** Driving this long without a break is an event, s; a break is standing or parked this long, s. */
  continuous_s: number
  break_s: number
}

export const defaultTripConfig: TripConfig = {
  moving_kmh: 5,
  stopGap_s: 180,
  maxGap_s: 600,
  maxSpeedGap_s: 5,
  minTrip_s: 60,
  minTrip_km: 0.2,
  harsh: {
    obd: [{ below_kmh: Infinity, braking_ms2: 3.5, acceleration_ms2: 3.0 }],
    gps: [{ below_kmh: Infinity, braking_ms2: 3.5, acceleration_ms2: 3.0 }],
  },
  gpsTrust: { maxAccuracy_m: 25, maxAccel_ms2: 10 },
  dynamics: {
    minSpeed_kmh: 10,
    bands: [
      { below_kmh: 50, long_ms2: 1.5, lat_ms2: 2.5 },
      { below_kmh: 90, long_ms2: 1.2, lat_ms2: 2.0 },
      { below_kmh: Infinity, long_ms2: 1.0, lat_ms2: 1.5 },
    ],
  },
  lateral_ms2: 4.0,
  lateralMin_kmh: 20,
  clockJump_s: 10,
  clockVotes: 3,
  imuOnlyAfter_s: 10,
  night_h: [22, 5],
  continuous_s: 2 * 3600,
  break_s: 15 * 60,
}

/** One closed trip: what pricing-relevant driving it holds. */
export interface Trip {
  policyId: string
  deviceId: string
  from: number
  to: number
  /** What ended it. */
  ended: 'ignition' | 'stop' | 'gap' | 'crash'
  /** Where the speed came from; `imu` for a phone that sends no speed (its trip is its IMU stream, with no distance). */
  source: 'obd' | 'gps' | 'imu'
  distance_km: number
  duration_s: number
  moving_s: number
  night_s: number
  speeding_s: number
  phone_s: number
  max_speed_kmh: number
  /**
   * Driving dynamics, how hard the car was driven, whatever the trip's length (#19): seconds of
   * moving time measured with a trusted speed source (`dyn_s`); of those, seconds above the
   * speed-banded limits of longitudinal acceleration (`accel_s`), deceleration (`brake_s`) and
   * lateral acceleration (`corner_s`); and the sums of squares of longitudinal and lateral
   * acceleration over them, m²/s⁴·s (`long_sq`, `lat_sq`: RMS = √(sum / dyn_s)). Sums, so trips
   * and days add up.
   */
  dyn_s: number
  accel_s: number
  brake_s: number
  corner_s: number
  long_sq: number
  lat_sq: number
  /**
   * Moving seconds while the policy had location paused (privacy mode, #21): no positions, so no
   * speeding against the road map. Set by scoring from the policy's pauses; the tracker gives 0.
   */
  paused_s: number
  /** Events in the trip, by type. */
  events: Partial<Record<DrivingEventType, number>>
}

/**
 * Where a trip went, coarsened (#21): seconds per geohash cell of AREA_CHARS characters (about
 * 1.2 × 0.6 km), from its accurate fixes. Its positions are needed only while its features are
 * computed (speeding against the road map, night by the sun); this is what outlives them, for
 * location features that need no more (territory, urban or rural driving; the sun's position
 * moves by under 3 s of solar time across a cell), and too coarse to find a street or a house by.
 */
export type TripArea = Record<string, number>

/** Characters of a trip area's geohash cells (TripArea). */
export const AREA_CHARS = 6

/** A full-precision fix, kept for a crash's claim (CRASH_TRACK_S). */
export interface TrackFix {
  ts: number
  lat_deg: number
  lon_deg: number
  accuracy_m?: number
  speed_kmh?: number
  heading_deg?: number
}

/** A crash keeps the device's fixes of the seconds before it, at full precision: where and how the car came to it, for the claim (#21). */
export const CRASH_TRACK_S = 30

/** A TrackFix's fields in the order a tracker keeps them, flat. */
const TRACK_FIELDS = ['ts', 'lat_deg', 'lon_deg', 'accuracy_m', 'speed_kmh', 'heading_deg'] as const

/** Flat fixes (TRACK_FIELDS each, NaN for a field not sent) as TrackFix objects. */
function fixesOf(flat: readonly number[]): TrackFix[] {
  const fixes: TrackFix[] = []
  for (let i = 0; i < flat.length; i += TRACK_FIELDS.length) {
    const fix: Record<string, number> = {}
    TRACK_FIELDS.forEach((k, j) => Number.isNaN(flat[i + j]) || (fix[k] = flat[i + j]!))
    fixes.push(fix as unknown as TrackFix)
  }
  return fixes
}

/**
 * What a device's readings produce: events as they are detected (a crash with its track, when the
 * device sends positions), trips as they close (with their area, when it does).
 */
export type TripOutput = { event: DrivingEvent; crashTrack?: readonly TrackFix[] } | { trip: Trip; area?: TripArea }

interface OpenTrip extends Omit<Trip, 'to' | 'ended' | 'source' | 'duration_s'> {
  to: number
  sources: Set<'obd' | 'gps'>
  lastMovingTs: number
  /** Position of the last fix, for distance across dropouts. */
  fix?: { ts: number; lat_deg: number; lon_deg: number }
  /** Seconds per coarse cell so far (TripArea), and the last accurate fix's time. */
  area: Map<string, number>
  areaTs?: number
}

/**
 * A device's trip tracker: `push` its readings in device-time order; `flush` when it falls silent.
 * `detectors` are the device's own instances (one each), fed every reading.
 */
export function tripTracker(cfg: TripConfig, deviceId: string, policyId: string, detectors: readonly Detector[]) {
  let trip: OpenTrip | undefined
  const frame = vehicleFrame()
  /** Device times of the speed and status readings in a row that came behind the last one (see outvoted). */
  let behind: number[] = []
  let lastTs = -Infinity
  let speed: { ts: number; kmh: number; source: 'obd' | 'gps' } | undefined
  let lastObdTs = -Infinity
  let lastImuTs = -Infinity
  let heading: { ts: number; deg: number } | undefined
  /** Yaw rate, rad/s: the last IMU batch's mean rotation about the vertical, and the GNSS heading's last change. */
  let imuYaw: { from: number; to: number; rads: number } | undefined
  let gpsYaw: { ts: number; rads: number } | undefined
  /** The device sends speed (OBD or GNSS), and since when one was trusted: no event comes from before it. */
  let sendsSpeed = false
  /** Since when an IMU stream has come without any speed. */
  let imuSince: number | undefined
  let trustedSince: number | undefined
  let lon_deg: number | undefined
  /** Times of the recent speed samples (the last minute), to know whether an IMU event had speed beside it. */
  const recent: number[] = []
  let harsh: { type: 'harsh_braking' | 'harsh_acceleration'; from: number; to: number; peak: number; threshold: number; samples: number } | undefined
  let lateral: { from: number; to: number; peak: number; samples: number } | undefined
  let stretch: { from: number; lastMovingTs: number; reported: boolean } | undefined
  let night: { from: number; to: number } | undefined
  /** Devices with an ignition signal end trips by it, not by standing still (a long red light, a queue). */
  let ignitionSeen = false
  /**
   * The fixes of the last CRASH_TRACK_S, oldest first: a crash's track. Flat, TRACK_FIELDS a fix
   * (NaN where the fix had no such field): an object a fix was 4 KiB a device more (#25).
   */
  const track: number[] = []

  const event = (type: DrivingEventType, from: number, to: number, evidence: DetectedEvidence<DrivingEventType>): DrivingEvent =>
    policyEvent(type, policyId, deviceId, from, to, evidence)

  function push(raw: Reading): TripOutput[] {
    const out: TripOutput[] = []
    if (raw.ts < lastTs && !outvoted(raw, out)) {
      // orderWithin put readings in order: this is a straggler beyond it, or a crash recorder's
      // window uploaded after the crash. Stored by ingest; only detectors that want it see it.
      collect(detectors.flatMap((d) => (d.late?.(raw) ?? []) as DrivingEvent[]), out)
      return out
    }
    // A phone in any mount: its own-frame IMU becomes the level vehicle frame the detectors read (GNSS teaches it forward).
    const r = frame.push(raw)
    if (r.kind === 'status') ignitionSeen = true
    if (trip && r.ts - lastTs > cfg.maxGap_s * 1000) close('gap', out)
    lastTs = r.ts
    behind = []
    const detected = detectors.flatMap((d) => d.push(r) as DrivingEvent[])
    if (r.kind === 'imu') {
      lastImuTs = r.ts
      imuYaw = batchYaw(r) ?? imuYaw
      if (!sendsSpeed && !ignitionSeen && imuYaw) imuOnly(r.ts, imuYaw.to)
    }
    if (r.kind === 'gps') {
      if (typeof r.fields.lon_deg === 'number') lon_deg = r.fields.lon_deg
      if (typeof r.fields.lat_deg === 'number' && typeof r.fields.lon_deg === 'number') keepTrack(r)
      if (trip && typeof r.fields.lat_deg === 'number') bridge(r)
      detectLateral(r, out)
    }
    if (r.kind === 'status' && typeof r.fields.ignition_on === 'boolean') {
      if (r.fields.ignition_on && !trip) open(r.ts)
      else if (!r.fields.ignition_on && trip) {
        collect(detected, out)
        close('ignition', out)
        return out
      }
    }
    const kmh = speedOf(r)
    if (kmh !== undefined) onSpeed(r, kmh, out)
    collect(detected, out)
    return out
  }

  /** A GNSS fix accurate enough to take its speed and heading from (gpsTrust). */
  const accurate = (r: Reading) => !(typeof r.fields.accuracy_m === 'number' && r.fields.accuracy_m > cfg.gpsTrust.maxAccuracy_m)

  function speedOf(r: Reading): number | undefined {
    const v = r.fields.speed_kmh
    if (typeof v !== 'number') return undefined
    if (r.kind === 'obd') {
      sendsSpeed = true
      lastObdTs = r.ts
      return v
    }
    if (r.kind !== 'gps') return undefined
    sendsSpeed = true
    if (!accurate(r)) return undefined
    // GPS speed only when no OBD speed is coming: two sources would integrate the distance twice.
    return r.ts - lastObdTs > cfg.maxSpeedGap_s * 1000 ? v : undefined
  }

  function onSpeed(r: Reading, kmh: number, out: TripOutput[]) {
    const source = r.kind as 'obd' | 'gps'
    const moving = kmh >= cfg.moving_kmh
    if (!trip && moving) open(r.ts)
    recent.push(r.ts)
    recent.splice(0, recent.findIndex((ts) => ts >= r.ts - 60_000))
    const prev = speed
    speed = { ts: r.ts, kmh, source }
    trustedSince ??= r.ts
    if (!trip) return
    trip.sources.add(source)
    trip.max_speed_kmh = Math.max(trip.max_speed_kmh, kmh)
    const dt = prev ? (r.ts - prev.ts) / 1000 : 0
    if (prev && dt > 0 && dt <= cfg.maxSpeedGap_s) {
      trip.distance_km += ((prev.kmh + kmh) / 2) * (dt / 3600)
      if (moving) {
        trip.moving_s += dt
        if (isNight(r.ts)) {
          trip.night_s += dt
          night = night && r.ts - night.to <= cfg.maxSpeedGap_s * 1000 ? { ...night, to: r.ts } : { from: r.ts - dt * 1000, to: r.ts }
        }
      }
      const accel_ms2 = (kmh - prev.kmh) / 3.6 / dt
      if (Math.abs(accel_ms2) > cfg.gpsTrust.maxAccel_ms2) endHarsh(out) // a jump, not driving
      else {
        detectHarsh(r.ts, accel_ms2, Math.max(kmh, prev.kmh), source, out)
        if (dt <= 2) measureDynamics(r.ts, accel_ms2, (kmh + prev.kmh) / 2)
      }
    }
    if (moving) {
      trip.lastMovingTs = r.ts
      continuous(r.ts, out)
    } else if (!ignitionSeen && r.ts - trip.lastMovingTs >= cfg.stopGap_s * 1000) close('stop', out)
  }

  /** The acceleration across the track of a turn at `kmh` and `yaw_rads`; undefined beyond what any car corners at (gpsTrust). */
  function lateralOf(kmh: number, yaw_rads: number): number | undefined {
    const a = (kmh / 3.6) * yaw_rads
    return Math.abs(a) > cfg.gpsTrust.maxAccel_ms2 ? undefined : a
  }

  /** One trusted speed step of `accel_ms2` at a mean of `kmh` into the trip's dynamics sums. */
  function measureDynamics(ts: number, accel_ms2: number, kmh: number) {
    if (kmh < cfg.dynamics.minSpeed_kmh) return
    const t = trip!
    const band = cfg.dynamics.bands.find((b) => kmh < b.below_kmh)!
    // The GNSS course first: every phone has one, while recordings and dongles may carry no gyroscope (a zero column).
    const yaw_rads = gpsYaw && gpsYaw.ts === ts ? gpsYaw.rads : imuYaw && imuYaw.from <= ts && imuYaw.to >= ts - 1500 ? imuYaw.rads : 0
    const lateral_ms2 = lateralOf(kmh, yaw_rads)
    if (lateral_ms2 === undefined) return // a jump, as a speed change beyond maxAccel_ms2 is
    t.dyn_s += 1
    if (accel_ms2 >= band.long_ms2) t.accel_s += 1
    if (accel_ms2 <= -band.long_ms2) t.brake_s += 1
    if (Math.abs(lateral_ms2) >= band.lat_ms2) t.corner_s += 1
    t.long_sq += accel_ms2 ** 2
    t.lat_sq += lateral_ms2 ** 2
  }

  function detectHarsh(ts: number, accel_ms2: number, kmh: number, source: 'obd' | 'gps', out: TripOutput[]) {
    const band = cfg.harsh[source].find((b) => kmh < b.below_kmh)!
    const type = accel_ms2 <= -band.braking_ms2 ? 'harsh_braking' : accel_ms2 >= band.acceleration_ms2 ? 'harsh_acceleration' : undefined
    if (harsh && harsh.type === type) {
      harsh.to = ts
      harsh.peak = Math.max(harsh.peak, Math.abs(accel_ms2))
      harsh.samples++
      return
    }
    endHarsh(out)
    if (type) harsh = { type, from: ts - 1000, to: ts, peak: Math.abs(accel_ms2), threshold: type === 'harsh_braking' ? band.braking_ms2 : band.acceleration_ms2, samples: 1 }
  }
  function endHarsh(out: TripOutput[]) {
    if (!harsh) return
    const h = harsh
    harsh = undefined
    collect([event(h.type, h.from, h.to, { source: speed?.source ?? 'obd', peak: round3(h.peak), threshold: h.threshold, duration_s: (h.to - h.from) / 1000, samples: h.samples + 1, rate_hz: 1 })], out)
  }

  function detectLateral(r: Reading, out: TripOutput[]) {
    const deg = r.fields.heading_deg
    const kmh = r.fields.speed_kmh
    const prev = heading
    heading = typeof deg === 'number' && accurate(r) ? { ts: r.ts, deg } : undefined
    if (!prev || !heading || typeof kmh !== 'number') return
    const dt = (r.ts - prev.ts) / 1000
    if (dt <= 0 || dt > 2 || kmh < cfg.lateralMin_kmh) return endLateral(out)
    const dpsi = ((((heading.deg - prev.deg) % 360) + 540) % 360) - 180
    const rads = (dpsi * Math.PI) / 180 / dt
    const lateral_ms2 = lateralOf(kmh, rads)
    gpsYaw = lateral_ms2 === undefined ? undefined : { ts: r.ts, rads }
    if (lateral_ms2 === undefined) return endLateral(out) // a jump of the heading, not a turn
    if (r.ts - lastImuTs < 10_000) return // the IMU's manoeuvre detector judges lateral events
    const a = Math.abs(lateral_ms2)
    if (a < cfg.lateral_ms2) return endLateral(out)
    lateral = lateral ? { ...lateral, to: r.ts, peak: Math.max(lateral.peak, a), samples: lateral.samples + 1 } : { from: prev.ts, to: r.ts, peak: a, samples: 2 }
  }
  function endLateral(out: TripOutput[]) {
    if (!lateral) return
    const l = lateral
    lateral = undefined
    collect([event('harsh_lateral', l.from, l.to, { source: 'gps', peak: round3(l.peak), threshold: cfg.lateral_ms2, duration_s: (l.to - l.from) / 1000, samples: l.samples, rate_hz: 1 })], out)
  }

  function continuous(ts: number, out: TripOutput[]) {
    if (!stretch || ts - stretch.lastMovingTs >= cfg.break_s * 1000) stretch = { from: ts, lastMovingTs: ts, reported: false }
    stretch.lastMovingTs = ts
    const driven_s = (ts - stretch.from) / 1000
    if (!stretch.reported && driven_s >= cfg.continuous_s) {
      stretch.reported = true
      collect([event('continuous_driving', stretch.from, ts, { source: speed!.source, peak: driven_s, threshold: cfg.continuous_s, duration_s: driven_s })], out)
    }
  }

  const isNight = (ts: number) => {
    const h = (((ts / 3_600_000 + (lon_deg ?? 0) / 15) % 24) + 24) % 24
    const [from, to] = cfg.night_h
    return from > to ? h >= from || h < to : h >= from && h < to
  }

  /** The fix into the crash track (the last CRASH_TRACK_S). */
  function keepTrack(r: Reading) {
    const f = r.fields as Record<string, number | undefined>
    track.push(r.ts, ...TRACK_FIELDS.slice(1).map((k) => f[k] ?? NaN))
    let drop = 0
    while (track[drop]! < r.ts - CRASH_TRACK_S * 1000) drop += TRACK_FIELDS.length
    track.splice(0, drop)
  }

  /** Distance across a GPS dropout with no speed to integrate: the straight line between fixes; and the trip's area. */
  function bridge(r: Reading) {
    const fix = { ts: r.ts, lat_deg: r.fields.lat_deg as number, lon_deg: r.fields.lon_deg as number }
    const prev = trip!.fix
    trip!.fix = fix
    if (accurate(r)) {
      // The time since the last accurate fix counts in this fix's cell, up to a dropout's length.
      const t = trip!
      const cell = geohash(fix.lat_deg, fix.lon_deg, AREA_CHARS)
      const s = t.areaTs === undefined ? 0 : Math.min(r.ts - t.areaTs, cfg.maxSpeedGap_s * 1000) / 1000
      t.area.set(cell, (t.area.get(cell) ?? 0) + s)
      t.areaTs = r.ts
    }
    // A GPS-only device in a tunnel: no speed sample spans the dropout, the fixes on either side do.
    if (prev && speed?.source === 'gps' && speed.ts <= prev.ts && r.ts - prev.ts > cfg.maxSpeedGap_s * 1000) trip!.distance_km += haversine_km(prev, fix)
  }

  function open(ts: number) {
    trip = { policyId, deviceId, from: ts, to: ts, lastMovingTs: ts, sources: new Set(), area: new Map(), distance_km: 0, moving_s: 0, night_s: 0, speeding_s: 0, phone_s: 0, max_speed_kmh: 0, dyn_s: 0, accel_s: 0, brake_s: 0, corner_s: 0, long_sq: 0, lat_sq: 0, paused_s: 0, events: {} }
    speed = undefined
  }

  /** Events: out at once, and counted in the open trip. */
  function collect(events: readonly DrivingEvent[], out: TripOutput[]) {
    for (const e of events) {
      if (e.type === 'harsh_longitudinal' && hasSpeedAround(e)) continue // the speed change judges it, and names it
      // A device that sends speed is judged from its first trusted speed on: before it, the phone
      // is still being settled in its mount, the receiver warming up (#19). A crash always counts.
      if (e.type !== 'crash' && sendsSpeed && (trustedSince === undefined || e.from < trustedSince)) continue
      // A crash keeps the fixes of the seconds before it (a late crash recorder's upload: those still held).
      const crashTrack = e.type === 'crash' ? fixesOf(track).filter((f) => f.ts >= e.from - CRASH_TRACK_S * 1000 && f.ts <= e.to) : []
      out.push(crashTrack.length > 0 ? { event: e, crashTrack } : { event: e })
      if (trip) {
        trip.events[e.type] = (trip.events[e.type] ?? 0) + 1
        if (e.type === 'speeding') trip.speeding_s += e.evidence.duration_s
        if (e.type === 'phone_handling') trip.phone_s += e.evidence.duration_s
      }
      if (e.type === 'crash' && trip) close('crash', out)
    }
  }

  /**
   * Whether the device measured speed across an IMU event. Then harsh braking and acceleration come
   * from the speed change, which tells them apart and is what the thresholds mean; the IMU's
   * longitudinal events serve phones without speed.
   */
  const hasSpeedAround = (e: DrivingEvent) => recent.some((ts) => ts >= e.from - 2000 && ts <= e.from + 2000) && recent.some((ts) => ts >= e.to - 2000)

  function close(ended: Trip['ended'], out: TripOutput[]) {
    if (!trip) return
    const t = trip
    collect(detectors.flatMap((d) => d.flush() as DrivingEvent[]), out)
    endHarsh(out)
    endLateral(out)
    if (night && night.to - night.from >= 60_000) {
      const n = night
      collect([event('night_driving', n.from, n.to, { source: speed?.source ?? 'obd', peak: (n.to - n.from) / 1000, threshold: 60, duration_s: (n.to - n.from) / 1000 })], out)
    }
    night = undefined
    trip = undefined
    imuSince = undefined
    // A trip that faded out (standing, silent) ended when the vehicle last moved.
    const to = ended === 'ignition' || ended === 'crash' ? lastTs : t.lastMovingTs
    const duration_s = (to - t.from) / 1000
    const source = t.sources.has('obd') ? 'obd' : t.sources.has('gps') ? 'gps' : 'imu'
    if (duration_s < cfg.minTrip_s || (source !== 'imu' && t.distance_km < cfg.minTrip_km)) return
    const { sources, lastMovingTs: _, fix: __, area, areaTs: ___, ...rest } = t
    out.push({
      trip: {
        ...rest, to, ended, source, duration_s,
        distance_km: round3(t.distance_km), moving_s: round3(t.moving_s), night_s: round3(t.night_s),
        speeding_s: round3(t.speeding_s), phone_s: round3(t.phone_s), long_sq: round3(t.long_sq), lat_sq: round3(t.lat_sq),
      },
      ...(area.size > 0 ? { area: Object.fromEntries([...area].map(([cell, s]) => [cell, Math.round(s)])) } : {}),
    })
  }

  /**
   * A phone that sends no speed streams its IMU only while it records a trip (phone SDKs start and
   * stop recording by motion): its trip is the stream, from the first batch to the last before a
   * silence of `maxGap_s`; its moving time is the time the batches cover.
   */
  function imuOnly(from: number, to: number) {
    imuSince ??= from
    // A device's first seconds say whether it sends speed too: only a stream without any is a trip of its own.
    if (!trip && to - imuSince < cfg.imuOnlyAfter_s * 1000) return
    if (!trip) {
      open(imuSince)
      from = imuSince
    }
    trip!.moving_s += (to - from) / 1000
    trip!.lastMovingTs = to
  }

  /**
   * Whether the device's readings have outvoted its last one's clock (#20: one OBD reading dated
   * 4 min 50 s ahead, within ingest's future limit, made every real reading after it late, and the
   * device's driving vanished). One reading cannot move a device's timeline: when `clockVotes`
   * speed or status readings in a row, in order among themselves, are more than `clockJump_s`
   * behind it, theirs is the device's time, and the tracker goes back to it. (IMU batches are
   * left out: a crash recorder's window is late on purpose.)
   */
  function outvoted(r: Reading, out: TripOutput[]): boolean {
    if (r.kind === 'imu' || r.kind === 'imu_device' || lastTs - r.ts <= cfg.clockJump_s * 1000) return false
    if (behind.length > 0 && r.ts < behind.at(-1)!) behind = []
    behind.push(r.ts)
    if (behind.length < cfg.clockVotes) return false
    behind = []
    // A trip opened after the time the device goes back to is the outvoted clock's: it ends there
    // (too short to count, for one outlier), and the driving from here is a trip of its own (#20,
    // found by the fuzz harness: an ignition-on dated 10 h ahead opened a trip that swallowed the
    // device's next drive, which then ended before it began and was dropped).
    if (trip && trip.from > r.ts) close('gap', out)
    lastTs = r.ts
    speed = undefined // the step from the outlier's time is no speed change
    if (trip) trip.lastMovingTs = Math.min(trip.lastMovingTs, r.ts)
    return true
  }

  return {
    push,
    /** Ends the open trip: the device fell silent (or the service stops). */
    flush(): TripOutput[] {
      const out: TripOutput[] = []
      if (trip) close('gap', out)
      else collect(detectors.flatMap((d) => d.flush() as DrivingEvent[]), out)
      return out
    },
  }
}

/** The mean yaw rate (rotation about the vertical, column gz) of an IMU batch and the span it covers. */
function batchYaw(r: Reading): { from: number; to: number; rads: number } | undefined {
  const rate = Number(r.fields.rate_hz)
  const rows = r.samples
  if (!rows || rows.length === 0 || !(rate > 0)) return undefined
  let sum = 0
  for (const row of rows) sum += row[5] ?? 0
  return { from: r.ts, to: r.ts + (rows.length * 1000) / rate, rads: sum / rows.length }
}


const round3 = (x: number) => Math.round(x * 1000) / 1000

/** Where a device's open trip comes back from after a restart: its readings since its last stored trip that came before `first`, its first reading in this run. A failed read cuts the open trip where this run began. */
export type OpenTripSource = Restore<Reading[]>

/**
 * Stage: driving readings of many devices → their events and trips. One tracker per device, with
 * its own detectors from `detectors`; a device silent for `idleMs` ends its trip and leaves memory.
 *
 * With `openTrips`, a trip still open when the stream ends (the service stops) is left open, not
 * cut short: when the device's first reading of the next run comes, its tracker is rebuilt by
 * replaying the readings `openTrips` gives back, with their outputs discarded as they went out
 * before. (A device back from idling has had its trip closed: it starts afresh, without a read.)
 * Without it, the stream's end closes every open trip.
 *
 * A tracker (or a detector of it) that throws is `onError`'s: that device's open trip is dropped
 * and its next reading starts afresh, the other devices run on (perKey).
 */
export function trackTrips(
  cfg: TripConfig,
  detectors: (deviceId: string, policyId: string) => Detector[],
  idleMs: number,
  openTrips?: OpenTripSource,
  scheduler?: SchedulerLike,
  onError?: (err: unknown, deviceId: string) => void,
  forget$?: Observable<string>,
): OperatorFunction<Reading, TripOutput> {
  return (readings$) => defer(() => {
    let stopping = false
    const seen = new Set<string>() // devices that have had their first reading in this run
    return readings$.pipe(
      tap({ complete: () => (stopping = !!openTrips) }),
      filter((r) => r.subject === 'driving'),
      perKey({
        key: (r) => r.deviceId,
        create: (first) => restored(seen.has(first.deviceId) ? undefined : (seen.add(first.deviceId), openTrips), first, first.deviceId, []).pipe(map((earlier) => {
          const tracker = tripTracker(cfg, first.deviceId, first.policyId, detectors(first.deviceId, first.policyId))
          for (const r of earlier) tracker.push(r) // their outputs went out in the run that took them
          return tracker
        })),
        push: (tracker, r) => tracker.push(r),
        end: (tracker) => (stopping ? [] : tracker.flush()),
        idleMs,
        scheduler,
        onError,
        // A forgotten device (its partition moved to another worker, #25) that comes back here is rebuilt again.
        forget$: forget$?.pipe(tap((d) => seen.delete(d))),
      }),
    )
  })
}
