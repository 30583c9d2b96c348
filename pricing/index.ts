/** pricing: rating plans and premium adjustments. */
export { startPricing, priceScores, premiumLine, premiumFromRow, priceReasons, pricingStateFromAudit, applyAdjustment, standingOf, adjustmentHash, canonicalJson, PremiumAdjustment, PriceReason, type PricingDeps, type PricingState, type Unpriced, type ValveTest } from './pricing.ts'
export { openAuditLog, verifyAudit, auditRecords, type AuditLog, type AuditProblem, type AuditVerdict, type AuditRecord, type CommandRecord, type ConsentRecord, type ErasureRecord, type HouseholdRecord, type PrivacyRecord } from './audit.ts'
export { openPolicyKeys, pseudonymise, reveal, type PolicyKeys } from './pseudonyms.ts'
export { rate, checkPlan, loadPlan, loadPlans, examplePlans, planAt, planId, relativity, credibility, credibleFactor, exposureOf, exposureMeasures, firstStanding, attributeRelativity, refusedAttributes, type RatingPlan, type SubjectRating, type Rating, type Standing, type Limit } from './plan.ts'
export { backtest, backtestSummary, cachedBacktest, backtestReport, backtestCsv, type Backtest, type BacktestOptions, type BacktestRow, type BacktestSummary, type Count as BacktestCount, type RiskGroup } from './backtest.ts'
export { whatIf, WhatIfSchema, WhatIf, Quote, type WhatIfChanges } from './what-if.ts'
export { householdPremium, HouseholdPremium, HouseholdCover, type LatestPremium } from './household.ts'
