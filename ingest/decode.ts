/**
 * Turns one MQTT message into a Reading or a Rejection. Pure and total: whatever bytes arrive, it
 * returns, never throws, so bad data can never reach the Rx error channel and end the stream.
 */
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { Static, TObject } from '@sinclair/typebox'
import { BATCH_MAX_SPAN_S, batchSpanMs, topics, type Reading } from './contract.ts'
import type { DeviceRegistry } from './registry.ts'
import type { Adapter } from './adapters/index.ts'
import { aclUser, DEVICE_ACL } from './broker.ts'
import { sensors, sensorsByKind } from './sensors/index.ts'
import { CONSENT_STREAM, consentMessage, type ConsentRequest, type ConsentStore } from './consent.ts'
import { PRIVACY_STREAM, privacyMessage, type PrivacyStore } from './privacy.ts'
import { ACK_STREAM, ackMessage, type CommandStore } from './commands.ts'

/** Why a message was not stored. Stable: firmware engineers match on these (docs/device-contract.md). */
export type RejectReason =
  | 'bad_topic'
  | 'unknown_device'
  | 'unknown_stream'
  | 'no_consent'
  | 'payload_too_large'
  | 'malformed_json'
  | 'invalid_payload'
  | 'timestamp_in_future'
  | 'before_registration'
  | 'implausible_jump'
  | 'duplicate_time'
  | 'privacy_mode'

/** A message that was not stored, and why. Carries no payload values (they may be position or health data). */
export interface Rejection {
  deviceId: string
  kind: string
  reason: RejectReason
  detail: string
  seq?: number
  receivedAt: number
}

export interface DecodeConfig {
  registry: DeviceRegistry
  /** Largest payload accepted, bytes. */
  maxPayloadBytes: number
  /** How far ahead of the server clock a device timestamp may be, ms. */
  maxFutureSkewMs: number
  /** The foreign formats taken (adapters/index.ts createAdapters). */
  adapters: readonly Adapter[]
  /**
   * Consent as it stands (consent.ts): a stream the policy has withdrawn for every purpose is
   * rejected with `no_consent`. Without it, the registry's streams are the consent (enrolment's).
   */
  consents?: ConsentStore
  /** Privacy mode (privacy.ts): a reading whose device time falls in a pause of its stream is rejected with `privacy_mode`. */
  privacy?: PrivacyStore
  /** Commands sent to devices (commands.ts): with it, ingest takes their acknowledgements on `ubiq/v1/dev/{deviceId}/ack`. */
  commands?: CommandStore
}

/** A device's valid consent message (`ubiq/v1/dev/{deviceId}/consent`): a change for the consent store. */
export type ConsentMessage = ControlMessage<ConsentRequest>

const validators: ReadonlyMap<string, TypeCheck<TObject>> = new Map(
  sensors.map((s) => [s.kind, TypeCompiler.Compile(s.schema)]),
)
const checkConsent = TypeCompiler.Compile(consentMessage)
const checkPrivacy = TypeCompiler.Compile(privacyMessage)
const checkAck = TypeCompiler.Compile(ackMessage)

/**
 * Decodes one message received at `receivedAt` on `topic`; null for a message that configured an
 * adapter (a Home Assistant discovery config) and holds nothing to store.
 */
