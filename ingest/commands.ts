/**
 * Commands to devices (#24 item 1): ubiq tells a device to act, such as shutting the home's main
 * water valve when a leak is detected. Part of the device contract, versioned with it:
 *
 * - ubiq publishes a command on `ubiq/v1/cmd/{deviceId}/{command}` (QoS 1, not retained: a command
 *   that waited in a broker is stale), with its id, when it was issued and when it expires. Only
 *   ubiq's publisher may write there, and each device read only its own (ingest/broker.ts).
 * - The device acknowledges on its own namespace, `ubiq/v1/dev/{deviceId}/ack`, as it sends
 *   everything: the envelope (`seq`, `ts`), the command's id and what became of it.
 * - A device that speaks a foreign format (Zigbee2MQTT, Home Assistant) gets the command on that
 *   format's own command topic (adapters/), and its state report is the answer: the valve says it
 *   is closed. A native device's report confirms it the same way.
 *
 * Every command, acknowledgement and confirmation is recorded in the audit chain before it takes
 * effect (`record`), and the store is rebuilt from those records at start, as consent is. A
 * command's id is the audit hash of the record that sent it.
 */
import { Type, type Static } from '@sinclair/typebox'
import { payloadSchema, topics, type Reading } from './contract.ts'
import type { DeviceRegistry } from './registry.ts'
import type { Adapter } from './adapters/index.ts'
import { codes } from './errors.ts'

/**
 * The commands of contract v1, one line each: the stream a device must be registered for to get it
 * (so ubiq knows who has a valve), what it asks, how long it stands, and the report that confirms it.
 */
export const COMMANDS = {
  close_valve: {
    stream: 'valve',
    description: 'Shut the main water valve now',
    /** A valve shut minutes after the leak still saves water; one shut an hour later may cut off a household the plumber has already made safe. */
    ttlMs: 15 * 60_000,
    confirmedBy: (r: Reading) => r.kind === 'valve' && r.fields.valve_open === false,
  },
} as const satisfies Record<string, { stream: string; description: string; ttlMs: number; confirmedBy(r: Reading): boolean }>
export type CommandName = keyof typeof COMMANDS
export const COMMAND_NAMES = Object.keys(COMMANDS) as CommandName[]

/** The topic segment a device acknowledges commands under: `ubiq/v1/dev/{deviceId}/ack`. */
export const ACK_STREAM = 'ack'

/** What a device says became of a command: done, refused (it cannot: no valve, a manual override), or expired when it arrived. */
export const ACK_STATUSES = ['done', 'refused', 'expired'] as const
export type AckStatus = (typeof ACK_STATUSES)[number]

const ID = { pattern: '^[0-9a-f]{64}$', description: "The command's id (the audit hash of its record)" }

/** What ubiq publishes on `ubiq/v1/cmd/{deviceId}/{command}`. */
export const commandMessage = Type.Object({
  id: Type.String(ID),
  command: Type.String({ enum: COMMAND_NAMES, description: 'The command, as in the topic' }),
  issuedAt: Type.Integer({ minimum: 0, maximum: 8.64e15, description: 'When ubiq issued it, ms since the Unix epoch (server time)' }),
  expiresAt: Type.Integer({ minimum: 0, maximum: 8.64e15, description: 'Do not act on it after this, ms since the Unix epoch (server time): acknowledge `expired` instead' }),
  reason: Type.String({ maxLength: 200, description: 'Why, in words (the event behind it)' }),
}, { additionalProperties: false })
export type CommandMessage = Static<typeof commandMessage>

/** A device's acknowledgement on `ubiq/v1/dev/{deviceId}/ack`. */
export const ackMessage = payloadSchema({
  id: Type.String(ID),
  status: Type.String({ enum: [...ACK_STATUSES], description: 'done: carried out; refused: the device cannot (`detail` says why); expired: it arrived after `expiresAt`' }),
  detail: Type.Optional(Type.String({ maxLength: 200, description: 'Why, for a refusal' })),
})

/** A command's step, as recorded in the audit chain: sent, acknowledged by the device, or confirmed by its report. */
export interface CommandChange {
  policyId: string
  deviceId: string
  command: CommandName
  action: 'sent' | 'ack' | 'confirmed'
  /** When ubiq took the step, ISO 8601 (server time). */
  at: string
  /** sent: why, and until when it stands (ISO 8601). */
  reason?: string
  expiresAt?: string
  /** ack and confirmed: the command's id. */
  id?: string
  /** ack: what the device said, and its message's seq and device time. */
  status?: AckStatus
  detail?: string
  seq?: number
  deviceTs?: number
}
export type RecordedCommandChange = CommandChange & { hash: string }

/** A command as it stands. */
export interface Command {
  id: string
  policyId: string
  deviceId: string
  command: CommandName
  reason: string
  issuedAt: string
  expiresAt: string
  /** The device's acknowledgement, if any. */
  ack?: { status: AckStatus; at: string; detail?: string }
  /** When the device's report showed it carried out (the valve reported closed). */
  confirmedAt?: string
}

export interface CommandStore {
  /** Records a command to a device and sends it (onSent); returns it. */
  send(deviceId: string, command: CommandName, reason: string): Command
  /** Records a device's acknowledgement; throws UBIQ_ACK_INVALID for a command it was not sent. Undefined: already acknowledged. */
  ack(deviceId: string, ack: { id: string; status: AckStatus; detail?: string }, device: { seq: number; ts: number }): Command | undefined
  /** A device's stored reading: when it shows a command carried out before its expiry, the confirmation is recorded and the command returned. */
  observe(r: Reading): Command[]
  /** The device's commands, oldest first. */
  of(deviceId: string): Command[]
  /** Forgets the commands of an erased policy's devices (#21 item 5). */
  forget(deviceIds: readonly string[]): void
}

