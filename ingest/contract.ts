/**
 * The wire contract shared by devices, ingest and everything downstream: topic names, the envelope
 * every device message carries, and the Reading that ingest hands on. Versioned by the `v1` topic
 * segment (docs/device-contract.md); a breaking change gets `v2` beside it, never an edit of `v1`.
 */
import { Type, type TLiteral, type TObject, type TProperties, type TUnion, type Static } from '@sinclair/typebox'
import type { RetentionPolicyName } from './retention.ts'

/**
 * What a reading, score or price is about, declared once (#22): each subject with its words (the
 * pages' titles, the cover it prices) and the colour the analyst's charts draw it in. Everything
 * that lists the subjects derives the list from here.
 */
export const subjects = {
  driving: { title: 'Driving', cover: 'motor', colour: '#1f6fb2' },
  health: { title: 'Health', cover: 'health', colour: '#177245' },
  home: { title: 'Home', cover: 'home', colour: '#b58300' },
} as const satisfies Record<string, { title: string; cover: string; colour: string }>
export type Subject = keyof typeof subjects
/** The subjects, in the catalogue's order. */
export const subjectNames = Object.keys(subjects) as Subject[]
/** The subjects in words: "driving, health or home". */
export const subjectList = `${subjectNames.slice(0, -1).join(', ')} or ${subjectNames.at(-1)}`
export const Subject = Type.Union(subjectNames.map((s) => Type.Literal(s)), { description: subjectList }) as unknown as TUnion<TLiteral<Subject>[]>

/** A validated device message, as ingest stores it and hands it to scoring. */
export interface Reading {
  deviceId: string
  policyId: string
  /** The sensor kind, which is also the topic's stream segment and the InfluxDB measurement. */
  kind: string
  subject: Subject
  /** Per-device sequence number, monotonic: (deviceId, seq) identifies a message. */
  seq: number
  /** Device time, ms since the Unix epoch. */
  ts: number
  /** When ingest received it, ms since the Unix epoch. */
  receivedAt: number
  fields: Record<string, number | boolean>
  /** Batched kinds only (e.g. `imu`): one row per sample, columns as the kind's `batch.columns`. */
  samples?: number[][]
}

/** Device ids and policy ids: short, topic-safe, no wildcards or separators. */
export const ID_PATTERN = '^[A-Za-z0-9_-]{1,64}$'
const idRe = new RegExp(ID_PATTERN)
/** True when `id` is a valid device or policy id. */
export const isId = (id: string): boolean => idRe.test(id)

/**
 * How many of a device's latest messages ingest remembers to reject one that reuses a stream's
 * device time under another seq (reason `duplicate_time`, #20): InfluxDB would replace the stored
 * reading with it.
 */
export const TIME_REUSE_WINDOW = 64

/** Fields every device message carries, whatever its kind. */
export const envelope = {
  seq: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Message counter, one per device across all its streams, +1 per message' }),
  ts: Type.Integer({ minimum: 0, maximum: 8.64e15, description: 'Device time of the sample, ms since the Unix epoch (UTC)' }),
}

/** A payload schema: the envelope plus the kind's own fields, nothing else. */
export function payloadSchema<P extends TProperties>(fields: P) {
  return Type.Object({ ...envelope, ...fields }, { additionalProperties: false })
}

/**
 * The units of the contract's numbers, by the suffix their names end in (DESIGN.md "Units in
 * names": `speed_kmh` is in km/h), with the symbol a person reads. Each sensor kind gives the unit
 * of each of its numbers from here (`SensorKind.units`); the pages write them with these symbols.
 */
export const units = {
  kmh: 'km/h', ms2: 'm/s²', rads: 'rad/s', rpm: 'rpm', hz: 'Hz', bpm: 'bpm', pct: '%', c: '°C', deg: '°',
  m: 'm', km: 'km', s: 's', v: 'V', ppm: 'ppm', count: 'count',
} as const
/** A unit of the contract, by its name suffix. */
export type Unit = keyof typeof units

/** Each number a payload schema declares, the envelope aside, with its unit: typed, so a kind that leaves one out does not compile. */
export type FieldUnits<S extends TObject> = {
  [K in keyof Static<S> as K extends keyof typeof envelope ? never : NonNullable<Static<S>[K]> extends number ? K : never]-?: Unit
}

/** A column of a batched sensor's samples. */
export interface BatchColumn {
  name: string
  unit: Unit
  minimum: number
  maximum: number
  description: string
}

/**
 * The longest time a batch may cover, first sample to last, s (issue #20): a batch is about a
 * second of samples, and a crash recorder's window is uploaded a second a message. Without it a
 * tiny `rate_hz` put a batch's samples centuries ahead (1e-300 Hz: sample times of 1e303 ms, which
 * InfluxDB refuses), out of reach of the `ts` checks.
 */
