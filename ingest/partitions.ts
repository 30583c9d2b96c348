/**
 * Several InfluxDBs, one partition of the policies each (issue #25 item 4): one InfluxDB holds
 * what one machine can, a fleet of 10⁵–10⁶ devices may need more. Each policy's points, and so its
 * devices' readings, go whole to one InfluxDB, chosen by a stable hash of the policy id
 * (`partitionOf`), so that everything a policy's questions read (its restore, trips, claims
 * evidence, route, export) is in one place and asked there (`Influx.of`). Questions across
 * policies are asked of every InfluxDB (`Influx.query`), and their answers put together by their
 * asker: series of different policies side by side; counts and sums of the same bucket added
 * (docs/scale-out.md section 1).
 */
import { createHash } from 'node:crypto'
import type { Influx } from './influx.ts'

/**
 * The partition, 0 to n-1, of a policy among n InfluxDBs: the first 4 bytes of the SHA-256 of its
 * id, big-endian, modulo n. Stable across processes and restarts, and easy to compute elsewhere
 * (an analyst's own tools); it changes with n, so a deployment keeps its list of InfluxDBs.
 */
export function partitionOf(policyId: string, n: number): number {
  return n === 1 ? 0 : createHash('sha256').update(policyId).digest().readUInt32BE(0) % n
}

/** A tag's value in a line's series key, unescaped; undefined without that tag. */
function tagOf(line: string, key: string): string | undefined {
  const m = new RegExp(`(?<!\\\\),${key}=((?:\\\\.|[^,\\\\ ])*)`).exec(line.slice(0, seriesKeyEnd(line)))
  return m ? m[1]!.replace(/\\(.)/g, '$1') : undefined
}

/** Where a line's series key (measurement and tags) ends: its first unescaped space. */
function seriesKeyEnd(line: string): number {
  for (let i = 0; i < line.length; i++) {
    if (line[i] === '\\') i++
    else if (line[i] === ' ') return i
  }
  return line.length
}

/**
 * The InfluxDBs `shards` as one store. A line goes to its policy's InfluxDB: the `policy_id` tag of
 * derived measurements (scores, premiums, trips, events…), or for telemetry, tagged by device only
 * (privacy by design: ingest.ts), the policy `policyOf` its `device_id` (the device registry). A
 * line of neither (a device no longer registered, after an erasure) goes by its device id, or to
 * the first InfluxDB: questions across policies still find it, as they ask every one.
 */
export function influxFleet(shards: readonly Influx[], policyOf: (deviceId: string) => string | undefined): Influx {
  const n = shards.length
  // A call's lines are mostly one device's or one policy's: the last key is remembered.
  let last = { key: '', shard: 0 }
  const shardOfLine = (line: string): number => {
    const end = seriesKeyEnd(line)
    if (last.key.length === end && line.startsWith(last.key)) return last.shard
    const policyId = tagOf(line, 'policy_id')
    const deviceId = policyId === undefined ? tagOf(line, 'device_id') : undefined
    const key = policyId ?? (deviceId === undefined ? undefined : policyOf(deviceId) ?? deviceId)
    last = { key: line.slice(0, end), shard: key === undefined ? 0 : partitionOf(key, n) }
    return last.shard
  }
  const every = async (f: (shard: Influx) => Promise<void>) => void (await Promise.all(shards.map(f)))
  return {
    write(lines) {
      const byShard = shards.map((): string[] => [])
      for (const line of lines) byShard[shardOfLine(line)]!.push(line)
      byShard.forEach((ls, i) => ls.length > 0 && shards[i]!.write(ls))
    },
    onRefused: (listener) => shards.forEach((s) => s.onRefused(listener)),
    // Every InfluxDB's series, one after the other: a series key may come once from each.
    query: async (q, method) => (await Promise.all(shards.map((s) => s.query(q, method)))).flat(),
    of: (policyId) => shards[partitionOf(policyId, n)]!,
    // Every InfluxDB has the same retention policies (connectInflux makes them).
    oldestKept: (measurement, now) => shards[0]!.oldestKept(measurement, now),
    flush: () => every((s) => s.flush()),
    close: () => every((s) => s.close()),
  }
}
