/**
 * `npm run bench:scoring`: scoring throughput, inference overhead, event-loop delay, latency and
 * memory, each beside a reference measured in the same run where one exists (DESIGN.md
 * "Performance"). Several runs; medians, and ratios as the median of each run's own ratio.
 *
 * - Throughput, in process: one day of edge-sim vehicles (OBD, GPS, 25 Hz IMU, status), decoded by
 *   ingest's decoder, through scoring's driving chain as `startScoring` wires it (trackTrips with
 *   the pipeline's detectors plus speeding on the simulated city's map → drivingScoreInputs with an
 *   empty history → scoreWith on the shipped driving model), fed in socket-sized chunks. There is
 *   no outside system to hold the stream part against, so its reference is the same functions
 *   called in a plain loop (one tracker per device in a Map, addTrip, drivingScoreInput, scoreBatch
 *   every 64 inputs): the ratio is what the RxJS stages (per-key groups with idle timers, async
 *   history reads, time-based micro-batches) cost. Event-loop delay is also taken during it.
 * - Inferences: the same feature rows through scoreWith vs a bare onnxruntime session on the same
 *   .onnx file, at the same rows per call. An inference is one model row (a score is 1 + features
 *   rows, its reasons being the others); scoreWith batches `maxBatch` inputs, so a call has
 *   maxBatch × (1 + features) rows.
 * - Latency and event-loop delay under load, on real Mosquitto and InfluxDB: the whole pipeline in
 *   this process while a child process (scoring-publisher.ts) publishes simulated vehicles at a
 *   fixed rate; latency from publishing the ignition-off status that closes a trip to receiving
 *   that trip's score on `ubiq/v1/scores/+`. The reorder window is set short (REORDER_MS): the
 *   production default of 2 s would add up to 2 s to every figure by design.
 * - Heap per active policy (see `heapPerPolicy`), in a child process.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { getHeapStatistics } from 'node:v8'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import mqtt from 'mqtt'
import ort from 'onnxruntime-node'
import pino from 'pino'
import { count, filter, from, lastValueFrom, map, share, Subject, toArray } from 'rxjs'
import { startInfluxd, startMosquitto } from '../bin/local-services.ts'
import { scoringLimits, startPipeline } from '../bin/pipeline.ts'
import { vehicleDetectors } from '../scoring/index.ts'
import { cityGeoJson, makeCity, makePolicies, policyRegistry } from '../edge-sim/index.ts'
import { deviceRegistry, type Reading } from '../ingest/index.ts'
import {
  addTrip, DAY_MS, dayOf, defaultTripConfig, drivingFrequency, drivingScoreInput, drivingScoreInputs, HISTORY_DAYS, loadModel,
  roadMap, scoreBatch, scoreWith, trackTrips, tripTracker,
  type DrivingDay, type Score, type ScoreInput, type Trip, type TripOutput,
} from '../scoring/index.ts'
import { simReadings } from '../test/sim-readings.ts'

const RUNS = Number(process.env.BENCH_RUNS ?? 3)
/** Simulated vehicle policies (one day each) for the in-process throughput runs. */
const POLICIES = Number(process.env.BENCH_POLICIES ?? 96)
/** Inputs (scores) for the inference comparison. */
const INFER_INPUTS = Number(process.env.BENCH_INFER_INPUTS ?? 16_000)
/** MQTT run: messages a second, how long, and the pipeline's reorder window (2000 ms by default in production). */
const RATE = Number(process.env.BENCH_RATE ?? 3000)
const MQTT_S = Number(process.env.BENCH_MQTT_S ?? 120)
const REORDER_MS = Number(process.env.BENCH_REORDER_MS ?? 100)
/** Active policies at which heap is measured, and how much of an open trip each one holds, s. */
const HEAP_POLICIES = (process.env.BENCH_HEAP_POLICIES ?? '10000,100000').split(',').map(Number)
const OPEN_TRIP_S = Number(process.env.BENCH_OPEN_TRIP_S ?? 30)
/** Readings handed to scoring per macrotask in process, as a socket read delivers a few hundred messages. */
const CHUNK = 256

