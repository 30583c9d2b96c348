/** pricing: rating plans and premium adjustments. */
export { startPricing, priceScores, premiumLine, premiumFromRow, priceReasons, pricingStateFromAudit, applyAdjustment, standingOf, adjustmentHash, canonicalJson, PremiumAdjustment, PriceReason, type PricingDeps, type PricingState, type Unpriced } from './pricing.ts'
export { openAuditLog, verifyAudit, auditRecords, type AuditLog, type AuditProblem, type AuditVerdict, type AuditRecord, type ClaimRecord, type CommandRecord, type ConsentRecord, type ErasureRecord, type PrivacyRecord } from './audit.ts'
export { openPolicyKeys, pseudonymise, reveal, type PolicyKeys } from './pseudonyms.ts'
export { rate, checkPlan, loadPlan, loadPlans, examplePlans, planAt, planId, relativity, credibility, credibleFactor, exposureOf, exposureMeasures, firstStanding, attributeRelativity, refusedAttributes, PlanError, type RatingPlan, type SubjectRating, type Rating, type Standing, type Limit } from './plan.ts'
export { backtest, backtestSummary, cachedBacktest, backtestReport, backtestCsv, type Backtest, type BacktestOptions, type BacktestRow, type BacktestSummary, type Count as BacktestCount, type RiskGroup } from './backtest.ts'
export { whatIf, WhatIfError, WhatIfSchema, WhatIf, Quote, type WhatIfChanges } from './what-if.ts'
export { claimsStage, claimList, claimId, afterImpact, afterImpactConfig, CLAIM_TRIGGERS, Claim, ClaimStatus, type ClaimChange, type ClaimsStage, type Movement } from './claims.ts'
export { webhookSender, verifySignature, signature, deadLetters, SIGNATURE_HEADER, type Delivery, type WebhookSender, type WebhookOptions } from './webhooks.ts'
