/** A small seeded PRNG (mulberry32): the same seed gives the same fleet, trip and stream. */
export type Random = () => number

/** Returns a generator of uniform numbers in [0, 1) for `seed`. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** Uniform in [lo, hi). */
export const between = (rand: Random, lo: number, hi: number) => lo + (hi - lo) * rand()

/**
 * An independent seed for a part of the simulation (a device, a day, a trip, a sensor), so that
 * changing one part (e.g. the IMU rate) never shifts the random draws of another (the driving).
 */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = seed >>> 0
  for (const p of parts) {
    h = Math.imul(h ^ (p >>> 0), 0x9e3779b1)
    h ^= h >>> 16
    h = Math.imul(h, 0x85ebca6b)
    h ^= h >>> 13
  }
  return h >>> 0
}

/** Normal with `mean` and `sd` (Box–Muller). */
export function normal(rand: Random, mean = 0, sd = 1): number {
  const u = 1 - rand() // (0, 1]: log(0) would be -Infinity
  return mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand())
}

/** A Poisson count with mean `lambda` (Knuth's method, in chunks so large means cannot underflow). */
export function poisson(rand: Random, lambda: number): number {
  let n = 0
  for (let rest = lambda; rest > 0; rest -= 30) {
    const limit = Math.exp(-Math.min(rest, 30))
    let p = rand()
    while (p > limit) {
      n++
      p *= rand()
    }
  }
  return n
}

/** One of `items`, uniformly. */
export const pick = <T>(rand: Random, items: readonly T[]): T => items[Math.floor(rand() * items.length)]!
