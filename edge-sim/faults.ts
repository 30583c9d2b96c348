/**
 * Device faults (issue #4: "each switchable and reported"), as transformations of one device's
 * message sequence: what ingest must tolerate (DESIGN.md: offline bursts, duplicates, out-of-order,
 * skewed clocks) and what it must reject (docs/device-contract.md: malformed and invalid payloads;
 * the broker's ACL: publishing on another device's topic).
 *
 * Each fault draws from its own random stream, once per message it sees, so its observed rate is
 * binomial in the configured one and switching one fault on or off never moves another. The
 * output is in delivery order: `sendAt` never decreases. Faults combine: a message may be both
 * malformed and late, say; `faults` lists all of them.
 */
import { sensorsByKind, topics } from '../ingest/device-contract.ts'
import { between, deriveSeed, pick, seededRandom, type Random } from './random.ts'
import type { DeviceMessage } from './device-streams.ts'

/** The faults, as tagged on the messages they touched. */
export type FaultName = 'clock' | 'out_of_range' | 'malformed' | 'foreign_topic' | 'offline' | 'reordered' | 'duplicate'

/** Which faults to inject, and how often. Rates are chances per message unless said otherwise. */
export interface FaultConfig {
  /** The device's clock is wrong (chance per device): a fixed offset plus a drift, drawn in these ranges. */
  clock?: { rate: number; skew_ms: [number, number]; drift_ppm: [number, number] }
  /** A field out of its documented range, or of the wrong type: ingest answers `invalid_payload`. */
  outOfRange?: number
  /** A payload cut short (a torn write, a reset mid-send): `malformed_json`. */
  malformed?: number
  /** Published on another device's topic instead of its own: the broker's ACL must refuse it. */
  foreignTopic?: { rate: number; deviceIds: readonly string[] }
  /** The device goes offline at this message for a period, buffers, and sends the backlog in a burst. */
  offline?: { rate: number; duration_s: [number, number] }
  /** Delivered late, after 1 to `maxLater` (default 5) later messages. */
  reorder?: { rate: number; maxLater?: number }
  /** Delivered twice (a QoS 1 redelivery, a resend after a lost PUBACK). */
  duplicate?: number
}

/** What was injected into one device's stream. */
export interface FaultReport {
  /** Messages in, and delivered (duplicates included). */
  messages: number
  delivered: number
  clock?: { skew_ms: number; drift_ppm: number }
  outOfRange: number
  malformed: number
  foreignTopic: number
  offline: { periods: number; buffered: number }
  reordered: number
  duplicate: number
}

/** A report with nothing injected yet, for `injectFaults` to fill in. */
export const emptyFaultReport = (): FaultReport =>
  ({ messages: 0, delivered: 0, outOfRange: 0, malformed: 0, foreignTopic: 0, offline: { periods: 0, buffered: 0 }, reordered: 0, duplicate: 0 })

/** The device's messages with the configured faults injected, counted in `report`. Deterministic for a seed. */
export function* injectFaults(messages: Iterable<DeviceMessage>, cfg: FaultConfig, seed: number, report: FaultReport = emptyFaultReport()): Generator<DeviceMessage> {
  const rand = (stage: number) => seededRandom(deriveSeed(seed, 0xfa17, stage))
  let out: Iterable<DeviceMessage> = count(messages, report)
  if (cfg.clock) out = skewClock(out, cfg.clock, rand(1), report)
  if (cfg.outOfRange) {
    out = sometimes(out, cfg.outOfRange, rand(2), 'out_of_range', (m, r) => ({ ...m, payload: outOfRange(m.kind, m.payload, r) }), () => report.outOfRange++)
  }
  if (cfg.malformed) {
    // Cut before the closing brace: never valid JSON.
    const cut = (m: DeviceMessage, r: Random) => ({ ...m, payload: m.payload.slice(0, Math.floor(m.payload.length * between(r, 0.2, 0.9))) })
    out = sometimes(out, cfg.malformed, rand(3), 'malformed', cut, () => report.malformed++)
  }
  if (cfg.foreignTopic) {
    const ids = cfg.foreignTopic.deviceIds
    const hijack = (m: DeviceMessage, r: Random) => {
      const others = ids.filter((d) => d !== m.deviceId)
      return others.length ? { ...m, topic: topics.device(pick(r, others), m.kind) } : undefined
    }
    out = sometimes(out, cfg.foreignTopic.rate, rand(4), 'foreign_topic', hijack, () => report.foreignTopic++)
  }
  if (cfg.offline) out = goOffline(out, cfg.offline, rand(5), report)
  if (cfg.reorder) out = reorder(out, cfg.reorder, rand(6), report)
  if (cfg.duplicate) out = duplicate(out, cfg.duplicate, rand(7), report)
  for (const m of out) {
    report.delivered++
    yield m
  }
}

