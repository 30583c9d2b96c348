/** The adapter catalogue: one line per foreign format. */
import type { Adapter } from './adapter.ts'
import { owntracks } from './owntracks.ts'
import { zigbee2mqtt } from './zigbee2mqtt.ts'

export type { Adapter } from './adapter.ts'

export const adapters: readonly Adapter[] = [
  owntracks,
  zigbee2mqtt,
]
