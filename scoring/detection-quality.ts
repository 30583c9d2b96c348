/**
 * Detection quality against labelled recordings (the driver behaviour dataset's rule): a detection
 * is correct when it overlaps a labelled interval of its class widened by ±1 s; a detection outside
 * every labelled interval of its class is a false positive; a label no detection overlaps is missed.
 */
import type { DrivingEventType } from './events.ts'

/** A labelled interval of a recording, seconds from the trip's start. */
export interface Label {
  label: string
  startS: number
  endS: number
}

/** A detection, seconds from the trip's start. */
export interface Detection {
  type: DrivingEventType
  startS: number
  endS: number
}

/** The dataset's labels by the event type they should produce; `null`: a normal manoeuvre, which must not fire. */
export const labelTypes: Record<string, DrivingEventType | null> = {
  freada_agressiva: 'harsh_longitudinal',
  aceleracao_agressiva: 'harsh_longitudinal',
  curva_direita_agressiva: 'harsh_lateral',
  curva_esquerda_agressiva: 'harsh_lateral',
  troca_faixa_direita_agressiva: 'harsh_lateral',
  troca_faixa_esquerda_agressiva: 'harsh_lateral',
  evento_nao_agressivo: null,
}

export interface QualityRow {
  type: DrivingEventType
  detections: number
  /** Detections that overlap a label of their type. */
  correct: number
  labels: number
  /** Labels that some detection of their type overlaps. */
  found: number
  precision: number
  recall: number
}

export interface Quality {
  rows: QualityRow[]
  /** Detections overlapping a normal manoeuvre and no aggressive one of their type. */
  normalFired: number
}

/** Precision and recall per event type over one or more recordings' detections and labels. */
export function detectionQuality(trips: readonly { detections: readonly Detection[]; labels: readonly Label[] }[], toleranceS = 1): Quality {
  const overlaps = (d: Detection, l: Label) => d.startS <= l.endS + toleranceS && d.endS >= l.startS - toleranceS
  const types: DrivingEventType[] = ['harsh_longitudinal', 'harsh_lateral']
  const rows = types.map((type): QualityRow => {
    let detections = 0, correct = 0, labels = 0, found = 0
    for (const trip of trips) {
      const ofType = trip.labels.filter((l) => labelTypes[l.label] === type)
      const detected = trip.detections.filter((d) => d.type === type)
      detections += detected.length
      correct += detected.filter((d) => ofType.some((l) => overlaps(d, l))).length
      labels += ofType.length
      found += ofType.filter((l) => detected.some((d) => overlaps(d, l))).length
    }
    return { type, detections, correct, labels, found, precision: detections ? correct / detections : 1, recall: labels ? found / labels : 1 }
  })
  const normalFired = trips.reduce((n, trip) => n + trip.detections.filter((d) =>
    trip.labels.some((l) => labelTypes[l.label] === null && overlaps(d, l)) &&
    !trip.labels.some((l) => labelTypes[l.label] === d.type && overlaps(d, l))).length, 0)
  return { rows, normalFired }
}

/** The quality table as Markdown, for test output and notes. */
export function qualityTable(q: Quality): string {
  const lines = ['| event type | detections | correct | labels | found | precision | recall |', '|---|---|---|---|---|---|---|']
  for (const r of q.rows) lines.push(`| ${r.type} | ${r.detections} | ${r.correct} | ${r.labels} | ${r.found} | ${r.precision.toFixed(2)} | ${r.recall.toFixed(2)} |`)
  return `${lines.join('\n')}\nnormal manoeuvres that fired: ${q.normalFired}`
}