// As bin/pipeline.ts configures scoring.
const { batch: BATCH, deviceIdleMs: DEVICE_IDLE_MS, policyIdleMs: POLICY_IDLE_MS } = scoringLimits
const START_TS = (dayOf(Date.now()) - 14) * DAY_MS // a day two weeks ago: in the past, as ingest requires
const log = (msg: string) => process.stderr.write(`bench: ${msg}\n`)
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!
const gc = () => (globalThis as { gc?: () => void }).gc?.()
const tick = () => new Promise((r) => setImmediate(r))
const fail = (err: unknown) => {
  throw err
}

const city = makeCity()
const roads = roadMap(cityGeoJson(city))
const modelPath = fileURLToPath(new URL(`../scoring/models/${drivingFrequency.file}`, import.meta.url))
const model = await loadModel(drivingFrequency, modelPath)
/** A vehicle's detectors: bin/pipeline.ts's, with speeding judged on the simulated city's road map. */
const detectors = vehicleDetectors(roads)

interface StreamResult {
  ms: number
  trips: number
  events: number
  scores: Score[]
  /** Event-loop delay p99 during the run, ms. */
  loopP99: number
}

/** ubiq: the driving chain as startScoring wires it, CHUNK readings a macrotask. */
async function ubiqStream(readings: readonly Reading[]): Promise<StreamResult> {
  const source = new Subject<Reading>()
  const driving$ = source.pipe(trackTrips(defaultTripConfig, detectors, DEVICE_IDLE_MS), share())
  let trips = 0
  let events = 0
  driving$.subscribe((o) => ('trip' in o ? trips++ : events++))
  const scores = lastValueFrom(driving$.pipe(
    filter((o): o is { trip: Trip } => 'trip' in o),
    map((o) => o.trip),
    drivingScoreInputs(async () => [], POLICY_IDLE_MS, fail),
    scoreWith(() => ({ champions: { driving: model }, shadows: {} }), BATCH, fail),
    toArray(),
  ))
  const delay = monitorEventLoopDelay({ resolution: 5 })
  delay.enable()
  const t0 = performance.now()
  for (let i = 0; i < readings.length; i += CHUNK) {
    for (const r of readings.slice(i, i + CHUNK)) source.next(r)
    await tick()
  }
  source.complete()
  const scored = await scores
  const ms = performance.now() - t0
  delay.disable()
  return { ms, trips, events, scores: scored, loopP99: delay.percentile(99) / 1e6 }
}

/** Reference: the same functions in a plain loop, no streams, no timers, full batches. */
async function plainLoop(readings: readonly Reading[]): Promise<Omit<StreamResult, 'loopP99' | 'scores'> & { scores: number }> {
  const trackers = new Map<string, ReturnType<typeof tripTracker>>()
  const days = new Map<string, DrivingDay[]>()
  let pending: ScoreInput[] = []
  const out = { ms: 0, trips: 0, events: 0, scores: 0 }
  const score = async () => {
    out.scores += (await scoreBatch(model, pending)).length
    pending = []
  }
  const take = async (outputs: TripOutput[]) => {
    for (const o of outputs) {
      if (!('trip' in o)) {
        out.events++
        continue
      }
      out.trips++
      const policyDays = addTrip(days.get(o.trip.policyId) ?? [], o.trip)
      days.set(o.trip.policyId, policyDays)
      pending.push(drivingScoreInput(policyDays, o.trip))
      if (pending.length === BATCH.maxBatch) await score()
    }
  }
  const t0 = performance.now()
  for (const r of readings) {
    let tracker = trackers.get(r.deviceId)
    if (!tracker) trackers.set(r.deviceId, (tracker = tripTracker(defaultTripConfig, r.deviceId, r.policyId, detectors(r.deviceId, r.policyId))))
    const outputs = tracker.push(r)
    if (outputs.length > 0) await take(outputs)
  }
  for (const tracker of trackers.values()) await take(tracker.flush())
  if (pending.length > 0) await score()
  out.ms = performance.now() - t0
  return out
}

