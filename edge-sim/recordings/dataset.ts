/**
 * The shipped driver behaviour dataset's trip folders (../shared/data/driver-behavior-dataset, see
 * its README) as tracks: read by replay.ts's `readRecording` (earth frame, 50 Hz), with the
 * hand-labelled manoeuvres. There is no GPS: a phone with only an IMU.
 */
import { readRecording } from '../replay.ts'
import type { Track } from './track.ts'

export function readDatasetTrip(dir: string): Track {
  const rec = readRecording(dir)
  return {
    name: rec.name,
    fixes: [],
    imu: { rateHz: rec.rateHz, t0: 0, frame: 'earth', gyro: true, rows: rec.samples },
    ignition: false,
    labels: rec.events,
    skipped: [],
  }
}
