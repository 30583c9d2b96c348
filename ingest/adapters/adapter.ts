/**
 * An adapter turns a format devices already speak into a message of the v1 contract, which then
 * goes through exactly the same registry, consent and schema checks as a native message.
 *
 * One rule for every format, so the broker ACL can hold: the first topic level after the format's
 * own prefix is the ubiq device id, which is also the device's MQTT user (ingest/broker.ts).
 */
import { idleMap } from '../idle-map.ts'
import type { Command } from '../commands.ts'

export interface Adapter {
  name: string
  /** For the contract docs: what it maps, and how. */
  description: string
  /** MQTT subscription filter for the format's topics. */
  filter: string
  /** The broker ACL line that lets a device (`%u`) write this format's topics for itself only. */
  acl: string
  /** True when `topic` is this format's. */
  claims(topic: string): boolean
  /** How the payload reaches `adapt`: parsed JSON (malformed JSON is rejected first), or UTF-8 text. */
  payload: 'json' | 'text'
  /** The ubiq device id a topic of this format belongs to, or undefined when it names none. */
  deviceId(topic: string): string | undefined
  /**
   * The contract stream and payload for a message of `deviceId`; a string saying why there is none;
   * or null for a message that configured the adapter and holds nothing to store. Never throws.
   * `receivedAt` stands in for a device time and counter in formats that carry none.
   */
  adapt(topic: string, deviceId: string, payload: unknown, receivedAt: number): { kind: string; body: Record<string, unknown> } | string | null
  /**
   * Formats with commands of their own (#24): the messages that carry `command` to the device in
   * this format (none when the device has told it nothing that could carry it), and the ACL line
   * that lets ubiq's publisher write them.
   */
  commands?: { acl: string; messages(command: Command): { topic: string; payload: string }[] }
}

/**
 * For formats that carry no counter and no device time: the receive time serves as both, moved up
 * by a millisecond where needed so that two messages of a device never share a seq (the second
 * would be dropped as a duplicate) nor a time (InfluxDB would keep one point). A device's last
 * stamp is forgotten after an hour without a message (#20 item 5: memory follows the active
 * devices); its next receive time is an hour past it anyway, so its stamps are the same.
 */
export function receiveStamps(idleMs = 3600_000): (deviceId: string, receivedAt: number) => number {
  const last = idleMap<number>(idleMs)
  return (deviceId, receivedAt) => {
    const stamp = Math.max(receivedAt, (last.touch(deviceId, receivedAt) ?? 0) + 1)
    last.set(deviceId, stamp, receivedAt)
    return stamp
  }
}

/** The value of a JSON object, or why the payload is not one. */
export const asObject = (body: unknown): Record<string, unknown> | string =>
  body !== null && typeof body === 'object' && !Array.isArray(body) ? (body as Record<string, unknown>) : 'expected a JSON object'
