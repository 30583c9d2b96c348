/**
 * Generic CSV recordings: the files phone loggers and public data sets (UAH-DriveSet and the like)
 * write, read through a small JSON column mapping. One or more files: typically a GPS file at 1 Hz
 * and an accelerometer file at 10–100 Hz, on one clock; comma, semicolon, tab or space separated,
 * with or without a header; columns by header name or 0-based index.
 *
 * The mapping (every key but those marked optional is required; unknown keys are refused, so a
 * typo is named rather than ignored):
 *
 * ```json
 * {
 *   "gps": {
 *     "file": "RAW_GPS.txt",                    // optional for a single-file import; relative to the recording
 *     "separator": " ", "header": false,        // optional: detected when left out
 *     "time": { "column": 0, "unit": "s" },     // s | ms | ns | iso; "absolute": true|false (optional: numbers
 *                                               // from 2000-01-01 on are wall-clock time, smaller ones relative)
 *     "lat": 2, "lon": 3,
 *     "speed": { "column": 1, "unit": "km/h" }, // optional; km/h | m/s | mph; else from positions
 *     "accuracy": 6,                            // optional, horizontal, m; else 10 m
 *     "heading": 7,                             // optional, course over ground, degrees from north; else from positions
 *     "altitude": 4                             // optional, m
 *   },
 *   "imu": {
 *     "file": "RAW_ACCELEROMETERS.txt",
 *     "time": { "column": 0, "unit": "s" },
 *     "accel": { "x": 3, "y": { "column": 2, "negate": true }, "z": 4, "unit": "g", "frame": "vehicle" },
 *                                               // unit m/s2 | g; frame earth | device | vehicle (track.ts)
 *     "gyro": { "x": 5, "y": 6, "z": 7, "unit": "deg/s" },  // optional; rad/s | deg/s
 *     "rate_hz": 10                             // optional: the grid's rate; else the recording's median rate
 *   },
 *   "ignition": true                            // optional: ignition on at the first reading, off at the last
 * }
 * ```
 */
import { readFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { DEFAULT_ACCURACY_M, deriveMotion, frames, G_MS2, medianRate, resample, type Fix, type Frame, type Track } from './track.ts'
import { codes } from '../../ingest/device-contract.ts'

type ColumnRef = number | string
interface Axis { column: ColumnRef; negate: boolean }
interface Source {
  file?: string
  separator?: string
  header?: boolean
  time: { column: ColumnRef; unit: 's' | 'ms' | 'ns' | 'iso'; absolute?: boolean }
}
export interface GpsMapping extends Source {
  lat: ColumnRef
  lon: ColumnRef
  speed?: { column: ColumnRef; unit: 'km/h' | 'm/s' | 'mph' }
  accuracy?: ColumnRef
  heading?: ColumnRef
  altitude?: ColumnRef
}
export interface ImuMapping extends Source {
  accel: { x: Axis; y: Axis; z: Axis; unit: keyof typeof accelUnits; frame: Frame }
  gyro?: { x: Axis; y: Axis; z: Axis; unit: 'rad/s' | 'deg/s' }
  rate_hz?: number
}
export interface CsvMapping {
  gps?: GpsMapping
  imu?: ImuMapping
  ignition: boolean
}

const speedUnits = { 'km/h': 1, 'm/s': 3.6, mph: 1.609344 } as const
const timeUnits = { s: 1000, ms: 1, ns: 1e-6, iso: 1 } as const
const accelUnits = { 'm/s2': 1, 'm/s²': 1, g: G_MS2 } as const
const gyroUnits = { 'rad/s': 1, 'deg/s': Math.PI / 180 } as const
/** Wall-clock times are from 2000-01-01 on; a smaller number is a relative clock (uptime, seconds into the trip). */
const EPOCH_2000_MS = 946_684_800_000

/** Checks a parsed mapping; throws UBIQ_RECORDING_INVALID naming the first bad key (`imu.accel.unit: …`). */
export function parseMapping(data: unknown, where = 'mapping'): CsvMapping {
  const fail = (path: string, msg: string): never => {
    throw new codes.UBIQ_RECORDING_INVALID(`${where}: ${path}: ${msg}`)
  }
  const object = (v: unknown, path: string, keys: readonly string[]): Record<string, unknown> => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) fail(path, `must be an object, got ${JSON.stringify(v)}`)
    const o = v as Record<string, unknown>
    const unknown = Object.keys(o).filter((k) => !keys.includes(k))
    if (unknown.length) fail(`${path ? `${path}.` : ''}${unknown[0]}`, `unknown key (allowed here: ${keys.join(', ')})`)
    return o
  }
  const column = (v: unknown, path: string): ColumnRef => {
    if (typeof v === 'number' && Number.isInteger(v) && v >= 0) return v
    if (typeof v === 'string' && v.trim() !== '') return v
    return fail(path, `must be a column: a 0-based index or a header name, got ${JSON.stringify(v)}`)
  }
  const oneOf = <T extends string>(v: unknown, path: string, allowed: readonly T[]): T =>
    allowed.includes(v as T) ? (v as T) : fail(path, `must be one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${JSON.stringify(v)}`)
  const axis = (v: unknown, path: string): Axis => {
    if (typeof v !== 'object' || v === null) return { column: column(v, path), negate: false }
    const o = object(v, path, ['column', 'negate'])
    if (o.negate !== undefined && typeof o.negate !== 'boolean') fail(`${path}.negate`, `must be true or false, got ${JSON.stringify(o.negate)}`)
    return { column: column(o.column, `${path}.column`), negate: o.negate === true }
  }
  const optional = <T>(v: unknown, f: (v: unknown) => T): T | undefined => (v === undefined ? undefined : f(v))
  const source = (o: Record<string, unknown>, path: string): Source => {
    const t = object(o.time, `${path}.time`, ['column', 'unit', 'absolute'])
    if (t.absolute !== undefined && typeof t.absolute !== 'boolean') fail(`${path}.time.absolute`, `must be true or false, got ${JSON.stringify(t.absolute)}`)
    if (o.file !== undefined && (typeof o.file !== 'string' || o.file === '')) fail(`${path}.file`, `must be a file name, got ${JSON.stringify(o.file)}`)
    if (o.separator !== undefined && (typeof o.separator !== 'string' || o.separator.length !== 1)) fail(`${path}.separator`, `must be one character (",", ";", " " or "\\t"), got ${JSON.stringify(o.separator)}`)
    if (o.header !== undefined && typeof o.header !== 'boolean') fail(`${path}.header`, `must be true or false, got ${JSON.stringify(o.header)}`)
    return {
      ...(o.file === undefined ? {} : { file: o.file as string }),
      ...(o.separator === undefined ? {} : { separator: o.separator as string }),
      ...(o.header === undefined ? {} : { header: o.header as boolean }),
      time: { column: column(t.column, `${path}.time.column`), unit: oneOf(t.unit, `${path}.time.unit`, Object.keys(timeUnits) as (keyof typeof timeUnits)[]), ...(t.absolute === undefined ? {} : { absolute: t.absolute as boolean }) },
    }
  }
  const root = object(data, '', ['gps', 'imu', 'ignition'])
  if (root.gps === undefined && root.imu === undefined) fail('gps', 'a mapping needs "gps", "imu" or both')
  if (root.ignition !== undefined && typeof root.ignition !== 'boolean') fail('ignition', `must be true or false, got ${JSON.stringify(root.ignition)}`)
  const mapping: CsvMapping = { ignition: root.ignition === true }
  if (root.gps !== undefined) {
    const g = object(root.gps, 'gps', ['file', 'separator', 'header', 'time', 'lat', 'lon', 'speed', 'accuracy', 'heading', 'altitude'])
    const speed = optional(g.speed, (v) => {
      const s = object(v, 'gps.speed', ['column', 'unit'])
      return { column: column(s.column, 'gps.speed.column'), unit: oneOf(s.unit, 'gps.speed.unit', Object.keys(speedUnits) as (keyof typeof speedUnits)[]) }
    })
    const accuracy = optional(g.accuracy, (v) => column(v, 'gps.accuracy'))
    const heading = optional(g.heading, (v) => column(v, 'gps.heading'))
    const altitude = optional(g.altitude, (v) => column(v, 'gps.altitude'))
    mapping.gps = {
      ...source(g, 'gps'), lat: column(g.lat, 'gps.lat'), lon: column(g.lon, 'gps.lon'),
      ...(speed ? { speed } : {}), ...(accuracy === undefined ? {} : { accuracy }), ...(heading === undefined ? {} : { heading }), ...(altitude === undefined ? {} : { altitude }),
    }
  }
  if (root.imu !== undefined) {
    const m = object(root.imu, 'imu', ['file', 'separator', 'header', 'time', 'accel', 'gyro', 'rate_hz'])
    const a = object(m.accel, 'imu.accel', ['x', 'y', 'z', 'unit', 'frame'])
    const gyro = optional(m.gyro, (v) => {
      const g = object(v, 'imu.gyro', ['x', 'y', 'z', 'unit'])
      return { x: axis(g.x, 'imu.gyro.x'), y: axis(g.y, 'imu.gyro.y'), z: axis(g.z, 'imu.gyro.z'), unit: oneOf(g.unit, 'imu.gyro.unit', Object.keys(gyroUnits) as (keyof typeof gyroUnits)[]) }
    })
    if (m.rate_hz !== undefined && !(typeof m.rate_hz === 'number' && Number.isInteger(m.rate_hz) && m.rate_hz >= 1 && m.rate_hz <= 200)) {
      fail('imu.rate_hz', `must be a whole number of Hz from 1 to 200 (the contract's most), got ${JSON.stringify(m.rate_hz)}`)
    }
    mapping.imu = {
      ...source(m, 'imu'),
      accel: { x: axis(a.x, 'imu.accel.x'), y: axis(a.y, 'imu.accel.y'), z: axis(a.z, 'imu.accel.z'), unit: oneOf(a.unit, 'imu.accel.unit', ['m/s2', 'm/s²', 'g'] as const), frame: oneOf(a.frame, 'imu.accel.frame', frames) },
      ...(gyro ? { gyro } : {}),
      ...(m.rate_hz === undefined ? {} : { rate_hz: m.rate_hz as number }),
    }
  }
  return mapping
}