export function decodeMessage(cfg: DecodeConfig, topic: string, payload: Buffer, receivedAt: number): Reading | Rejection | null {
  const { reject, parseBody, tooLarge } = messageOf(cfg, payload, receivedAt)
  const route = topics.parseDevice(topic)
  if (!route) {
    const adapter = cfg.adapters.find((a) => a.claims(topic))
    if (adapter) return decodeAdapted(adapter)
    return reject(aclUser([DEVICE_ACL], topic) ?? '?', '?', 'bad_topic', `not a device topic: ${topic.slice(0, 200)}`)
  }
  const { deviceId, kind } = route
  const device = cfg.registry.get(deviceId)
  if (!device) return reject(deviceId, kind, 'unknown_device', 'device is not in the registry')
  const check = validators.get(kind)
  const sensor = sensorsByKind.get(kind)
  if (!check || !sensor) return reject(deviceId, kind, 'unknown_stream', `no sensor kind "${kind}" in contract v1`)
  if (!device.kinds.includes(kind)) return reject(deviceId, kind, 'no_consent', `policy has no consent for stream "${kind}"`)
  if (cfg.consents && !cfg.consents.stored(device.policyId, kind)) return reject(deviceId, kind, 'no_consent', `policy has withdrawn consent for stream "${kind}" for every purpose`)
  const parsed = parseBody(deviceId, kind)
  if ('reason' in parsed) return parsed
  let body = parsed.body
  if (sensor.alternative && body !== null && typeof body === 'object' && !Array.isArray(body)) {
    const normalized = sensor.alternative.normalize(body as Record<string, unknown>)
    if (typeof normalized === 'string') return reject(deviceId, kind, 'invalid_payload', normalized, seqOf(body))
    body = normalized
  }
  if (!check.Check(body)) {
    // Errors() walks the schema again to explain; only rejected messages pay for it.
    const error = check.Errors(body).First()
    return reject(deviceId, kind, 'invalid_payload', error ? `${error.path || '/'}: ${error.message}` : 'does not match the schema', seqOf(body))
  }
  const { seq, ts, samples, ...fields } = body as { seq: number; ts: number; samples?: number[][] } & Record<string, number | boolean>
  // A batch's samples have times of their own, derived from ts and rate_hz: each is held to the
  // same limits as ts (issue #20: the schema alone let 1e303 ms through, which InfluxDB refuses).
  const spanMs = samples ? batchSpanMs(Number(fields.rate_hz), samples.length) : 0
  if (spanMs > BATCH_MAX_SPAN_S * 1000) {
    return reject(deviceId, kind, 'invalid_payload', `/samples: ${samples!.length} samples at ${fields.rate_hz} Hz cover ${spanMs / 1000} s, limit ${BATCH_MAX_SPAN_S} s`, seq)
  }
  if (ts + spanMs > receivedAt + cfg.maxFutureSkewMs) {
    const what = spanMs > 0 ? 'the last sample' : 'ts'
    return reject(deviceId, kind, 'timestamp_in_future', `${what} is ${Math.round(ts + spanMs - receivedAt)} ms ahead of the server clock`, seq)
  }
  if (device.registeredAtMs !== undefined && ts < device.registeredAtMs) {
    return reject(deviceId, kind, 'before_registration', 'ts is before the device was registered', seq)
  }
  // By device time: what was measured in the pause, however late it is uploaded.
  const pause = cfg.privacy?.paused(device.policyId, kind, ts, ts + spanMs)
  if (pause) return reject(deviceId, kind, 'privacy_mode', `the policy paused ${pause.scope === 'all' ? 'all telemetry' : 'location'} from ${pause.from} to ${pause.endedAt ?? pause.to}`, seq)
  return { deviceId, policyId: device.policyId, kind, subject: sensor.subject, seq, ts, receivedAt, fields, ...(samples ? { samples } : {}) }

  /** A foreign format: turned into a v1 message, then decoded as one (adapted formats are low-rate). */
  function decodeAdapted(adapter: Adapter): Reading | Rejection | null {
    const deviceId = adapter.deviceId(topic)
    if (!deviceId) return reject(aclUser([adapter.acl], topic) ?? '?', adapter.name, 'bad_topic', `not a ${adapter.name} device topic: ${topic.slice(0, 200)}`)
    if (!cfg.registry.get(deviceId)) return reject(deviceId, adapter.name, 'unknown_device', 'device is not in the registry')
    let body: unknown
    if (adapter.payload === 'json') {
      const parsed = parseBody(deviceId, adapter.name)
      if ('reason' in parsed) return parsed
      body = parsed.body
    } else {
      if (payload.length > cfg.maxPayloadBytes) return tooLarge(deviceId, adapter.name)
      body = payload.toString('utf8')
    }
    const native = adapter.adapt(topic, deviceId, body, receivedAt)
    if (native === null) return null
    if (typeof native === 'string') return reject(deviceId, adapter.name, 'invalid_payload', `${adapter.name}: ${native}`)
    return decodeMessage(cfg, topics.device(deviceId, native.kind), Buffer.from(JSON.stringify(native.body)), receivedAt)
  }

}

/**
 * Decodes a device's consent message (`ubiq/v1/dev/{deviceId}/consent`, consent.ts), pure and
 * total as decodeMessage: the change it asks for, or why it is rejected. Whether the change is
 * one the device may make is the consent store's to say.
 */
