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
