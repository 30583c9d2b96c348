/**
 * The fuzz harness's inputs (test/fuzz.test.ts, issue #20 "beyond the list"): fast-check
 * arbitraries derived from the sensor catalogue and the adapters' formats, so that a new kind or a
 * new field is fuzzed without editing the test, and from the dashboards' OpenAPI document, so that
 * a new route is. Values sit at, just inside and just outside each bound, or are of the wrong type,
 * too deep, too long or not JSON at all. Times and seqs are symbolic (relative to the run, to the
 * server's clock, or absolute edges) and turned into numbers when a run sends them, so that a
 * shrunk counterexample replays against the same live pipeline with fresh seqs and times.
 */
import fc from 'fast-check'
import { BATCH_MAX_SPAN_S } from '../ingest/contract.ts'
import { ID_PATTERN, sensors, type SensorKind } from '../ingest/index.ts'

/** JSON as a payload holds it. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json }

/** The parts of a JSON Schema (as TypeBox and fastify write them) the fuzz reads. */
export interface Schema {
  type?: string
  properties?: Record<string, Schema>
  required?: string[]
  patternProperties?: Record<string, Schema>
  items?: Schema | Schema[]
  minItems?: number
  maxItems?: number
  minimum?: number
  maximum?: number
  pattern?: string
  format?: string
  anyOf?: Schema[]
  enum?: unknown[]
}

/** The next double above and below `x`. */
const ulp = (x: number) => Math.max(Math.abs(x) * Number.EPSILON, Number.MIN_VALUE)
export const nextUp = (x: number) => x + ulp(x)
export const nextDown = (x: number) => x - ulp(x)

/** Values no field of the contract may hold, whatever its bounds: near the ends of a double and of a safe integer. */
const extremes = [1e308, -1e308, Number.MAX_VALUE, -Number.MAX_VALUE, 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 53, 2 ** 64]

/** Nested arrays or objects `depth` deep (shown as such in a counterexample: printing them whole overflows the stack). */
const nested = (depth: number, object: boolean): Json => {
  let v: Json = 0
  for (let i = 0; i < depth; i++) v = object ? { a: v } : [v]
  return Object.defineProperty(v, fc.toStringMethod, { value: () => `${object ? '{"a":' : '['}…${depth} deep`, enumerable: false })
}

/** A value of the wrong type or shape for any field. */
export const wrongType: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom<Json>('1', '', 'NaN', 'Infinity', '-0', '1e308', '2016-12-31T23:59:60Z', null, true, false, [], {}),
  // Deeper than this only as text (rawOp): JSON.stringify itself runs out of stack at a few thousand levels.
  fc.tuple(fc.integer({ min: 1, max: 1000 }), fc.boolean()).map(([d, o]) => nested(d, o)),
  fc.constantFrom('x'.repeat(60_000), '\u0000', '\ud800', '🚗'.repeat(100), '${jndi:x}', '<script>', '../../', '%00'),
  fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>,
)

/** Numbers a number schema accepts: its bounds, just inside them, anywhere between, and near `example`. */
export function inside(s: Schema, example?: number): fc.Arbitrary<number> {
  const [min, max] = [s.minimum ?? -1e6, s.maximum ?? 1e6]
  if (s.type === 'integer') {
    return fc.oneof(fc.constantFrom(min, max), fc.integer({ min, max }), ...(example === undefined ? [] : [fc.constant(example)]))
  }
  const near = example === undefined ? [] : [fc.constant(example), fc.double({ min: Math.max(min, example - (max - min) / 100), max: Math.min(max, example + (max - min) / 100), noNaN: true })]
  return fc.oneof(fc.constantFrom(min, max, nextUp(min), nextDown(max)), fc.double({ min, max, noNaN: true }), ...near)
}

/** Numbers a number schema refuses: just outside its bounds, a fraction for an integer, and extremes. */
export function outside(s: Schema): fc.Arbitrary<number> {
  const [min, max] = [s.minimum ?? -Infinity, s.maximum ?? Infinity]
  const out = [nextDown(min), nextUp(max), min - 1, max + 1, ...extremes, Number.MIN_VALUE, -0]
  if (s.type === 'integer') out.push(min + 0.5, max - 0.5)
  const refused = out.filter((x) => Number.isFinite(x) && (x < min || x > max || (s.type === 'integer' && !Number.isInteger(x))))
  return fc.constantFrom(...refused)
}