/** Model rows a second through scoreWith, and through a bare session at the same rows per call. */
async function inferences(inputs: readonly ScoreInput[]): Promise<{ ubiq: number; bare: number; scores: number }> {
  const perInput = drivingFrequency.features.length + 1
  const t0 = performance.now()
  const n = await lastValueFrom(from(inputs).pipe(scoreWith(() => ({ champions: { driving: model }, shadows: {} }), BATCH, fail), count()))
  const ubiqMs = performance.now() - t0
  if (n !== inputs.length) throw new Error(`scoreWith scored ${n} of ${inputs.length} inputs`)

  // The same rows scoreBatch builds: each input's own, then one per feature at its baseline.
  const defs = drivingFrequency.features
  const f = defs.length
  const rows = inputs.flatMap((input) => {
    const own = defs.map((d) => input.features[d.name] ?? d.baseline)
    return [own, ...defs.map((_, i) => own.map((v, j) => (j === i ? defs[j]!.baseline : v)))]
  })
  const perCall = BATCH.maxBatch * perInput // scoreWith batches maxBatch inputs, each 1 + features rows
  const calls: Float32Array[] = []
  for (let k = 0; k < rows.length; k += perCall) calls.push(Float32Array.from(rows.slice(k, k + perCall).flat()))
  const session = await ort.InferenceSession.create(modelPath)
  const t1 = performance.now()
  for (const data of calls) {
    const out = await session.run({ [drivingFrequency.input]: new ort.Tensor('float32', data, [data.length / f, f]) })
    if (out[drivingFrequency.output]!.data.length !== data.length / f) throw new Error('bare session: wrong output length')
  }
  const bareMs = performance.now() - t1
  await session.release()
  return { ubiq: (rows.length / ubiqMs) * 1000, bare: (rows.length / bareMs) * 1000, scores: (n / ubiqMs) * 1000 }
}

/**
 * The whole pipeline on real Mosquitto and InfluxDB while a child process publishes simulated
 * vehicles at RATE messages a second: latency from the ignition-off status that closes a trip to
 * its score on MQTT, and the event-loop delay of the pipeline's process meanwhile.
 */
