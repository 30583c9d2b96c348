/** pricing: rating plans and premium adjustments. */
export { startPricing, priceScores, canonicalJson, type PremiumAdjustment, type PricingDeps } from './pricing.ts'
export { rate, skeletonPlan, type RatingPlan, type Rating } from './plan.ts'