/** A value `s` accepts (objects with each optional property present or not). */
export function valid(s: Schema, example?: Json): fc.Arbitrary<Json> {
  if (s.type === 'number' || s.type === 'integer') return inside(s, typeof example === 'number' ? example : undefined)
  if (s.type === 'boolean') return fc.boolean()
  if (s.type === 'string') return s.pattern ? fc.stringMatching(new RegExp(s.pattern)) : fc.string()
  if (s.type === 'array' && Array.isArray(s.items)) return fc.tuple(...s.items.map((item) => valid(item)))
  if (s.type === 'array' && s.items) return fc.array(valid(s.items as Schema), { minLength: s.minItems ?? 0, maxLength: Math.min(s.maxItems ?? 10, 10) })
  if (s.type === 'object' && s.patternProperties) {
    const [[key, value]] = Object.entries(s.patternProperties) as [[string, Schema]]
    return fc.dictionary(fc.stringMatching(new RegExp(key)), valid(value), { maxKeys: 6 })
  }
  if (s.type === 'object') {
    const ex = (example ?? {}) as Record<string, Json>
    const required = new Set(s.required ?? [])
    const props = Object.entries(s.properties ?? {}).map(([k, p]) => [k, required.has(k) ? valid(p, ex[k]) : fc.option(valid(p, ex[k]), { nil: undefined })] as const)
    return fc.record(Object.fromEntries(props)).map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Json)
  }
  return wrongType
}

/** A value `s` refuses: out of bounds when it is a number, else of the wrong type. */
export const invalid = (s: Schema): fc.Arbitrary<Json> =>
  s.type === 'number' || s.type === 'integer' ? fc.oneof(outside(s), wrongType) : wrongType

// ─── device messages ────────────────────────────────────────────────────────────────────────────

/**
 * A message's seq: the device's next (the usual case), its previous one again, one some way back,
 * an absolute edge, or not a number at all.
 */
export type SeqSpec = { next: true } | { prev: true } | { back: number } | { abs: number } | { raw: Json }
/**
 * A device time: ms after the start of the run's slot (the usual case), the previous message's
 * again, ms from the server's clock when the message is sent, an absolute edge, or not a number.
 */
export type TsSpec = { rel: number } | { prev: true } | { now: number } | { abs: number } | { raw: Json }

const seqSpec: fc.Arbitrary<SeqSpec> = fc.oneof(
  { weight: 12, arbitrary: fc.constant({ next: true as const }) },
  { weight: 2, arbitrary: fc.constant({ prev: true as const }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3000 }).map((back) => ({ back })) },
  { weight: 1, arbitrary: fc.constantFrom(0, 1, 2 ** 53 - 1, 2 ** 53, -1, 1.5, 1e308, -0).map((abs) => ({ abs })) },
  { weight: 1, arbitrary: fc.constantFrom<Json>('7', null, [1], { n: 1 }).map((raw) => ({ raw })) },
)

/** How long a run's slot of device time is, ms: the relative times below fit in it, a 10 s batch included. */
export const SLOT_MS = 40_000
const MIN_5 = 5 * 60_000

const tsSpec: fc.Arbitrary<TsSpec> = fc.oneof(
  { weight: 12, arbitrary: fc.oneof(fc.constantFrom(0, 1, 999, 1000, 2000, 10_000), fc.integer({ min: 0, max: SLOT_MS - 10_001 })).map((rel) => ({ rel })) },
  { weight: 2, arbitrary: fc.constant({ prev: true as const }) },
  // Ahead of the server: the 5-minute bound and either side of it (4m50s silenced trips, #20).
  { weight: 2, arbitrary: fc.constantFrom(-1, 0, MIN_5 - 10_000, MIN_5 - 1000, MIN_5, MIN_5 + 1000, 3600_000, 1e9, -1e9).map((now) => ({ now })) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      0, 1, -1, Date.UTC(1970, 0, 1, 0, 0, 1), Date.UTC(2016, 11, 31, 23, 59, 59, 999), Date.UTC(2261, 11, 31, 23, 59, 59, 999),
      Date.UTC(2262, 0, 1), Date.UTC(2262, 3, 11, 23, 47, 16, 854), 8.64e15, 8.64e15 + 1, 2 ** 53 - 1, 1e303, 1.5,
    ).map((abs) => ({ abs })),
  },
  { weight: 1, arbitrary: fc.constantFrom<Json>('2016-12-31T23:59:60Z', '2261-12-31T23:59:59Z', '1767225600000', null, true).map((raw) => ({ raw })) },
)

