/**
 * Personas with latent risk (issue #4): how a simulated person drives, lives and keeps house, and
 * how often, as the ground truth, they claim. Behaviour parameters drive the simulation; the
 * `relativity` of each persona multiplies its subject's base claim rate (claims.ts), so a model
 * trained on the simulated telemetry can be checked for ranking and calibration against it.
 *
 * The numbers are plausible rather than actuarial: accelerations and speeds from naturalistic
 * driving studies (harsh ≈ 0.3–0.4 g), heart rates, steps and sleep from wearable population
 * norms, claim rates of the order insurers see (motor ≈ 5–10 % of policies a year).
 */

/** When and where a driver goes (trips.ts turns it into trips). */
export interface Schedule {
  /** Weekday commute: leaves home about half an hour before this hour (UTC); none when absent. */
  workStart_h?: number
  /** Hours between arriving at work and leaving it. */
  workHours: number
  /** Evening trips to the shops, per week. */
  errandsPerWeek: number
  /** Round trips on a Saturday or Sunday, lowest and highest. */
  weekendOutings: [number, number]
  /** Late-evening round trips, per week. */
  nightTripsPerWeek: number
  /** How far from home outings go, km (straight line). */
  outingRadius_km: number
}

/** The driving personas (issue #4). */
export type DrivingPersonaName = 'cautious' | 'average' | 'aggressive' | 'night-owl' | 'distracted' | 'low-mileage'

/** How a persona drives. Ranges are [low, high], drawn per trip (or per turn, per stop). */
export interface DrivingPersona {
  name: DrivingPersonaName
  /** Cruising speed as a share of the limit. */
  speedFactor: [number, number]
  /** Acceleration when pulling away, m/s² (falls off with speed). */
  accel_ms2: [number, number]
  /** Planned braking for a stop, a turn or a lower limit, m/s². */
  brake_ms2: [number, number]
  /** Chance of noticing a stop late and braking hard for it. */
  lateBrake: number
  /** Deceleration of a late stop or a hazard, m/s². */
  hardBrake_ms2: [number, number]
  /** Lateral acceleration accepted in a turn, m/s² (drawn per turn). */
  lateral_ms2: [number, number]
  /** Sudden slow-downs per hour of driving (a car cutting in): follows closely, looks away. */
  hazardsPerHour: number
  /** Phone handling episodes per hour of driving (shows as IMU rotation). */
  phonePerHour: number
  /** Engine speed at which the driver changes up, rpm. */
  shift_rpm: number
  schedule: Schedule
  /** Claims per km relative to the average driver: the latent risk. */
  relativity: number
}

const commuter: Schedule = { workStart_h: 8.5, workHours: 8.5, errandsPerWeek: 2, weekendOutings: [1, 2], nightTripsPerWeek: 0.2, outingRadius_km: 5 }
const averageDriving = {
  speedFactor: [0.95, 1.07], accel_ms2: [1.4, 2.4], brake_ms2: [1.6, 2.5], lateBrake: 0.06, hardBrake_ms2: [3.8, 5.5],
  lateral_ms2: [2.2, 3.4], hazardsPerHour: 1.5, phonePerHour: 0.3, shift_rpm: 2400,
} satisfies Partial<DrivingPersona>

/** The driving personas' parameters and latent risk. */
export const drivingPersonas: Readonly<Record<DrivingPersonaName, DrivingPersona>> = {
  cautious: {
    name: 'cautious', speedFactor: [0.86, 0.96], accel_ms2: [0.9, 1.7], brake_ms2: [1.1, 1.9], lateBrake: 0.01, hardBrake_ms2: [3.6, 4.2],
    lateral_ms2: [1.4, 2.4], hazardsPerHour: 0.3, phonePerHour: 0.1, shift_rpm: 2000, schedule: commuter, relativity: 0.6,
  },
  average: { name: 'average', ...averageDriving, schedule: commuter, relativity: 1 },
  aggressive: {
    name: 'aggressive', speedFactor: [1.08, 1.28], accel_ms2: [2.3, 3.6], brake_ms2: [2.4, 3.3], lateBrake: 0.22, hardBrake_ms2: [4.5, 7.0],
    lateral_ms2: [3.2, 5.2], hazardsPerHour: 5, phonePerHour: 0.5, shift_rpm: 3300, schedule: commuter, relativity: 2,
  },
  // Drives like most, but late at night (tired, fewer people about, more speed) and more often.
  'night-owl': {
    name: 'night-owl', ...averageDriving, speedFactor: [1.0, 1.15], lateBrake: 0.1,
    schedule: { ...commuter, workStart_h: 11, nightTripsPerWeek: 4 }, relativity: 1.5,
  },
  // Handles the phone while driving: attention elsewhere shows as late braking and hazards too.
  distracted: { name: 'distracted', ...averageDriving, lateBrake: 0.14, hazardsPerHour: 4, phonePerHour: 8, schedule: commuter, relativity: 1.7 },
  // Retired or working from home: no commute, short trips near home. More risk per km (the
  // low-mileage bias insurers know), far fewer km.
  'low-mileage': {
    name: 'low-mileage', ...averageDriving, speedFactor: [0.9, 1.02], accel_ms2: [1.1, 2.0],
    schedule: { workHours: 0, errandsPerWeek: 4, weekendOutings: [1, 2], nightTripsPerWeek: 0, outingRadius_km: 3 }, relativity: 1.2,
  },
}

