/** Fault injection: each fault at its configured rate (binomial tolerance), as ingest will see it. */
import t from 'tap'
import { createAdapters, decodeMessage, deviceRegistry, isRejection, topics } from '../ingest/index.ts'
import { registryEntry, toMessages, type DeviceMessage } from './device-streams.ts'
import { emptyFaultReport, injectFaults, type FaultConfig, type FaultReport } from './faults.ts'
import { liveHealth } from './health.ts'

const start = Date.UTC(2026, 2, 2)
// A real device stream (a month of a wearable: about 11,000 messages of four kinds) to spoil.
const clean = [...toMessages('wear-1', liveHealth({ persona: 'active', seed: 3 }, { startTs: start, days: 30 }))]
const N = clean.length
const cfg = {
  registry: deviceRegistry([registryEntry('wear-1', 'pol-1', 'wearable'), registryEntry('wear-2', 'pol-2', 'wearable'), registryEntry('wear-3', 'pol-3', 'wearable')]),
  maxPayloadBytes: 65536, maxFutureSkewMs: 300_000, adapters: createAdapters(),
}
const decode = (m: DeviceMessage) => decodeMessage(cfg, m.topic, Buffer.from(m.payload), m.sendAt + 1000)!

const all: FaultConfig = {
  outOfRange: 0.01, malformed: 0.02, foreignTopic: { rate: 0.005, deviceIds: ['wear-1', 'wear-2', 'wear-3'] },
  offline: { rate: 0.002, duration_s: [600, 3600] }, reorder: { rate: 0.03, maxLater: 5 }, duplicate: 0.04,
}
function run(config: FaultConfig, seed = 1): { out: DeviceMessage[]; report: FaultReport } {
  const report = emptyFaultReport()
  return { out: [...injectFaults(clean, config, seed, report)], report }
}
/** Within 4 standard deviations of a binomial(n, p) count. */
const binomial = (k: number, n: number, p: number) => Math.abs(k - n * p) <= 4 * Math.sqrt(n * p * (1 - p)) + 1
const has = (m: DeviceMessage, f: string) => m.faults?.includes(f as never) ?? false

t.test('without faults the stream passes through untouched', async (t) => {
  const { out, report } = run({})
  t.same(out, clean)
  t.match(report, { messages: N, delivered: N, duplicate: 0, reordered: 0 })
})

t.test('each fault occurs at its configured rate, and is reported', async (t) => {
  const { out, report } = run(all)
  t.equal(report.messages, N)
  t.equal(report.delivered, out.length)
  t.equal(out.length, N + report.duplicate, 'only duplicates add messages')
  t.ok(binomial(report.outOfRange, N, 0.01), `out of range: ${report.outOfRange} of ${N} (1%)`)
  t.ok(binomial(report.malformed, N, 0.02), `malformed: ${report.malformed} (2%)`)
  t.ok(binomial(report.foreignTopic, N, 0.005), `foreign topic: ${report.foreignTopic} (0.5%)`)
  t.ok(binomial(report.reordered, N, 0.03), `reordered: ${report.reordered} (3%)`)
  t.ok(binomial(report.duplicate, N, 0.04), `duplicated: ${report.duplicate} (4%)`)
  // A period can only start at a message that is not already buffered.
  const eligible = N - (report.offline.buffered - report.offline.periods)
  t.ok(report.offline.periods > 5 && binomial(report.offline.periods, eligible, 0.002), `offline periods: ${report.offline.periods} of ${eligible} chances (0.2%), ${report.offline.buffered} messages buffered`)
  for (const [fault, count] of [['out_of_range', report.outOfRange], ['malformed', report.malformed], ['foreign_topic', report.foreignTopic], ['reordered', report.reordered], ['duplicate', report.duplicate], ['offline', report.offline.buffered]] as const) {
    t.equal(out.filter((m) => has(m, fault)).length, count + (fault === 'duplicate' ? 0 : out.filter((m) => has(m, 'duplicate') && has(m, fault)).length), `${fault}: every injected message is tagged`)
  }
})