/** A device message on its own topic: `body` without seq and ts, which `seq` and `ts` give when it is sent. */
export interface NativeOp {
  on: 'native'
  stream: string
  body: Record<string, Json>
  seq: SeqSpec
  ts: TsSpec
  /** What was done to the body (for reading a counterexample). */
  mutation?: string
  /** Spaces added after the JSON, up to this many bytes in all (the 64 KiB bound). */
  padTo?: number
}
/** Bytes that are not a valid message, or not JSON at all, on a device topic (`stream` may be no stream). */
export interface RawOp { on: 'raw'; stream: string; text: string; latin1?: boolean }
/** A foreign format on its own topic (after its prefix and the device: the rest of the topic). */
export type AdaptedOp =
  | { on: 'owntracks'; rest: string; body: Record<string, Json>; tst: TsSpec }
  | { on: 'zigbee2mqtt'; rest: string; body: Record<string, Json> }
  | { on: 'homeassistant'; rest: string; text: string }
/** A topic the broker's ACL must refuse the device: another device's. */
export interface ForeignOp { on: 'foreign'; topic: string }
export type Op = NativeOp | RawOp | AdaptedOp | ForeignOp

/** The catalogue's batched kinds: rate and sample count chosen together, at and across the span bound. */
/** A batched kind's rates: its schema's, at and across the bounds, and far beyond. */
function batchRates(sensor: SensorKind): fc.Arbitrary<number> {
  const rate = (sensor.schema as Schema).properties!.rate_hz!
  return fc.oneof(
    inside(rate),
    fc.constantFrom(0, 1e-300, 0.001, 0.999, nextDown(rate.minimum!), nextUp(rate.maximum!), rate.maximum! + 1, 1e6, -1, Number.MIN_VALUE),
  )
}

function batchBody(sensor: SensorKind, rates = batchRates(sensor)): fc.Arbitrary<{ body: Record<string, Json>; mutation?: string }> {
  const schema = sensor.schema as Schema
  const samples = schema.properties!.samples!
  const row = (samples.items as Schema).items as Schema[]
  const exampleRow = (sensor.example as { samples: number[][] }).samples[0]!
  const rowArb = fc.tuple(...row.map((c, j) => inside(c, exampleRow[j])))
  const maxItems = samples.maxItems!
  return rates.chain((rate_hz) => {
    // Samples at exactly the span bound (the last BATCH_MAX_SPAN_S after ts), one more, and the schema's bounds.
    const edge = Math.min(maxItems + 1, Math.floor(Math.max(0, rate_hz) * BATCH_MAX_SPAN_S) + 1)
    const count = fc.oneof(fc.constantFrom(1, 2, edge, edge + 1, maxItems, maxItems + 1, 0), fc.integer({ min: 1, max: Math.max(1, Math.min(edge, maxItems)) }))
    return count.chain((n) => fc.oneof(
      // One row repeated: a constant pulse (at ±160 m/s² for seconds, what no crash is).
      rowArb.map((r) => Array.from({ length: n }, () => r)),
      fc.array(rowArb, { minLength: n, maxLength: n }),
      // One bad cell or row among good ones.
      fc.tuple(fc.array(rowArb, { minLength: Math.max(n, 1), maxLength: Math.max(n, 1) }), fc.nat(), fc.nat(row.length), fc.oneof(...row.map((c) => invalid(c)), wrongType.map((w) => [w])))
        .map(([rows, i, j, bad]) => rows.map((r, k) => (k === i % rows.length ? (j === row.length || Array.isArray(bad) ? (bad as Json) : r.map((x, m) => (m === j ? bad : x))) : r)) as Json),
    )).map((rows) => ({ body: { rate_hz, samples: rows as Json } }))
  })
}

