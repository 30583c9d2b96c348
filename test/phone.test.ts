/**
 * A phone-only policyholder, end to end (#19): simulated cars driven as phones tilted in their
 * mounts (GNSS and the phone's own-frame IMU with gravity; no OBD, no ignition) publish over MQTT;
 * ingest stores both streams, scoring cuts trips by motion, finds IMU events through the estimated
 * vehicle frame, and scores each policy; the trips and events are read back from InfluxDB.
 */
import t from 'tap'
import { deviceRegistry, qualified } from '../ingest/index.ts'
import { makeCity, makePolicies, policyDevices, policyRegistry, runSimulation, type TripTruth } from '../edge-sim/index.ts'
import type { DrivingEvent, Score } from '../scoring/index.ts'
import { startServices, startTestPipeline, untilStored } from './harness.ts'

const DB = 'ubiq_phone'

t.test('phones mounted at an angle get trips, IMU events and driving scores through the live pipeline', async (t) => {
  const services = await startServices(t)
  const city = makeCity()
  const policies = makePolicies(city, 2, { devices: ['vehicle'], seed: 5 })
  const devices = deviceRegistry(policyRegistry(policies))
  const pipeline = await startTestPipeline(t, services, [], DB, { devices })
  const scores: Score[] = []
  const events: DrivingEvent[] = []
  pipeline.scores$.subscribe((s) => scores.push(s))
  pipeline.events$.subscribe((e) => events.push(e as DrivingEvent))

  const truth = new Map<string, TripTruth[]>()
  const startTs = Date.now() - 26 * 3600_000 // a day of driving, in the past, sent as fast as it is acknowledged
  const sims = policies.flatMap((p) => policyDevices(city, p, { startTs, days: 1, imuHz: 10, phone: { yaw_deg: -35, pitch_deg: 70, roll_deg: 10 }, onTrip: (d, x) => truth.set(d, [...(truth.get(d) ?? []), x]) }))
  const run = await runSimulation({ mqttUrl: services.mqttUrl, devices: sims, startTs, speedup: Infinity })
  await run.done
  await untilStored(pipeline, run.acknowledged)
  await pipeline.stop()

  const [kinds] = await services.influxql(DB, `SELECT count(ax_ms2) FROM ${qualified('imu_device')}`)
  t.ok(Number(kinds?.values[0]?.[1]) > 1000, `the phones' own-frame IMU is stored as sent: ${kinds?.values[0]?.[1]} samples`)
  const trips = await services.influxql(DB, 'SELECT distance_km, dyn_s FROM trip GROUP BY device_id')
  const stored = trips.flatMap((s) => s.values.map((v) => ({ device: s.tags!.device_id, km: v[1] as number, dyn: v[2] as number })))
  // A phone's trip ends by standing still or silence: each phone's last trip is still open when the
  // service stops (and is rebuilt by the next run, as restart.test.ts shows for any open trip).
  const closed = [...truth.values()].flatMap((ts) => ts.slice(0, -1))
  t.ok(closed.length >= 2, `${closed.length} trips driven and ended`)
  t.equal(stored.length, closed.length, 'each is a stored trip')
  const km = (xs: number[]) => xs.reduce((a, b) => a + b, 0)
  t.ok(Math.abs(km(stored.map((x) => x.km)) - km(closed.map((x) => x.distance_km))) < 0.02 * km(closed.map((x) => x.distance_km)), `of the distance driven: ${km(stored.map((x) => x.km)).toFixed(1)} km of ${km(closed.map((x) => x.distance_km)).toFixed(1)}`)
  t.ok(stored.every((x) => x.dyn > 0), 'each with its driving dynamics')
  for (const p of policies) {
    const last = scores.filter((s) => s.policyId === p.policyId && s.subject === 'driving').at(-1)
    t.ok(last && last.value > 0 && last.value < 100 && last.reasons.length > 0, `${p.policyId} (${p.vehicle!.persona}): a driving score ${last?.value} with reasons`)
  }
  const imuEvents = events.filter((e) => e.evidence.source === 'imu')
  t.ok(imuEvents.length > 0, `events from the tilted phones' IMU: ${imuEvents.map((e) => e.type).join(', ')}`)
  const [storedEvents] = await services.influxql(DB, `SELECT count(peak) FROM event WHERE source = 'imu'`)
  t.equal(storedEvents?.values[0]?.[1], imuEvents.length, 'and stored')
})
