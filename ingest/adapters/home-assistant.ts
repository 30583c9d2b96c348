import { mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { asObject, receiveStamps, type Adapter } from './adapter.ts'

/**
 * Home Assistant MQTT discovery (home-assistant.io/integrations/mqtt#mqtt-discovery). A device
 * announces each entity with a retained JSON config on
 * `homeassistant/{component}/{deviceId}/{object_id}/config` that names the entity's state topic;
 * its device class says what the state means. ubiq binds the state topic to a stream and stores each
 * state as a message of the device. `{deviceId}` (HA's node_id) is the device's MQTT user: the ACL
 * lets it write only under `homeassistant/+/{deviceId}/`, so its state topics must lie there too,
 * or a config could bind another device's topic.
 *
 * The bindings are kept in a file: after a restart, the states the broker queued for ubiq's
 * persistent session arrive before the retained configs are sent again.
 */

/** What an entity becomes: a stream, the field its state fills, and how its state reads. */
interface Mapping {
  kind: string
  field: string
  state: 'binary' | 'temperature' | 'valve'
}

const binary = (kind: string, field: string): Mapping => ({ kind, field, state: 'binary' })
/** By `{component}/{device_class}`. */
const mappings: Record<string, Mapping> = {
  'binary_sensor/moisture': binary('leak', 'leak_detected'),
  'binary_sensor/smoke': binary('smoke', 'smoke_detected'),
  'binary_sensor/door': binary('contact', 'open'),
  'binary_sensor/window': binary('contact', 'open'),
  'binary_sensor/opening': binary('contact', 'open'),
  'binary_sensor/garage_door': binary('contact', 'open'),
  'sensor/temperature': { kind: 'climate', field: 'temp_c', state: 'temperature' },
  'valve/water': { kind: 'valve', field: 'valve_open', state: 'valve' },
  'valve/': { kind: 'valve', field: 'valve_open', state: 'valve' },
}

interface Binding {
  configTopic: string
  stateTopic: string
  mapping: Mapping
  /** The key path a `{{ value_json.a.b }}` template reads; undefined: the payload is the value. */
  path?: string[]
  /** The states meaning true (on, open) and false (off, closed). */
  on: unknown
  off: unknown
  fahrenheit: boolean
  /** A valve's command topic and the payload that closes it (#24): ubiq's close_valve goes there. */
  command?: { topic: string; close: string }
}

const isConfigTopic = (parts: string[]) => parts.at(-1) === 'config' && (parts.length === 4 || parts.length === 5)

/** Reads the config's parts ubiq uses (long names or HA's abbreviations), or says what is wrong. */
function bind(configTopic: string, deviceId: string, config: Record<string, unknown>): Binding | string {
  const option = (name: string, abbreviation: string) => config[name] ?? config[abbreviation]
  const component = configTopic.split('/')[1]!
  const deviceClass = option('device_class', 'dev_cla')
  const mapping = mappings[`${component}/${typeof deviceClass === 'string' ? deviceClass : ''}`]
  if (!mapping) {
    return `${component} of device class "${String(deviceClass).slice(0, 40)}" is not a ubiq stream (mapped: ${Object.keys(mappings).join(', ')})`
  }
  const base = config['~']
  const givenTopic = option('state_topic', 'stat_t')
  if (typeof givenTopic !== 'string') return 'no state_topic'
  let stateTopic = givenTopic
  if (typeof base === 'string') {
    stateTopic = stateTopic.startsWith('~') ? base + stateTopic.slice(1) : stateTopic.endsWith('~') ? stateTopic.slice(0, -1) + base : stateTopic
  }
  const parts = stateTopic.split('/')
  if (parts[0] !== 'homeassistant' || parts[2] !== deviceId || parts.length < 4 || isConfigTopic(parts) || /[+#]/.test(stateTopic)) {
    return `state_topic must lie under homeassistant/{component}/${deviceId}/ (the device's own topics)`
  }
  const template = option('value_template', 'val_tpl')
  let path: string[] | undefined
  if (template !== undefined) {
    const match = typeof template === 'string' ? /^\{\{\s*value_json((?:\.\w+|\[\s*'[^']*'\s*\]|\[\s*"[^"]*"\s*\])+)\s*\}\}$/.exec(template.trim()) : null
    if (!match) return 'value_template: only {{ value_json.key }} is supported'
    path = [...match[1]!.matchAll(/\.(\w+)|\[\s*['"]([^'"]*)['"]\s*\]/g)].map((m) => m[1] ?? m[2]!)
  }
  // A valve's command topic, where ubiq's close_valve goes: under the valve's own topics, where the ACL lets ubiq's publisher write.
  const commandTopic = mapping.state === 'valve' ? option('command_topic', 'cmd_t') : undefined
  let command: Binding['command']
  if (commandTopic !== undefined) {
    const topic = typeof commandTopic === 'string' && typeof base === 'string' ? commandTopic.replace(/^~/, base).replace(/~$/, base) : commandTopic
    if (typeof topic !== 'string' || !topic.startsWith(`homeassistant/valve/${deviceId}/`) || isConfigTopic(topic.split('/')) || /[+#]/.test(topic) || topic === stateTopic) {
      return `command_topic must lie under homeassistant/valve/${deviceId}/, apart from the state topic`
    }
    command = { topic, close: String(option('payload_close', 'pl_cls') ?? 'CLOSE') }
  }
  const unit = option('unit_of_measurement', 'unit_of_meas') ?? '°C'
  if (mapping.state === 'temperature' && unit !== '°C' && unit !== '°F') return `unit_of_measurement "${String(unit).slice(0, 10)}" is not °C or °F`
  const [on, off] = mapping.state === 'valve'
    ? [option('state_open', 'stat_open') ?? 'open', option('state_closed', 'stat_clsd') ?? 'closed']
    : [option('payload_on', 'pl_on') ?? 'ON', option('payload_off', 'pl_off') ?? 'OFF']
  return { configTopic, stateTopic, mapping, ...(path ? { path } : {}), on, off, fahrenheit: unit === '°F', ...(command ? { command } : {}) }
}

/** The state's value for the binding's field, or why there is none (never quoting the state). */
function read(b: Binding, text: string): number | boolean | string {
  let value: unknown = text
  if (b.path) {
    try {
      value = JSON.parse(text)
    } catch {
      return 'state is not JSON, but the value_template reads value_json'
    }
    for (const key of b.path) value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined
    if (value === undefined) return `state has no ${b.path.join('.')}`
  }
  if (b.mapping.state === 'temperature') {
    const n = typeof value === 'number' ? value : typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN
    if (!Number.isFinite(n)) return 'state is not a number'
    return b.fahrenheit ? ((n - 32) * 5) / 9 : n
  }
  const is = (expected: unknown) => value === expected || String(value) === String(expected)
  if (is(b.on)) return true
  if (is(b.off)) return false
  return `state is neither ${JSON.stringify(b.on)} nor ${JSON.stringify(b.off)}`
}

/**
 * What one device may keep: entities (a hub's sensors; Home Assistant installs run tens per home)
 * and the size of each config (HA's run to a few hundred bytes). Without them one device's configs
 * grew the state without bound (#20: 40 configs of 8.4 MB took 3.6 s of ingest).
 */
export const discoveryLimits = { configsPerDevice: 64, configBytes: 4096 }

/**
 * `dir`: where each device's accepted configs are kept, one file a device, so a change rewrites
 * that device's file only; `stamp`: the receive-time seqs and times, shared with the other formats
 * of a device (createAdapters).
 */
export function homeAssistant(options: { dir?: string; stamp?: (deviceId: string, receivedAt: number) => number } = {}): Adapter {
  /** Accepted configs by config topic, as the device sent them (what the file keeps). */
  const configs = new Map<string, Record<string, unknown>>()
  /** By state topic. */
  const bindings = new Map<string, Binding>()
  const stamp = options.stamp ?? receiveStamps()

  const unbind = (configTopic: string) => {
    if (!configs.delete(configTopic)) return
    for (const [topic, b] of bindings) if (b.configTopic === configTopic) bindings.delete(topic)
  }
  const configure = (configTopic: string, deviceId: string, text: string): string | null => {
    unbind(configTopic)
    // An empty (retained) config removes the entity.
    if (text === '') return null
    if (Buffer.byteLength(text) > discoveryLimits.configBytes) return `discovery config: ${Buffer.byteLength(text)} bytes, more than ${discoveryLimits.configBytes}`
    if (topicsOf(deviceId).length >= discoveryLimits.configsPerDevice) return `discovery config: device ${deviceId} already has ${discoveryLimits.configsPerDevice} entities, the most one device may have`
    let config: unknown
    try {
      config = JSON.parse(text)
    } catch {
      return 'discovery config is not JSON'
    }
    const object = asObject(config)
    if (typeof object === 'string') return `discovery config: ${object}`
    const binding = bind(configTopic, deviceId, object)
    if (typeof binding === 'string') return `discovery config: ${binding}`
    const other = bindings.get(binding.stateTopic)
    if (other) return `discovery config: its state topic is already bound by ${other.configTopic}`
    bindings.set(binding.stateTopic, binding)
    configs.set(configTopic, object)
    return null
  }
  const deviceOf = (configTopic: string) => configTopic.split('/')[2]!
  const topicsOf = (deviceId: string) => [...configs.keys()].filter((topic) => deviceOf(topic) === deviceId)
  /** Rewrites one device's file (at most its limits' worth), or removes it when it has no entity left. */
  const save = (deviceId: string) => {
    if (!options.dir) return
    const file = join(options.dir, `${deviceId}.json`)
    const mine = topicsOf(deviceId)
    if (mine.length === 0) return rmSync(file, { force: true })
    writeFileSync(`${file}.tmp`, JSON.stringify(Object.fromEntries(mine.map((topic) => [topic, configs.get(topic)]))), { mode: 0o600 })
    renameSync(`${file}.tmp`, file) // atomic: a crash leaves the old file or the new one
  }

  if (options.dir) {
    mkdirSync(options.dir, { recursive: true, mode: 0o700 })
    for (const name of readdirSync(options.dir).filter((n) => n.endsWith('.json')).sort()) {
      let saved: Record<string, Record<string, unknown>>
      try {
        saved = JSON.parse(readFileSync(join(options.dir, name), 'utf8')) as typeof saved
      } catch (err) {
        throw new Error(`Home Assistant discovery state ${join(options.dir, name)}: ${(err as Error).message}`)
      }
      for (const [topic, config] of Object.entries(saved)) configure(topic, deviceOf(topic), JSON.stringify(config))
    }
  }

  return {
    name: 'homeassistant',
    description: 'Home Assistant MQTT discovery: a retained config on `homeassistant/{component}/{deviceId}/{object_id}/config` (the device connects as `{deviceId}`, HA\'s node_id) binds its `state_topic`, which must lie under `homeassistant/{component}/{deviceId}/`. By component and device class: binary_sensor moisture → leak (leak_detected), smoke → smoke (smoke_detected), door, window, opening, garage_door → contact (open); sensor temperature (°C or °F) → climate (temp_c); valve (water or none) → valve (valve_open), and close_valve is sent as its `payload_close` (default CLOSE) on its `command_topic`, which must lie under `homeassistant/valve/{deviceId}/`. Honours `~`, HA\'s abbreviations, payload_on/off, state_open/closed and `{{ value_json.key }}` templates; an empty config removes the entity; the receive time is seq and ts',
    filter: 'homeassistant/#',
    acl: 'pattern readwrite homeassistant/+/%u/#',
    payload: 'text',
    claims: (topic) => topic.startsWith('homeassistant/'),
    deviceId(topic) {
      const parts = topic.split('/')
      return parts.length >= 4 && parts[2] ? parts[2] : undefined
    },
    adapt(topic, deviceId, payload, receivedAt) {
      const text = payload as string
      if (isConfigTopic(topic.split('/'))) {
        // Retained configs come again on every subscribe: only a change is written to the file.
        const before = JSON.stringify(configs.get(topic))
        const problem = configure(topic, deviceId, text)
        if (JSON.stringify(configs.get(topic)) !== before) save(deviceId)
        return problem
      }
      const binding = bindings.get(topic)
      // ubiq's own commands come back through ingest's subscription: nothing to store.
      if (!binding && [...bindings.values()].some((b) => b.command?.topic === topic)) return null
      if (!binding) return 'no discovery config names this state topic'
      const value = read(binding, text)
      if (typeof value === 'string') return value
      const at = stamp(deviceId, receivedAt)
      return { kind: binding.mapping.kind, body: { seq: at, ts: at, [binding.mapping.field]: value } }
    },
    commands: {
      acl: 'topic write homeassistant/valve/#',
      messages: (c) => (c.command === 'close_valve'
        ? [...bindings.values()].filter((b) => b.command && deviceOf(b.configTopic) === c.deviceId).map((b) => ({ topic: b.command!.topic, payload: b.command!.close }))
        : []),
    },
  }
}
