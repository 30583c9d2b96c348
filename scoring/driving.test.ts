import t from 'tap'
import { fileURLToPath } from 'node:url'
import { addTrip, behaviourFeatures, dayOf, drivingFeatures, drivingScoreInput, HISTORY_DAYS, packDays, restoreDays, tripFields, unpackDays, withHiddenDriving } from './driving.ts'
import { drivingFrequency, loadModel, scoreBatch } from './index.ts'
import type { Trip } from './trips.ts'

const T0 = Date.parse('2026-03-02T07:30:00Z')

/** A trip of `km` km at `kmh` km/h, whose other sums are shares of its moving time (the driving's character). */
function trip(p: { km: number; kmh: number; night?: number; speeding?: number; phone?: number; dyn?: number; accel?: number; brake?: number; corner?: number; longRms?: number; latRms?: number; events?: Trip['events']; paused?: number }): Trip {
  const moving_s = (p.km / p.kmh) * 3600
  const dyn_s = moving_s * (p.dyn ?? 1)
  return {
    policyId: 'pol-1', deviceId: 'car-1', from: T0, to: T0 + moving_s * 1100, ended: 'ignition', source: 'obd',
    distance_km: p.km, duration_s: moving_s * 1.1, moving_s, night_s: moving_s * (p.night ?? 0), speeding_s: moving_s * (p.speeding ?? 0),
    phone_s: moving_s * (p.phone ?? 0), max_speed_kmh: p.kmh * 1.5,
    dyn_s, accel_s: dyn_s * (p.accel ?? 0), brake_s: dyn_s * (p.brake ?? 0), corner_s: dyn_s * (p.corner ?? 0),
    long_sq: dyn_s * (p.longRms ?? 0) ** 2, lat_sq: dyn_s * (p.latRms ?? 0) ** 2, paused_s: moving_s * (p.paused ?? 0), events: p.events ?? {},
  }
}

/** The same driving, every sum doubled: twice as long. */
function twiceAsLong(x: Trip): Trip {
  const events = Object.fromEntries(Object.entries(x.events).map(([k, n]) => [k, n * 2]))
  const doubled = { ...x, events, to: x.from + (x.to - x.from) * 2 }
  for (const k of ['distance_km', 'duration_s', 'moving_s', 'night_s', 'speeding_s', 'phone_s', 'dyn_s', 'accel_s', 'brake_s', 'corner_s', 'long_sq', 'lat_sq'] as const) doubled[k] = x[k] * 2
  return doubled
}

const drives: [string, Trip][] = [
  ['calm commute', trip({ km: 12, kmh: 40, speeding: 0.01, accel: 0.02, brake: 0.05, corner: 0.01, longRms: 0.6, latRms: 0.3, events: { harsh_lateral: 1 } })],
  ['aggressive city run', trip({ km: 7.3, kmh: 27, speeding: 0.4, phone: 0.02, accel: 0.2, brake: 0.18, corner: 0.05, longRms: 1.5, latRms: 1.1, events: { harsh_braking: 3, harsh_acceleration: 2, harsh_lateral: 5, harsh_longitudinal: 1 } })],
  ['night motorway', trip({ km: 95, kmh: 105, night: 0.8, speeding: 0.1, accel: 0.01, brake: 0.02, corner: 0.003, longRms: 0.4, latRms: 0.2, events: { harsh_braking: 1, continuous_driving: 1 } })],
  ['a phone without a trusted speed source (no dynamics)', trip({ km: 3.1, kmh: 22, dyn: 0, phone: 0.1, events: { harsh_longitudinal: 2 } })],
  ['a very short trip (no distance floor)', trip({ km: 0.4, kmh: 18, brake: 0.3, longRms: 2, latRms: 0.9, events: { harsh_braking: 1 } })],
]

const features = (x: Trip) => drivingFeatures(addTrip([], x), dayOf(x.to), HISTORY_DAYS)
const behaviour = (f: Record<string, number>) => Object.fromEntries(behaviourFeatures.filter((k) => k in f).map((k) => [k, f[k]]))

t.test('the same driving twice as long has the same behaviour features, and twice the exposure', async (t) => {
  for (const [name, x] of drives) {
    const [once, twice] = [features(x), features(twiceAsLong(x))]
    t.same(behaviour(twice), behaviour(once), name)
    // Features are rounded to 4 decimals: twice a rounded value may be 1e-4 off.
    for (const k of ['km_per_day', 'hours_per_day']) t.ok(Math.abs(twice[k]! - 2 * once[k]!) <= 1e-4, `${name}: ${k} doubles (${once[k]}, ${twice[k]})`)
    t.equal(twice.night_share, once.night_share, `${name}: the night share stays`)
  }
})

