/**
 * Out-of-order and late messages inside a window are put back in device-time order: each
 * device's readings are held for `windowMs` (processing time) and released sorted by device time
 * and seq. Later than the window, a reading passes on as it comes (storage does not care;
 * scoring skips what is older than a device's last sample). A device's group, and its window
 * timer, close when it has been quiet for two windows (what is held is released first), so
 * memory and timers follow the devices that are sending now.
 */
import { bufferTime, debounceTime, filter, groupBy, mergeMap, type OperatorFunction, type SchedulerLike, asyncScheduler } from 'rxjs'
import type { Reading } from './contract.ts'

/** Stage: readings in device-time order within `windowMs`, per device. */
export function orderWithin(windowMs: number, scheduler: SchedulerLike = asyncScheduler): OperatorFunction<Reading, Reading> {
  return (readings$) => readings$.pipe(
    groupBy((r) => r.deviceId, { duration: (g) => g.pipe(debounceTime(windowMs * 2, scheduler)) }),
    mergeMap((device$) => device$.pipe(
      bufferTime(windowMs, scheduler),
      filter((batch) => batch.length > 0),
      mergeMap((batch) => batch.sort((a, b) => a.ts - b.ts || a.seq - b.seq)),
    )),
  )
}
