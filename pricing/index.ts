/** pricing: rating plans and premium adjustments. */
export { startPricing, priceScores, adjustmentHash, canonicalJson, type PremiumAdjustment, type PricingDeps } from './pricing.ts'
export { openAuditLog, verifyAudit, type AuditLog, type AuditProblem, type AuditVerdict } from './audit.ts'
export { rate, skeletonPlan, type RatingPlan, type Rating } from './plan.ts'
