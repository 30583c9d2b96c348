/**
 * bench:soak's sampler, the same in ubiq's process and the raw reference's: event-loop delay over
 * the interval since the last sample (perf_hooks monitorEventLoopDelay), then memory after a
 * forced full garbage collection (node --expose-gc), so that memory is what is retained.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks'

/** One sample: memory in bytes, event-loop delay in ms. */
export interface Sample {
  /** RSS before the forced collection: what the process holds in the ordinary course. */
  rssBeforeGc: number
  rss: number
  heapUsed: number
  heapTotal: number
  external: number
  arrayBuffers: number
  loopP50: number
  loopP99: number
  loopMax: number
}

/** The event-loop timer's period, ms. */
export const RESOLUTION_MS = 10

export function loopSampler() {
  const gc = (globalThis as { gc?: () => void }).gc
  if (!gc) throw new Error('run with node --expose-gc (npm run bench:soak does)')
  const delay = monitorEventLoopDelay({ resolution: RESOLUTION_MS })
  delay.enable()
  return {
    sample(): Sample {
      // The histogram holds the time between the timer's ticks: the delay is what exceeds the resolution.
      const ms = (ns: number) => Math.max(0, ns / 1e6 - RESOLUTION_MS)
      const loop = { loopP50: ms(delay.percentile(50)), loopP99: ms(delay.percentile(99)), loopMax: ms(delay.max) }
      // Reset before collecting: the histogram skips its next tick after a reset, so the forced
      // collection's pause is not counted as the event loop's delay.
      delay.reset()
      const rssBeforeGc = process.memoryUsage.rss()
      gc()
      const { rss, heapUsed, heapTotal, external, arrayBuffers } = process.memoryUsage()
      return { rssBeforeGc, rss, heapUsed, heapTotal, external, arrayBuffers, ...loop }
    },
    /** Forgets the delay so far (a pause of the benchmark's own, such as a heap snapshot). */
    reset: () => delay.reset(),
  }
}
