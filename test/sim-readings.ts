/**
 * Simulated devices' readings exactly as ingest hands them to scoring, without a broker: each
 * edge-sim message is decoded by ingest's own decoder (for tests of scoring stages on known truth).
 */
import type { Reading } from '../ingest/index.ts'
import type { City, SimPolicy, StreamOptions } from '../edge-sim/index.ts'
import { decodedReadings } from '../bin/portfolio.ts'

/** Every reading of the policies' devices, per device in the order the device sends them. */
export const simReadings = (city: City, policies: readonly SimPolicy[], opts: StreamOptions): Reading[] =>
  policies.flatMap((policy) => [...decodedReadings(city, policy, opts)])