/** The health personas (issue #4). */
export type HealthPersonaName = 'active' | 'sedentary' | 'improving' | 'deteriorating'

/** How a persona lives, as a wearable sees it. */
export interface HealthPersona {
  name: HealthPersonaName
  /** Resting heart rate at the start, bpm, and its change per week. */
  restingHr_bpm: number
  restingHrTrend_bpmPerWeek: number
  /** Steps per day at the start, and the relative change per week. */
  stepsPerDay: number
  stepsTrendPerWeek: number
  /** Workouts (about 45 min, heart rate well up) per week. */
  workoutsPerWeek: number
  /** Sleep per night, h: mean and standard deviation. */
  sleep_h: [number, number]
  /** Resting SpO2, %, and its change per week. */
  spo2_pct: number
  spo2TrendPerWeek: number
  /** Health claims per year relative to the average. */
  relativity: number
}

/** The health personas' parameters and latent risk. */
export const healthPersonas: Readonly<Record<HealthPersonaName, HealthPersona>> = {
  active: { name: 'active', restingHr_bpm: 56, restingHrTrend_bpmPerWeek: 0, stepsPerDay: 11_500, stepsTrendPerWeek: 0, workoutsPerWeek: 4, sleep_h: [7.6, 0.5], spo2_pct: 97.6, spo2TrendPerWeek: 0, relativity: 0.6 },
  sedentary: { name: 'sedentary', restingHr_bpm: 74, restingHrTrend_bpmPerWeek: 0, stepsPerDay: 3_500, stepsTrendPerWeek: 0, workoutsPerWeek: 0.2, sleep_h: [6.3, 0.8], spo2_pct: 96.2, spo2TrendPerWeek: 0, relativity: 1.4 },
  improving: { name: 'improving', restingHr_bpm: 72, restingHrTrend_bpmPerWeek: -0.6, stepsPerDay: 5_000, stepsTrendPerWeek: 0.04, workoutsPerWeek: 2, sleep_h: [6.9, 0.6], spo2_pct: 96.6, spo2TrendPerWeek: 0.02, relativity: 0.9 },
  deteriorating: { name: 'deteriorating', restingHr_bpm: 64, restingHrTrend_bpmPerWeek: 0.6, stepsPerDay: 7_500, stepsTrendPerWeek: -0.04, workoutsPerWeek: 1, sleep_h: [6.8, 0.9], spo2_pct: 96.6, spo2TrendPerWeek: -0.05, relativity: 1.8 },
}

/** The home personas (issue #4). */
export type HomePersonaName = 'well-kept' | 'leaky-plumbing' | 'freeze-prone' | 'smoker'

/** How a home is kept, as its hub's sensors see it. */
export interface HomePersona {
  name: HomePersonaName
  /** Share of the heating's lift over the outdoor temperature that reaches the pipes (utility room). */
  insulation: number
  /** Leaks at the probe per year (besides frozen pipes). */
  leaksPerYear: number
  /** Chance per 15 minutes of a leak while the pipes are below 2 °C (a frozen pipe bursting). */
  freezeLeak: number
  /** Smoke alarms per year. */
  smokeAlarmsPerYear: number
  /** Background carbon monoxide, ppm. */
  co_ppm: number
  /** Indoor relative humidity, %. */
  humidity_pct: number
  /** Home claims per year relative to the average. */
  relativity: number
}

/** The home personas' parameters and latent risk. */
export const homePersonas: Readonly<Record<HomePersonaName, HomePersona>> = {
  'well-kept': { name: 'well-kept', insulation: 0.85, leaksPerYear: 0.3, freezeLeak: 0.002, smokeAlarmsPerYear: 0.5, co_ppm: 0.5, humidity_pct: 45, relativity: 0.5 },
  'leaky-plumbing': { name: 'leaky-plumbing', insulation: 0.8, leaksPerYear: 10, freezeLeak: 0.01, smokeAlarmsPerYear: 0.5, co_ppm: 0.5, humidity_pct: 62, relativity: 2 },
  'freeze-prone': { name: 'freeze-prone', insulation: 0.2, leaksPerYear: 0.5, freezeLeak: 0.02, smokeAlarmsPerYear: 0.5, co_ppm: 0.5, humidity_pct: 55, relativity: 1.3 },
  smoker: { name: 'smoker', insulation: 0.8, leaksPerYear: 0.3, freezeLeak: 0.002, smokeAlarmsPerYear: 12, co_ppm: 4, humidity_pct: 45, relativity: 1.6 },
}

/**
 * Base claim rates, before persona relativities: driving per km driven (the exposure a usage-based
 * policy is priced on), health and home per policy-year.
 */
export const claimBase = {
  driving_perKm: 0.12 / 10_000,
  health_perYear: 0.15,
  home_perYear: 0.08,
} as const

/** Harsh-event thresholds for the ground truth, matching scoring's defaults (≈ 0.35 g braking). */
export const harshThresholds = { brake_ms2: 3.5, accel_ms2: 3.0, corner_ms2: 4.0 } as const
