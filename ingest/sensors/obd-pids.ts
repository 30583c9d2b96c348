/**
 * SAE J1979 (ISO 15031-5) mode 01 PIDs that ubiq decodes from raw hex responses: the data bytes
 * A, B, C, D after the mode and PID bytes, turned into the contract's fields by the standard's
 * formulas.
 */
export interface PidDefinition {
  pid: string
  bytes: number
  field: string
  decode(b: number[]): number | boolean
  formula: string
}

export const pids: readonly PidDefinition[] = [
  { pid: '04', bytes: 1, field: 'engine_load_pct', decode: ([a]) => (a! * 100) / 255, formula: 'A·100/255' },
  { pid: '05', bytes: 1, field: 'coolant_temp_c', decode: ([a]) => a! - 40, formula: 'A − 40' },
  { pid: '0C', bytes: 2, field: 'engine_rpm', decode: ([a, b]) => (256 * a! + b!) / 4, formula: '(256·A + B)/4' },
  { pid: '0D', bytes: 1, field: 'speed_kmh', decode: ([a]) => a!, formula: 'A' },
  { pid: '11', bytes: 1, field: 'throttle_pct', decode: ([a]) => (a! * 100) / 255, formula: 'A·100/255' },
  { pid: '2F', bytes: 1, field: 'fuel_level_pct', decode: ([a]) => (a! * 100) / 255, formula: 'A·100/255' },
  { pid: 'A6', bytes: 4, field: 'odometer_km', decode: ([a, b, c, d]) => (a! * 2 ** 24 + b! * 2 ** 16 + c! * 2 ** 8 + d!) / 10, formula: '(A·2²⁴ + B·2¹⁶ + C·2⁸ + D)/10' },
  { pid: '01', bytes: 4, field: 'dtc_count', decode: ([a]) => a! & 0x7f, formula: 'A & 0x7F (stored DTCs)' },
  { pid: '01', bytes: 4, field: 'mil_on', decode: ([a]) => (a! & 0x80) !== 0, formula: 'A bit 7 (check-engine lamp)' },
]

/** Decodes `{ "0D": "3C", ... }` into fields, or says what is wrong. */
export function decodePids(raw: Record<string, unknown>): Record<string, number | boolean> | string {
  const out: Record<string, number | boolean> = {}
  for (const [pid, hex] of Object.entries(raw)) {
    const defs = pids.filter((d) => d.pid === pid.toUpperCase())
    if (defs.length === 0) return `pids/${pid}: PID not supported (supported: ${[...new Set(pids.map((d) => d.pid))].join(', ')})`
    if (typeof hex !== 'string' || !/^([0-9A-Fa-f]{2})+$/.test(hex)) return `pids/${pid}: expected hex bytes, e.g. "3C"`
    const bytes = hex.match(/../g)!.map((h) => parseInt(h, 16))
    if (bytes.length !== defs[0]!.bytes) return `pids/${pid}: expected ${defs[0]!.bytes} data bytes, got ${bytes.length}`
    for (const d of defs) out[d.field] = d.decode(bytes)
  }
  return out
}