/** The kind's own fields (all but seq and ts). */
const ownFields = (sensor: SensorKind) => Object.entries((sensor.schema as Schema).properties!).filter(([k]) => k !== 'seq' && k !== 'ts')

/** A body `sensor`'s schema accepts (a batch's rate and samples may still break the span bound). */
const goodBody = (sensor: SensorKind): fc.Arbitrary<{ body: Record<string, Json>; mutation?: string }> => sensor.batch
  ? batchBody(sensor)
  : valid({ ...(sensor.schema as Schema), properties: Object.fromEntries(ownFields(sensor)) }, sensor.example as Json).map((body) => ({ body: body as Record<string, Json> }))

/** A body of `sensor`, valid or with one thing wrong, and what. */
function sensorBody(sensor: SensorKind): fc.Arbitrary<{ body: Record<string, Json>; mutation?: string }> {
  const schema = sensor.schema as Schema
  const own = ownFields(sensor)
  const required = own.filter(([k]) => schema.required?.includes(k)).map(([k]) => k)
  const good = goodBody(sensor)
  const alternative = sensor.alternative ? [valid(sensor.alternative.schema as Schema).map((b) => {
    const { seq: _s, ts: _t, ...body } = b as Record<string, Json>
    return { body, mutation: 'alternative form' }
  })] : []
  return fc.oneof(
    { weight: 10, arbitrary: good },
    { weight: 3, arbitrary: fc.tuple(good, fc.constantFrom(...own)).chain(([g, [name, s]]) => invalid(s).map((v) => ({ body: { ...g.body, [name]: v }, mutation: `${name} refused` }))) },
    ...(required.length ? [{ weight: 1, arbitrary: fc.tuple(good, fc.constantFrom(...required)).map(([g, name]) => ({ body: Object.fromEntries(Object.entries(g.body).filter(([k]) => k !== name)), mutation: `${name} missing` })) }] : []),
    { weight: 1, arbitrary: fc.tuple(good, fc.constantFrom('extra', '__proto__', 'constructor', 'seq ', ''), wrongType).map(([g, k, v]) => ({ body: JSON.parse(JSON.stringify({ ...g.body }).replace(/^\{/, `{${JSON.stringify(k)}:${JSON.stringify(v)},`)) as Record<string, Json>, mutation: `extra property "${k}"` })) },
    ...alternative.map((arbitrary) => ({ weight: 2, arbitrary })),
  )
}

/** Any message of a catalogue stream on the device's own topic, with the envelope's edges. */
export const nativeOp: fc.Arbitrary<NativeOp> = fc.constantFrom(...sensors).chain((sensor) =>
  fc.record({ b: sensorBody(sensor), seq: seqSpec, ts: tsSpec, padTo: fc.oneof({ weight: 19, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom(64 * 1024, 64 * 1024 + 1, 100_000) }) })
    .map(({ b, seq, ts, padTo }): NativeOp => ({ on: 'native', stream: sensor.kind, body: b.body, seq, ts, ...(b.mutation ? { mutation: b.mutation } : {}), ...(padTo ? { padTo } : {}) })))

/**
 * One stream's readings in a row, each valid, 1 ms to 1 s apart: rates are edges too (a value
 * derived over 1 ms, a speed change or a turn, is where a plausible reading gives an impossible
 * result), and batches a step apart overlap one another.
 */
export const seriesOps: fc.Arbitrary<NativeOp[]> = fc.constantFrom(...sensors).chain((sensor) => fc.record({
  start: fc.integer({ min: 0, max: SLOT_MS - 20_000 }),
  step: fc.constantFrom(1, 10, 100, 1000),
  // A series of batches keeps one rate, as a device does.
  bodies: sensor.batch ? batchRates(sensor).chain((rate) => fc.array(batchBody(sensor, fc.constant(rate)), { minLength: 2, maxLength: 6 })) : fc.array(goodBody(sensor), { minLength: 2, maxLength: 6 }),
}).map(({ start, step, bodies }) => bodies.map(({ body }, i): NativeOp => ({ on: 'native', stream: sensor.kind, body, seq: { next: true }, ts: { rel: start + i * step } }))))

// (No wildcard: a client that publishes on one is disconnected by the broker, before ubiq.)
const streamName = fc.oneof(fc.constantFrom(...sensors.map((s) => s.kind)), fc.constantFrom('', 'OBD', 'obd ', 'nope', 'obd/x', 'ä'))
/** Bytes that are not a message: not JSON, not UTF-8, not an object, deeper than any parser likes, too large. */
export const rawOp: fc.Arbitrary<RawOp> = fc.record({
  stream: streamName,
  text: fc.oneof(
    fc.constantFrom('', ' ', '{', '{"seq":1,', 'null', '[]', '0', '"x"', 'NaN', '{"seq":1,"ts":1e999}', '{"seq":1,"seq":2}', '\ufeff{}', '{"__proto__":{"polluted":1}}'),
    fc.integer({ min: 100, max: 30_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)),
    fc.integer({ min: 100, max: 10_000 }).map((n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n)),
    fc.constantFrom(64 * 1024, 64 * 1024 + 1).map((n) => `"${'x'.repeat(n - 2)}"`),
    fc.string({ unit: 'binary', maxLength: 200 }),
  ),
  latin1: fc.boolean(),
}).map((r) => ({ on: 'raw', ...r }))

/** OwnTracks locations: its numbers at the gps kind's edges, tst (s) as seq and time. */
const owntracksOp: fc.Arbitrary<AdaptedOp> = (() => {
  const gps = sensors.find((s) => s.kind === 'gps')!
  const p = (gps.schema as Schema).properties!
  const ex = gps.example as Record<string, number>
  const field = (s: Schema, e?: number) => fc.oneof({ weight: 6, arbitrary: inside(s, e) }, { weight: 1, arbitrary: invalid(s) })
  return fc.record({
    _type: fc.oneof({ weight: 8, arbitrary: fc.constant<Json>('location') }, { weight: 1, arbitrary: fc.constantFrom<Json>('waypoint', 'lwt', null, 1) }),
    lat: field(p.lat_deg!, ex.lat_deg), lon: field(p.lon_deg!, ex.lon_deg), acc: field(p.accuracy_m!, ex.accuracy_m),
    vel: fc.option(field(p.speed_kmh!), { nil: undefined }), cog: fc.option(field(p.heading_deg!), { nil: undefined }), alt: fc.option(field(p.alt_m!), { nil: undefined }),
  }, { requiredKeys: ['_type', 'lat', 'lon', 'acc'] }).chain((body) => fc.record({ tst: tsSpec, rest: fc.constantFrom('phone', 'x') }).map(({ tst, rest }): AdaptedOp => ({ on: 'owntracks', rest, body: body as Record<string, Json>, tst })))
})()

/** The schema of a catalogue field (`kind.field`). */
const fieldSchema = (kind: string, field: string) => (sensors.find((s) => s.kind === kind)!.schema as Schema).properties![field]!
/** Mostly a value `s` accepts, at and inside its bounds; now and then one it refuses. */
const mostlyValid = (s: Schema) => fc.oneof({ weight: 6, arbitrary: valid(s) }, { weight: 1, arbitrary: invalid(s) })

/**
 * Zigbee2MQTT states: the keys of the format (its "exposes") ubiq maps, each with the values of the
 * catalogue field it becomes, mostly valid, at the field's edges; keys it does not map.
 */
const zigbeeOp: fc.Arbitrary<AdaptedOp> = (() => {
  const keys: Record<string, fc.Arbitrary<Json>> = {
    water_leak: mostlyValid(fieldSchema('leak', 'leak_detected')), smoke: mostlyValid(fieldSchema('smoke', 'smoke_detected')),
    co: mostlyValid(fieldSchema('smoke', 'co_ppm')), temperature: mostlyValid(fieldSchema('climate', 'temp_c')),
    humidity: mostlyValid(fieldSchema('climate', 'humidity_pct')), contact: mostlyValid(fieldSchema('contact', 'open')),
    battery: mostlyValid(fieldSchema('leak', 'battery_pct')), linkquality: fc.nat(255), ['__proto__']: wrongType,
  }
  return fc.record({
    rest: fc.oneof({ weight: 6, arbitrary: fc.constant('kitchen') }, { weight: 1, arbitrary: fc.constantFrom('bridge', 'x y', 'ä') }),
    body: fc.subarray(Object.keys(keys), { minLength: 1, maxLength: 4 }).chain((ks) => fc.tuple(...ks.map((k) => keys[k]!)).map((vs) => Object.fromEntries(ks.map((k, i) => [k, vs[i]!])) as Record<string, Json>)),
  }).map((r): AdaptedOp => ({ on: 'zigbee2mqtt', ...r }))
})()

/**
 * Home Assistant discovery: configs, mostly of the components and device classes ubiq maps with
 * their own state topic, else others, other devices' topics, templates and units; and states, mostly
 * what their class sends, else numbers at the edges, JSON, nothing.
 */
const homeAssistantOp: fc.Arbitrary<AdaptedOp[]> = (() => {
  const mapped: [string, string][] = [['binary_sensor', 'moisture'], ['binary_sensor', 'smoke'], ['binary_sensor', 'door'], ['sensor', 'temperature'], ['valve', 'water']]
  const entity = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...mapped) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom('binary_sensor', 'sensor', 'valve', 'switch'), fc.constantFrom('humidity', 'water', '', 'x')) },
  )
  const object = fc.constantFrom('leak', 't1', 'v1', 'ä')
  const config = (deviceClass: string) => fc.record({
    device_class: fc.oneof({ weight: 6, arbitrary: fc.constant<Json>(deviceClass) }, { weight: 1, arbitrary: fc.constantFrom<Json>(null, 7) }),
    state_topic: fc.oneof({ weight: 6, arbitrary: fc.constant<Json>('S') }, { weight: 1, arbitrary: fc.constantFrom<Json>('~/state', 'homeassistant/sensor/other-device/x/state', 'homeassistant/sensor/+/x', 7) }),
    // Now and then, the options a config may carry, at their edges.
    options: fc.oneof({ weight: 3, arbitrary: fc.constant({}) }, {
      weight: 1,
      arbitrary: fc.record({
        '~': fc.constantFrom('B', 'homeassistant/x'),
        value_template: fc.constantFrom('{{ value_json.v }}', "{{ value_json['a']['b'] }}", '{{ value }}', '{% raw %}'),
        payload_on: fc.constantFrom<Json>('ON', 1, true, ''),
        unit_of_measurement: fc.constantFrom('°C', '°F', 'K'),
      }, { requiredKeys: [] }),
    }),
  }).map(({ options, ...cfg }) => ({ ...cfg, ...options }))
  const temperature = fieldSchema('climate', 'temp_c')
  const state = (component: string) => fc.oneof(
    { weight: 4, arbitrary: component === 'sensor' ? inside(temperature).map(String) : component === 'valve' ? fc.constantFrom('open', 'closed') : fc.constantFrom('ON', 'OFF') },
    { weight: 1, arbitrary: fc.constantFrom('212', '-459.67', '1e308', '-1e308', 'NaN', 'Infinity', '', ' ', '-0', '0x10') },
    { weight: 1, arbitrary: fc.oneof(fc.double({ noNaN: true }), fc.constantFrom(...extremes), wrongType).map((v) => JSON.stringify({ v, a: { b: v } })) },
  )
  // A config, then states on its topic (or on one no config names); `S` and `B` stand for the
  // state topic under the device's own prefix.
  return fc.record({ entity, object, empty: fc.oneof({ weight: 8, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }), configured: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }) })
    .chain(({ entity: [c, cls], object: o, empty, configured }) => fc.tuple(config(cls), fc.array(state(c), { maxLength: 3 })).map(([cfg, states]): AdaptedOp[] => [
      ...(configured || states.length === 0 ? [{
        on: 'homeassistant' as const, rest: `${c}/DEV/${o}/config`,
        text: empty ? '' : JSON.stringify(cfg).replaceAll('"S"', `"homeassistant/${c}/DEV/${o}/state"`).replaceAll('"B"', `"homeassistant/${c}/DEV/${o}"`),
      }] : []),
      ...states.map((st): AdaptedOp => ({ on: 'homeassistant', rest: `${c}/DEV/${o}/state`, text: st })),
    ]))
})()

