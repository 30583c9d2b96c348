/**
 * Recorded trips from files, for `ubiq import` and `ubiq evaluate` (issue #19): which format a path
 * holds, and its recordings as tracks.
 *
 * A path is a recording file (`.gpx`, or a CSV read through a mapping), a recording folder (a trip
 * folder of the shipped dataset, or a CSV recording's files with `mapping.json` or `--mapping`), or a
 * folder of recordings (one subfolder or `.gpx` file each).
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { readCsvRecording, readMapping, type CsvMapping } from './csv.ts'
import { readDatasetTrip } from './dataset.ts'
import { readGpx } from './gpx.ts'
import type { Track, TrackLabel } from './track.ts'
import { codes } from '../../ingest/device-contract.ts'

export { readMapping, parseMapping, type CsvMapping } from './csv.ts'
export { readGpx } from './gpx.ts'
export { trackMessages, placeTrack, trackEnd, resample, distance_m, G_MS2, type Track, type Fix } from './track.ts'
export { readLabels } from './labels.ts'

export type RecordingFormat = 'csv' | 'gpx' | 'dataset'
export const recordingFormats: readonly RecordingFormat[] = ['csv', 'gpx', 'dataset']

export interface ReadOptions {
  /** The format, when the path does not tell (detected: `.gpx`, a dataset's `viagem.json`, otherwise CSV). */
  format?: RecordingFormat
  /** The column mapping of CSV recordings (else `mapping.json` in the recording's folder, beside the file, or in the folder of recordings). */
  mapping?: CsvMapping
}

const isDir = (p: string) => statSync(p).isDirectory()

/** A recording folder, not a folder of recordings: it holds the dataset's metadata, a mapping, or only files. */
function isRecordingDir(dir: string, opts: ReadOptions): boolean {
  if (existsSync(join(dir, 'viagem.json')) || existsSync(join(dir, 'mapping.json'))) return true
  const entries = readdirSync(dir)
  if (entries.some((e) => isDir(join(dir, e)))) return false
  return opts.format === 'dataset' || (opts.format !== 'gpx' && !entries.some((e) => /\.gpx$/i.test(e)))
}

/** Every recording at `path`, in name order; UBIQ_RECORDING_INVALID names the file and what is wrong. */
export function readRecordings(path: string, opts: ReadOptions = {}): Track[] {
  if (!existsSync(path)) throw new codes.UBIQ_RECORDING_INVALID(`${path}: no such file or folder`)
  if (!isDir(path) || isRecordingDir(path, opts)) return [readRecordingAt(path, opts)]
  const entries = readdirSync(path).sort()
    .filter((e) => isDir(join(path, e)) ? true : /\.gpx$/i.test(e) && opts.format !== 'csv' && opts.format !== 'dataset')
  if (entries.length === 0) throw new codes.UBIQ_RECORDING_INVALID(`${path}: no recordings (subfolders or .gpx files)`)
  // A mapping beside the recordings serves them all.
  const shared = opts.mapping ?? (existsSync(join(path, 'mapping.json')) ? readMapping(join(path, 'mapping.json')) : undefined)
  return entries.map((e) => readRecordingAt(join(path, e), { ...opts, ...(shared ? { mapping: shared } : {}) }))
}

/** One recording: a file or a recording folder. */
export function readRecordingAt(path: string, opts: ReadOptions = {}): Track {
  const dir = isDir(path)
  const format = opts.format ?? (dir && existsSync(join(path, 'viagem.json')) ? 'dataset' : !dir && /\.gpx$/i.test(path) ? 'gpx' : 'csv')
  let track: Track
  if (format === 'dataset') {
    if (!dir || !existsSync(join(path, 'viagem.json'))) throw new codes.UBIQ_RECORDING_INVALID(`${path}: not a trip folder of the dataset (no viagem.json)`)
    try {
      track = readDatasetTrip(path)
    } catch (err) {
      throw new codes.UBIQ_RECORDING_INVALID(`${path}: ${(err as Error).message}`)
    }
    return track
  }
  if (format === 'gpx') {
    if (dir) {
      const files = readdirSync(path).filter((f) => /\.gpx$/i.test(f)).sort()
      if (files.length !== 1) throw new codes.UBIQ_RECORDING_INVALID(`${path}: a GPX recording folder holds one .gpx file, found ${files.length}`)
      track = { ...readGpx(join(path, files[0]!)), name: basename(path) }
    } else track = readGpx(path)
  } else {
    const beside = join(dir ? path : dirname(path), 'mapping.json')
    const mapping = opts.mapping ?? (existsSync(beside) ? readMapping(beside) : undefined)
    if (!mapping) throw new codes.UBIQ_RECORDING_INVALID(`${path}: a CSV recording needs a column mapping (--mapping FILE, or mapping.json in its folder; see README "ubiq import")`)
    track = readCsvRecording(path, mapping, dir)
  }
  // Labelled manoeuvres beside any recording, in the dataset's groundTruth.csv form.
  const truth = dir ? join(path, 'groundTruth.csv') : undefined
  return truth && existsSync(truth) ? { ...track, labels: readGroundTruth(truth) } : track
}

/** `evento,inicio,fim` rows: label, start and end in seconds from the recording's start. */
export function readGroundTruth(file: string): TrackLabel[] {
  const lines = readFileSync(file, 'utf8').split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '').slice(1)
  return lines.map((line, i) => {
    const [label, start, end] = line.split(/[,;]/).map((c) => c.trim())
    const [startS, endS] = [Number(start), Number(end)]
    if (!label || !(startS >= 0) || !(endS >= startS)) throw new codes.UBIQ_RECORDING_INVALID(`${file}:${i + 2}: expected label,start_s,end_s with 0 ≤ start ≤ end, got "${line}"`)
    return { label, startS, endS }
  })
}
