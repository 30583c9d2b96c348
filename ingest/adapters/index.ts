/** The adapter catalogue: one line per foreign format. */
import type { Adapter } from './adapter.ts'
import { homeAssistant } from './home-assistant.ts'
import { owntracks } from './owntracks.ts'
import { zigbee2mqtt } from './zigbee2mqtt.ts'

export type { Adapter } from './adapter.ts'

/** A fresh set of adapters (some keep state: Home Assistant's bindings, a file per device in `discoveryDir`). */
export const createAdapters = (options: { discoveryDir?: string } = {}): readonly Adapter[] => [
  owntracks(),
  zigbee2mqtt(),
  homeAssistant({ dir: options.discoveryDir }),
]
