/**
 * Speeding (issue #5): synthetic drives along one road for the rules (tolerance, minimum
 * duration, dips, tunnels, gaps), then the simulated city's trips against their ground truth.
 */
import t from 'tap'
import type { Reading } from '../ingest/index.ts'
import { choosePlaces, cityGeoJson, driveVehicle, drivingPersonas, makeCity, type DrivingPersonaName, type TripTruth } from '../edge-sim/index.ts'
import type { PolicyEvent } from './events.ts'
import { roadMap } from './road-map.ts'
import { defaultSpeedingConfig, speedingDetector, type SpeedingConfig } from './speeding.ts'

const T0 = 1_767_225_600_000
const LAT = 51.5, LON = -0.12
const KX = 111_320 * Math.cos((LAT * Math.PI) / 180)
/** A straight road east from (LAT, LON), 20 km long, with this limit. */
const straightRoad = (maxspeed: number | string) => roadMap({
  type: 'FeatureCollection',
  features: [{ type: 'Feature', geometry: { type: 'LineString', coordinates: [[LON, LAT], [LON + 20_000 / KX, LAT]] }, properties: { maxspeed } }],
})

/**
 * A drive east along the road, one reading of each kind a second: `both` (OBD and GPS), `obd`
 * only (in a tunnel: no fix), `gps` only (a phone), or `none` (silent), `off_m` north of the road.
 */
type Stretch = [seconds: number, speed_kmh: number, send?: 'both' | 'obd' | 'gps' | 'none', off_m?: number]
function drive(stretches: Stretch[]): Reading[] {
  const out: Reading[] = []
  let ts = T0, x = 100
  const reading = (kind: string, fields: Reading['fields']): Reading => ({ deviceId: 'car-1', policyId: 'pol-1', kind, subject: 'driving', seq: out.length, ts, receivedAt: ts, fields })
  for (const [seconds, speed_kmh, send = 'both', off_m = 0] of stretches) {
    for (let i = 0; i < seconds; i++, ts += 1000, x += speed_kmh / 3.6) {
      // The fix first, so that the first second already has a limit (the sim sends OBD first).
      if (send === 'both' || send === 'gps') out.push(reading('gps', { lat_deg: LAT + off_m / 111_320, lon_deg: LON + x / KX, accuracy_m: 4, speed_kmh, heading_deg: 90 }))
      if (send === 'both' || send === 'obd') out.push(reading('obd', { speed_kmh }))
    }
  }
  return out
}

function detect(maxspeed: number | string, readings: Reading[], cfg: SpeedingConfig = defaultSpeedingConfig): PolicyEvent[] {
  const d = speedingDetector(cfg, straightRoad(maxspeed), 'car-1', 'pol-1')
  return [...readings.flatMap((r) => d.push(r)), ...d.flush()]
}

t.test('speeding episodes: tolerance, minimum duration, dips, tunnels and gaps', async (t) => {
  // Expected events as [duration_s, samples].
  const cases: [string, number | string, Stretch[], [number, number][]][] = [
    ['at 50, exactly at the tolerance (3 km/h) is not speeding', 50, [[30, 53]], []],
    ['at 50, just over it is', 50, [[30, 53.1]], [[29, 30]]],
    ['at 80, the tolerance is 5 %: 84 is not speeding', 80, [[30, 84]], []],
    ['at 80, 84.1 is', 80, [[30, 84.1]], [[29, 30]]],
    ['at 120, 6 km/h: 126 is not speeding', 120, [[30, 126]], []],
    ['under the minimum duration: 10 samples span 9 s', 50, [[10, 60]], []],
    ['11 samples span the 10 s minimum', 50, [[11, 60]], [[10, 11]]],
    ['a 3 s dip under the threshold is the same episode', 50, [[12, 60], [3, 50], [12, 60]], [[26, 24]]],
    ['a 4 s dip ends it', 50, [[12, 60], [4, 50], [12, 60]], [[11, 12], [11, 12]]],
    ['a tunnel: OBD speed goes on without a fix, against the last limit', 50, [[12, 60], [40, 60, 'obd'], [12, 60]], [[63, 64]]],
    ['a tunnel: a GPS-only phone sends nothing for 40 s; bridged', 50, [[12, 60, 'gps'], [40, 60, 'none'], [12, 60, 'gps']], [[63, 24]]],
    ['a device silent for 70 s: two episodes', 50, [[12, 60, 'gps'], [70, 60, 'none'], [12, 60, 'gps']], [[11, 12], [11, 12]]],
    ['no fix for more than 60 s: the limit is no longer known', 50, [[5, 60], [120, 60, 'obd']], [[64, 65]]],
    ['off the map (40 m from the road): no limit, no speeding', 50, [[30, 90, 'both', 40]], []],
    ['the road has no limit (maxspeed=none)', 'none', [[30, 200]], []],
  ]
  for (const [name, limit, stretches, expected] of cases) {
    const events = detect(limit, drive(stretches))
    t.same(events.map((e) => [e.evidence.duration_s, e.evidence.samples]), expected, name)
  }
})

