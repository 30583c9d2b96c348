/** scoring: features, models and scores with reasons. */
export { startScoring, type ScoringDeps } from './scoring.ts'
export { scoreBatch, scoreWith, scoreFromFrequency, type Score, type Reason, type ScoreInput, type BatchConfig, type Exposure } from './score.ts'
export { loadModel, ModelError, type LoadedModel } from './model.ts'
export { addReading, noDriving, drivingFeatures, accumulateDriving, defaultThresholds, type DrivingThresholds, type DrivingTotals } from './features.ts'
export { builtInModels, drivingFrequency, modelId, type ModelDefinition, type FeatureDefinition } from './models/index.ts'
export { detectManoeuvres, manoeuvreDetector, defaultManoeuvreConfig, type ManoeuvreConfig } from './manoeuvres.ts'
export type { PolicyEvent, DrivingEvent, EventType, DrivingEventType, HomeEventType, HealthEventType, EventEvidence } from './events.ts'
export { detectionQuality, qualityTable, labelTypes, type Detection, type Label, type Quality, type QualityRow } from './detection-quality.ts'
