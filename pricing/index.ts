/** pricing: rating plans and premium adjustments. */
export { startPricing, priceScores, priceReasons, pricingStateFromAudit, adjustmentHash, canonicalJson, type PremiumAdjustment, type PriceReason, type PricingDeps, type PricingState, type Unpriced } from './pricing.ts'
export { openAuditLog, verifyAudit, auditRecords, type AuditLog, type AuditProblem, type AuditVerdict } from './audit.ts'
export { rate, checkPlan, loadPlan, loadPlans, examplePlans, planAt, planId, relativity, credibility, credibleFactor, firstStanding, attributeRelativity, refusedAttributes, PlanError, type RatingPlan, type SubjectRating, type Rating, type Standing, type Limit } from './plan.ts'
