/**
 * An adapter turns a format devices already speak into a message of the v1 contract, which then
 * goes through exactly the same registry, consent and schema checks as a native message.
 */
export interface Adapter {
  name: string
  /** For the contract docs: what it maps, and how. */
  description: string
  /** MQTT subscription filter for the format's topics. */
  filter: string
  /** True when `topic` is this format's. */
  claims(topic: string): boolean
  /** The ubiq device id a topic of this format belongs to, or undefined when it names none. */
  deviceId(topic: string): string | undefined
  /**
   * The contract stream and payload for a parsed message, or why there is none. Never throws.
   * `receivedAt` stands in for a device time and counter in formats that carry none.
   */
  adapt(body: unknown, receivedAt: number): { kind: string; body: Record<string, unknown> } | string
}