export const BATCH_MAX_SPAN_S = 10
/** The lowest sampling rate of a batch, Hz: below it, a kind sends single readings, not batches. */
const BATCH_MIN_RATE_HZ = 1

/**
 * A batched payload (high-rate sensors, DESIGN.md): one message per second or so carrying
 * `rate_hz` samples per second, each a row of the given columns, the first at `ts`. JSON Schema
 * cannot relate `samples` to `rate_hz`; decode.ts checks the span (`batchSpanMs`).
 */
export function batchSchema(columns: readonly BatchColumn[], maxRateHz: number, maxSamples: number) {
  return payloadSchema({
    rate_hz: Type.Number({
      minimum: BATCH_MIN_RATE_HZ, maximum: maxRateHz,
      description: `Samples per second; sample i was taken at ts + i·1000/rate_hz ms, and the last at most ${BATCH_MAX_SPAN_S} s after ts (so at most rate_hz·${BATCH_MAX_SPAN_S} + 1 samples)`,
    }),
    samples: Type.Array(
      Type.Tuple(columns.map((c) => Type.Number({ minimum: c.minimum, maximum: c.maximum, description: `${c.name}: ${c.description}` }))),
      { minItems: 1, maxItems: maxSamples, description: `Rows of [${columns.map((c) => c.name).join(', ')}]` },
    ),
  })
}

/** How long after `ts` a batch's last sample was taken, ms. */
export const batchSpanMs = (rateHz: number, samples: number) => ((samples - 1) * 1000) / rateHz

/** One sensor kind: declared once, it drives validation, storage, docs and simulation. */
export interface SensorKind<S extends TObject = TObject> {
  /** Topic stream segment and InfluxDB measurement, e.g. `obd`. */
  kind: string
  subject: Subject
  description: string
  schema: S
  /** The unit of each of its numbers (the name ends in `_` and the unit: `speed_kmh` is `kmh`). */
  units: FieldUnits<S>
  example: Static<S>
  /** Batched kinds: the columns of `samples` (see batchSchema). */
  batch?: { columns: readonly BatchColumn[] }
  /**
   * How ubiq stores the kind (issue #21): the retention policy its points are kept in
   * (ingest/retention.ts), why they are kept at all, and which of its fields say where the device
   * is (never served, kept no longer than `raw_positions`). docs/data-inventory.md is made from it.
   */
  storage: { retention: RetentionPolicyName; why: string; positions?: readonly string[] }
  /**
   * Other accepted forms of the payload, turned into the schema's form before validation (e.g.
   * raw OBD-II PIDs), with the schema and an example of each for the docs.
   */
  alternative?: { description: string; schema: TObject; example: Record<string, unknown>; normalize(body: Record<string, unknown>): Record<string, unknown> | string }
}

/** MQTT topics of the v1 contract (DESIGN.md "Topics"). */
export const topics = {
  prefix: 'ubiq/v1',
  /** Where device `deviceId` publishes stream `kind`. */
  device: (deviceId: string, kind: string) => `ubiq/v1/dev/${deviceId}/${kind}`,
  /**
   * What ingest subscribes to: the whole device tree, as far as the broker ACL lets a device write
   * (`ubiq/v1/dev/{deviceId}/#`), not only its well-formed topics. A message on
   * `ubiq/v1/dev/X/obd/extra` is then rejected (bad_topic) to X, where before #20 the broker
   * acknowledged it and nobody ever read it.
   */
  allDevices: 'ubiq/v1/dev/#',
  rejected: (deviceId: string) => `ubiq/v1/rejected/${deviceId}`,
  /** Where ubiq tells a device its policy's consent after every change (retained): a device's change is acknowledged there (#21). */
  consent: (deviceId: string) => `ubiq/v1/consent/${deviceId}`,
  /** Where ubiq tells a device its policy's pauses (privacy mode) after every change (retained): a device's own pause or end is acknowledged there (#21). */
  privacy: (deviceId: string) => `ubiq/v1/privacy/${deviceId}`,
  /** Where ubiq sends device `deviceId` a command (ingest/commands.ts): only ubiq writes there, only the device reads (#24). */
  command: (deviceId: string, command: string) => `ubiq/v1/cmd/${deviceId}/${command}`,
  scores: (policyId: string) => `ubiq/v1/scores/${policyId}`,
  events: (policyId: string) => `ubiq/v1/events/${policyId}`,
  /** One retained premium per policy and subject: a policy's motor premium does not replace its home one. */
  premiums: (policyId: string, subject: Subject) => `ubiq/v1/premiums/${policyId}/${subject}`,
  /** Splits a device topic into its device id and stream, or undefined when it is not one. */
  parseDevice(topic: string): { deviceId: string; kind: string } | undefined {
    const parts = topic.split('/')
    if (parts.length !== 5 || parts[0] !== 'ubiq' || parts[1] !== 'v1' || parts[2] !== 'dev') return undefined
    return { deviceId: parts[3]!, kind: parts[4]! }
  },
}
