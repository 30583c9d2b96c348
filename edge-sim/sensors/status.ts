import { between } from '../random.ts'
import { r1, type VehicleSensor } from './vehicle.ts'

/** The dongle's `status`: ignition on and off, and the battery every minute between (a phone has no ignition signal). */
export const simulateStatus: VehicleSensor = ({ startTs, noise, phone }) => {
  const status = (ts: number, ignition_on: boolean, lo: number, hi: number) => {
    const body = { ignition_on, battery_v: r1(between(noise, lo, hi)) }
    return phone ? [] : [{ kind: 'status', ts, body }]
  }
  return {
    start: (ts) => status(ts, true, 12.3, 12.7),
    second: ({ ts }) => (ts > startTs && (ts - startTs) % 60_000 === 0 ? status(ts, true, 13.9, 14.4) : []),
    end: (ts) => status(ts, false, 12.4, 12.7),
  }
}
