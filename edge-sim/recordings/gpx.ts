/**
 * GPX recordings (GPX 1.0 and 1.1, as phone trackers and GPS units export them): every track
 * point with its position and time; speed and course from `<speed>` (m/s) and `<course>` (GPX 1.0)
 * or the same names inside `<extensions>` (Garmin's TrackPointExtension, OsmAnd), else from the
 * positions; accuracy from `<hdop>` × 5 m (a typical receiver's range error), else 10 m.
 */
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { XMLParser } from 'fast-xml-parser'
import { codes } from '../../ingest/device-contract.ts'
import { DEFAULT_ACCURACY_M, deriveMotion, type Fix, type Track } from './track.ts'

/** Metres of horizontal error per unit of HDOP. */
const UERE_M = 5

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  isArray: (name) => name === 'trk' || name === 'trkseg' || name === 'trkpt',
})

type Node = Record<string, unknown>

/** The first value named `key` in a point's extensions, at any depth (vendors nest them differently). */
function extension(node: unknown, key: string): string | undefined {
  if (node === null || typeof node !== 'object') return undefined
  for (const [k, v] of Object.entries(node as Node)) {
    if (k === key && (typeof v === 'string' || typeof v === 'number')) return String(v)
    const deeper = extension(v, key)
    if (deeper !== undefined) return deeper
  }
  return undefined
}

/** Reads a GPX file's track points (all tracks and segments, in time order) as a track. */
export function readGpx(file: string, text = readFileSync(file, 'utf8')): Track {
  let doc: Node
  try {
    doc = parser.parse(text, true) as Node
  } catch (err) {
    throw new codes.UBIQ_RECORDING_INVALID(`${file}: not valid XML: ${(err as Error).message}`)
  }
  const gpx = doc.gpx as Node | undefined
  if (!gpx) throw new codes.UBIQ_RECORDING_INVALID(`${file}: no <gpx> element`)
  const points = ((gpx.trk ?? []) as Node[]).flatMap((trk) => ((trk.trkseg ?? []) as Node[]).flatMap((seg) => (seg.trkpt ?? []) as Node[]))
  if (points.length === 0) throw new codes.UBIQ_RECORDING_INVALID(`${file}: no track points (<trk><trkseg><trkpt>)`)
  const fixes: (Fix & { epoch: number })[] = []
  let noTime = 0
  for (const [i, p] of points.entries()) {
    const [lat, lon] = [Number(p['@_lat']), Number(p['@_lon'])]
    if (!(Math.abs(lat) <= 90 && Math.abs(lon) <= 180)) throw new codes.UBIQ_RECORDING_INVALID(`${file}: track point ${i + 1}: lat/lon ${String(p['@_lat'])}, ${String(p['@_lon'])} is not a position`)
    const epoch = typeof p.time === 'string' ? Date.parse(p.time) : NaN
    if (!Number.isFinite(epoch)) { noTime++; continue }
    const speed = Number(p.speed ?? extension(p.extensions, 'speed') ?? NaN)
    const course = Number(p.course ?? extension(p.extensions, 'course') ?? NaN)
    const hdop = Number(p.hdop ?? NaN)
    const ele = Number(p.ele ?? NaN)
    fixes.push({
      epoch, t: 0, lat_deg: lat, lon_deg: lon, accuracy_m: hdop > 0 ? hdop * UERE_M : DEFAULT_ACCURACY_M,
      ...(speed >= 0 ? { speed_kmh: speed * 3.6 } : {}), ...(course >= 0 && course <= 360 ? { heading_deg: course % 360 } : {}), ...(Number.isFinite(ele) ? { alt_m: ele } : {}),
    })
  }
  if (fixes.length === 0) throw new codes.UBIQ_RECORDING_INVALID(`${file}: no track point has a <time>: a recording needs times to replay`)
  fixes.sort((a, b) => a.epoch - b.epoch)
  const epochMs = fixes[0]!.epoch
  const unique = fixes.filter((f, i) => i === 0 || f.epoch !== fixes[i - 1]!.epoch)
  return {
    name: basename(file).replace(/\.gpx$/i, ''),
    epochMs,
    fixes: deriveMotion(unique.map(({ epoch, ...f }) => ({ ...f, t: epoch - epochMs }))),
    ignition: false,
    labels: [],
    skipped: [...(noTime ? [`gpx: ${noTime} track points without a time`] : []), ...(unique.length < fixes.length ? [`gpx: ${fixes.length - unique.length} track points at a time already taken`] : [])],
  }
}
