/**
 * A simulated vehicle with an OBD dongle: speed follows a target that changes with road type and
 * traffic, within the acceleration and braking its driver's persona allows, sampled at 1 Hz.
 * Ground truth (the persona, harsh events as driven) travels with it so scoring can be checked.
 */
import { between, seededRandom, type Random } from './random.ts'

export type PersonaName = 'cautious' | 'average' | 'aggressive'

/** How a persona drives. Accelerations in m/s², per-second event probabilities. */
export interface Persona {
  name: PersonaName
  /** Typical acceleration towards a higher target speed. */
  accel_ms2: [number, number]
  /** Typical deceleration towards a lower target speed. */
  brake_ms2: [number, number]
  /** Chance per second of a sudden stop (late braking for a light or a queue). */
  suddenStopPerS: number
  /** Deceleration of a sudden stop. */
  suddenStop_ms2: [number, number]
  /** Highway cruising speed range, km/h (the limit is 120). */
  highway_kmh: [number, number]
}

export const personas: Record<PersonaName, Persona> = {
  cautious: { name: 'cautious', accel_ms2: [0.8, 1.6], brake_ms2: [1.0, 2.0], suddenStopPerS: 0.0005, suddenStop_ms2: [2.5, 3.2], highway_kmh: [100, 115] },
  average: { name: 'average', accel_ms2: [1.2, 2.4], brake_ms2: [1.5, 2.8], suddenStopPerS: 0.001, suddenStop_ms2: [3.0, 4.5], highway_kmh: [110, 128] },
  aggressive: { name: 'aggressive', accel_ms2: [2.0, 3.3], brake_ms2: [2.2, 3.8], suddenStopPerS: 0.002, suddenStop_ms2: [4.5, 7.0], highway_kmh: [125, 150] },
}

/** One OBD sample as the dongle sends it (the contract's `obd` payload without seq). */
export interface ObdSample {
  ts: number
  speed_kmh: number
  engine_rpm: number
  throttle_pct: number
}

const ROADS = [
  { name: 'urban', limit_kmh: 50, weight: 0.5 },
  { name: 'arterial', limit_kmh: 80, weight: 0.3 },
  { name: 'highway', limit_kmh: 120, weight: 0.2 },
] as const

/**
 * Yields one sample per second from `startTs`, forever; deterministic for a seed. The driver
 * alternates road segments, stops at lights, and now and then stops suddenly.
 */
export function* driveObd(persona: Persona, seed: number, startTs: number): Generator<ObdSample> {
  const rand = seededRandom(seed)
  let speed = 0 // m/s
  let ts = startTs
  let segmentLeft = 0
  let target = 0
  let stopLeft = 0
  let rate = 0 // m/s² available for the current change
  while (true) {
    if (stopLeft > 0) {
      stopLeft--
      target = 0
    } else if (segmentLeft <= 0) {
      const road = pickRoad(rand)
      segmentLeft = Math.round(between(rand, 30, 120))
      target = cruise(persona, road.limit_kmh, rand) / 3.6
      // Half of the urban segments end at a red light.
      if (road.name === 'urban' && rand() < 0.5) stopLeft = Math.round(between(rand, 10, 40))
      rate = 0
    } else if (speed > 5 && rand() < persona.suddenStopPerS) {
      target = 0
      stopLeft = Math.round(between(rand, 5, 20))
      rate = between(rand, ...persona.suddenStop_ms2)
    }
    segmentLeft--
    if (rate === 0) rate = speed < target ? between(rand, ...persona.accel_ms2) : between(rand, ...persona.brake_ms2)
    const before = speed
    if (speed < target) speed = Math.min(target, speed + rate)
    else if (speed > target) speed = Math.max(target, speed - rate)
    if (speed === target) rate = 0
    const accel = speed - before
    const kmh = speed * 3.6
    yield {
      ts,
      speed_kmh: round1(kmh),
      engine_rpm: Math.round(speed > 0 ? 800 + (kmh % 40) * 55 + kmh * 8 : 800),
      throttle_pct: round1(Math.max(0, Math.min(100, 12 + accel * 20 + kmh * 0.15 + rand() * 3))),
    }
    ts += 1000
  }
}

function pickRoad(rand: Random) {
  let x = rand()
  for (const road of ROADS) {
    if ((x -= road.weight) < 0) return road
  }
  return ROADS[0]
}

function cruise(persona: Persona, limit_kmh: number, rand: Random): number {
  if (limit_kmh >= 120) return between(rand, ...persona.highway_kmh)
  // In town and on arterials, the persona's highway habit scales its speed against the limit.
  const ratio = between(rand, persona.highway_kmh[0], persona.highway_kmh[1]) / 120
  return limit_kmh * ratio
}

const round1 = (x: number) => Math.round(x * 10) / 10
