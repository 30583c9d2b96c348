/**
 * Scoring of recorded trips in-process, for `ubiq evaluate` (issue #19, "Validation that cannot be
 * tuned to"): a recording's device messages go through ingest's own decoder and scoring's own trip
 * tracker, detectors, driving features and model, as `ubiq start` would run them, without a broker
 * or a database. Each recording is its own policy, so its score is its driving alone.
 *
 * Then the checks anyone can run on labelled recordings: pairwise ranking (an aggressive or drowsy
 * trip should score below a normal trip of the same driver on the same road) and event precision
 * and recall per axis, by detection-quality.ts's rule (overlap with a label ±1 s).
 */
import { createAdapters, decodeMessage, deviceRegistry, isRejection, sensorsByKind, topics, type Reading } from '../ingest/index.ts'
import { detectionQuality, labelTypes, type Detection, type Label, type Quality } from './detection-quality.ts'
import { addTrip, drivingScoreInput, type DrivingDay } from './driving.ts'
import type { Detector, DrivingEvent, DrivingEventType } from './events.ts'
import type { LoadedModel } from './model.ts'
import { scoreBatch, type Score } from './score.ts'
import type { ManoeuvreConfig } from './manoeuvres.ts'
import { defaultTripConfig, tripTracker, type Trip, type TripConfig } from './trips.ts'

/** A device message as published: topic, payload, and when the device sent it (its receive time here). */
export interface RecordedMessage {
  topic: string
  payload: string
  sendAt: number
}

export interface OfflineDeps {
  /** A vehicle's detectors, as the service makes them (bin/pipeline.ts's vehicleDetectors). */
  detectors: (deviceId: string, policyId: string) => Detector[]
  /** The driving model that scores (the champion). */
  model: LoadedModel
  trips?: TripConfig
}

export interface OfflineResult {
  deviceId: string
  policyId: string
  /** Readings ingest accepted, and the messages it refused by reason (the same rules as live). */
  readings: number
  rejected: Record<string, number>
  trips: Trip[]
  events: DrivingEvent[]
  /** The score after the last trip; none without a trip (e.g. a phone with only an IMU). */
  score?: Score
}

/**
 * One device's messages through ingest's decoder, put in device-time order as the service's
 * reorder window does, then through a trip tracker with the service's detectors; every closed
 * trip is added to the policy's days and scored, as scoring does after each trip.
 */
export async function scoreRecording(messages: Iterable<RecordedMessage>, ids: { deviceId: string; policyId: string }, deps: OfflineDeps): Promise<OfflineResult> {
  const all = [...messages]
  // Register the streams the recording uses and the contract has: others are refused as unknown, as live.
  const kinds = [...new Set(all.map((m) => topics.parseDevice(m.topic)?.kind))].filter((k): k is string => k !== undefined && sensorsByKind.has(k))
  const cfg = { registry: deviceRegistry([{ ...ids, kinds }]), maxPayloadBytes: 1 << 20, maxFutureSkewMs: 0, adapters: createAdapters() }
  const readings: Reading[] = []
  const rejected: Record<string, number> = {}
  for (const m of all) {
    const r = decodeMessage(cfg, m.topic, Buffer.from(m.payload), m.sendAt)
    if (r && isRejection(r)) rejected[r.reason] = (rejected[r.reason] ?? 0) + 1
    else if (r) readings.push(r)
  }
  readings.sort((a, b) => a.ts - b.ts) // stable: equal times keep their sending order
  const tracker = tripTracker(deps.trips ?? defaultTripConfig, ids.deviceId, ids.policyId, deps.detectors(ids.deviceId, ids.policyId))
  const trips: Trip[] = []
  const events: DrivingEvent[] = []
  for (const out of [...readings.flatMap((r) => tracker.push(r)), ...tracker.flush()]) {
    if ('trip' in out) trips.push(out.trip)
    else events.push(out.event)
  }
  // The score after the last trip, over all of them (the earlier trips' scores would be discarded).
  const days = trips.reduce<DrivingDay[]>((d, trip) => addTrip(d, trip), [])
  const [score] = trips.length ? await scoreBatch(deps.model, [drivingScoreInput(days, trips.at(-1)!)]) : []
  return { ...ids, readings: readings.length, rejected, trips, events, ...(score ? { score } : {}) }
}