t.test('an event carries its evidence: peak over the limit, tolerance, speeds, duration, source', async (t) => {
  const events = detect(80, drive([[5, 80], [4, 88], [3, 95], [5, 90], [3, 70]]))
  t.same(events, [{
    policyId: 'pol-1', deviceId: 'car-1', subject: 'driving', type: 'speeding', urgent: false, from: T0 + 5000, to: T0 + 16_000,
    evidence: { source: 'obd', peak: 15, threshold: 4, unit: 'km/h', duration_s: 11, samples: 12, limit_kmh: 80, max_speed_kmh: 95 },
  }])
})

t.test('OBD speed is preferred while the device sends it; GPS speed otherwise', async (t) => {
  const both = drive([[30, 60]]).map((r) => (r.kind === 'obd' ? { ...r, fields: { speed_kmh: 50 } } : r))
  t.same(detect(50, both), [], 'OBD says 50 while GPS says 60: not speeding')
  const gpsOnly = both.filter((r) => r.kind === 'gps')
  t.match(detect(50, gpsOnly), [{ evidence: { source: 'gps', peak: 10, samples: 30 } }], 'without OBD, the GPS speed')
  const inaccurate = gpsOnly.map((r) => ({ ...r, fields: { ...r.fields, accuracy_m: 40 } }))
  t.same(detect(50, inaccurate), [], 'fixes less accurate than 25 m are not matched to a road')
})

t.test('flush closes the open episode; push alone emits only what has ended', async (t) => {
  const d = speedingDetector(defaultSpeedingConfig, straightRoad(50), 'car-1', 'pol-1')
  t.same(drive([[20, 70]]).flatMap((r) => d.push(r)), [])
  t.match(d.flush(), [{ type: 'speeding', evidence: { duration_s: 19, samples: 20 } }])
  t.same(d.flush(), [], 'and only once')
})

t.test('on the simulated city: seconds of speeding per trip against the ground truth', async (t) => {
  const city = makeCity({ seed: 1 })
  const map = roadMap(cityGeoJson(city))
  // The truth counts every second more than 1 km/h over the limit; with the same rule (and no
  // minimum duration) the detector should find the same seconds from the map and noisy GPS.
  const truthRule: SpeedingConfig = { ...defaultSpeedingConfig, tolerance_pct: 0, tolerance_kmh: 1, minDuration_s: 0, mergeGap_s: 0 }
  const detected = (persona: DrivingPersonaName, cfg: SpeedingConfig) => {
    const trips: TripTruth[] = []
    const readings = [...driveVehicle(city, { persona, places: choosePlaces(city, drivingPersonas.average, 21), seed: 21 }, { startTs: Date.UTC(2026, 0, 5), days: 7, imuHz: 0 }, (trip) => trips.push(trip))]
    const d = speedingDetector(cfg, map, 'car-1', 'pol-1')
    const seconds = trips.map(() => 0)
    let outsideTrips = 0
    const count = (e: PolicyEvent) => {
      const i = trips.findIndex((trip) => e.from >= trip.startTs && e.from <= trip.endTs)
      if (i < 0) outsideTrips++
      else seconds[i]! += e.evidence.samples!
    }
    for (const r of readings) {
      d.push({ deviceId: 'car-1', policyId: 'pol-1', kind: r.kind, subject: 'driving', seq: 0, ts: r.ts, receivedAt: r.ts, fields: r.body as Reading['fields'] }).forEach(count)
      if (r.kind === 'status' && r.body.ignition_on === false) d.flush().forEach(count)
    }
    t.equal(outsideTrips, 0, `${persona}: no speeding outside a trip`)
    return { trips, seconds, truth_s: trips.reduce((n, trip) => n + trip.speeding_s, 0), detected_s: seconds.reduce((n, s) => n + s, 0) }
  }
  const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0)
  let common = 0, either = 0
  const byDefault: Record<string, { truth_s: number; detected_s: number }> = {}
  for (const persona of ['cautious', 'average', 'aggressive'] satisfies DrivingPersonaName[]) {
    const same = detected(persona, truthRule)
    common += sum(same.trips.map((trip, i) => Math.min(trip.speeding_s, same.seconds[i]!)))
    either += sum(same.trips.map((trip, i) => Math.max(trip.speeding_s, same.seconds[i]!)))
    const worst = Math.max(...same.trips.map((trip, i) => same.seconds[i]! - trip.speeding_s))
    t.ok(worst <= 2, `${persona}: with the truth's rule, no trip has more than 2 s the truth does not (at most ${worst}); ${same.detected_s} s of ${same.truth_s} s`)
    byDefault[persona] = detected(persona, defaultSpeedingConfig)
  }
  t.ok(common / either >= 0.95, `with the truth's rule, per trip, ${(100 * common / either).toFixed(1)}% of speeding seconds agree (Σ min / Σ max)`)
  const { cautious, average, aggressive } = byDefault as Record<'cautious' | 'average' | 'aggressive', { truth_s: number; detected_s: number }>
  const summary = Object.entries(byDefault).map(([p, r]) => `${p} ${r.detected_s} of ${r.truth_s} s`).join(', ')
  t.equal(cautious!.detected_s, 0, `with the defaults (tolerance, 10 s): ${summary}`)
  t.ok(aggressive!.detected_s > 5 * average!.detected_s && average!.detected_s > 0, 'aggressive drivers speed far more than average ones')
  t.ok(aggressive!.detected_s >= 0.7 * aggressive!.truth_s, 'most of an aggressive driver\'s speeding is sustained and well over the limit')
})
