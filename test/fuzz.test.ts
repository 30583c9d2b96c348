/**
 * Issue #20, "beyond the list": a fuzz harness that keeps the whole class of one-message attacks
 * closed, against a running pipeline (`ubiq start` as a real process, real Mosquitto with ubiq's
 * broker config, real InfluxDB). A fuzzing device publishes, with its own credentials, messages of
 * every catalogue stream and foreign format at and across their bounds (test/fuzz-inputs.ts),
 * mixed with a well-behaved device's traffic. After every message, every run and every batch the
 * harness asserts what ubiq promises:
 *
 * - no crash and no stall: the process lives, each message is received and either stored or
 *   rejected (with a reason, on the device's own rejected topic) or dropped as a redelivery of a
 *   seq already stored; what was stored is in InfluxDB, as sent; the other device's traffic is all
 *   stored; the fuzzing device's next drive is a trip;
 * - no non-finite or out-of-bound value: in InfluxDB (every measurement, raw and derived), in the
 *   events, scores and premiums on MQTT and on the policyholders' feeds;
 * - health that tells the truth: /healthz says ok with every check true, nothing is quarantined,
 *   no stage has logged an error or dropped a device's state;
 * - REST answers fuzzed queries with a 4xx and a reason, never a 5xx.
 *
 * Deterministic: FUZZ_SEED (default below) fixes every input; FUZZ_RUNS runs longer. A failure
 * prints the seed, fast-check's replay path and the shrunk counterexample.
 */
import t from 'tap'
import fc from 'fast-check'
import mqtt from 'mqtt'
import WebSocket from 'ws'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort } from '../bin/local-services.ts'
import { tokenAuthority, type FeedMessage } from '../dashboards/index.ts'
import { BATCH_MAX_SPAN_S, batchSpanMs } from '../ingest/contract.ts'
import { ID_PATTERN, qualified, quoteString, sensors, topics, type Rejection } from '../ingest/index.ts'
import { examplePlans, loadPlans, type PremiumAdjustment } from '../pricing/index.ts'
import { defaultCrashConfig, defaultTripConfig, type PolicyEvent, type Score } from '../scoring/index.ts'
import { deviceOps, paramValue, idValue, SLOT_MS, wrongType as wrongValue, type Json, type Op, type Schema, type SeqSpec, type TsSpec } from './fuzz-inputs.ts'
import { securedBroker, startServices } from './harness.ts'

const SEED = Number(process.env.FUZZ_SEED ?? 2020)
const RUNS = Number(process.env.FUZZ_RUNS ?? 150)
/** How long nothing may happen before the harness calls it a stall, ms (a bound on waiting, not on speed). */
const STALL_MS = 10_000
const DB = 'ubiq_fuzz'
const ubiq = fileURLToPath(new URL('../bin/ubiq.js', import.meta.url))
/**
 * When the file started, and by when the properties stop (shrinking a failure included), so that
 * the report comes within tap's per-file timeout (TAP_TIMEOUT, s; 0: none), a minute before it.
 */
const FILE_START = Date.now()
const STOP_BY_MS = Number(process.env.TAP_TIMEOUT ?? 0) > 0 ? Number(process.env.TAP_TIMEOUT) * 1000 - 60_000 : undefined

/** The fuzzing device (every stream), one that consented to one stream only, and a well-behaved one. */
const FUZZER = 'fuzz-dev'
const FEW = 'fuzz-few'
const GOOD = 'good-dev'
const registry = [
  { deviceId: FUZZER, policyId: 'pol-fuzz', kinds: sensors.map((s) => s.kind) },
  { deviceId: FEW, policyId: 'pol-fuzz', kinds: [sensors[0]!.kind] },
  { deviceId: GOOD, policyId: 'pol-good', kinds: sensors.map((s) => s.kind) },
]
const policies = [...new Set(registry.map((d) => d.policyId))]

// ─── the bounds everything is held to ───────────────────────────────────────────────────────────

/** The catalogue's fields and batch columns with their bounds, by kind. */
const bounds = new Map(sensors.map((s) => {
  const props = Object.entries((s.schema as Schema).properties!).filter(([, p]) => p.type === 'number' || p.type === 'integer')
  const fields = new Map<string, [number, number]>(props.map(([k, p]) => [k, [p.minimum!, p.maximum!]]))
  for (const c of s.batch?.columns ?? []) fields.set(c.name, [c.minimum, c.maximum])
  return [s.kind, fields] as const
}))
/** The range the contract admits for the fields of a unit (by the unit in their names). */
const catalogueRange = (suffix: string): [number, number] => {
  const ranges = [...bounds.values()].flatMap((f) => [...f].filter(([k]) => k.endsWith(suffix)).map(([, r]) => r))
  return [Math.min(...ranges.map(([lo]) => lo)), Math.max(...ranges.map(([, hi]) => hi))]
}
/**
 * An event's peak, by its unit, lies in what the contract lets a device report in that unit; a
 * magnitude (never below 0) of up to three such components for vectors (a rotation rate about two
 * axes at 35 rad/s each is 49.5 rad/s); any duration is at least 0.
 */
const unitRange: Record<string, [number, number]> = {
  ...Object.fromEntries(Object.entries({ 'm/s²': '_ms2', 'rad/s': '_rads' }).map(([unit, suffix]) => [unit, [0, catalogueRange(suffix)[1] * Math.sqrt(3)]])),
  ...Object.fromEntries(Object.entries({ 'km/h': '_kmh', bpm: '_bpm', '%': '_pct', '% RH': '_pct', '°C': '_c' }).map(([unit, suffix]) => [unit, catalogueRange(suffix)])),
  s: [0, Infinity],
}
const peakRange = (unit: string | undefined) => unitRange[unit ?? '']
/** Plausibility bounds scoring declares for derived values (scoring/crash.ts, scoring/trips.ts). */
const declared: Record<string, Record<string, number>> = {
  crash: { peak: defaultCrashConfig.maxPeak_ms2, delta_v_kmh: defaultCrashConfig.maxDeltaV_kmh, duration_s: defaultCrashConfig.maxPulse_s },
  harsh_braking: { peak: defaultTripConfig.gpsTrust.maxAccel_ms2 },
  harsh_acceleration: { peak: defaultTripConfig.gpsTrust.maxAccel_ms2 },
}
/** Each subject's premium factor lies within the plan's floors and caps (pricing/plan.ts rate()). */
const [plan] = loadPlans(examplePlans)
const factorRange = (subject: string): [number, number] => {
  const s = plan!.subjects[subject as 'driving']!
  return [s.factor.floor * (s.exposure?.floor ?? 1) - 0.0005, s.factor.cap * (s.exposure?.cap ?? 1) + 0.0005]
}
/** The latest device time ubiq may accept: 5 minutes ahead of the server, a batch's span beyond that (and a second of slack). */
const latestTime = () => Date.now() + 5 * 60_000 + BATCH_MAX_SPAN_S * 1000 + 1000

