/**
 * Driving events: what scoring detects in a policy's streams, each with its evidence, published on
 * `ubiq/v1/events/{policyId}` and stored in InfluxDB (measurement `event`).
 */

/** Event types scoring detects. IMU-only phones cannot tell braking from acceleration (no speed, no heading). */
export type DrivingEventType = 'harsh_longitudinal' | 'harsh_lateral'

/** Why an event fired: the numbers a policyholder or an analyst can check against the raw data. */
export interface EventEvidence {
  /** Where it was seen: the sensor kind (`imu`, `obd`, `gps`). */
  source: string
  /** The largest value of the quantity the threshold applies to (smoothed horizontal acceleration, m/s²). */
  peak: number
  /** The threshold that peak crossed, same unit. */
  threshold: number
  unit: string
  /** The largest smoothed yaw rate in the manoeuvre, rad/s (what tells a turn from a straight-line event). */
  peakYaw_rads: number
  duration_s: number
  /** Samples the manoeuvre spans, and their rate. */
  samples: number
  rate_hz: number
}

/** One detected event, for one device of a policy. */
export interface DrivingEvent {
  policyId: string
  deviceId: string
  type: DrivingEventType
  /** Device time of the manoeuvre's start and end, ms. */
  from: number
  to: number
  evidence: EventEvidence
}