/** Reads and checks a mapping file. */
export function readMapping(file: string): CsvMapping {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (err) {
    throw new codes.UBIQ_RECORDING_INVALID(`cannot read the mapping ${file}: ${(err as Error).message}`)
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (err) {
    throw new codes.UBIQ_RECORDING_INVALID(`${file}: not JSON: ${(err as Error).message}`)
  }
  return parseMapping(data, file)
}

/** A delimited text file: its rows of cells, and the header's names when it has one. */
interface Table {
  file: string
  names?: string[]
  /** Rows with their 1-based line numbers, for messages. */
  rows: { line: number; cells: string[] }[]
}

/** Splits a file into cells: the separator is the one given, else the first of ; , tab found on the first line, else runs of spaces. */
export function readTable(file: string, text: string, separator?: string, header?: boolean, refs: readonly ColumnRef[] = []): Table {
  const lines = text.split(/\r?\n/).map((l, i) => ({ line: i + 1, text: l.trim() })).filter((l) => l.text !== '' && !l.text.startsWith('#'))
  if (lines.length === 0) throw new codes.UBIQ_RECORDING_INVALID(`${file}: empty`)
  const sep = separator ?? [';', ',', '\t'].find((s) => lines[0]!.text.includes(s))
  const split = (l: string) => (sep === undefined || sep === ' ' ? l.split(/\s+/) : l.split(sep).map((c) => c.trim().replace(/^"(.*)"$/, '$1')))
  const rows = lines.map((l) => ({ line: l.line, cells: split(l.text) }))
  // A header unless told otherwise: when columns are named, or a mapped numeric column of row 1 is not a number.
  const hasHeader = header ?? (refs.some((r) => typeof r === 'string') || refs.some((r) => typeof r === 'number' && !Number.isFinite(Number(rows[0]!.cells[r] ?? ''))))
  return hasHeader ? { file, names: rows[0]!.cells, rows: rows.slice(1) } : { file, rows }
}

/** The index of a column in a table, or UBIQ_RECORDING_INVALID naming the mapping key. */
function columnIndex(table: Table, ref: ColumnRef, key: string): number {
  if (typeof ref === 'number') {
    const width = table.rows[0]?.cells.length ?? 0
    if (ref >= width) throw new codes.UBIQ_RECORDING_INVALID(`${table.file}: ${key}: column ${ref} does not exist (rows have ${width} columns, counted from 0)`)
    return ref
  }
  const i = table.names?.indexOf(ref) ?? -1
  if (i < 0) throw new codes.UBIQ_RECORDING_INVALID(`${table.file}: ${key}: no column "${ref}"${table.names ? ` (the header has ${table.names.join(', ')})` : ' (the file has no header)'}`)
  return i
}

/** Times of a source's rows in ms, and whether they are wall-clock time. */
function timeReader(table: Table, time: Source['time'], key: string) {
  const i = columnIndex(table, time.column, `${key}.time.column`)
  return (cells: string[]): number => {
    const raw = cells[i]?.trim() ?? ''
    if (time.unit === 'iso') return /^\d{4}-\d{2}-\d{2}/.test(raw) ? Date.parse(raw) : NaN
    return raw === '' ? NaN : Number(raw) * timeUnits[time.unit]
  }
}
const isAbsolute = (time: Source['time'], firstMs: number) => time.absolute ?? (time.unit === 'iso' || firstMs >= EPOCH_2000_MS)

const num = (cells: string[], i: number | undefined) => (i === undefined || (cells[i]?.trim() ?? '') === '' ? NaN : Number(cells[i]))

/**
 * Reads a CSV recording with its mapping. `input` is one file (sources without a `file` read it;
 * others are beside it) or a folder (every source names its file, relative to the folder).
 */
export function readCsvRecording(input: string, mapping: CsvMapping, isDir: boolean, name = basename(input).replace(/\.[^.]*$/, '')): Track {
  const open = (src: Source, key: string, refs: ColumnRef[]): Table => {
    if (isDir && !src.file) throw new codes.UBIQ_RECORDING_INVALID(`${key}.file: needed when importing a folder (${input}): which file holds the ${key} rows`)
    const file = src.file ? join(isDir ? input : dirname(input), src.file) : input
    let text: string
    try {
      text = readFileSync(file, 'utf8')
    } catch (err) {
      throw new codes.UBIQ_RECORDING_INVALID(`${key}.file: cannot read ${file}: ${(err as Error).message}`)
    }
    return readTable(file, text, src.separator, src.header, refs)
  }
  const skipped: string[] = []
  const clocks: { absolute: boolean; key: string }[] = []

  let fixes: Fix[] = []
  const gps = mapping.gps
  if (gps) {
    const table = open(gps, 'gps', [gps.time.column, gps.lat, gps.lon, ...[gps.speed?.column, gps.accuracy, gps.heading, gps.altitude].filter((c) => c !== undefined)])
    const time = timeReader(table, gps.time, 'gps')
    const col = (ref: ColumnRef | undefined, key: string) => (ref === undefined ? undefined : columnIndex(table, ref, key))
    const [lat, lon, speed, acc, heading, alt] = [col(gps.lat, 'gps.lat'), col(gps.lon, 'gps.lon'), col(gps.speed?.column, 'gps.speed.column'), col(gps.accuracy, 'gps.accuracy'), col(gps.heading, 'gps.heading'), col(gps.altitude, 'gps.altitude')]
    let noFix = 0, noTime = 0
    for (const { cells } of table.rows) {
      const t = time(cells)
      const [la, lo] = [num(cells, lat), num(cells, lon)]
      if (!Number.isFinite(t)) { noTime++; continue }
      // A logger writes a row before the receiver has a fix: no position, or 0,0.
      if (!(Math.abs(la) <= 90 && Math.abs(lo) <= 180) || (la === 0 && lo === 0)) { noFix++; continue }
      const v = num(cells, speed) * (gps.speed ? speedUnits[gps.speed.unit] : 1)
      const a = num(cells, acc)
      const h = num(cells, heading)
      const z = num(cells, alt)
      fixes.push({
        t, lat_deg: la, lon_deg: lo, accuracy_m: a >= 0 ? a : DEFAULT_ACCURACY_M,
        // Loggers write -1 (Android) or nothing for an unknown speed or course.
        ...(v >= 0 ? { speed_kmh: v } : {}), ...(h >= 0 && h <= 360 ? { heading_deg: h % 360 } : {}), ...(Number.isFinite(z) ? { alt_m: z } : {}),
      })
    }
    if (noFix) skipped.push(`gps: ${noFix} rows without a fix`)
    if (noTime) skipped.push(`gps: ${noTime} rows without a valid time`)
    if (fixes.length) clocks.push({ absolute: isAbsolute(gps.time, fixes[0]!.t), key: 'gps.time' })
  }

  let imu: { t: number[]; rows: number[][] } | undefined
  const m = mapping.imu
  if (m) {
    const axes = [m.accel.x, m.accel.y, m.accel.z, ...(m.gyro ? [m.gyro.x, m.gyro.y, m.gyro.z] : [])]
    const table = open(m, 'imu', [m.time.column, ...axes.map((a) => a.column)])
    const time = timeReader(table, m.time, 'imu')
    const names = ['accel.x', 'accel.y', 'accel.z', 'gyro.x', 'gyro.y', 'gyro.z']
    const cols = axes.map((a, j) => ({ i: columnIndex(table, a.column, `imu.${names[j]}`), scale: (a.negate ? -1 : 1) * (j < 3 ? accelUnits[m.accel.unit] : gyroUnits[m.gyro!.unit]) }))
    const t: number[] = []
    const rows: number[][] = []
    let bad = 0
    for (const { cells } of table.rows) {
      const at = time(cells)
      const row = cols.map((c) => num(cells, c.i) * c.scale)
      if (!Number.isFinite(at) || row.some((v) => !Number.isFinite(v))) { bad++; continue }
      t.push(at)
      rows.push(m.gyro ? row : [...row, 0, 0, 0])
    }
    if (bad) skipped.push(`imu: ${bad} rows without a valid time or axis`)
    if (t.length) {
      imu = { t, rows }
      clocks.push({ absolute: isAbsolute(m.time, t[0]!), key: 'imu.time' })
    }
  }
  if (fixes.length === 0 && !imu) throw new codes.UBIQ_RECORDING_INVALID(`${input}: no usable rows (${skipped.join('; ') || 'the files are empty'})`)
  if (clocks.length === 2 && clocks[0]!.absolute !== clocks[1]!.absolute) {
    throw new codes.UBIQ_RECORDING_INVALID(`${input}: gps.time is ${clocks[0]!.absolute ? 'wall-clock' : 'relative'} time, imu.time ${clocks[1]!.absolute ? 'wall-clock' : 'relative'}: they must share one clock (set time.absolute)`)
  }

  // Time from the first reading of either source; rows in time order, one per time.
  const t0 = [...fixes.map((f) => f.t), ...(imu?.t ?? [])].reduce((a, b) => Math.min(a, b), Infinity)
  fixes = deriveMotion(dedupeSorted(fixes.map((f) => ({ ...f, t: f.t - t0 })), (f) => f.t))
  const track: Track = { name, ...(clocks[0]?.absolute ? { epochMs: t0 } : {}), fixes, ignition: mapping.ignition, labels: [], skipped }
  if (imu && m) {
    const order = dedupeSorted(imu.t.map((t, i) => ({ t: t - t0, row: imu!.rows[i]! })), (s) => s.t)
    const rateHz = m.rate_hz ?? Math.min(200, medianRate(order.map((s) => s.t)))
    if (order.length < 2 || rateHz < 1) throw new codes.UBIQ_RECORDING_INVALID(`imu: cannot tell the sampling rate from ${order.length} rows; set imu.rate_hz in the mapping`)
    track.imu = { rateHz, frame: m.accel.frame, gyro: m.gyro !== undefined, ...resample(order.map((s) => s.t), order.map((s) => s.row), rateHz) }
  }
  return track
}

/** Sorted by key, the first of each key kept. */
function dedupeSorted<T>(xs: readonly T[], key: (x: T) => number): T[] {
  const sorted = [...xs].sort((a, b) => key(a) - key(b))
  return sorted.filter((x, i) => i === 0 || key(x) !== key(sorted[i - 1]!))
}