/** Foreign-format messages of the device: one, or a discovery config and its states. */
export const adaptedOps: fc.Arbitrary<AdaptedOp[]> = fc.oneof(owntracksOp.map((op) => [op]), zigbeeOp.map((op) => [op]), homeAssistantOp)

/** What a fuzzing device sends in one go: mostly its own streams (one message or a series), then the rest. */
export const deviceOps: fc.Arbitrary<Op[]> = fc.oneof(
  { weight: 12, arbitrary: nativeOp.map((op) => [op]) },
  { weight: 3, arbitrary: seriesOps },
  { weight: 2, arbitrary: rawOp.map((op) => [op]) },
  { weight: 4, arbitrary: adaptedOps },
  { weight: 1, arbitrary: fc.constantFrom('ubiq/v1/dev/OTHER/obd', 'owntracks/OTHER/phone', 'zigbee2mqtt/OTHER/x', 'homeassistant/sensor/OTHER/t/config', 'ubiq/v1/scores/x', 'ubiq/v1/rejected/OTHER').map((topic): Op[] => [{ on: 'foreign', topic }]) },
)

// ─── REST queries ───────────────────────────────────────────────────────────────────────────────

/** Times in a query: the bounds of what InfluxDB and JavaScript hold (1970–2261), either side, and not times at all. */
export const queryTime = fc.oneof(
  // Well-formed, at the edges (an offset can move the instant out of 1970–2261).
  fc.constantFrom('1970-01-01T00:00:00Z', '1970-01-01T00:00:00.000+01:00', '2261-12-31T23:59:59.999Z', '2261-12-31T23:59:59-23:59', '2016-12-31T23:59:59Z', '2026-01-01T00:00:00.123456789Z'),
  fc.date({ min: new Date(0), max: new Date(Date.UTC(2261, 11, 31)), noInvalidDate: true }).map((d) => d.toISOString()),
  fc.integer({ min: -48 * 3600_000, max: 24 * 3600_000 }).map((ms) => new Date(Date.now() + ms).toISOString()),
  // Not times ubiq can serve: out of range, a leap second, days and hours that do not exist, no zone, not times.
  fc.constantFrom(
    '1969-12-31T23:59:59Z', '2262-01-01T00:00:00Z', '2262-04-11T23:47:16.854Z', '2016-12-31T23:59:60Z', '2020-02-30T00:00:00Z', '2020-13-01T00:00:00Z',
    '2020-01-01T24:00:00Z', '2020-01-01T00:00:00', '2020-01-01', '0000-01-01T00:00:00Z', '+275760-09-13T00:00:00Z', '', 'now', 'x'.repeat(5000),
  ),
)