/** Event labels in plain words, as the dataset's names (detection-quality.ts's vocabulary). */
const labelAliases: Record<string, string> = {
  braking: 'freada_agressiva',
  acceleration: 'aceleracao_agressiva',
  turn: 'curva_direita_agressiva',
  turn_right: 'curva_direita_agressiva',
  turn_left: 'curva_esquerda_agressiva',
  lane_change: 'troca_faixa_direita_agressiva',
  lane_change_right: 'troca_faixa_direita_agressiva',
  lane_change_left: 'troca_faixa_esquerda_agressiva',
  normal: 'evento_nao_agressivo',
}

/** The accepted event labels: plain words and the dataset's own. */
export const eventLabels: readonly string[] = [...Object.keys(labelAliases), ...Object.keys(labelTypes)]

/** An event label in the dataset's vocabulary; throws naming the accepted labels. */
export function eventLabel(label: string): string {
  const name = labelAliases[label] ?? label
  if (!(name in labelTypes)) throw new Error(`unknown event label "${label}" (accepted: ${eventLabels.join(', ')})`)
  return name
}

/** The axis a detection counts on: speed-based braking and acceleration are longitudinal too. */
const axisOf: Partial<Record<DrivingEventType, Detection['type']>> = {
  harsh_longitudinal: 'harsh_longitudinal', harsh_braking: 'harsh_longitudinal', harsh_acceleration: 'harsh_longitudinal', harsh_lateral: 'harsh_lateral',
}

/** A recording's events as detections in seconds from `startTs`, on the two axes labels speak of. */
export function detections(events: readonly DrivingEvent[], startTs: number): Detection[] {
  return events.flatMap((e) => {
    const type = axisOf[e.type]
    return type ? [{ type, startS: (e.from - startTs) / 1000, endS: (e.to - startTs) / 1000 }] : []
  })
}

/** One labelled, scored recording. */
export interface EvaluatedTrip {
  trip: string
  driver?: string
  road?: string
  label?: 'normal' | 'aggressive' | 'drowsy'
  score?: number
  detections: Detection[]
  /** Its labelled manoeuvres (dataset vocabulary, eventLabel). */
  labels: Label[]
}

/** Pairs of a class against normal trips of the same driver and road: right when the class scored lower. */
export interface PairCount {
  correct: number
  pairs: number
  /** Pairs left out because a trip has no score (no trip was made of it). */
  unscored: number
}

export interface Evaluation {
  aggressive: PairCount
  drowsy: PairCount
  events: Quality
}

/** Pairwise ranking accuracy and event precision and recall over labelled recordings. */
export function evaluateTrips(trips: readonly EvaluatedTrip[]): Evaluation {
  const pairs = (cls: 'aggressive' | 'drowsy'): PairCount => {
    const count = { correct: 0, pairs: 0, unscored: 0 }
    for (const a of trips.filter((t) => t.label === cls && t.driver && t.road)) {
      for (const n of trips.filter((t) => t.label === 'normal' && t.driver === a.driver && t.road === a.road)) {
        if (a.score === undefined || n.score === undefined) count.unscored++
        else {
          count.pairs++
          if (a.score < n.score) count.correct++
        }
      }
    }
    return count
  }
  const labelled = trips.filter((t) => t.labels.length > 0)
  return { aggressive: pairs('aggressive'), drowsy: pairs('drowsy'), events: detectionQuality(labelled.map((t) => ({ detections: t.detections, labels: t.labels }))) }
}

/**
 * The manoeuvre detector's settings that were chosen by looking at labelled trips (the rest are
 * physics), each with the values cross-validation tries: the defaults and a step either side.
 */
