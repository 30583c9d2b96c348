/**
 * Clock skew per device. A message's lag (receive time − device time) is the network and queue
 * delay plus the device clock's error; buffered uploads only add delay. So the smallest lag over
 * a few minutes estimates the skew: positive, the device clock is behind; negative, ahead.
 */
import { idleMap } from './idle-map.ts'

export interface DeviceClock {
  /** Estimated skew, ms: receive time minus device time at the least-delayed message. */
  skewMs: number
  /** Messages the estimate rests on. */
  samples: number
  /** Receive time of the device's last message, ms since the epoch. */
  lastSeen: number
}

/**
 * Keeps each device's skew estimate, over windows of `windowMs` of receive time; a device silent
 * for `idleMs` is forgotten (memory follows the active devices, #20).
 */
export function clockTracker(windowMs = 5 * 60_000, idleMs = 3600_000) {
  const devices = idleMap<{ windowStart: number; minLag: number; count: number; estimate?: DeviceClock }>(idleMs)
  return {
    /** Records one message of `deviceId`. */
    observe(deviceId: string, ts: number, receivedAt: number): void {
      const lag = receivedAt - ts
      const d = devices.touch(deviceId, receivedAt)
      if (!d) {
        devices.set(deviceId, { windowStart: receivedAt, minLag: lag, count: 1 }, receivedAt)
        return
      }
      if (receivedAt - d.windowStart >= windowMs) {
        d.estimate = { skewMs: d.minLag, samples: d.count, lastSeen: receivedAt }
        d.windowStart = receivedAt
        d.minLag = lag
        d.count = 1
        return
      }
      d.minLag = Math.min(d.minLag, lag)
      d.count++
      if (d.estimate) d.estimate.lastSeen = receivedAt
    },
    /** Forgets the device's estimate (an erasure). */
    forget: (deviceId: string) => devices.delete(deviceId),
    /** How many devices' estimates are off by more than `ms` either way. */
    countSkewedOver(ms: number): number {
      let n = 0
      for (const id of devices.keys()) if (Math.abs(this.get(id)!.skewMs) > ms) n++
      return n
    },
    /** The device's estimate: the last full window's, or the current window's until there is one. */
    get(deviceId: string): DeviceClock | undefined {
      const d = devices.get(deviceId)
      if (!d) return undefined
      return d.estimate ?? { skewMs: d.minLag, samples: d.count, lastSeen: d.windowStart }
    },
  }
}

export type ClockTracker = ReturnType<typeof clockTracker>
