import type { Adapter } from './adapter.ts'

/**
 * Zigbee2MQTT publishes each Zigbee device's state as JSON on `zigbee2mqtt/{friendly_name}`.
 * The state's keys tell the kind of sensor (its "exposes"): water_leak → leak, smoke → smoke,
 * temperature → climate, contact → contact (Zigbee `contact: true` means closed). Zigbee2MQTT
 * sends no counter or device time: the receive time serves as both.
 */
const mappings: { key: string; kind: string; map(s: Record<string, unknown>): Record<string, unknown> }[] = [
  { key: 'water_leak', kind: 'leak', map: (s) => ({ leak_detected: s.water_leak }) },
  { key: 'smoke', kind: 'smoke', map: (s) => ({ smoke_detected: s.smoke, ...(s.co === undefined ? {} : { co_ppm: s.co }) }) },
  { key: 'temperature', kind: 'climate', map: (s) => ({ temp_c: s.temperature, ...(s.humidity === undefined ? {} : { humidity_pct: s.humidity }) }) },
  { key: 'contact', kind: 'contact', map: (s) => ({ open: typeof s.contact === 'boolean' ? !s.contact : s.contact }) },
]

export const zigbee2mqtt: Adapter = {
  name: 'zigbee2mqtt',
  description: 'Zigbee2MQTT device state on `zigbee2mqtt/{friendly_name}` becomes a message of device `{friendly_name}`, by the state\'s keys: water_leak → leak (leak_detected), smoke and co → smoke (smoke_detected, co_ppm), temperature and humidity → climate (temp_c, humidity_pct), contact → contact (open = not contact); battery → battery_pct; the receive time is seq and ts',
  filter: 'zigbee2mqtt/+',
  claims: (topic) => topic.startsWith('zigbee2mqtt/'),
  deviceId(topic) {
    const [, name, ...rest] = topic.split('/')
    // zigbee2mqtt/bridge/… is Zigbee2MQTT's own; zigbee2mqtt/{name}/set is a command, not state.
    return name && name !== 'bridge' && rest.length === 0 ? name : undefined
  },
  adapt(body, receivedAt) {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) return 'expected a JSON object'
    const state = body as Record<string, unknown>
    const mapping = mappings.find((m) => m.key in state)
    if (!mapping) return `no supported sensor in the state (keys: ${Object.keys(state).slice(0, 10).join(', ')})`
    const battery = typeof state.battery === 'number' ? { battery_pct: state.battery } : {}
    return { kind: mapping.kind, body: { seq: receivedAt, ts: receivedAt, ...mapping.map(state), ...battery } }
  },
}
