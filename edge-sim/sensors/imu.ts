import { locate } from '../route.ts'
import { clamp, jitter, r3, type DrivenSecond, type PhoneMount, type VehicleSensor } from './vehicle.ts'

/** Standard gravity, m/s². */
const G_MS2 = 9.80665
/** An accelerometer reading, clipped to the sensor's range (a crash pulse may exceed it). */
const saturate = (x: number) => clamp(r3(x), -159.9, 159.9)

/** A vector in the car's frame (forward, left, up) as the phone mounted at `m` reads it: Mᵀ·v, M = Rz(yaw)·Ry(pitch)·Rx(roll). */
function phoneFromCar(m: PhoneMount): (v: number[]) => number[] {
  const [a, b, c] = [m.yaw_deg, m.pitch_deg, m.roll_deg].map((d) => (d * Math.PI) / 180) as [number, number, number]
  const [ca, sa, cb, sb, cc, sc] = [Math.cos(a), Math.sin(a), Math.cos(b), Math.sin(b), Math.cos(c), Math.sin(c)]
  const M = [
    [ca * cb, ca * sb * sc - sa * cc, ca * sb * cc + sa * sc],
    [sa * cb, sa * sb * sc + ca * cc, sa * sb * cc - ca * sc],
    [-sb, cb * sc, cb * cc],
  ]
  return (v) => [0, 1, 2].map((j) => M[0]![j]! * v[0]! + M[1]![j]! * v[1]! + M[2]![j]! * v[2]!)
}

/**
 * Batched IMU at `imuHz`, one batch a second: a dongle's `imu` (linear acceleration in the earth
 * frame: east, north, up; gravity removed) or a phone's `imu_device` (its own frame, gravity
 * included), from the motion plus road vibration, sensor noise, a crash pulse or the swings of a
 * phone in the hand. After a crash, the crash recorder uploads its ring buffer at its full rate.
 */
export const simulateImu = (kind: 'imu' | 'imu_device'): VehicleSensor => ({ route, imuHz, imuNoise, phone, crashWindow: window }) => {
  if ((kind === 'imu_device') !== Boolean(phone)) return { second: () => [] }
  const toPhone = phone && phoneFromCar(phone)
  const at = { x: 0, y: 0, heading: 0, curv: 0, leg: 0 }
  const recent: DrivenSecond[] = []

  function rows(sec: DrivenSecond, hz: number): number[][] {
    const out: number[][] = []
    for (let i = 0; i < hz; i++) {
      const tau = i / hz
      let vt: number, st: number, along: number
      if (sec.crash) {
        const { tau: t0, dur, peak, dv } = sec.crash
        const u = clamp((tau - t0) / dur, 0, 1)
        along = u > 0 && u < 1 ? -peak * Math.sin(Math.PI * u) : 0
        vt = sec.v - dv * (1 - Math.cos(Math.PI * u)) / 2
        st = sec.s + sec.v * Math.min(tau, t0)
      } else {
        vt = Math.max(0, sec.v + sec.a * tau)
        st = sec.s + sec.v * tau + (sec.a * tau * tau) / 2
        along = sec.a
      }
      locate(route, st, at)
      const lateral = vt * vt * at.curv // + to the right of travel
      const sin = Math.sin(at.heading), cos = Math.cos(at.heading)
      const vib = 0.04 + 0.008 * vt
      let ax = along * sin + lateral * cos + jitter(imuNoise) * (0.03 + 0.3 * vib)
      let ay = along * cos - lateral * sin + jitter(imuNoise) * (0.03 + 0.3 * vib)
      let az = jitter(imuNoise) * vib
      // Heading turns clockwise; rotation about "up" is counter-clockwise positive.
      let gx = jitter(imuNoise) * (0.003 + 0.001 * vt), gy = jitter(imuNoise) * (0.003 + 0.001 * vt), gz = -vt * at.curv + jitter(imuNoise) * 0.003
      if (sec.phone) {
        const t = (sec.ts - sec.phone.startTs) / 1000 + tau
        const p = sec.phone
        gx += p.amp * Math.sin(2 * Math.PI * 0.7 * t + p.phase)
        gy += 0.7 * p.amp * Math.sin(2 * Math.PI * 0.45 * t + 2 * p.phase)
        gz += 0.4 * p.amp * Math.sin(2 * Math.PI * 0.3 * t)
        ax += 1.2 * Math.sin(2 * Math.PI * 1.3 * t + p.phase)
        ay += 0.9 * Math.sin(2 * Math.PI * 1.1 * t)
        az += 1.0 * Math.sin(2 * Math.PI * 0.9 * t + p.phase)
      }
      if (toPhone) {
        // Earth (east, north, up) → the car's frame (forward, left, up), gravity added as an
        // accelerometer reads it (+g up at rest), then into the phone's own frame.
        const car = (e: number, n: number, u: number) => [e * sin + n * cos, -e * cos + n * sin, u]
        const a = toPhone(car(ax, ay, az + G_MS2)), w = toPhone(car(gx, gy, gz))
        ;[ax, ay, az, gx, gy, gz] = [a[0]!, a[1]!, a[2]!, w[0]!, w[1]!, w[2]!]
      }
      out.push([saturate(ax), saturate(ay), saturate(az), r3(gx), r3(gy), r3(gz)])
    }
    return out
  }
  const batch = (sec: DrivenSecond, sendAt: number, hz: number) =>
    ({ kind, ts: sec.ts, ...(sendAt !== sec.ts ? { sendAt } : {}), body: { rate_hz: hz, samples: rows(sec, hz) } })

  return {
    second(sec) {
      recent.push(sec)
      if (recent.length > window.pre_s + window.post_s + 1) recent.shift()
      return imuHz > 0 ? [batch(sec, sec.ts, imuHz)] : []
    },
    end(ts) {
      const crashSecond = recent.find((sec) => sec.crash)?.ts
      if (crashSecond === undefined) return []
      return recent.filter((sec) => sec.ts >= crashSecond - window.pre_s * 1000 && sec.ts <= crashSecond + window.post_s * 1000).map((sec) => batch(sec, ts, window.hz))
    },
  }
}
