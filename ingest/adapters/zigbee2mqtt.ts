import { asObject, receiveStamps, type Adapter } from './adapter.ts'
import { idleMap } from '../idle-map.ts'

/**
 * Zigbee2MQTT publishes each Zigbee device's state as JSON on `{base_topic}/{friendly_name}`. A home
 * hub runs it with `base_topic: zigbee2mqtt/{deviceId}` and connects as that device, so every sensor
 * of the home reports as the hub. The state's keys tell the kind of sensor (its "exposes"):
 * water_leak → leak, smoke → smoke, temperature → climate, contact → contact (Zigbee `contact: true`
 * means closed). Zigbee2MQTT sends no counter or device time: the receive time serves as both.
 *
 * A water valve reports `state` ON (open) or OFF, as switches and plugs do: a device whose friendly
 * name contains "valve" is taken for one (#24). ubiq closes it with Zigbee2MQTT's own command,
 * `{"state":"OFF"}` on `zigbee2mqtt/{deviceId}/{friendly_name}/set`, and its next state confirms it.
 */
const mappings: { key: string; kind: string; name?: RegExp; map(s: Record<string, unknown>): Record<string, unknown> | string }[] = [
  { key: 'water_leak', kind: 'leak', map: (s) => ({ leak_detected: s.water_leak }) },
  { key: 'smoke', kind: 'smoke', map: (s) => ({ smoke_detected: s.smoke, ...(s.co === undefined ? {} : { co_ppm: s.co }) }) },
  { key: 'temperature', kind: 'climate', map: (s) => ({ temp_c: s.temperature, ...(s.humidity === undefined ? {} : { humidity_pct: s.humidity }) }) },
  { key: 'contact', kind: 'contact', map: (s) => ({ open: typeof s.contact === 'boolean' ? !s.contact : s.contact }) },
  { key: 'state', kind: 'valve', name: /valve/i, map: (s) => (s.state === 'ON' || s.state === 'OFF' ? { valve_open: s.state === 'ON' } : 'a valve\'s state is ON or OFF') },
]

/** `stamp`: the receive-time seqs and times, shared with the other formats of a device (createAdapters). */
export function zigbee2mqtt(stamp = receiveStamps()): Adapter {
  /** Each hub's valves by friendly name, as last heard (a week without a report forgets them: the valve heartbeats every 6 h). */
  const valves = idleMap<Set<string>>(7 * 86_400_000)
  return {
    name: 'zigbee2mqtt',
    description: 'Zigbee2MQTT device state on `zigbee2mqtt/{deviceId}/{friendly_name}` (the hub runs Zigbee2MQTT with `base_topic: zigbee2mqtt/{deviceId}` and connects as that device) becomes a message of the hub, by the state\'s keys: water_leak → leak (leak_detected), smoke and co → smoke (smoke_detected, co_ppm), temperature and humidity → climate (temp_c, humidity_pct), contact → contact (open = not contact), state (ON/OFF) of a device named `…valve…` → valve (valve_open); battery → battery_pct; the receive time is seq and ts. close_valve is sent as `{"state":"OFF"}` on `zigbee2mqtt/{deviceId}/{friendly_name}/set` to every valve the hub has reported',
    filter: 'zigbee2mqtt/+/+',
    acl: 'pattern readwrite zigbee2mqtt/%u/#',
    payload: 'json',
    claims: (topic) => topic.startsWith('zigbee2mqtt/'),
    deviceId(topic) {
      const [, hub, name, ...rest] = topic.split('/')
      // …/bridge is Zigbee2MQTT's own; …/{name}/set is a command, not state.
      return hub && name && name !== 'bridge' && rest.length === 0 ? hub : undefined
    },
    adapt(topic, deviceId, body, receivedAt) {
      const state = asObject(body)
      if (typeof state === 'string') return state
      const name = topic.split('/')[2]!
      const mapping = mappings.find((m) => m.key in state && (!m.name || m.name.test(name)))
      if (!mapping) return `no supported sensor in the state (keys: ${Object.keys(state).slice(0, 10).join(', ')})`
      const fields = mapping.map(state)
      if (typeof fields === 'string') return fields
      if (mapping.kind === 'valve') {
        const known = valves.touch(deviceId, receivedAt) ?? new Set<string>()
        valves.set(deviceId, known.add(name), receivedAt)
      }
      const battery = typeof state.battery === 'number' ? { battery_pct: state.battery } : {}
      const at = stamp(deviceId, receivedAt)
      return { kind: mapping.kind, body: { seq: at, ts: at, ...fields, ...battery } }
    },
    commands: {
      acl: 'topic write zigbee2mqtt/+/+/set',
      messages: (c) => (c.command === 'close_valve' ? [...valves.get(c.deviceId) ?? []].map((name) => ({ topic: `zigbee2mqtt/${c.deviceId}/${name}/set`, payload: JSON.stringify({ state: 'OFF' }) })) : []),
    },
  }
}