export const manoeuvreGrid: Readonly<Partial<Record<keyof ManoeuvreConfig, readonly number[]>>> = {
  lateralYaw_rads: [0.2, 0.25, 0.3],
  lateral_ms2: [2.5, 3.0, 3.5],
  longitudinal_ms2: [2.5, 3.0, 3.5],
  launch_s: [3.5, 4.3, 5.0],
}

/** Every combination of the grid's values over `base`, the base itself first. */
export function gridConfigs(base: ManoeuvreConfig, grid = manoeuvreGrid): ManoeuvreConfig[] {
  let configs: ManoeuvreConfig[] = [base]
  for (const [key, values] of Object.entries(grid) as [keyof ManoeuvreConfig, readonly number[]][]) {
    configs = configs.flatMap((c) => values.map((v) => ({ ...c, [key]: v })))
  }
  const same = (a: ManoeuvreConfig) => (Object.keys(grid) as (keyof ManoeuvreConfig)[]).every((k) => a[k] === base[k])
  return [base, ...configs.filter((c) => !same(c))]
}

/** One held-out trip: the settings chosen on the others, and what they detect on it. */
export interface HeldOut {
  trip: string
  /** The grid values chosen on the other trips (by F1 over both axes; ties to the defaults' side). */
  chosen: Partial<ManoeuvreConfig>
  quality: Quality
}

/**
 * Leave one trip out: for each trip with labelled events, the detector settings that did best on
 * all the OTHER trips are judged on it, so no trip's figure comes from settings fitted to it
 * (#19, "validation that cannot be tuned to"). `detect(config, i)` gives trip i's detections with
 * those settings; the pooled held-out quality is what a trip the settings never saw can expect.
 */
export async function leaveOneTripOut(
  trips: readonly { trip: string; labels: readonly Label[] }[],
  configs: readonly ManoeuvreConfig[],
  detect: (config: ManoeuvreConfig, trip: number) => Promise<Detection[]>,
  onProgress: (done: number, of: number) => void = () => {},
): Promise<{ heldOut: HeldOut[]; pooled: Quality }> {
  const labelled = trips.map((t, i) => ({ ...t, i })).filter((t) => t.labels.length > 0)
  // Every trip's detections under every setting, once: choosing on the others is then arithmetic.
  const found: Detection[][][] = []
  let done = 0
  for (const [c, config] of configs.entries()) {
    found[c] = []
    for (const t of labelled) {
      found[c]![t.i] = await detect(config, t.i)
      onProgress(++done, configs.length * labelled.length)
    }
  }
  // F1 per axis, summed: an axis with nothing labelled and nothing detected is perfect (precision and recall 1).
  const f1 = (q: Quality) => q.rows.reduce((a, r) => a + (r.precision + r.recall > 0 ? (2 * r.precision * r.recall) / (r.precision + r.recall) : 0), 0)
  const heldOut = labelled.map((out) => {
    const others = labelled.filter((t) => t !== out)
    let best = 0, bestScore = -Infinity
    for (let c = 0; c < configs.length; c++) {
      const score = f1(detectionQuality(others.map((t) => ({ labels: t.labels, detections: found[c]![t.i]! }))))
      if (score > bestScore + 1e-9) [best, bestScore] = [c, score] // the base (index 0) wins ties
    }
    const chosen = Object.fromEntries(Object.keys(manoeuvreGrid).map((k) => [k, configs[best]![k as keyof ManoeuvreConfig]])) as Partial<ManoeuvreConfig>
    return { trip: out.trip, chosen, quality: detectionQuality([{ labels: out.labels, detections: found[best]![out.i]! }]), detections: found[best]![out.i]! }
  })
  const pooled = detectionQuality(heldOut.map((h, k) => ({ labels: labelled[k]!.labels, detections: h.detections })))
  return { heldOut: heldOut.map(({ detections: _, ...h }) => h), pooled }
}
