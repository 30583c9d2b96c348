/**
 * The device registry: which policy a device belongs to and which streams it may send. Read from a
 * JSON file (DEVICE_REGISTRY) by `ubiq start`; the demo builds it from its simulated fleet.
 */
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { ID_PATTERN } from './contract.ts'
import { SERVICE_USERS } from './broker.ts'
import { sensorsByKind } from './sensors/index.ts'
import { codes } from './errors.ts'

export const DeviceEntry = Type.Object({
  deviceId: Type.String({ pattern: ID_PATTERN }),
  policyId: Type.String({ pattern: ID_PATTERN }),
  /** Streams the policyholder consented to; anything else is rejected, not stored. */
  kinds: Type.Array(Type.String({ pattern: ID_PATTERN }), { minItems: 1, uniqueItems: true }),
  /** When the device was registered (ISO 8601); messages from before are rejected. */
  registeredAt: Type.Optional(Type.String({ pattern: '^\\d{4}-\\d{2}-\\d{2}' })),
}, { additionalProperties: false })
export type DeviceEntry = Static<typeof DeviceEntry>

const RegistryFile = Type.Object({ devices: Type.Array(DeviceEntry) }, { additionalProperties: false })
const checkFile = TypeCompiler.Compile(RegistryFile)

/** A registry entry, with its registration time parsed once. */
export type RegisteredDevice = DeviceEntry & { registeredAtMs?: number }

/** Lookup from device id to its entry. */
export type DeviceRegistry = ReadonlyMap<string, RegisteredDevice>

/** Builds a registry from entries; a device listed twice (or with a reserved id, an unknown stream, a bad time) is a UBIQ_REGISTRY_… error. */
export function deviceRegistry(entries: readonly DeviceEntry[]): DeviceRegistry {
  const map = new Map<string, RegisteredDevice>()
  for (const e of entries) {
    if (map.has(e.deviceId)) throw new codes.UBIQ_REGISTRY_DUPLICATE(e.deviceId)
    // A device's id is its MQTT username: one named as a service user would share the service's
    // password entry, ACL (every device stream) and client id (ingest's persistent session) (#20).
    if (SERVICE_USERS.includes(e.deviceId)) {
      throw new codes.UBIQ_REGISTRY_RESERVED_ID(e.deviceId, e.deviceId, SERVICE_USERS.join(', '))
    }
    const unknown = e.kinds.filter((k) => !sensorsByKind.has(k))
    if (unknown.length) {
      throw new codes.UBIQ_REGISTRY_UNKNOWN_STREAM(e.deviceId, unknown.map((k) => `"${k}"`).join(', '), [...sensorsByKind.keys()].join(', '))
    }
    const registeredAtMs = e.registeredAt === undefined ? undefined : Date.parse(e.registeredAt)
    if (Number.isNaN(registeredAtMs)) throw new codes.UBIQ_REGISTRY_BAD_TIME(e.deviceId, String(e.registeredAt))
    map.set(e.deviceId, registeredAtMs === undefined ? e : { ...e, registeredAtMs })
  }
  return map
}

/** Parses the registry file's text, throwing an error that names the first problem. */
export function parseDeviceRegistry(text: string): DeviceRegistry {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (err) {
    throw new codes.UBIQ_REGISTRY_NOT_JSON((err as Error).message)
  }
  const first = checkFile.Errors(data).First()
  if (first) throw new codes.UBIQ_REGISTRY_INVALID(first.path || '/', first.message)
  return deviceRegistry((data as Static<typeof RegistryFile>).devices)
}
