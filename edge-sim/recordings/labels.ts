/**
 * The labels of a folder of recordings, for `ubiq evaluate`:
 *
 * - `labels.csv` (required), a header and a row per trip: `trip,driver,road,label`. `trip` is the
 *   recording's subfolder (or .gpx file name without the extension); `driver` and `road` pair trips
 *   for ranking (left empty: the trip is in no pair); `label` is `normal`, `aggressive`, `drowsy`,
 *   or empty (only its events are checked).
 * - `events.csv` (optional): `trip,label,start_s,end_s`, labelled manoeuvres in seconds from the
 *   recording's start, beside or instead of a `groundTruth.csv` in the trip's folder (the shipped
 *   dataset's form).
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { codes } from '../../ingest/device-contract.ts'
import type { TrackLabel } from './track.ts'

export type TripClass = 'normal' | 'aggressive' | 'drowsy'
const classes: readonly TripClass[] = ['normal', 'aggressive', 'drowsy']

export interface TripLabel {
  trip: string
  driver?: string
  road?: string
  label?: TripClass
}

/** A header row and the rest as records by column name; names the file, line and missing column. */
function readCsv(file: string, required: readonly string[]): { line: number; at: (c: string) => string }[] {
  const lines = readFileSync(file, 'utf8').split(/\r?\n/).map((l, i) => ({ line: i + 1, text: l.trim() })).filter((l) => l.text !== '')
  const sep = lines[0]?.text.includes(';') ? ';' : ','
  const head = lines[0]?.text.split(sep).map((c) => c.trim().toLowerCase()) ?? []
  const missing = required.filter((c) => !head.includes(c))
  if (missing.length) throw new codes.UBIQ_RECORDING_INVALID(`${file}: the header needs the columns ${required.join(',')}; missing ${missing.join(', ')}`)
  return lines.slice(1).map((l) => {
    const cells = l.text.split(sep).map((c) => c.trim())
    return { line: l.line, at: (c: string) => cells[head.indexOf(c)] ?? '' }
  })
}

/** The trip labels of `dir` and the event intervals of `events.csv` by trip. */
export function readLabels(dir: string): { trips: TripLabel[]; events: Map<string, TrackLabel[]> } {
  const file = join(dir, 'labels.csv')
  if (!existsSync(file)) throw new codes.UBIQ_RECORDING_INVALID(`${dir}: no labels.csv (trip,driver,road,label: one row per recording)`)
  const seen = new Set<string>()
  const trips = readCsv(file, ['trip', 'driver', 'road', 'label']).map(({ line, at }): TripLabel => {
    const [trip, driver, road, label] = [at('trip'), at('driver'), at('road'), at('label').toLowerCase()]
    if (!trip) throw new codes.UBIQ_RECORDING_INVALID(`${file}:${line}: no trip`)
    if (seen.has(trip)) throw new codes.UBIQ_RECORDING_INVALID(`${file}:${line}: trip "${trip}" is listed twice`)
    seen.add(trip)
    if (label && !classes.includes(label as TripClass)) throw new codes.UBIQ_RECORDING_INVALID(`${file}:${line}: label must be normal, aggressive, drowsy or empty, got "${label}"`)
    return { trip, ...(driver ? { driver } : {}), ...(road ? { road } : {}), ...(label ? { label: label as TripClass } : {}) }
  })
  const events = new Map<string, TrackLabel[]>()
  const eventsFile = join(dir, 'events.csv')
  if (existsSync(eventsFile)) {
    for (const { line, at } of readCsv(eventsFile, ['trip', 'label', 'start_s', 'end_s'])) {
      const [trip, label, startS, endS] = [at('trip'), at('label'), Number(at('start_s')), Number(at('end_s'))]
      if (!seen.has(trip)) throw new codes.UBIQ_RECORDING_INVALID(`${eventsFile}:${line}: trip "${trip}" is not in labels.csv`)
      if (!label || !(startS >= 0) || !(endS >= startS)) throw new codes.UBIQ_RECORDING_INVALID(`${eventsFile}:${line}: expected a label and 0 ≤ start_s ≤ end_s`)
      events.set(trip, [...(events.get(trip) ?? []), { label, startS, endS }])
    }
  }
  return { trips, events }
}