t.test('through the shipped model, the same driving twice as long scores the same, with the same reasons', async (t) => {
  const model = await loadModel(drivingFrequency, fileURLToPath(new URL(`./models/${drivingFrequency.file}`, import.meta.url)))
  const modelFeatures = drivingFrequency.features.map((f) => f.name)
  t.same(modelFeatures.filter((f) => !(behaviourFeatures as readonly string[]).includes(f)), [], 'the model reads behaviour features only')
  const inputs = drives.flatMap(([, x]) => [drivingScoreInput(addTrip([], x), x), drivingScoreInput(addTrip([], twiceAsLong(x)), twiceAsLong(x))])
  const scores = await scoreBatch(model, inputs)
  drives.forEach(([name], i) => {
    const [once, twice] = [scores[2 * i]!, scores[2 * i + 1]!]
    t.equal(twice.value, once.value, `${name}: ${once.value}`)
    t.same(twice.reasons, once.reasons, `${name}: reasons`)
    t.equal(twice.exposure.distance_km, once.exposure.distance_km! * 2, `${name}: exposure is the plan's`)
  })
  const [calm, aggressive] = [scores[0]!.value, scores[2]!.value]
  t.ok(calm > 50 && aggressive < 50, `calm ${calm} above typical, aggressive ${aggressive} below`)
})

t.test('a rate over nothing measured is left out (typical to the model), not zero (safe)', async (t) => {
  const noDistance = { ...drives[3]![1], distance_km: 0 }
  const f = features(noDistance)
  t.notOk('harsh_braking_per_100km' in f, 'no distance: no rate per 100 km')
  t.ok(f.harsh_braking_per_hour! > 0, 'events per hour of moving time serve a device without distance')
  t.notOk('long_accel_rms_ms2' in f || 'braking_share' in f, 'no trusted speed: no dynamics')
  t.same(drivingFeatures([], dayOf(T0), HISTORY_DAYS), { crashes: 0, distance_km: 0, moving_h: 0, days_observed: 1, km_per_day: 0, hours_per_day: 0 }, 'no driving: exposure only')
})

t.test('days rebuilt from stored trips give the same features, dynamics included', async (t) => {
  const days = drives.reduce((d, [, x], i) => addTrip(d, { ...x, from: x.from + i * 86_400_000, to: x.to + i * 86_400_000 }), [] as ReturnType<typeof addTrip>)
  const rows = drives.map(([, x], i) => ({ from: x.from + i * 86_400_000, fields: tripFields({ ...x, to: x.to + i * 86_400_000 }) }))
  const asOf = dayOf(T0) + drives.length
  t.same(drivingFeatures(restoreDays(rows), asOf, HISTORY_DAYS), drivingFeatures(days, asOf, HISTORY_DAYS))
  t.equal(restoreDays(rows).reduce((a, d) => a + d.lat_sq, 0), days.reduce((a, d) => a + d.lat_sq, 0), 'sums of squares are stored')
})

t.test('days packed between trips (#25) come back as they were: the same features and the same days after the next trip', async (t) => {
  const days = drives.reduce((d, [, x], i) => addTrip(d, { ...x, from: x.from + i * 86_400_000, to: x.to + i * 86_400_000 }), [] as ReturnType<typeof addTrip>)
  const packed = packDays(days)
  const asOf = dayOf(T0) + drives.length
  t.same(drivingFeatures(unpackDays(packed), asOf, HISTORY_DAYS), drivingFeatures(days, asOf, HISTORY_DAYS))
  const [, next] = drives.at(-1)!
  t.same(addTrip(unpackDays(packed), next), addTrip(days, next), 'the next trip adds to the same days')
  t.ok(packed.narrow.columns.length > 0, `a day is a row of ${packed.wide.columns.length} doubles (${packed.wide.columns.join(', ')}) and ${packed.narrow.columns.length} floats (${packed.narrow.columns.join(', ')})`)
  t.same(unpackDays(packDays([])), [])
})

t.test('driving hidden by a pause of all telemetry counts in privacy mode, at the policy\'s own rate (#21: pausing every risky drive must not pay)', async (t) => {
  const H = 3600_000
  const window = { from: 0, to: 28 * 24 * H }
  const input = { policyId: 'p', subject: 'driving' as const, window, features: {}, exposure: { days: 28, distance_km: 500, moving_s: 13 * 3600, night_s: 0 } }
  t.equal(withHiddenDriving(input, 0), input, 'no pause: the input as it was')
  // 2 of 28 days paused: 26 observed days held 13 h of driving, so the 2 days hid about 1 h.
  const hidden = withHiddenDriving(input, 2 * 24 * H)
  t.equal(hidden.privacy?.hidden_s, 3600, 'an hour of driving estimated for two days paused')
  t.equal(hidden.privacy?.share, 0.0714, 'a fourteenth of all driving (1 h of 14) in privacy mode')
  t.match(hidden.privacy?.text, /^all telemetry paused 48 h: about 60 min of driving at the policy's own rate, not measured$/)
  // With location paused on some trips too, both add up, and the note keeps what it said.
  const both = withHiddenDriving({ ...input, privacy: { trips: 2, paused_s: 1800, share: 1800 / 46800, unmeasured: { speeding_share: 0.0385 }, text: '2 trips in privacy mode' } }, 2 * 24 * H)
  t.equal(both.privacy?.share, 0.1071, 'an hour and a half of fourteen hours')
  t.same(both.privacy?.unmeasured, { speeding_share: 0.0385 }, 'what the observed trips did not measure stays')
  t.match(both.privacy?.text, /^2 trips in privacy mode; all telemetry paused 48 h/)
})
