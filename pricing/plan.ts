/**
 * A rating plan: how scores become premium factors. The skeleton's plan; plans as versioned,
 * validated files with per-subject mappings come with the pricing issue.
 */
export interface RatingPlan {
  /** Recorded with every adjustment, so a price can be reproduced. */
  version: string
  /** Exposure (km) for full credibility: Z = min(1, sqrt(km / fullCredibility_km)). */
  fullCredibility_km: number
  /** No change at all below this exposure (km). */
  minExposure_km: number
  floor: number
  cap: number
}

export const skeletonPlan: RatingPlan = {
  version: 'skeleton-plan@1',
  fullCredibility_km: 1000,
  minExposure_km: 1,
  floor: 0.7,
  cap: 1.3,
}

/** What a plan makes of one score. */
export interface Rating {
  factor: number
  /** The model's relativity for the score, before credibility and limits. */
  relativity: number
  credibility: number
  limited: 'floor' | 'cap' | null
}

/**
 * Score s encodes the relativity (100 − s)/s (see scoring's scoreFromFrequency); credibility pulls
 * it towards 1 (limited-fluctuation credibility, square-root rule); floor and cap bound the result.
 */
export function rate(plan: RatingPlan, score: number, exposure_km: number): Rating {
  const s = Math.min(Math.max(score, 0.1), 99.9)
  const relativity = (100 - s) / s
  const credibility = exposure_km < plan.minExposure_km ? 0 : Math.min(1, Math.sqrt(exposure_km / plan.fullCredibility_km))
  const raw = 1 + credibility * (relativity - 1)
  const factor = Math.round(Math.min(plan.cap, Math.max(plan.floor, raw)) * 1000) / 1000
  const limited = raw > plan.cap ? 'cap' : raw < plan.floor ? 'floor' : null
  return { factor, relativity, credibility, limited }
}