export const decodeConsent = (cfg: DecodeConfig, deviceId: string, payload: Buffer, receivedAt: number): ConsentMessage | Rejection =>
  decodeControl(cfg, deviceId, payload, receivedAt, CONSENT_STREAM, checkConsent)

/** A device's valid privacy message (`ubiq/v1/dev/{deviceId}/privacy`, privacy.ts): a pause or an end, for the privacy store to judge. */
export type PrivacyMessage = ControlMessage<Omit<Static<typeof privacyMessage>, 'seq' | 'ts'>>

/** Decodes a device's privacy message, as decodeConsent does its consent message. */
export const decodePrivacy = (cfg: DecodeConfig, deviceId: string, payload: Buffer, receivedAt: number): PrivacyMessage | Rejection =>
  decodeControl(cfg, deviceId, payload, receivedAt, PRIVACY_STREAM, checkPrivacy)

/** A device's valid acknowledgement of a command (`ubiq/v1/dev/{deviceId}/ack`, commands.ts). */
export type AckMessage = ControlMessage<Omit<Static<typeof ackMessage>, 'seq' | 'ts'>>

/** Decodes a device's acknowledgement of a command, as decodeConsent does its consent message. */
export const decodeAck = (cfg: DecodeConfig, deviceId: string, payload: Buffer, receivedAt: number): AckMessage | Rejection =>
  decodeControl(cfg, deviceId, payload, receivedAt, ACK_STREAM, checkAck)

/** A device's message that changes its policy's settings, or answers ubiq, rather than carrying a reading. */
interface ControlMessage<R> {
  deviceId: string
  policyId: string
  seq: number
  ts: number
  request: R
  receivedAt: number
}

/** A device's settings message on `stream`: its envelope and the request, once the registry, JSON, schema and clock have passed it. */
function decodeControl<S extends TObject>(cfg: DecodeConfig, deviceId: string, payload: Buffer, receivedAt: number, stream: string, check: TypeCheck<S>): ControlMessage<Omit<Static<S>, 'seq' | 'ts'>> | Rejection {
  const { reject, parseBody } = messageOf(cfg, payload, receivedAt)
  const device = cfg.registry.get(deviceId)
  if (!device) return reject(deviceId, stream, 'unknown_device', 'device is not in the registry')
  const parsed = parseBody(deviceId, stream)
  if ('reason' in parsed) return parsed
  const body = parsed.body
  if (!check.Check(body)) {
    const error = check.Errors(body).First()
    return reject(deviceId, stream, 'invalid_payload', error ? `${error.path || '/'}: ${error.message}` : 'does not match the schema', seqOf(body))
  }
  const { seq, ts, ...request } = body as Static<S> & { seq: number; ts: number }
  if (ts > receivedAt + cfg.maxFutureSkewMs) return reject(deviceId, stream, 'timestamp_in_future', `ts is ${Math.round(ts - receivedAt)} ms ahead of the server clock`, seq)
  return { deviceId, policyId: device.policyId, seq, ts, request, receivedAt }
}

/** A message's seq, when it has one, for its rejection. */
const seqOf = (b: unknown) => (typeof (b as { seq?: unknown })?.seq === 'number' ? (b as { seq: number }).seq : undefined)

/** A message's shared steps: its payload as JSON, refusing oversized payloads first, and its rejections. */
function messageOf(cfg: DecodeConfig, payload: Buffer, receivedAt: number) {
  const reject = (deviceId: string, kind: string, reason: RejectReason, detail: string, seq?: number): Rejection =>
    ({ deviceId, kind, reason, detail, receivedAt, ...(seq === undefined ? {} : { seq }) })
  const tooLarge = (deviceId: string, kind: string): Rejection => reject(deviceId, kind, 'payload_too_large', `${payload.length} bytes, limit ${cfg.maxPayloadBytes}`)
  const parseBody = (deviceId: string, kind: string): { body: unknown } | Rejection => {
    if (payload.length > cfg.maxPayloadBytes) return tooLarge(deviceId, kind)
    try {
      return { body: JSON.parse(payload.toString('utf8')) }
    } catch {
      // Not the parser's message: it quotes the payload, which may hold position or health data.
      return reject(deviceId, kind, 'malformed_json', 'payload is not valid UTF-8 JSON')
    }
  }
  return { reject, tooLarge, parseBody }
}

/** Tells a Rejection from a Reading. */
export const isRejection = (r: Reading | Rejection): r is Rejection => 'reason' in r