t.test('delivery order: bursts after offline periods, late messages, duplicates', async (t) => {
  const { out } = run(all)
  t.ok(out.every((m, i) => i === 0 || m.sendAt >= out[i - 1]!.sendAt), 'sendAt never goes back')
  const buffered = out.filter((m) => has(m, 'offline'))
  t.ok(buffered.every((m) => m.sendAt > m.ts), 'buffered messages go out after they were taken')
  const bursts = new Map<number, number>()
  for (const m of buffered) bursts.set(m.sendAt, (bursts.get(m.sendAt) ?? 0) + 1)
  t.ok([...bursts.values()].some((n) => n >= 3), `back online, the backlog goes out at once: bursts of ${[...bursts.values()].join(', ')}`)
  const late = out.filter((m) => has(m, 'reordered') && !has(m, 'duplicate'))
  t.ok(late.every((m) => out.some((o) => o.seq > m.seq && out.indexOf(o) < out.indexOf(m))), 'a reordered message comes after a later one')
  const copies = out.filter((m) => has(m, 'duplicate'))
  t.ok(copies.every((c) => out.filter((m) => m.seq === c.seq && m.payload === c.payload).length === 2), 'a duplicate repeats seq and payload')
  t.same(out.map((m) => m.seq).sort((a, b) => a - b).filter((s, i, xs) => s !== xs[i - 1]), clean.map((m) => m.seq), 'nothing is lost')
})

t.test('ingest rejects what is spoilt, for the documented reason, and takes the rest', async (t) => {
  const { out } = run(all)
  const reasons = new Map<string, number>()
  for (const m of out) {
    const r = decode(m)
    const spoilt = has(m, 'out_of_range') || has(m, 'malformed')
    if (has(m, 'foreign_topic')) {
      const target = topics.parseDevice(m.topic)!.deviceId
      // Unless the broker's ACL refuses it, ingest would take it as the other device's.
      if (target === m.deviceId || (isRejection(r) && !spoilt)) t.fail(`a foreign topic message names another registered device (${target})`)
      continue
    }
    if (!spoilt) {
      if (isRejection(r)) t.fail(`a clean message was rejected: ${r.reason} ${r.detail}`)
      continue
    }
    const reason = isRejection(r) ? r.reason : 'accepted'
    reasons.set(`${m.faults!.join('+')} → ${reason}`, (reasons.get(`${m.faults!.join('+')} → ${reason}`) ?? 0) + 1)
    const expected = has(m, 'malformed') ? 'malformed_json' : 'invalid_payload'
    if (reason !== expected) t.fail(`${m.faults} gave ${reason}, not ${expected}: ${m.payload}`)
  }
  t.comment([...reasons].map(([k, n]) => `${k}: ${n}`).join('; '))
  t.ok(reasons.size >= 2)
})

t.test('a skewed, drifting clock shifts ts by skew + drift × elapsed', async (t) => {
  const { out, report } = run({ clock: { rate: 1, skew_ms: [-120_000, 120_000], drift_ppm: [-200, 200] } })
  const { skew_ms, drift_ppm } = report.clock!
  t.ok(Math.abs(skew_ms) <= 120_000 && Math.abs(drift_ppm) <= 200, `skew ${skew_ms} ms, drift ${drift_ppm} ppm`)
  const wrong = out.filter((m, i) => m.ts !== Math.round(clean[i]!.ts + skew_ms + (drift_ppm * (clean[i]!.ts - clean[0]!.ts)) / 1e6) || JSON.parse(m.payload).ts !== m.ts || !has(m, 'clock'))
  t.same(wrong, [], 'every message, in the payload too')
  t.ok(out.every((m, i) => m.sendAt === clean[i]!.sendAt), 'sent at the true time')
  t.ok(out.every((m) => !isRejection(decode(m))), 'within five minutes: still accepted')

  // The chance is per device: over many devices, a share of them.
  let skewed = 0
  for (let seed = 0; seed < 400; seed++) {
    const report = emptyFaultReport()
    for (const _ of injectFaults(clean.slice(0, 5), { clock: { rate: 0.25, skew_ms: [1000, 2000], drift_ppm: [0, 0] } }, seed, report));
    if (report.clock) skewed++
  }
  t.ok(binomial(skewed, 400, 0.25), `${skewed} of 400 devices have a skewed clock (25%)`)
})

t.test('deterministic for a seed; one fault does not move another', async (t) => {
  t.same(run(all, 7).out, run(all, 7).out)
  t.not(JSON.stringify(run(all, 7).out), JSON.stringify(run(all, 8).out))
  const onlyDuplicates = run({ duplicate: 0.04 }, 7).report.duplicate
  t.equal(run(all, 7).report.duplicate, onlyDuplicates, 'the same duplicates with or without the other faults')
  const malformed = (config: FaultConfig) => [...new Set(run(config, 7).out.filter((m) => has(m, 'malformed')).map((m) => m.seq))].sort((a, b) => a - b)
  t.same(malformed({ ...all, outOfRange: undefined, reorder: undefined }), malformed(all), 'the same messages malformed with or without the others')
})