/** Keys whose value may be null by design (a premium no limit held is `limited: null`). */
const nullable = new Set(['limited'])
/** Every number inside `x`, with its path; JSON has no NaN or Infinity, so a null number is one that was not finite. */
function numbers(x: unknown, path = ''): [string, number | null][] {
  if (typeof x === 'number' || x === null) return [[path, x as number | null]]
  if (Array.isArray(x)) return x.flatMap((v, i) => numbers(v, `${path}/${i}`))
  if (x && typeof x === 'object') return Object.entries(x).filter(([k, v]) => !(v === null && nullable.has(k))).flatMap(([k, v]) => numbers(v, `${path}/${k}`))
  return []
}
const finite = (what: string, x: unknown) => numbers(x).filter(([, v]) => v === null || !Number.isFinite(v)).map(([p, v]) => `${what}${p} is not finite (${v})`)
const within = (what: string, v: unknown, lo: number, hi: number) => (typeof v === 'number' && v >= lo && v <= hi ? [] : [`${what} = ${v}, outside [${lo}, ${hi}]`])
const time = (what: string, v: unknown) => within(what, v, 0, latestTime())

/** A device as the harness models it: its connection and rejections, its seq counter, its last seq and time, the seqs ubiq stored. */
interface Device { deviceId: string; client: mqtt.MqttClient; rejections: Rejection[]; nextSeq: number; lastSeq: number; lastTs: number; stored: Set<number> }

/** An event, a score or a premium, as MQTT and the feed carry them. */
type Output = { type: 'event'; event: PolicyEvent } | { type: 'score'; score: Score } | { type: 'premium'; premium: PremiumAdjustment }

/** What is wrong with an event, a score or a premium as published. */
function outputProblems(x: Output): string[] {
  if (x.type === 'event') {
    const e = x.event
    const what = `event ${e.type} of ${e.deviceId}`
    const ev = e.evidence
    return [
      ...finite(what, e), ...time(`${what} from`, e.from), ...time(`${what} to`, e.to), ...(e.from <= e.to ? [] : [`${what} ends before it starts`]),
      ...['duration_s', 'samples', 'rate_hz'].flatMap((k) => (ev[k] === undefined ? [] : within(`${what} ${k}`, ev[k], 0, Infinity))),
      ...(peakRange(ev.unit) ? within(`${what} peak (${ev.unit})`, ev.peak, ...peakRange(ev.unit)!) : []),
      ...Object.entries(declared[e.type] ?? {}).filter(([k]) => ev[k] !== undefined).flatMap(([k, max]) => within(`${what} ${k}`, ev[k], 0, max)),
    ]
  }
  if (x.type === 'score') {
    const s = x.score
    const what = `${s.subject} score of ${s.policyId}`
    return [
      ...finite(what, s), ...within(`${what} value`, s.value, 0, 100), ...time(`${what} window.to`, s.window.to), ...within(`${what} window.from`, s.window.from, 0, s.window.to),
      ...Object.entries(s.exposure).flatMap(([k, v]) => within(`${what} exposure ${k}`, v, 0, Infinity)),
      ...Object.entries(s.features).filter(([k]) => k.endsWith('_share')).flatMap(([k, v]) => within(`${what} ${k}`, v, 0, 1)),
    ]
  }
  const p = x.premium
  const what = `${p.subject} premium of ${p.policyId}`
  return [...finite(what, p), ...within(`${what} factor`, p.factor, ...factorRange(p.subject)), ...within(`${what} premium`, p.premium, 0, Infinity), ...within(`${what} credibility`, p.credibility, 0, 1)]
}

// ─── the pipeline under test ─────────────────────────────────────────────────────────────────────

