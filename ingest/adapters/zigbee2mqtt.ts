import { asObject, receiveStamps, type Adapter } from './adapter.ts'

/**
 * Zigbee2MQTT publishes each Zigbee device's state as JSON on `{base_topic}/{friendly_name}`. A home
 * hub runs it with `base_topic: zigbee2mqtt/{deviceId}` and connects as that device, so every sensor
 * of the home reports as the hub. The state's keys tell the kind of sensor (its "exposes"):
 * water_leak → leak, smoke → smoke, temperature → climate, contact → contact (Zigbee `contact: true`
 * means closed). Zigbee2MQTT sends no counter or device time: the receive time serves as both.
 */
const mappings: { key: string; kind: string; map(s: Record<string, unknown>): Record<string, unknown> }[] = [
  { key: 'water_leak', kind: 'leak', map: (s) => ({ leak_detected: s.water_leak }) },
  { key: 'smoke', kind: 'smoke', map: (s) => ({ smoke_detected: s.smoke, ...(s.co === undefined ? {} : { co_ppm: s.co }) }) },
  { key: 'temperature', kind: 'climate', map: (s) => ({ temp_c: s.temperature, ...(s.humidity === undefined ? {} : { humidity_pct: s.humidity }) }) },
  { key: 'contact', kind: 'contact', map: (s) => ({ open: typeof s.contact === 'boolean' ? !s.contact : s.contact }) },
]

/** `stamp`: the receive-time seqs and times, shared with the other formats of a device (createAdapters). */
export function zigbee2mqtt(stamp = receiveStamps()): Adapter {
  return {
    name: 'zigbee2mqtt',
    description: 'Zigbee2MQTT device state on `zigbee2mqtt/{deviceId}/{friendly_name}` (the hub runs Zigbee2MQTT with `base_topic: zigbee2mqtt/{deviceId}` and connects as that device) becomes a message of the hub, by the state\'s keys: water_leak → leak (leak_detected), smoke and co → smoke (smoke_detected, co_ppm), temperature and humidity → climate (temp_c, humidity_pct), contact → contact (open = not contact); battery → battery_pct; the receive time is seq and ts',
    filter: 'zigbee2mqtt/+/+',
    acl: 'pattern readwrite zigbee2mqtt/%u/#',
    payload: 'json',
    claims: (topic) => topic.startsWith('zigbee2mqtt/'),
    deviceId(topic) {
      const [, hub, name, ...rest] = topic.split('/')
      // …/bridge is Zigbee2MQTT's own; …/{name}/set is a command, not state.
      return hub && name && name !== 'bridge' && rest.length === 0 ? hub : undefined
    },
    adapt(_topic, deviceId, body, receivedAt) {
      const state = asObject(body)
      if (typeof state === 'string') return state
      const mapping = mappings.find((m) => m.key in state)
      if (!mapping) return `no supported sensor in the state (keys: ${Object.keys(state).slice(0, 10).join(', ')})`
      const battery = typeof state.battery === 'number' ? { battery_pct: state.battery } : {}
      const at = stamp(deviceId, receivedAt)
      return { kind: mapping.kind, body: { seq: at, ts: at, ...mapping.map(state), ...battery } }
    },
  }
}
