/** The adapter catalogue: one line per foreign format. */
import type { Adapter } from './adapter.ts'
import { owntracks } from './owntracks.ts'

export type { Adapter } from './adapter.ts'

export const adapters: readonly Adapter[] = [
  owntracks,
]