async function mqttRun(): Promise<{ latencies: number[]; trips: number; loopP99: number; loopMax: number; sent: number; behindMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-bench-scoring-'))
  const [broker, influx] = await Promise.all([startMosquitto(join(dir, 'mosquitto')), startInfluxd(join(dir, 'influxdb'))])
  const prefix = 'mq-'
  const policyCount = Math.ceil((RATE * MQTT_S) / 3000) // about 3,700 messages per vehicle-day: enough for the run
  const mapFile = join(dir, 'roads.geojson')
  writeFileSync(mapFile, JSON.stringify(cityGeoJson(city)))
  const pipeline = await startPipeline({
    mqttUrl: broker.url,
    influx: { api: 'v1', url: influx.url, database: 'bench_scoring' },
    devices: deviceRegistry(policyRegistry(makePolicies(city, policyCount, { devices: ['vehicle'], prefix }))),
    dataDir: join(dir, 'ubiq'),
    host: '127.0.0.1',
    port: 0,
    reorderWindowMs: REORDER_MS,
    roadMapFile: mapFile,
  }, pino({ level: 'warn' }))
  const scored = new Map<string, number>()
  const sub = await mqtt.connectAsync(broker.url, { clientId: 'bench-scores' })
  sub.on('message', (_topic, payload) => {
    const s = JSON.parse(payload.toString()) as Score
    const key = `${s.policyId} ${s.window.to}`
    if (s.subject === 'driving' && !scored.has(key)) scored.set(key, Date.now())
  })
  await sub.subscribeAsync('ubiq/v1/scores/+', { qos: 1 })

  log(`MQTT: ${policyCount} simulated vehicles at ${RATE} msg/s for up to ${MQTT_S} s, reorder window ${REORDER_MS} ms`)
  const publisher = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./scoring-publisher.ts', import.meta.url)),
    broker.url, prefix, String(policyCount), String(START_TS), String(RATE), String(MQTT_S)], { stdio: ['ignore', 'pipe', 'inherit'] })
  const closing = new Map<string, number>()
  const delay = monitorEventLoopDelay({ resolution: 5 })
  let summary = ''
  for await (const line of createInterface({ input: publisher.stdout })) {
    if (line === 'start') delay.enable()
    else if (line.startsWith('done ')) summary = line
    else {
      const [policyId, ts, at] = line.split(' ')
      closing.set(`${policyId} ${ts}`, Number(at))
    }
  }
  delay.disable()
  if (!summary) throw new Error('scoring publisher failed')
  // The last trips' scores: wait until none has come for 3 s.
  for (let last = -1; last !== scored.size; await new Promise((r) => setTimeout(r, 3000))) last = scored.size
  await sub.endAsync()
  await pipeline.stop()
  await Promise.all([broker.stop(), influx.stop()])
  rmSync(dir, { recursive: true, force: true })
  // Trips shorter than a trip (a car moved in a driveway) are not scored: their ignition-off has no score.
  const latencies = [...closing].flatMap(([key, at]) => (scored.has(key) ? [scored.get(key)! - at] : []))
  const [, sent, behindMs] = summary.split(' ').map(Number) as [number, number, number]
  return { latencies, trips: closing.size, loopP99: delay.percentile(99) / 1e6, loopMax: delay.max / 1e6, sent, behindMs }
}

/**
 * Heap per active policy, measured in a child process (`bench/scoring.ts heap`): a fresh heap, and
 * a heap limit above V8's default, which 100k active policies exceed. An active policy: its
 * vehicle is OPEN_TRIP_S into a trip (the first seconds of a simulated trip, status, OBD, GPS and
 * 25 Hz IMU, through trackTrips and the four detectors), and drivingScoreInputs holds its 90 days
 * of driving (one simulated policy's, a copy each, as each would be read from InfluxDB); both with
 * their idle timers, as in the pipeline.
 */
async function heapPerPolicy(counts: number[]): Promise<number[]> {
  const sample = simReadings(city, makePolicies(city, 1, { devices: ['vehicle'] }), { startTs: START_TS, days: 1 })
  const [, histPolicy] = makePolicies(city, 2, { devices: ['vehicle'], prefix: 'hist-' })
  const tracker = tripTracker(defaultTripConfig, 'hist', 'hist', [])
  const trips = simReadings(city, [histPolicy!], { startTs: START_TS - HISTORY_DAYS * DAY_MS, days: HISTORY_DAYS, imuHz: 0 })
    .flatMap((r) => tracker.push(r)).flatMap((o) => ('trip' in o ? [o.trip] : []))
  const history = trips.reduce<DrivingDay[]>((days, trip) => addTrip(days, trip), [])
  const lastTrip = { ...trips.at(-1)!, from: START_TS + 3600_000, to: START_TS + 4200_000 }
  const first = sample.find((r) => r.kind === 'status' && r.fields.ignition_on === true)!
  const openTrip = sample.filter((r) => r.deviceId === first.deviceId && r.ts >= first.ts && r.ts < first.ts + OPEN_TRIP_S * 1000)

  const readings$ = new Subject<Reading>()
  const trips$ = new Subject<Trip>()
  const copy = (days: readonly DrivingDay[]) => days.map((d) => ({ ...d, events: { ...d.events } }))
  const subs = [
    readings$.pipe(trackTrips(defaultTripConfig, detectors, DEVICE_IDLE_MS)).subscribe(),
    trips$.pipe(drivingScoreInputs(async () => copy(history), POLICY_IDLE_MS, fail)).subscribe(),
  ]
  // Typed arrays' contents are outside V8's heap: counted too, or packing state into them would hide it.
  const held = () => process.memoryUsage().heapUsed + process.memoryUsage().arrayBuffers
  gc()
  gc()
  const base = held()
  const out: number[] = []
  let active = 0
  for (const n of counts) {
    for (; active < n; active++) {
      const [deviceId, policyId] = [`heap-car-${active}`, `heap-pol-${active}`]
      for (const r of openTrip) readings$.next({ ...r, deviceId, policyId, fields: { ...r.fields }, ...(r.samples ? { samples: r.samples.map((s) => [...s]) } : {}) })
      trips$.next({ ...lastTrip, policyId, deviceId, events: { ...lastTrip.events } })
      if (active % 1000 === 0) await tick()
    }
    await tick()
    gc()
    gc()
    const used = held() - base
    out.push(used / n)
    log(`${n} active policies: heap +${(used / 1e6).toFixed(0)} MB (${history.length} days of history each, ${openTrip.length} readings into a trip)`)
  }
  subs.forEach((s) => s.unsubscribe())
  return out
}

