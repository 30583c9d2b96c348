/**
 * The words and formats every page shares, the policyholder's and the analyst's (served at
 * /assets/words.js): one way to write a time, a duration, an event and the evidence behind it.
 * Event types' words and the units come from ubiq's catalogues (/assets/catalogue.js, #22).
 */
import { eventWords, units } from '/assets/catalogue.js'

const dateFormats = {}
/**
 * A time as every page writes it: 24-hour, to the minute, its zone named ("2026-12-02 06:09 UTC").
 * `timeZone` 'UTC' for the analyst's pages (their tables and charts are in UTC); unset, the browser's
 * own zone, for the policyholder.
 */
export function when(t, timeZone) {
  const f = (dateFormats[timeZone ?? ''] ??= new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZoneName: 'short' }))
  const p = Object.fromEntries(f.formatToParts(new Date(t)).map((x) => [x.type, x.value]))
  return `${p.year}-${p.month}-${p.day} ${p.hour}:${p.minute} ${p.timeZoneName}`
}

/** A length of time in seconds, as a person says it: "45 s", "9 min 59 s", "1 h 5 min". */
export function duration(s) {
  const r = Math.round(s)
  if (r < 60) return `${r} s`
  if (r < 600) return `${Math.floor(r / 60)} min${r % 60 ? ` ${r % 60} s` : ''}`
  if (r < 3600) return `${Math.round(r / 60)} min`
  const m = Math.round(r / 60)
  return `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ''}`
}

/** A measured number, rounded as it is read: 2 decimals below 1, 1 below 100, whole above. */
export const figure = (x) => (typeof x !== 'number' ? String(x) : Number.isInteger(x) ? String(x) : Math.abs(x) < 1 ? x.toFixed(2) : Math.abs(x) < 100 ? x.toFixed(1) : x.toFixed(0))

/** An event's type in words ("harsh_braking" → "hard braking"). */
export const eventName = (type) => eventWords[type] ?? type.replace(/_/g, ' ')

/** A value in the evidence's unit: seconds as a duration, else the figure and its unit. */
const inUnit = (x, unit) => (unit === 's' ? duration(x) : `${figure(x)}${unit ? ` ${unit}` : ''}`)

/** The units of stored numbers by the end of their names (`limit_kmh`, `peakYaw_rads`, `hr_bpm`); a count reads as its name ("steps count"). */
const suffixes = Object.entries(units).filter(([s]) => s !== 'count').map(([s, u]) => [`_${s}`, u])
const unitOf = (name) => suffixes.find(([s]) => name.endsWith(s)) ?? ['', '']
/** A stored field's name in words with its unit: "speed_kmh" → "speed (km/h)". */
export function fieldName(name) {
  const [suffix, u] = unitOf(name)
  return `${name.slice(0, name.length - suffix.length).replace(/_/g, ' ')}${u ? ` (${u})` : ''}`
}
const plain = new Set(['source', 'peak', 'threshold', 'unit', 'duration_s'])

/**
 * The evidence behind an event with its units: "peak 6.4 m/s², threshold 3.5 m/s², for 2 s"; with
 * `all`, also each number the detector adds ("limit 50 km/h", "samples 3"), as the analyst reads it.
 */
export function evidenceText(evidence, all = false) {
  const { peak, threshold, unit, duration_s } = evidence
  const parts = []
  if (typeof peak === 'number') parts.push(`peak ${inUnit(peak, unit)}`)
  if (typeof threshold === 'number' && threshold !== 0) parts.push(`threshold ${inUnit(threshold, unit)}`)
  if (typeof duration_s === 'number' && duration_s > 0 && unit !== 's') parts.push(`for ${duration(duration_s)}`)
  for (const [k, v] of Object.entries(evidence)) {
    if (plain.has(k) || (!all && k !== 'limit_kmh') || typeof v === 'object') continue
    const [suffix, u] = unitOf(k)
    parts.push(`${k.slice(0, k.length - suffix.length).replace(/_/g, ' ')} ${typeof v === 'number' ? inUnit(v, u) : v}`)
  }
  if (all && evidence.source) parts.push(`from ${evidence.source}`)
  return parts.join(', ')
}