function* count(messages: Iterable<DeviceMessage>, report: FaultReport) {
  for (const m of messages) {
    report.messages++
    yield m
  }
}

const tag = (m: DeviceMessage, fault: FaultName): DeviceMessage => ({ ...m, faults: [...(m.faults ?? []), fault] })

/** Device time = true time + skew + drift × time since the first message (a crystal off by some ppm). */
function* skewClock(messages: Iterable<DeviceMessage>, cfg: NonNullable<FaultConfig['clock']>, rand: Random, report: FaultReport) {
  if (rand() >= cfg.rate) return yield* messages
  const clock = { skew_ms: Math.round(between(rand, ...cfg.skew_ms)), drift_ppm: Math.round(between(rand, ...cfg.drift_ppm)) }
  report.clock = clock
  let t0: number | undefined
  for (const m of messages) {
    t0 ??= m.ts
    const ts = Math.round(m.ts + clock.skew_ms + (clock.drift_ppm * (m.ts - t0)) / 1e6)
    yield tag({ ...m, ts, payload: withField(m.payload, 'ts', ts) }, 'clock')
  }
}

/** Changes each message with chance `rate` (a draw per message from this fault's own stream). */
function* sometimes(messages: Iterable<DeviceMessage>, rate: number, rand: Random, fault: FaultName, change: (m: DeviceMessage, rand: Random) => DeviceMessage | undefined, counted: () => void) {
  for (const m of messages) {
    const changed = rand() < rate ? change(m, rand) : undefined
    if (changed) counted()
    yield changed ? tag(changed, fault) : m
  }
}

/**
 * A field just beyond the range the contract documents (from the sensor's own schema, so it stays
 * wrong if the contract changes), or a boolean replaced by a string.
 */
function outOfRange(kind: string, payload: string, rand: Random): string {
  const body = JSON.parse(payload) as Record<string, unknown>
  const sensor = sensorsByKind.get(kind)!
  const name = pick(rand, Object.keys(body).filter((k) => k !== 'seq' && k !== 'ts'))
  const schema = (sensor.schema.properties as Record<string, { maximum?: number }>)[name]
  if (name === 'samples') (body.samples as number[][])[0]![0] = sensor.batch!.columns[0]!.maximum + 1
  else if (typeof body[name] === 'number') body[name] = (schema?.maximum ?? 1e9) + 1
  else body[name] = 'yes'
  return JSON.stringify(body)
}

/** Replaces one field of a JSON payload, keeping the order of the others. */
function withField(payload: string, name: string, value: unknown): string {
  return JSON.stringify({ ...(JSON.parse(payload) as object), [name]: value })
}

function* goOffline(messages: Iterable<DeviceMessage>, cfg: NonNullable<FaultConfig['offline']>, rand: Random, report: FaultReport) {
  let backAt = -Infinity
  let buffer: DeviceMessage[] = []
  const flush = function* () {
    // Back online: the whole buffer goes out at once, oldest first.
    for (const m of buffer) yield { ...m, sendAt: backAt }
    buffer = []
  }
  for (const m of messages) {
    if (buffer.length && m.sendAt >= backAt) yield* flush()
    if (m.sendAt >= backAt && rand() < cfg.rate) {
      backAt = m.sendAt + Math.round(between(rand, ...cfg.duration_s) * 1000)
      report.offline.periods++
    }
    if (m.sendAt < backAt) {
      buffer.push(tag(m, 'offline'))
      report.offline.buffered++
    } else yield m
  }
  yield* flush()
}

function* reorder(messages: Iterable<DeviceMessage>, cfg: NonNullable<FaultConfig['reorder']>, rand: Random, report: FaultReport) {
  const held: { m: DeviceMessage; after: number }[] = []
  let last = -Infinity
  const release = function* (all: boolean) {
    for (let i = 0; i < held.length; ) {
      const h = held[i]!
      if (all || --h.after <= 0) {
        held.splice(i, 1)
        yield { ...h.m, sendAt: Math.max(h.m.sendAt, last) }
      } else i++
    }
  }
  for (const m of messages) {
    if (rand() < cfg.rate) {
      held.push({ m: tag(m, 'reordered'), after: 1 + Math.floor(rand() * (cfg.maxLater ?? 5)) })
      report.reordered++
      continue
    }
    last = Math.max(last, m.sendAt)
    yield m
    yield* release(false)
  }
  yield* release(true)
}

function* duplicate(messages: Iterable<DeviceMessage>, rate: number, rand: Random, report: FaultReport) {
  for (const m of messages) {
    yield m
    if (rand() < rate) {
      report.duplicate++
      yield tag(m, 'duplicate')
    }
  }
}