/** Ids in a path or a query: the policies and devices there are, none, and what an id may not be. */
export const idValue = (known: readonly string[]) => fc.oneof(
  fc.constantFrom(...known),
  fc.constantFrom('nobody', 'a'.repeat(64), 'a'.repeat(65), '', '..', '%2F', '%00', 'ä', "'; DROP", '"', '\\', '*', '+', '#', 'x'.repeat(3000)),
)

/**
 * A query parameter's value for `s`: left out, or of its type at and across its edges; with
 * `junk`, also what no schema accepts (a list: the parameter given twice).
 */
export function paramValue(s: Schema, ids: readonly string[], junk = true): fc.Arbitrary<string | string[] | undefined> {
  const enums = (s.anyOf ?? []).flatMap((a) => a.enum ?? [])
  const accepted: fc.Arbitrary<string> = s.format === 'date-time' ? queryTime
    : enums.length ? fc.constantFrom(...enums.map(String))
    : s.type === 'integer' ? fc.oneof(inside(s), outside(s), fc.constantFrom(NaN, Infinity)).map(String)
    : s.pattern === ID_PATTERN ? idValue(ids)
    : s.pattern ? fc.oneof(fc.stringMatching(new RegExp(s.pattern)), fc.constantFrom('crash', 'obd', 'speed_kmh', 'x'.repeat(65)))
    : fc.string()
  return fc.oneof(
    { weight: 2, arbitrary: fc.constant(undefined) },
    { weight: 6, arbitrary: accepted },
    ...(junk ? [
      { weight: 1, arbitrary: fc.oneof(fc.string({ unit: 'binary', maxLength: 50 }), fc.constantFrom('', ' ', '[]', '{}', 'null', '%', '%ZZ')) },
      { weight: 1, arbitrary: fc.array(accepted, { minLength: 2, maxLength: 3 }) },
    ] : []),
  )
}
