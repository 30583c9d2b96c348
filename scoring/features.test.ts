import t from 'tap'
import { addReading, defaultThresholds, drivingFeatures, noDriving, type DrivingTotals } from './index.ts'
import type { Reading } from '../ingest/index.ts'

const obd = (deviceId: string, ts: number, speed_kmh: number): Reading =>
  ({ deviceId, policyId: 'p', kind: 'obd', subject: 'driving', seq: ts, ts, receivedAt: ts, fields: { speed_kmh } })
const drive = (samples: [string, number, number][]): DrivingTotals =>
  samples.reduce((t, [d, ts, v]) => addReading(defaultThresholds, t, obd(d, ts * 1000, v)), noDriving('p'))

t.test('distance integrates speed between 1 Hz samples (trapezoids)', async (t) => {
  const totals = drive([['a', 0, 36], ['a', 1, 36], ['a', 2, 72]]) // 10 m/s for 1 s, then 10→20 m/s
  t.equal(Math.round(totals.distance_km * 1e6) / 1e6, 0.025)
  t.equal(totals.moving_s, 2)
})

t.test('harsh braking and acceleration count once per event, not once per sample', async (t) => {
  // 72 → 54 → 36 km/h: −5 m/s² twice in a row is one harsh brake; then a smooth stretch; again.
  const totals = drive([['a', 0, 72], ['a', 1, 54], ['a', 2, 36], ['a', 3, 34], ['a', 4, 16], ['a', 5, 16], ['a', 6, 30]])
  t.equal(totals.harsh_brakes, 2)
  t.equal(totals.harsh_accels, 1, '16 → 30 km/h in 1 s is 3.9 m/s²')
})

t.test('a braking just under the threshold is not harsh', async (t) => {
  t.equal(drive([['a', 0, 50], ['a', 1, 50 - 3.4 * 3.6]]).harsh_brakes, 0)
})

t.test('dropouts, out-of-order samples and other kinds are not integrated', async (t) => {
  const totals = drive([['a', 0, 100], ['a', 60, 0], ['a', 59, 100], ['a', 61, 0]])
  t.equal(totals.distance_km, 0, 'a 60 s gap is a dropout; the late sample is skipped')
  t.equal(totals.harsh_brakes, 0)
  const t2 = addReading(defaultThresholds, noDriving('p'), { ...obd('a', 0, 50), kind: 'hr', fields: { hr_bpm: 70 } })
  t.same(t2, noDriving('p'))
})

t.test('two devices of one policy are tracked apart', async (t) => {
  const totals = drive([['a', 0, 100], ['b', 0, 0], ['a', 1, 100], ['b', 1, 0]])
  t.equal(totals.harsh_brakes, 0, 'b standing still is not a brake of a')
  t.ok(totals.distance_km > 0.027 && totals.distance_km < 0.028)
})

t.test('features: rates per 100 km with a minimum distance, speeding share of moving time', async (t) => {
  const totals = { ...noDriving('p'), distance_km: 200, harsh_brakes: 5, harsh_accels: 1, moving_s: 1000, speeding_s: 50 }
  t.same(drivingFeatures(defaultThresholds, totals), { harsh_brakes_per_100km: 2.5, harsh_accels_per_100km: 0.5, speeding_share: 0.05 })
  const short = { ...noDriving('p'), distance_km: 1, harsh_brakes: 1 }
  t.equal(drivingFeatures(defaultThresholds, short).harsh_brakes_per_100km, 10, 'one brake in 1 km counts over 10 km')
  t.equal(drivingFeatures(defaultThresholds, noDriving('p')).speeding_share, 0, 'no driving is no speeding, not NaN')
})