t.test(`fuzz: every stream's edges against a running pipeline (FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS})`, async (t) => {
  const services = await startServices(t)
  const { credentials, broker, serviceUrl } = await securedBroker(t, services, registry, 'fuzz-watch')
  const registryFile = join(services.dataDir, '..', 'devices.json')
  writeFileSync(registryFile, JSON.stringify({ devices: registry }))
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const secret = 'fuzz-'.repeat(8)
  const auth = tokenAuthority(secret)
  const analyst = { authorization: `Bearer ${auth.issue({ role: 'analyst' }, 3600_000)}` }
  // Errors the service logs: each is a failure (a stage dropped a device's state, a request failed…).
  const errorLogs: string[] = []
  const child: ChildProcess = spawn(process.execPath, [ubiq, 'start'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env, MQTT_URL: serviceUrl, INFLUX_URL: services.influxUrl, INFLUX_DATABASE: DB, DEVICE_REGISTRY: registryFile,
      UBIQ_DATA_DIR: services.dataDir, PORT: String(port), LOG_LEVEL: 'error', TOKEN_SECRET: secret,
      // The harness reads /metrics after every message; readings reach scoring 50 ms after ingest.
      RATE_LIMIT_PER_MINUTE: '100000000', REORDER_WINDOW_MS: '50',
    },
  })
  // pino's JSON lines on stdout (LOG_LEVEL=error: only errors), and anything on stderr.
  for (const stream of [child.stdout!, child.stderr!]) {
    let partial = ''
    stream.on('data', (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n')
      partial = lines.pop()!
      for (const line of lines) if (line.trim()) errorLogs.push(line.slice(0, 2000))
    })
  }
  t.teardown(() => void child.kill('SIGKILL'))
  while (!(await fetch(`${url}/healthz`).then((r) => r.ok, () => false))) {
    if (child.exitCode !== null) throw new Error(`ubiq start exited with ${child.exitCode}: ${errorLogs.join('\n')}`)
    await sleep(100)
  }

  // ─── observers: each device's own rejections, a watcher of everything ubiq publishes, the feeds
  const connect = async (username: string) => {
    const c = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 1000, username, password: credentials.devices.get(username) })
    t.teardown(() => c.endAsync(true))
    return c
  }
  const devices = new Map(await Promise.all(registry.map(async ({ deviceId }) => {
    const client = await connect(deviceId)
    const rejections: Rejection[] = []
    client.on('message', (_topic, payload) => rejections.push(JSON.parse(String(payload)) as Rejection))
    await client.subscribeAsync(topics.rejected(deviceId), { qos: 1 })
    const device: Device = { deviceId, client, rejections, nextSeq: 1, lastSeq: 0, lastTs: 0, stored: new Set() }
    return [deviceId, device] as const
  })))
  const outputs: Output[] = []
  /** Every rejection ubiq published, whoever it went to. */
  const rejected: { topic: string; rejection: Rejection }[] = []
  const watcher = await connect('fuzz-watch')
  watcher.on('message', (topic, payload) => {
    const body = JSON.parse(String(payload))
    const type = topic.split('/')[2]
    if (type === 'rejected') rejected.push({ topic, rejection: body })
    if (type === 'events') outputs.push({ type: 'event', event: body })
    if (type === 'scores') outputs.push({ type: 'score', score: body })
    if (type === 'premiums') outputs.push({ type: 'premium', premium: body })
  })
  await watcher.subscribeAsync(['ubiq/v1/events/+', 'ubiq/v1/scores/+', 'ubiq/v1/premiums/+/+', 'ubiq/v1/rejected/+'], { qos: 1 })
  const feeds: FeedMessage[] = []
  for (const policyId of policies) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/feed?token=${auth.issue({ role: 'policyholder', policyId }, 3600_000)}`)
    ws.on('message', (data) => {
      const m = JSON.parse(String(data)) as FeedMessage
      if ('seq' in m) feeds.push(m)
    })
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject))
    t.teardown(() => ws.close())
  }

  // ─── what ubiq says about itself ───────────────────────────────────────────────────────────────
  const metrics = async () => {
    const text = await (await fetch(`${url}/metrics`, { headers: analyst })).text()
    const m = new Map<string, number>()
    for (const line of text.split('\n')) {
      if (!line || line.startsWith('#')) continue
      const at = line.lastIndexOf(' ')
      m.set(line.slice(0, at), Number(line.slice(at + 1)))
    }
    return m
  }
  const total = (m: Map<string, number>, name: string) => [...m].filter(([k]) => k === name || k.startsWith(`${name}{`)).reduce((a, [, v]) => a + v, 0)
  const rejectedBy = (m: Map<string, number>) => new Map([...m].filter(([k]) => k.startsWith('ubiq_ingest_messages_rejected_total{')).map(([k, v]) => [/reason="([^"]*)"/.exec(k)![1]!, v]))
  /** Polls until `done` says yes, or fails after STALL_MS with `what`. */
  const until = async <T>(what: string, get: () => Promise<T> | T, done: (x: T) => boolean, stallMs = STALL_MS): Promise<T> => {
    const start = Date.now()
    for (;;) {
      const x = await get()
      if (done(x)) return x
      if (child.exitCode !== null) throw new Error(`ubiq exited (${child.exitCode}) while waiting for ${what}:\n${errorLogs.join('\n')}`)
      if (Date.now() - start > stallMs) throw new Error(`stalled: no ${what} in ${stallMs / 1000} s (/healthz: ${await fetch(`${url}/healthz`).then((r) => r.text(), (e: Error) => e.message)})`)
      await sleep(5)
    }
  }
  /** Every event, score and premium published (MQTT, the feeds) since the last call, checked: each is seen once, whenever it came. */
  let checked = { outputs: 0, feeds: 0 }
  const newOutputProblems = () => {
    const problems = [...outputs.slice(checked.outputs).flatMap(outputProblems), ...feeds.slice(checked.feeds).flatMap((f) => outputProblems(f).map((p) => `feed: ${p}`))]
    checked = { outputs: outputs.length, feeds: feeds.length }
    return problems
  }
  const deadLetters = join(services.dataDir, 'dead-letter')
  /** Health that tells the truth: the process lives, /healthz is ok with every check true, nothing went to the error log or the dead letters. */
  const healthProblems = async (): Promise<string[]> => {
    if (child.exitCode !== null) return [`ubiq exited with ${child.exitCode}`]
    const res = await fetch(`${url}/healthz`)
    const body = (await res.json()) as { status: string; checks: Record<string, boolean | number> }
    const m = await metrics()
    return [
      ...(res.status === 200 && body.status === 'ok' ? [] : [`/healthz ${res.status}: ${JSON.stringify(body)}`]),
      ...Object.entries(body.checks).filter(([, v]) => v === false).map(([k]) => `/healthz check ${k} is false`),
      ...['ubiq_ingest_lines_quarantined_total', 'ubiq_scoring_key_failures_total', 'ubiq_model_failures_total', 'ubiq_history_restore_failures_total', 'ubiq_influx_write_errors_total']
        .filter((name) => total(m, name) > 0).map((name) => `${name} is ${total(m, name)}`),
      // What InfluxDB refused, and why (the dead-letter folder, README "Durability").
      ...(existsSync(deadLetters) ? readdirSync(deadLetters).flatMap((f) => readFileSync(join(deadLetters, f), 'utf8').trim().split('\n').slice(0, 5).map((l) => `quarantined: ${l.slice(0, 600)}`)) : []),
      ...errorLogs.splice(0).map((l) => `logged: ${l}`),
    ]
  }
  let last = await metrics()

  // ─── one run: messages sent one at a time, each one's fate read off ingest's counters ──────────
  /** What became of what the fuzz sent, for the log: how much of ubiq's handling it reached (FUZZ_VERBOSE=1: by stream and route). */
  const seen = new Map<string, number>()
  const tally = (key: string, n = 1) => seen.set(key, (seen.get(key) ?? 0) + n)
  const summary = () => {
    const byOutcome = new Map<string, number>()
    for (const [k, n] of seen) byOutcome.set(k.slice(k.lastIndexOf(': ') + 2), (byOutcome.get(k.slice(k.lastIndexOf(': ') + 2)) ?? 0) + n)
    t.comment(`outcomes: ${[...byOutcome].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(', ')}`)
    if (process.env.FUZZ_VERBOSE) t.comment([...seen].sort().map(([k, n]) => `${n}\t${k}`).join('\n'))
  }
  let slot = 0
  const T0 = Date.now() - 12 * 3600_000
  /** The broker's answer to a publish: undefined when it acknowledged it, else its reason. */
  const publish = (d: Device, m: { topic: string; payload: Buffer }, shown: string) => {
    const acked = d.client.publishAsync(m.topic, m.payload, { qos: 1 }).then(() => 'acknowledged', (err: Error) => err.message)
    return until(`acknowledgement from the broker of ${shown}`, () => Promise.race([acked, sleep(5).then(() => undefined)]), (x) => x !== undefined)
      .then((x) => (x === 'acknowledged' ? undefined : x))
  }
  const show = (m: { topic: string; payload: Buffer }) => `${m.topic} ${m.payload.length > 300 ? `${m.payload.subarray(0, 300).toString()}… (${m.payload.length} bytes)` : m.payload.toString()}`
  /**
   * A burst: every message published at once, as a persistent session's backlog arrives after a
   * restart, many in the same millisecond. Their fates are counted together: they add up, every
   * rejection reaches its device with its reason, the well-behaved device gets none, and no more are
   * dropped as redeliveries than repeat a seq already stored (a receive-time seq, Zigbee2MQTT's
   * and Home Assistant's, never does).
   */
  const runBurst = async (sent: readonly { d: Device; op: Op | 'good'; m: ReturnType<typeof materialize> }[], problems: string[], told: Map<Device, number>) => {
    const before = last
    const answers = await Promise.all(sent.map(({ d, m }) => publish(d, m, show(m))))
    const acknowledged = sent.filter((_, i) => answers[i] === undefined)
    sent.forEach(({ d, op, m }, i) => {
      const foreign = op !== 'good' && op.on === 'foreign'
      if (foreign && answers[i] === undefined) problems.push(`the broker let ${d.deviceId} publish on ${m.topic}`)
      if (!foreign && answers[i] !== undefined) problems.push(`the broker refused ${d.deviceId}'s own topic: ${answers[i]}: ${show(m)}`)
    })
    const received = (x: Map<string, number>) => total(x, 'ubiq_ingest_messages_received_total')
    last = await until(`receipt of a burst of ${acknowledged.length}`, metrics, (x) => received(x) >= received(before) + acknowledged.length)
    const got = (name: string) => total(last, name) - total(before, name)
    const [rejections, stored, redeliveries] = ['ubiq_ingest_messages_rejected_total', 'ubiq_ingest_messages_stored_total', 'ubiq_ingest_duplicates_total'].map(got) as [number, number, number]
    const configs = acknowledged.filter(({ op, m }) => op !== 'good' && op.on === 'homeassistant' && m.topic.endsWith('/config')).length
    const neither = acknowledged.length - rejections - stored - redeliveries
    const shown = acknowledged.map(({ m }) => show(m).slice(0, 200)).join('\n  ')
    if (got('ubiq_ingest_messages_received_total') !== acknowledged.length || neither < 0 || neither > configs) {
      problems.push(`a burst of ${acknowledged.length}: ${got('ubiq_ingest_messages_received_total')} received, ${stored} stored, ${rejections} rejected, ${redeliveries} redeliveries, ${neither} neither (${configs} discovery configs):\n  ${shown}`)
    }
    const seqs = new Map<Device, Set<number>>()
    let repeats = 0
    for (const { d, m } of acknowledged) {
      if (m.seq === undefined) continue
      const mine = seqs.get(d) ?? new Set(d.stored)
      if (mine.has(m.seq)) repeats++
      seqs.set(d, mine.add(m.seq))
    }
    if (redeliveries > repeats) problems.push(`${redeliveries} messages of a burst dropped as redeliveries, but only ${repeats} repeat a seq: lost\n  ${shown}`)
    // Which were stored is not known one by one: any seq of the burst may have been.
    for (const [d, mine] of seqs) for (const seq of mine) d.stored.add(seq)
    const byReason = new Map([...rejectedBy(last)].map(([r, v]) => [r, v - (rejectedBy(before).get(r) ?? 0)] as const).filter(([, n]) => n > 0))
    const arrived = await until(`${rejections} rejections of a burst`, () => rejected, (r) => r.length >= rejections).then((r) => r.splice(0, rejections), (err: Error) => (problems.push(err.message), []))
    for (const { topic, rejection } of arrived) {
      byReason.set(rejection.reason, (byReason.get(rejection.reason) ?? 0) - 1)
      const d = acknowledged.find(({ d }) => topic === topics.rejected(d.deviceId))?.d
      if (!d || d.deviceId === GOOD || !rejection.detail) problems.push(`rejection ${JSON.stringify(rejection)} on ${topic} in a burst of:\n  ${shown}`)
      else told.set(d, (told.get(d) ?? 0) + 1)
    }
    if ([...byReason.values()].some((n) => n !== 0)) problems.push(`the rejections published are not those counted: ${JSON.stringify(Object.fromEntries(byReason))}`)
    tally('burst: stored', stored)
    tally('burst: rejected', rejections)
    tally('burst: redelivery', redeliveries)
  }

  /**
   * One run: its messages one at a time, each one's fate read off ingest's counters, or (`burst`)
   * all at once, as a backlog arrives after a restart, and their fates counted together.
   */
  const run = async ({ ops, burst }: { ops: readonly { dev: string; op: Op | 'good' }[]; burst: boolean }) => {
    const base = T0 + slot++ * SLOT_MS
    const problems: string[] = []
    const toCheck: { dev: string; kind: string; seq: number; ts: number; lines: number; spanMs: number; fields?: Record<string, Json>; sent: string }[] = []
    /** Rejections each device should have got. */
    const told = new Map<Device, number>()
    let goodAt = base
    const sent = ops.map(({ dev, op }) => {
      const d = devices.get(dev)!
      return { d, op, m: materialize(d, op === 'good' ? goodMessage(d, (goodAt += 100)) : op, base) }
    })
    if (burst) await runBurst(sent, problems, told)
    for (const { d, op, m } of burst ? [] : sent) {
      const dev = d.deviceId
      const shown = show(m)
      const refused = await publish(d, m, shown)
      if (op !== 'good' && op.on === 'foreign') {
        if (!refused) problems.push(`the broker let ${dev} publish on ${m.topic}`)
        continue
      }
      if (refused) {
        problems.push(`the broker refused ${dev}'s own topic: ${refused}: ${shown}`)
        continue
      }
      const before = last
      last = await until(`receipt of ${shown}`, metrics, (x) => total(x, 'ubiq_ingest_messages_received_total') > total(before, 'ubiq_ingest_messages_received_total'))
      const got = (name: string) => total(last, name) - total(before, name)
      const reasons = [...rejectedBy(last)].filter(([r, v]) => v > (rejectedBy(before).get(r) ?? 0)).map(([r]) => r)
      if (got('ubiq_ingest_messages_received_total') !== 1) problems.push(`${got('ubiq_ingest_messages_received_total')} messages received for one: ${shown}`)
      if (op === 'good' && (reasons.length || !got('ubiq_ingest_messages_stored_total'))) problems.push(`the well-behaved device's message was not stored (${reasons.join() || 'dropped'}): ${shown}`)
      const outcome = reasons[0] ?? (got('ubiq_ingest_readings_expired_total') ? 'expired' : got('ubiq_ingest_messages_stored_total') ? 'stored' : got('ubiq_ingest_duplicates_total') ? 'redelivery' : 'none')
      const key = op === 'good' ? 'good' : op.on === 'native' ? `${op.on} ${op.stream}${op.mutation ? ' (mutated)' : ''}` : op.on
      tally(`${key}: ${outcome}`)
      if (reasons.length) {
        // Every rejection is published (the watcher sees them all), to the device that sent the message.
        const { topic, rejection } = await until(`rejection for ${shown}`, () => rejected, (r) => r.length > 0).then((r) => r.shift()!)
        if (rejection.reason !== reasons[0] || typeof rejection.detail !== 'string' || !rejection.detail) {
          problems.push(`rejection ${JSON.stringify(rejection)} does not say why (${reasons.join()}) for ${shown}`)
        }
        if (topic !== topics.rejected(dev)) problems.push(`the rejection went to ${topic}, which ${dev} cannot read: ${shown}`)
        else told.set(d, (told.get(d) ?? 0) + 1)
      } else if (got('ubiq_ingest_readings_expired_total')) {
        // Older than its kind's retention (#21): scored, stored nowhere, counted. Nothing to look for.
      } else if (got('ubiq_ingest_messages_stored_total')) {
        if (m.stored) {
          d.stored.add(m.stored.seq)
          toCheck.push({ dev, ...m.stored, sent: shown })
        }
      } else if (got('ubiq_ingest_duplicates_total')) {
        if (m.seq === undefined || !d.stored.has(m.seq)) problems.push(`dropped as a redelivery, but seq ${m.seq ?? '(receive time)'} was never stored: lost ${shown}`)
      } else if (!(op !== 'good' && op.on === 'homeassistant' && m.topic.endsWith('/config'))) {
        problems.push(`neither stored, rejected nor a redelivery: ${shown}`)
      }
    }
    // …and reached it (read at the end of the run: a device's copy comes a delayed ACK later than the watcher's).
    for (const [d, n] of told) await until(`${n} rejections at ${d.deviceId}`, () => d.rejections, (r) => r.length >= n).catch((err: Error) => problems.push(err.message))
    if (rejected.length || [...devices.values()].some((d) => d.rejections.length > (told.get(d) ?? 0))) problems.push('rejections of no message the run sent')
    rejected.length = 0
    for (const d of devices.values()) d.rejections.length = 0
    // Nothing accepted is lost: once InfluxDB has confirmed ingest's lines, each is there, as sent.
    last = await until('InfluxDB confirming every accepted line', metrics, (x) => x.get('ubiq_ingest_journal_pending_lines') === 0)
    for (const s of toCheck) {
      if (s.spanMs > BATCH_MAX_SPAN_S * 1000) problems.push(`accepted a batch covering ${s.spanMs / 1000} s, more than the contract's ${BATCH_MAX_SPAN_S} s: ${s.sent}`)
      const rows = await services.influxql(DB, `SELECT * FROM ${qualified(s.kind)} WHERE device_id = ${quoteString(s.dev)} AND seq = ${s.seq} AND time >= ${s.ts}ms AND time <= ${Math.ceil(s.ts + s.spanMs)}ms`)
      const stored = rows.flatMap((r) => r.values.map((v) => Object.fromEntries(r.columns.map((c, i) => [c, v[i]]))))
      if (stored.length !== s.lines) problems.push(`accepted as seq ${s.seq} with ${s.lines} line(s), ${stored.length} in InfluxDB: ${s.sent}`)
      else if (s.fields) {
        const differ = Object.entries(s.fields).filter(([k, v]) => stored[0]![k] !== v)
        if (differ.length) problems.push(`stored ${differ.map(([k]) => `${k}=${stored[0]![k]}`).join(', ')} for ${s.sent}`)
      }
    }
    problems.push(...newOutputProblems(), ...(await healthProblems()))
    if (problems.length) throw new Error(problems.join('\n'))
  }

  /** A message's topic and bytes, with what InfluxDB should hold once it is stored (when the harness can tell). */
  function materialize(d: Device, op: Op, base: number) {
    const dev = d.deviceId
    if (op.on === 'foreign') return { topic: op.topic.replace('OTHER', dev === GOOD ? FUZZER : GOOD), payload: Buffer.from('{}') }
    if (op.on === 'raw') return { topic: topics.device(dev, op.stream), payload: Buffer.from(op.text, op.latin1 ? 'latin1' : 'utf8') }
    if (op.on === 'zigbee2mqtt') return { topic: `zigbee2mqtt/${dev}/${op.rest}`, payload: Buffer.from(JSON.stringify(op.body)) }
    if (op.on === 'homeassistant') return { topic: `homeassistant/${op.rest.replace('DEV', dev)}`, payload: Buffer.from(op.text.replaceAll('/DEV/', `/${dev}/`)) }
    if (op.on === 'owntracks') {
      const tsMs = tsOf(d, op.tst, base)
      const tst = typeof tsMs === 'number' ? Math.floor(tsMs / 1000) : tsMs
      const body = { ...op.body, tst }
      return { topic: `owntracks/${dev}/${op.rest}`, payload: Buffer.from(JSON.stringify(body)), ...(typeof tst === 'number' ? { seq: tst, stored: { kind: 'gps', seq: tst, ts: tst * 1000, lines: 1, spanMs: 0 } } : {}) }
    }
    const seq = seqOf(d, op.seq)
    const ts = tsOf(d, op.ts, base)
    let text = JSON.stringify({ seq, ts, ...op.body })
    if (op.padTo) text = text.padEnd(op.padTo, ' ')
    const samples = op.body.samples
    const lines = Array.isArray(samples) ? samples.length : 1
    const spanMs = Array.isArray(samples) ? batchSpanMs(Number(op.body.rate_hz), lines) : 0
    const fields = op.mutation || Array.isArray(samples) ? undefined : op.body
    return {
      topic: topics.device(dev, op.stream), payload: Buffer.from(text),
      ...(typeof seq === 'number' ? { seq } : {}),
      ...(typeof seq === 'number' && typeof ts === 'number' ? { stored: { kind: op.stream, seq, ts, lines, spanMs, ...(fields ? { fields } : {}) } } : {}),
    }
  }
  function seqOf(d: Device, s: SeqSpec): Json {
    const seq = 'next' in s ? d.nextSeq++ : 'prev' in s ? d.lastSeq : 'back' in s ? Math.max(0, d.nextSeq - 1 - s.back) : 'abs' in s ? s.abs : s.raw
    if (typeof seq === 'number') d.lastSeq = seq
    return seq
  }
  function tsOf(d: Device, s: TsSpec, base: number): Json {
    const ts = 'rel' in s ? base + s.rel : 'prev' in s ? d.lastTs : 'now' in s ? Date.now() + s.now : 'abs' in s ? s.abs : s.raw
    if (typeof ts === 'number') d.lastTs = ts
    return ts
  }
  /** The well-behaved device: a catalogue example (every kind in turn), at its own next seq and time. */
  function goodMessage(d: Device, ts: number): Op {
    const sensor = sensors[d.nextSeq % sensors.length]!
    const { seq: _s, ts: _t, ...body } = sensor.example as Record<string, Json>
    return { on: 'native', stream: sensor.kind, body, seq: { next: true }, ts: { abs: ts } }
  }

  /** Runs `property`, failing the test with fast-check's report (seed, replay path, shrunk counterexample). */
  const check = async <T>(name: string, arb: fc.Arbitrary<T>, predicate: (x: T) => Promise<void>, numRuns: number, seed: number) => {
    const started = Date.now()
    try {
      const limit = STOP_BY_MS === undefined ? [] : [fc.interruptAfterTimeLimit(Math.max(20_000, STOP_BY_MS - (Date.now() - FILE_START)), { failOnInterrupt: true })]
      await fc.assert(fc.asyncProperty(arb, predicate), { seed, numRuns, plugins: limit } as fc.Parameters<[T]>)
      t.pass(`${name}: ${numRuns} runs, seed ${seed}, ${((Date.now() - started) / 1000).toFixed(1)} s`)
    } catch (err) {
      // fast-check's report (seed, path, counterexample), and the property's own error under it.
      const e = err as Error & { cause?: Error }
      t.fail(`${name}: ${e.message}\n${e.cause?.message ?? ''}\n(FUZZ_SEED=${SEED} FUZZ_RUNS=${RUNS} runs it all again, in the same order)`)
    }
  }

  const messages = fc.array(fc.oneof(
    { weight: 10, arbitrary: deviceOps.map((ops) => ops.map((op) => ({ dev: FUZZER, op }))) },
    { weight: 1, arbitrary: deviceOps.map((ops) => ops.map((op) => ({ dev: FEW, op }))) },
    { weight: 3, arbitrary: fc.constant([{ dev: GOOD, op: 'good' as const }]) },
  ), { minLength: 1, maxLength: 12 }).map((ops) => ops.flat())

  // ─── after a batch: the pipeline still does its work, and InfluxDB holds nothing out of bounds ─
  /** The fuzzing device drives 90 s at 50 km/h, ignition on to off, and the well-behaved one sends a reading: each is stored, and the drive is a trip. */
  const stillWorks = async (): Promise<string[]> => {
    const base = T0 + (slot += 3) * SLOT_MS
    const fuzzer = devices.get(FUZZER)!
    const drive = [
      { stream: 'status', body: { ignition_on: true } },
      ...Array.from({ length: 90 }, () => ({ stream: 'obd', body: { speed_kmh: 50 } })),
      { stream: 'status', body: { ignition_on: false } },
    ]
    const before = await metrics()
    for (const [i, m] of drive.entries()) {
      await fuzzer.client.publishAsync(topics.device(FUZZER, m.stream), JSON.stringify({ seq: fuzzer.nextSeq++, ts: base + i * 1000, ...m.body }), { qos: 1 })
    }
    const good = devices.get(GOOD)!
    const sentinel = good.nextSeq++
    await good.client.publishAsync(topics.device(GOOD, 'obd'), JSON.stringify({ seq: sentinel, ts: base, speed_kmh: 0 }), { qos: 1 })
    const problems: string[] = []
    last = await until('the drive and the sentinel received and confirmed', metrics, (x) => total(x, 'ubiq_ingest_messages_received_total') >= total(before, 'ubiq_ingest_messages_received_total') + drive.length + 1 && x.get('ubiq_ingest_journal_pending_lines') === 0)
    const stored = total(last, 'ubiq_ingest_messages_stored_total') - total(before, 'ubiq_ingest_messages_stored_total')
    if (stored !== drive.length + 1) problems.push(`${stored} of the ${drive.length + 1} valid messages after the fuzz stored (rejected: ${fuzzer.rejections.map((r) => r.reason).join() || 'none'})`)
    const count = async (q: string) => Number((await services.influxql(DB, q))[0]?.values[0]?.[1] ?? 0)
    if ((await count(`SELECT count(speed_kmh) FROM ${qualified('obd')} WHERE device_id = '${GOOD}' AND seq = ${sentinel}`)) !== 1) problems.push('the sentinel reading is not in InfluxDB')
    // (The trip may have begun before: a trip the fuzz left open goes on into the drive.)
    await until(`a trip of ${FUZZER} ending with its drive after the fuzz (scoring silenced for it?)`, () => count(`SELECT count(distance_km) FROM ${qualified('trip')} WHERE device_id = '${FUZZER}' AND end_ms >= ${base}`), (n) => n > 0)
      .catch((err: Error) => problems.push(err.message))
    fuzzer.rejections.length = good.rejections.length = 0
    return problems
  }

  /** Every numeric field of every measurement within its bounds: the catalogue's for raw kinds, the declared ones for derived values. */
  const storedProblems = async (): Promise<string[]> => {
    const problems: string[] = []
    const [measurements] = await services.influxql(DB, 'SHOW MEASUREMENTS')
    for (const [name] of (measurements?.values ?? []) as [string][]) {
      const groupBy = name === 'event' ? ' GROUP BY "type"' : name === 'premium' ? ' GROUP BY "subject"' : ''
      for (const series of await services.influxql(DB, `SELECT min(*), max(*) FROM ${qualified(name)}${groupBy}`)) {
        const row = Object.fromEntries(series.columns.map((c, i) => [c, series.values[0]![i]]))
        const group = series.tags?.type ?? series.tags?.subject ?? ''
        const fields = [...new Set(series.columns.filter((c) => c.startsWith('min_')).map((c) => c.slice(4)))]
        for (const f of fields) {
          const [lo, hi] = [row[`min_${f}`], row[`max_${f}`]]
          if (typeof lo !== 'number' || typeof hi !== 'number') continue // no values, or booleans
          const what = `InfluxDB ${name}${group ? `(${group})` : ''}.${f}`
          const range = fieldBounds(name, group, f)
          if (!range) problems.push(`${what}: no such field in the catalogue`)
          else if (lo < range[0] || hi > range[1]) problems.push(`${what} spans [${lo}, ${hi}], outside [${range[0]}, ${range[1]}]`)
        }
      }
      for (const order of ['ASC', 'DESC']) {
        const [first] = await services.influxql(DB, `SELECT * FROM ${qualified(name)} ORDER BY time ${order} LIMIT 1`)
        problems.push(...time(`InfluxDB ${name} time`, first?.values[0]?.[0]))
      }
    }
    return problems
  }
  /** The bounds of a stored field. */
  const fieldBounds = (measurement: string, group: string, field: string): [number, number] | undefined => {
    const kind = bounds.get(measurement)
    if (kind) return field === 'seq' ? [0, Number.MAX_SAFE_INTEGER] : field === 'i' ? [0, 10_000] : kind.get(field)
    if (field === 'end_ms' || field === 'window_from') return [0, latestTime()]
    if (measurement === 'score' || measurement === 'shadow_score') return field === 'value' ? [0, 100] : field.endsWith('_share') ? [0, 1] : [-Infinity, Infinity]
    if (measurement === 'premium') return field === 'factor' || field === 'previous_factor' ? factorRange(group) : field === 'credibility' ? [0, 1] : [0, Infinity]
    if (measurement === 'event') {
      if (declared[group]?.[field] !== undefined) return [0, declared[group]![field]!]
      if (field === 'peak') return peakRange(unitOf.get(group)) ?? [-Infinity, Infinity]
      return ['duration_s', 'samples', 'rate_hz'].includes(field) ? [0, Infinity] : [-Infinity, Infinity]
    }
    if (measurement === 'trip' && field === 'max_speed_kmh') return [0, catalogueRange('_kmh')[1]]
    return [0, Infinity]
  }
  /** Each event type's unit, as the events published said (InfluxDB does not keep it). */
  const unitOf = new Map<string, string>()
  const batchChecks = async (name: string) => {
    for (const o of outputs) if (o.type === 'event') unitOf.set(o.event.type, o.event.evidence.unit)
    t.same(await stillWorks(), [], `${name}: the fuzzing device's next drive is a trip, the well-behaved device's reading is stored`)
    t.same(await storedProblems(), [], `${name}: every value in InfluxDB is finite and within its bounds`)
    t.same([...newOutputProblems(), ...(await healthProblems())], [], `${name}: what ubiq published since is finite and within bounds, and it is healthy`)
  }

  // One run in four a burst.
  await check('device messages', fc.record({ ops: messages, burst: fc.oneof({ weight: 3, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }) }), run, RUNS, SEED)
  await batchChecks('after the device messages')

  // ─── REST: every route of the OpenAPI document, with fuzzed parameters, tokens and bodies ─────
  const doc = (await (await fetch(`${url}/api/v1/openapi.json`)).json()) as { paths: Record<string, Record<string, { parameters?: { in: string; name: string; schema: Schema }[] }>> }
  // (Shown in a counterexample by method and path, not with every parameter's schema.)
  // The feed too, which the document leaves out (a websocket): its query as server.ts declares it, the token going in it.
  const feedRoute = { method: 'WS', path: '/feed', parameters: [{ in: 'query', name: 'policy', schema: { type: 'string', pattern: ID_PATTERN } as Schema }, { in: 'query', name: 'since', schema: { type: 'integer', minimum: 0 } as Schema }] }
  // All but erasure: an analyst's valid erasure of a fuzzed policy would take the run's own policies
  // away (test/erasure.test.ts is its test).
  const erasure = '/api/v1/policies/{policy}/erasure'
  const routes = [...Object.entries(doc.paths).filter(([path]) => path !== erasure).flatMap(([path, ops]) => Object.entries(ops).map(([method, op]) => ({ method: method.toUpperCase(), path, parameters: op.parameters ?? [] }))), feedRoute]
    .map((r) => ({ ...r, [fc.toStringMethod]: () => `${r.method} ${r.path}` }))
  const deviceIds = registry.map((d) => d.deviceId)
  // What the simulator may be asked to change: the features and exposures scores were made of, and names no score has.
  const names = [...new Set(outputs.flatMap((o) => (o.type === 'score' ? [...Object.keys(o.score.features), ...Object.keys(o.score.exposure)] : []))), '__proto__', 'shoe_size']
  const number = fc.oneof(fc.double(), fc.constantFrom(1e308, -1e308, 0, -0, 2 ** 53, Number.MIN_VALUE, -1, 1))
  const whatIfBody = fc.oneof(
    fc.record({ scale: fc.dictionary(fc.constantFrom(...names), number), set: fc.dictionary(fc.constantFrom(...names), fc.oneof(number, wrongValue)) }, { requiredKeys: [] }),
    wrongValue,
  )
  const tokens: Record<string, string | undefined> = { analyst: analyst.authorization, ...Object.fromEntries(policies.map((p) => [p, `Bearer ${auth.issue({ role: 'policyholder', policyId: p }, 3600_000)}`])), none: undefined, garbage: 'Bearer x.y.z', expired: `Bearer ${auth.issue({ role: 'analyst' }, -1000)}` }
  // Half the requests with only values of each parameter's type (times and numbers at and across their edges), half with junk too.
  const request = fc.tuple(fc.constantFrom(...routes), fc.boolean()).chain(([route, junk]) => fc.record({
    route: fc.constant(route),
    params: fc.record(Object.fromEntries(route.parameters.map((p) => [p.name, p.in === 'path'
      ? (p.schema.anyOf ? paramValue(p.schema, [], false).map((v) => (Array.isArray(v) ? v[0] : v) ?? 'x') : idValue(p.name === 'policy' ? policies : deviceIds))
      : paramValue(p.schema, p.name === 'policy' ? policies : deviceIds, junk)]))),
    extra: junk ? fc.option(fc.constantFrom('colour=red', 'limit=1&limit=2', '__proto__=1', 'format=xml'), { nil: undefined }) : fc.constant(undefined),
    token: fc.oneof({ weight: 4, arbitrary: fc.constantFrom('analyst', ...policies) }, { weight: 1, arbitrary: fc.constantFrom('none', 'garbage', 'expired') }),
    body: whatIfBody,
  }))
  /** A feed that opens is closed by the client; one refused is closed with a 44xx code and its reason; never a server error (1011, an HTTP 5xx). */
  const feedProblems = async (target: string, token: string): Promise<string[]> => {
    const answer = await new Promise<{ code?: number; reason?: string; status?: number }>((resolve) => {
      const ws = new WebSocket(target)
      ws.on('open', () => setTimeout(() => ws.close(1000), 20))
      ws.on('close', (code, reason) => resolve({ code, reason: String(reason) }))
      ws.on('unexpected-response', (_req, res) => resolve({ status: res.statusCode }))
      ws.on('error', () => {})
    })
    tally(`WS /feed: ${answer.status !== undefined ? `HTTP ${answer.status}` : `close ${answer.code}`}`)
    const shown = `the feed at ${target.slice(url.length, url.length + 400)} (${token}): ${JSON.stringify(answer)}`
    if ((answer.status ?? 0) >= 500 || answer.code === 1011) return [shown]
    return answer.code !== undefined && answer.code >= 4000 && !answer.reason ? [`no reason from ${shown}`] : []
  }
  /** One request: never a 5xx; a 4xx says what is wrong; a price it gives is finite. */
  const ask = async (requests: (typeof request extends fc.Arbitrary<infer R> ? R : never)[]) => {
    const problems: string[] = []
    for (const { route, params, extra, token, body } of requests) {
      let path = route.path
      const query = new URLSearchParams()
      for (const p of route.parameters) {
        const v = params[p.name] as string | string[] | undefined
        if (p.in === 'path') path = path.replace(`{${p.name}}`, /%/.test(String(v)) ? String(v) : encodeURIComponent(String(v)))
        else for (const one of v === undefined ? [] : [v].flat()) query.append(p.name, one)
      }
      if (route.method === 'WS') {
        if (tokens[token]) query.append('token', tokens[token].slice('Bearer '.length))
        problems.push(...(await feedProblems(`${url.replace('http', 'ws')}${path}?${query}${extra ? `&${extra}` : ''}`, token)))
        continue
      }
      const target = `${url}${path}?${query}${extra ? `&${extra}` : ''}`
      const headers: Record<string, string> = { ...(tokens[token] ? { authorization: tokens[token] } : {}), ...(route.method === 'POST' ? { 'content-type': 'application/json' } : {}) }
      const res = await fetch(target, { method: route.method, headers, ...(route.method === 'POST' ? { body: JSON.stringify(body) } : {}) })
      const text = await res.text()
      const shown = `${route.method} ${target.slice(url.length, url.length + 400)} (${token})${route.method === 'POST' ? ` ${JSON.stringify(body).slice(0, 300)}` : ''}`
      tally(`${route.method} ${route.path}: HTTP ${res.status}`)
      if (res.status >= 500) problems.push(`${res.status} for ${shown}: ${text.slice(0, 300)}`)
      else if (res.status >= 400) {
        const err = (() => { try { return JSON.parse(text) as { error?: unknown; message?: unknown } } catch { return {} } })()
        if (typeof err.error !== 'string' || typeof err.message !== 'string' || !err.message) problems.push(`${res.status} without a reason for ${shown}: ${text.slice(0, 300)}`)
      } else if (route.method === 'POST') {
        const w = JSON.parse(text) as { now: unknown; changed: unknown }
        problems.push(...finite(`what-if ${shown}: now`, w.now), ...finite(`what-if ${shown}: changed`, w.changed))
      }
    }
    problems.push(...(await healthProblems()))
    if (problems.length) throw new Error(problems.join('\n'))
  }
  await check('REST queries', fc.array(request, { minLength: 1, maxLength: 10 }), ask, RUNS, SEED + 1)
  t.same(await healthProblems(), [], 'after the REST queries: ubiq is healthy')
  summary()
})
