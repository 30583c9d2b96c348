/**
 * Speeding (issue #5): driving faster than the road's limit by more than a tolerance, for at least
 * a minimum time. The limit comes from a road map (road-map.ts) at each GPS fix; the speed from OBD
 * while the device sends it (the car's own wheel speed, every second, tunnels included), else from
 * the GPS receiver.
 *
 * Tolerance: max(limit · `tolerance_pct`, `tolerance_kmh`). Speedometers may read high but never
 * low (UN ECE R39: up to 10 % + 4 km/h over), so a driver who keeps the needle on the limit can
 * truly go a few per cent below it, and OBD and GPS speeds have errors of their own (about 1 km/h,
 * and the OBD one grows with tyre wear): a relative tolerance above 60 km/h limits, and an absolute
 * floor below, where 5 % would be within that noise. The tolerance therefore rises with the speed
 * band, as police tolerances do (10 % + 2 mph in the UK), but stays tighter than theirs: insurers
 * price habit, not prosecutions.
 *
 * An episode opens at the first speed sample over the threshold and lasts while samples stay over
 * it; `mergeGap_s` under the threshold ends it (a short dip is the same speeding), and so does
 * `maxGap_s` without any speed or limit (the device went quiet). A shorter silence, such as a
 * tunnel where the GPS has no fix, is bridged: the last matched limit holds for `maxGap_s`, so an
 * OBD device is judged right through a tunnel, and a GPS-only one resumes the episode on the far
 * side. Episodes shorter than `minDuration_s` (an overtaking, a downhill stretch) are not events.
 */
import { Type, type Static } from '@sinclair/typebox'
import type { Reading } from '../ingest/index.ts'
import { policyEvent, type Detector, type DrivingEvent } from './events.ts'
import type { RoadMap } from './road-map.ts'
import { defaultsOf, threshold } from './thresholds.ts'

/** Thresholds and windows of the speeding detector; the module comment says why they are these. */
export const SpeedingConfig = Type.Object({
  tolerance_pct: threshold(5, 'Speeding tolerance over the limit, % of the limit (the band above 60 km/h limits; speedometers read high, UN ECE R39)'),
  tolerance_kmh: threshold(3, 'Speeding tolerance over the limit at least, km/h (the band below, where 5 % would be within the speed\'s own noise)'),
  minDuration_s: threshold(10, 'Shortest speeding episode that is an event, s (first to last sample over the threshold; not an overtaking)'),
  mergeGap_s: threshold(3, 'Time without a sample over the threshold, while speed is known, that ends a speeding episode, s'),
  maxGap_s: threshold(60, 'Longest time without speed or limit that a speeding episode bridges (tunnels of up to ~2 km at 120 km/h), s; also how long a matched limit holds'),
  obdFresh_s: threshold(3, 'OBD speed this recent is preferred to GPS speed for speeding, s'),
  maxAccuracy_m: threshold(25, 'Fixes less accurate than this (1 σ, m) are not matched to a road: they could match the wrong one'),
})
export type SpeedingConfig = Static<typeof SpeedingConfig>

/** Defaults: see the module comment for why. */
export const defaultSpeedingConfig: SpeedingConfig = defaultsOf(SpeedingConfig)

/** What an open episode has seen so far. */
interface Episode {
  fromMs: number
  lastOverMs: number
  samples: number
  /** Largest excess over the limit, km/h, and the limit, tolerance and speed source where it was. */
  peak: number
  limit_kmh: number
  threshold: number
  source: string
  maxSpeed_kmh: number
}

const r1 = (x: number) => Math.round(x * 10) / 10

/** One device's speeding detector, against limits from `map`: feed its `gps` and `obd` readings in device-time order. */
export function speedingDetector(cfg: SpeedingConfig, map: RoadMap, deviceId: string, policyId: string): Detector {
  let limit: { kmh: number; ts: number } | undefined
  let lastObdMs = -Infinity
  /** Time of the last speed sample judged: one a moment, whichever source came first. */
  let lastSampleMs = -Infinity
  let episode: Episode | undefined

  function close(out: DrivingEvent[]) {
    const e = episode
    episode = undefined
    const duration_s = e ? (e.lastOverMs - e.fromMs) / 1000 : 0
    if (!e || duration_s < cfg.minDuration_s) return
    out.push(policyEvent('speeding', policyId, deviceId, e.fromMs, e.lastOverMs, {
      source: e.source, peak: r1(e.peak), threshold: r1(e.threshold), duration_s, samples: e.samples,
      limit_kmh: e.limit_kmh, max_speed_kmh: r1(e.maxSpeed_kmh),
    }))
  }

  function sample(ts: number, speed_kmh: number, source: string, out: DrivingEvent[]) {
    if (!limit || ts - limit.ts > cfg.maxGap_s * 1000 || ts <= lastSampleMs) return
    lastSampleMs = ts
    const threshold = Math.max((limit.kmh * cfg.tolerance_pct) / 100, cfg.tolerance_kmh)
    const over = speed_kmh - limit.kmh
    if (over <= threshold) {
      if (episode && ts - episode.lastOverMs > cfg.mergeGap_s * 1000) close(out)
      return
    }
    const e = (episode ??= { fromMs: ts, lastOverMs: ts, samples: 0, peak: -Infinity, limit_kmh: limit.kmh, threshold, source, maxSpeed_kmh: 0 })
    e.lastOverMs = ts
    e.samples++
    e.maxSpeed_kmh = Math.max(e.maxSpeed_kmh, speed_kmh)
    if (over > e.peak) Object.assign(e, { peak: over, limit_kmh: limit.kmh, threshold, source })
  }

  return {
    push(r: Reading) {
      const out: DrivingEvent[] = []
      if (episode && r.ts - episode.lastOverMs > cfg.maxGap_s * 1000) close(out)
      const { lat_deg, lon_deg, heading_deg, accuracy_m, speed_kmh } = r.fields
      if (r.kind === 'obd' && typeof speed_kmh === 'number') {
        lastObdMs = r.ts
        sample(r.ts, speed_kmh, 'obd', out)
      } else if (r.kind === 'gps' && typeof lat_deg === 'number' && typeof lon_deg === 'number') {
        if (!(Number(accuracy_m) > cfg.maxAccuracy_m)) {
          const match = map.limitAt(lat_deg, lon_deg, typeof heading_deg === 'number' ? heading_deg : undefined)
          if (match) limit = { kmh: match.limit_kmh, ts: r.ts }
        }
        if (typeof speed_kmh === 'number' && r.ts - lastObdMs > cfg.obdFresh_s * 1000) sample(r.ts, speed_kmh, 'gps', out)
      }
      return out
    },
    flush() {
      const out: DrivingEvent[] = []
      close(out)
      return out
    },
  }
}