export interface CommandStoreOptions {
  registry: DeviceRegistry
  /** Steps recorded before, oldest first (the audit chain's command records). */
  history?: Iterable<RecordedCommandChange>
  /** Writes a step to the record and returns its hash; a throw leaves everything unchanged (nothing is sent). */
  record(change: CommandChange): string
  /** A command to publish (commandMessages gives its topics). */
  onSent(command: Command): void
  /** Told of every acknowledgement and confirmation once recorded. */
  onAnswer?(change: RecordedCommandChange, command: Command): void
  now?: () => number
}

/** The command store: in memory, rebuilt from the record. */
export function commandStore(opts: CommandStoreOptions): CommandStore {
  const now = opts.now ?? Date.now
  const byId = new Map<string, Command>()
  const byDevice = new Map<string, Command[]>()

  const apply = (c: RecordedCommandChange): Command | undefined => {
    if (c.action === 'sent') {
      const command: Command = { id: c.hash, policyId: c.policyId, deviceId: c.deviceId, command: c.command, reason: c.reason ?? '', issuedAt: c.at, expiresAt: c.expiresAt ?? c.at }
      byId.set(command.id, command)
      if (!byDevice.has(c.deviceId)) byDevice.set(c.deviceId, [])
      byDevice.get(c.deviceId)!.push(command)
      return command
    }
    const command = byId.get(c.id ?? '')
    if (command && c.action === 'ack') command.ack = { status: c.status!, at: c.at, ...(c.detail === undefined ? {} : { detail: c.detail }) }
    if (command && c.action === 'confirmed') command.confirmedAt = c.at
    return command
  }
  for (const c of opts.history ?? []) apply(c)
  /** On the record before it takes effect: a step that cannot be recorded does not happen. */
  const take = (change: CommandChange) => {
    const recorded = { ...change, hash: opts.record(change) }
    return { recorded, command: apply(recorded)! }
  }

  return {
    send(deviceId, command, reason) {
      const device = opts.registry.get(deviceId)
      if (!device) throw new codes.UBIQ_ACK_INVALID(`no device ${deviceId} in the device registry`)
      const t = now()
      const { command: sent } = take({ policyId: device.policyId, deviceId, command, action: 'sent', at: new Date(t).toISOString(), reason: reason.slice(0, 200), expiresAt: new Date(t + COMMANDS[command].ttlMs).toISOString() })
      opts.onSent(sent)
      return sent
    },
    ack(deviceId, ack, device) {
      // The schema's enum is for the docs: TypeBox checks a string's pattern, not its enum.
      if (!(ACK_STATUSES as readonly string[]).includes(ack.status)) throw new codes.UBIQ_ACK_INVALID(`/status: "${String(ack.status).slice(0, 20)}" is none of ${ACK_STATUSES.join(', ')}`)
      const command = byId.get(ack.id)
      if (!command || command.deviceId !== deviceId) throw new codes.UBIQ_ACK_INVALID(`/id: no command ${ack.id} was sent to ${deviceId}`)
      if (command.ack) return undefined // a redelivery, or a second answer: the first stands
      const { recorded } = take({ policyId: command.policyId, deviceId, command: command.command, action: 'ack', at: new Date(now()).toISOString(), id: command.id, status: ack.status, ...(ack.detail === undefined ? {} : { detail: ack.detail }), seq: device.seq, deviceTs: device.ts })
      opts.onAnswer?.(recorded, command)
      return command
    },
    observe(r) {
      const confirmed: Command[] = []
      // Every stored reading comes here: most devices have never had a command.
      for (const c of byDevice.get(r.deviceId) ?? []) {
        // Only a report heard while the command stood answers it (server time: adapted formats have no other):
        // one from before was not caused by it, and a valve closed by hand hours later is not its doing.
        if (c.confirmedAt !== undefined || r.receivedAt < Date.parse(c.issuedAt) || r.receivedAt > Date.parse(c.expiresAt) || !COMMANDS[c.command].confirmedBy(r)) continue
        const { recorded } = take({ policyId: c.policyId, deviceId: c.deviceId, command: c.command, action: 'confirmed', at: new Date(now()).toISOString(), id: c.id, seq: r.seq, deviceTs: r.ts })
        opts.onAnswer?.(recorded, c)
        confirmed.push(c)
      }
      return confirmed
    },
    of: (deviceId) => [...(byDevice.get(deviceId) ?? [])],
    forget(deviceIds) {
      for (const d of deviceIds) {
        for (const c of byDevice.get(d) ?? []) byId.delete(c.id)
        byDevice.delete(d)
      }
    },
  }
}

/** The command as published on `ubiq/v1/cmd/{deviceId}/{command}`. */
export const commandPayload = (c: Command): CommandMessage =>
  ({ id: c.id, command: c.command, issuedAt: Date.parse(c.issuedAt), expiresAt: Date.parse(c.expiresAt), reason: c.reason })

/**
 * The MQTT messages (QoS 1, not retained) that carry a command: on its v1 topic, and on the command
 * topics of the foreign formats the device has told ubiq of (a Zigbee2MQTT valve, a Home Assistant
 * valve with a command_topic). A device hears it in the format it speaks; the rest reach no one.
 */
export const commandMessages = (adapters: readonly Adapter[], c: Command): { topic: string; payload: string }[] => [
  { topic: topics.command(c.deviceId, c.command), payload: JSON.stringify(commandPayload(c)) },
  ...adapters.flatMap((a) => a.commands?.messages(c) ?? []),
]
