/** The adapter catalogue: one line per foreign format. */
import { receiveStamps, type Adapter } from './adapter.ts'
import { homeAssistant } from './home-assistant.ts'
import { owntracks } from './owntracks.ts'
import { zigbee2mqtt } from './zigbee2mqtt.ts'

export type { Adapter } from './adapter.ts'

/**
 * A fresh set of adapters (some keep state: Home Assistant's bindings, a file per device in
 * `discoveryDir`). The formats without a counter share one receive-time stamp per device: a hub
 * speaking Zigbee2MQTT and Home Assistant heard twice in one millisecond (a backlog after a
 * restart) gave both messages the same seq, and the second, a leak alarm as well as anything, was
 * dropped as a redelivery (#20, found by the fuzz harness).
 */
export const createAdapters = (options: { discoveryDir?: string } = {}): readonly Adapter[] => {
  const stamp = receiveStamps()
  return [
    owntracks(),
    zigbee2mqtt(stamp),
    homeAssistant({ dir: options.discoveryDir, stamp }),
  ]
}
