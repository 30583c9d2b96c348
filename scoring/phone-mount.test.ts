/**
 * A phone in any mount (#19): the simulated fleet driven twice, once with dongles (OBD, ignition,
 * earth-frame IMU) and once with phones tilted in their mounts (GNSS and the phone's own-frame IMU
 * with gravity, no OBD, no ignition), both decoded by ingest and run through scoring's trip tracker
 * with the service's detectors. The phone must give the same trips and the same IMU events.
 */
import t from 'tap'
import { makeCity, makePolicies, type PhoneMount } from '../edge-sim/index.ts'
import { simReadings } from '../test/sim-readings.ts'
import { vehicleDetectors } from './detectors.ts'
import { defaultTripConfig, tripTracker, type Trip } from './trips.ts'
import type { DrivingEvent } from './events.ts'

const city = makeCity()
const policies = makePolicies(city, 6, { devices: ['vehicle'] })
const startTs = Date.UTC(2026, 10, 16)
const mount: PhoneMount = { yaw_deg: 110, pitch_deg: 60, roll_deg: 25 }

function drive(phone?: PhoneMount) {
  const readings = simReadings(city, policies, { startTs, days: 2, imuHz: 25, ...(phone ? { phone } : {}) })
  return new Map(policies.map((p) => {
    const id = p.vehicle!.deviceId
    const tracker = tripTracker(defaultTripConfig, id, p.policyId, vehicleDetectors()(id, p.policyId))
    const out = [...readings.filter((r) => r.deviceId === id).flatMap((r) => tracker.push(r)), ...tracker.flush()]
    return [id, { kinds: new Set(readings.filter((r) => r.deviceId === id).map((r) => r.kind)), trips: out.flatMap((o) => ('trip' in o ? [o.trip] : [])), events: out.flatMap((o) => ('event' in o ? [o.event] : [])) }] as const
  }))
}

t.test('phones tilted 60° in their mounts, with no OBD and no ignition, get the dongles\' trips and IMU events', async (t) => {
  const dongles = drive()
  const phones = drive(mount)
  const count = (es: readonly DrivingEvent[], type: DrivingEvent['type']) => es.filter((e) => e.type === type).length
  let lateral = [0, 0], handling = [0, 0], braking = [0, 0]
  for (const p of policies) {
    const id = p.vehicle!.deviceId
    const [d, ph] = [dongles.get(id)!, phones.get(id)!]
    t.same([...ph.kinds].sort(), ['gps', 'imu_device'], `${id}: the phone sends GNSS and its own-frame IMU only`)
    t.equal(ph.trips.length, d.trips.length, `${id} (${p.vehicle!.persona}): ${d.trips.length} trips`)
    const km = (ts: Trip[]) => ts.reduce((a, x) => a + x.distance_km, 0)
    t.ok(Math.abs(km(ph.trips) - km(d.trips)) <= 0.02 * km(d.trips), `${id}: ${km(ph.trips).toFixed(1)} km by GNSS, ${km(d.trips).toFixed(1)} by OBD`)
    t.ok(ph.trips.every((x) => x.source === 'gps' && x.dyn_s > 0.9 * x.moving_s), `${id}: every trip's driving dynamics measured`)
    lateral = [lateral[0]! + count(d.events, 'harsh_lateral'), lateral[1]! + count(ph.events, 'harsh_lateral')]
    handling = [handling[0]! + count(d.events, 'phone_handling'), handling[1]! + count(ph.events, 'phone_handling')]
    braking = [braking[0]! + count(d.events, 'harsh_braking'), braking[1]! + count(ph.events, 'harsh_braking')]
  }
  t.comment(`harsh lateral: ${lateral[0]} by dongles, ${lateral[1]} by phones; phone handling: ${handling[0]} and ${handling[1]}; harsh braking: ${braking[0]} and ${braking[1]}`)
  t.ok(braking[0]! > 3 && Math.abs(braking[1]! - braking[0]!) <= 0.2 * braking[0]!, `harsh braking from the speed: ${braking[1]} from the phones' GNSS, ${braking[0]} from OBD`)
  t.ok(lateral[0]! > 10 && Math.abs(lateral[1]! - lateral[0]!) <= 0.1 * lateral[0]!, `harsh lateral from the IMU: ${lateral[1]} by the tilted phones, ${lateral[0]} in the earth frame`)
  t.ok(handling[0]! > 3 && Math.abs(handling[1]! - handling[0]!) <= 0.2 * handling[0]!, `phone handling: ${handling[1]} by the tilted phones, ${handling[0]} in the earth frame`)
})