if (process.argv[2] === 'heap') {
  process.stdout.write(`${JSON.stringify(await heapPerPolicy(HEAP_POLICIES))}\n`)
  process.exit(0)
}

/**
 * Runs heapPerPolicy in a child process with room for 100k policies (and a larger young generation,
 * which only makes building them faster); also returns V8's default heap limit here, MB.
 */
async function heapInChild(): Promise<{ perPolicy: number[]; limitMb: number; defaultLimitMb: number }> {
  const limitMb = Math.floor((totalmem() / 1048576) * 0.75)
  const child = spawn(process.execPath, ['--expose-gc', `--max-old-space-size=${limitMb}`, '--max-semi-space-size=64', '--import', 'tsx', fileURLToPath(import.meta.url), 'heap'], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  for await (const chunk of child.stdout) out += chunk
  if (!out) throw new Error('the heap measurement failed')
  return { perPolicy: JSON.parse(out) as number[], limitMb, defaultLimitMb: getHeapStatistics().heap_size_limit / 1048576 }
}

// The MQTT run first, while this process holds nothing but the pipeline (the throughput runs'
// readings would add their garbage collection to the pipeline's event-loop delay).
const mq = await mqttRun()
log(`MQTT: ${mq.latencies.length} trips scored of ${mq.trips} closed, event-loop p99 ${mq.loopP99.toFixed(1)} ms`)

log(`simulating ${POLICIES} vehicle policies for a day`)
const readings = simReadings(city, makePolicies(city, POLICIES, { devices: ['vehicle'] }), { startTs: START_TS, days: 1 })
log(`${readings.length} readings; ${RUNS} runs`)
const runs: { ubiq: StreamResult; plain: Awaited<ReturnType<typeof plainLoop>>; infer: Awaited<ReturnType<typeof inferences>> }[] = []
for (let run = 1; run <= RUNS; run++) {
  const ubiq = await ubiqStream(readings)
  const plain = await plainLoop(readings)
  if (ubiq.trips !== plain.trips || ubiq.scores.length !== plain.scores) throw new Error(`run ${run}: the stream made ${ubiq.trips} trips and ${ubiq.scores.length} scores, the plain loop ${plain.trips} and ${plain.scores}`)
  const seen = ubiq.scores.map(({ policyId, subject, window, exposure, features }) => ({ policyId, subject, window, exposure, features }))
  const infer = await inferences(Array.from({ length: INFER_INPUTS }, (_, i) => seen[i % seen.length]!))
  runs.push({ ubiq, plain, infer })
  log(`run ${run}/${RUNS}: stream ${((readings.length / ubiq.ms) * 1000).toFixed(0)} readings/s (plain loop ${((readings.length / plain.ms) * 1000).toFixed(0)}), ` +
    `inferences ${infer.ubiq.toFixed(0)} rows/s (bare ${infer.bare.toFixed(0)}), event-loop p99 ${ubiq.loopP99.toFixed(1)} ms`)
}
const heap = await heapInChild()

// Medians over the runs; a ratio is the median of each run's own ratio (both sides measured back to back).
const med = (f: (r: typeof runs[number]) => number) => median(runs.map(f))
const { trips, events, scores } = { ...runs[0]!.ubiq, scores: runs[0]!.ubiq.scores.length }
const m = {
  readings: med((r) => (readings.length / r.ubiq.ms) * 1000),
  outputs: med((r) => ((trips + events) / r.ubiq.ms) * 1000),
  scores: med((r) => (scores / r.ubiq.ms) * 1000),
  plain: med((r) => (readings.length / r.plain.ms) * 1000),
  streamRatio: med((r) => r.plain.ms / r.ubiq.ms),
  inferUbiq: med((r) => r.infer.ubiq),
  inferBare: med((r) => r.infer.bare),
  inferRatio: med((r) => r.infer.ubiq / r.infer.bare),
  inferScores: med((r) => r.infer.scores),
  loopP99: med((r) => r.ubiq.loopP99),
}
const rowsPerInput = drivingFrequency.features.length + 1
const n = (x: number) => x.toFixed(0).padStart(10)
const kib = (x: number | undefined) => (x === undefined ? 'n/a' : `${(x / 1024).toFixed(1)} KiB`)
const ms = (x: number) => `${x.toFixed(0)} ms`
console.log(`
ubiq scoring benchmark, median of ${RUNS} runs: ${readings.length} readings of ${POLICIES} simulated vehicles over a day per run
(OBD, GPS, 25 Hz IMU, status), making ${trips} trips, ${events} driving events and ${scores} scores
  reference   the same functions in a plain loop      ${n(m.plain)} readings/s
  ubiq        readings → trips and events → features → scores, as RxJS stages:
                                                      ${n(m.readings)} readings/s   ratio ${m.streamRatio.toFixed(2)}
                                                      ${n(m.outputs)} trips+events/s out, ${m.scores.toFixed(0)} scores/s
  inferences (one inference = one model row; a score with its reasons is ${rowsPerInput} rows):
  reference   bare onnxruntime session, ${BATCH.maxBatch * rowsPerInput} rows a call ${n(m.inferBare)} inferences/s
  ubiq        scoreWith, ${BATCH.maxBatch} inputs × ${rowsPerInput} rows a call    ${n(m.inferUbiq)} inferences/s   ratio ${m.inferRatio.toFixed(2)} (goal ≥ 0.5)
                                                      ${n(m.inferScores)} scores/s with reasons
  event-loop delay p99 in process, at full speed, ${CHUNK} readings a macrotask: ${m.loopP99.toFixed(1)} ms
  whole pipeline on Mosquitto + InfluxDB at ${RATE} msg/s (${mq.sent} messages, publisher at worst ${ms(mq.behindMs)} behind), reorder window ${REORDER_MS} ms:
    event-loop delay p99 ${mq.loopP99.toFixed(1)} ms (goal ≤ 20 ms), max ${mq.loopMax.toFixed(1)} ms
    trip-closing reading published → its score received: p50 ${ms(quantile(mq.latencies, 0.5))}, p99 ${ms(quantile(mq.latencies, 0.99))} (${mq.latencies.length} trips scored of ${mq.trips} closed)
  heap per active policy (a trip ${OPEN_TRIP_S} s in, 90 days held): ${kib(heap.perPolicy[0])} at ${HEAP_POLICIES[0]} policies, ${kib(heap.perPolicy[1])} at ${HEAP_POLICIES[1]} policies
    (measured with --max-old-space-size=${heap.limitMb}; V8's default heap limit here is ${heap.defaultLimitMb.toFixed(0)} MB)
`)
process.exit(0)
