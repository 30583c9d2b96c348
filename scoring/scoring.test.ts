/**
 * The scoring service as a whole (#20 item 6): a bug in one device's or policy's state costs that
 * key, counted and logged with its stack, never the stream (it used to end trips$ and scores$, and
 * with no error handler anywhere, the process). And a redelivery that ingest's dedupe has forgotten
 * (#20 item 5) is counted once. A stream withdrawn from pricing is not scored, neither live nor
 * when a policy's state is rebuilt from InfluxDB (#21).
 */
import t, { type Test } from 'tap'
import mqtt from 'mqtt'
import pino from 'pino'
import { Registry } from 'prom-client'
import { from, lastValueFrom, share, Subject, tap, toArray } from 'rxjs'
import { connectInflux, consentStore, deviceRegistry, dropDuplicates, retentionPolicyNames, storeReadings, type Reading } from '../ingest/index.ts'
import { keepForever, startServices, firstMatch } from '../test/harness.ts'
import type { DrivingDay } from './driving.ts'
import type { Detector } from './events.ts'
import { drivingScoreInputs, startScoring } from './scoring.ts'
import { defaultTripConfig, type Trip } from './trips.ts'

const T0 = Date.UTC(2026, 10, 16, 8)
/** `seconds` of 1 Hz OBD at 50 km/h from T0: a trip of its own. */
const drive = (deviceId: string, seconds: number): Reading[] => Array.from({ length: seconds }, (_, i) => ({
  deviceId, policyId: `pol-${deviceId}`, kind: 'obd', subject: 'driving', seq: i, ts: T0 + i * 1000, receivedAt: T0 + i * 1000, fields: { speed_kmh: 50 },
}))

/** Services, the database's client kept for ever, and an MQTT publisher, closed when `t` ends. */
async function servicesFor(t: Test, database: string) {
  const services = await startServices(t)
  const influx = await connectInflux({ api: 'v1', url: services.influxUrl, database, retentionDays: keepForever })
  t.teardown(() => influx.close())
  const publisher = await mqtt.connectAsync(services.mqttUrl, { clientId: `${database}-test` })
  t.teardown(() => publisher.endAsync())
  return { services, influx, publisher }
}

t.test('one device whose detector throws loses its trip; the other devices\' trips go on', async (t) => {
  const services = await startServices(t)
  const logged: { level: number; msg: string; key?: string; failedStage?: string; err?: { stack?: string } }[] = []
  const logger = pino({ level: 'info' }, { write: (line: string) => void logged.push(JSON.parse(line)) })
  const metrics = new Registry()
  const publisher = await mqtt.connectAsync(services.mqttUrl, { clientId: 'scoring-test' })
  t.teardown(() => publisher.endAsync())
  const influx = await connectInflux({ api: 'v1', url: services.influxUrl, database: 'ubiq_scoring' })
  t.teardown(() => influx.close())
  // A detector with a bug that one device's reading sets off, as any of the real ones might.
  const buggy: Detector = {
    push: (r) => {
      if (r.seq === 30) throw new Error('detector bug')
      return []
    },
    flush: () => [],
  }
  const readings$ = new Subject<Reading>()
  const { trips$ } = startScoring({
    readings$, mqtt: publisher, influx, logger, metrics,
    models: () => ({ champions: {}, shadows: {} }),
    policyDevices: () => [],
    trips: defaultTripConfig,
    detectors: (deviceId) => (deviceId === 'bad' ? [buggy] : []),
    batch: { maxBatch: 64, maxWaitMs: 20 },
    deviceIdleMs: 200,
    policyIdleMs: 60_000,
  })
  const good = firstMatch(trips$, (trip: Trip) => trip.deviceId === 'good')
  const bad = drive('bad', 120)
  for (const [i, r] of drive('good', 120).entries()) {
    readings$.next(r)
    readings$.next(bad[i]!)
  }
  const trip = await good
  t.match(trip, { from: T0, moving_s: 119 }, 'the good device\'s whole trip, after the other\'s tracker threw')
  // Each device's first reading waits for its open trip to be read from InfluxDB: on a busy machine
  // the bad device's may come back after the good trip has closed.
  while (!logged.some((l) => l.level === 50)) await new Promise((resolve) => setTimeout(resolve, 50))
  t.match(await metrics.getSingleMetricAsString('ubiq_scoring_key_failures_total'), /ubiq_scoring_key_failures_total\{stage="trips"\} 1$/m, 'counted once, by stage')
  const failure = logged.find((l) => l.level === 50)
  t.match(failure, { key: 'bad', failedStage: 'trips', err: { stack: /detector bug\n\s+at / } }, 'logged with its device and stack')
  t.notMatch(JSON.stringify(failure), /speed_kmh|"fields"/, 'and without the reading that set it off')
  readings$.complete()
})

t.test('a policy whose days throw is left out of its score; the other policies are scored', async (t) => {
  const trip = (policyId: string, events?: Trip['events']) => ({ policyId, deviceId: `${policyId}-car`, from: T0, to: T0 + 600_000, ended: 'ignition', source: 'obd', distance_km: 5, duration_s: 600, moving_s: 500, night_s: 0, speeding_s: 0, phone_s: 0, max_speed_kmh: 50, events }) as unknown as Trip
  const failed: string[] = []
  const inputs = await lastValueFrom(from([trip('good', {}), trip('bad'), trip('good', {})]).pipe(
    drivingScoreInputs(async (): Promise<DrivingDay[]> => [], 60_000, () => t.fail('no history read fails'), undefined, (err, policyId) => void failed.push(`${policyId}: ${(err as Error).name}`)),
    toArray(),
  ))
  t.same(inputs.map((i) => i.policyId), ['good', 'good'], 'the good policy scored after each trip')
  t.same(failed, ['bad: TypeError'], 'the bad one reported, with its policy')
})

t.test('a redelivery that dedupe has forgotten is counted once: the policy\'s state, gone too, comes back from InfluxDB up to it (#20 item 5)', async (t) => {
  const database = 'ubiq_scoring_redelivery'
  const { services, influx, publisher } = await servicesFor(t, database)
  // Ingest's dedupe and storage, with idle times scaled down: dedupe forgets a policy after 1 s of
  // receive time, scoring after 300 ms (the pipeline keeps that order: dedupeIdleMs).
  const received$ = new Subject<Reading>()
  let passed = 0
  const readings$ = received$.pipe(dropDuplicates(1024, 1000), tap(() => passed++), storeReadings((lines) => influx.write(lines)), share())
  startScoring({
    readings$, mqtt: publisher, influx, logger: pino({ level: 'silent' }), metrics: new Registry(),
    models: () => ({ champions: {}, shadows: {} }),
    policyDevices: () => ['watch'],
    trips: defaultTripConfig, detectors: () => [], batch: { maxBatch: 64, maxWaitMs: 20 },
    deviceIdleMs: 200, policyIdleMs: 300,
  })
  const steps = (seq: number, count: number, receivedAt: number): Reading =>
    ({ deviceId: 'watch', policyId: 'pol-w', kind: 'steps', subject: 'health', seq, ts: T0 + seq * 3600_000, receivedAt, fields: { steps_count: count, interval_s: 3600 } })
  /** The day's steps once scoring has stored it on going idle. */
  const storedDay = async (steps: number) => {
    for (;;) {
      await influx.flush()
      const [day] = await services.influxql(database, "SELECT steps FROM health_day WHERE policy_id = 'pol-w'")
      if (day?.values[0]?.[1] === steps) return steps
      await new Promise((r) => setTimeout(r, 50))
    }
  }
  received$.next(steps(1, 1000, T0))
  received$.next(steps(2, 500, T0))
  t.equal(await storedDay(1500), 1500, 'the day as it went idle')
  // The watch resends its last message (it never got the PUBACK) after dedupe forgot the policy.
  received$.next(steps(2, 500, T0 + 2000))
  t.equal(passed, 3, 'the resend got through dedupe')
  await new Promise((r) => setTimeout(r, 1000))
  t.equal(await storedDay(1500), 1500, 'and counts once: the day was rebuilt from the stored readings before it')
  received$.complete()
})

t.test('a stream withdrawn from pricing but kept for coaching is not scored: neither live nor read back from InfluxDB to rebuild the open day (#21)', async (t) => {
  const database = 'ubiq_scoring_consent'
  const { services, influx, publisher } = await servicesFor(t, database)
  const consents = consentStore({ registry: deviceRegistry([{ deviceId: 'watch', policyId: 'pol-c', kinds: ['steps', 'hr'] }]), record: () => 'recorded' })
  consents.change('pol-c', { streams: ['steps'], purposes: ['pricing'], granted: false }, { role: 'policyholder' })
  consents.change('pol-c', { streams: ['steps'], purposes: ['coaching'], granted: true }, { role: 'policyholder' })
  const reading = (kind: 'steps' | 'hr', seq: number, fields: Reading['fields']): Reading =>
    ({ deviceId: 'watch', policyId: 'pol-c', kind, subject: 'health', seq, ts: T0 + seq * 3600_000, receivedAt: T0, fields })
  // The morning's steps, stored (for coaching) before scoring last saw the policy: after a restart, say.
  await lastValueFrom(from([reading('steps', 1, { steps_count: 4000, interval_s: 3600 })]).pipe(storeReadings((lines) => influx.write(lines))))
  await influx.flush()
  const readings$ = new Subject<Reading>()
  startScoring({
    readings$, mqtt: publisher, influx, logger: pino({ level: 'silent' }), metrics: new Registry(),
    models: () => ({ champions: {}, shadows: {} }),
    policyDevices: () => ['watch'],
    trips: defaultTripConfig, detectors: () => [], batch: { maxBatch: 64, maxWaitMs: 20 },
    deviceIdleMs: 200, policyIdleMs: 300, consents,
  })
  // The policy comes back with a heart rate (its open day is rebuilt from the stored readings), then more steps.
  readings$.next(reading('hr', 2, { hr_bpm: 70 }))
  readings$.next(reading('steps', 3, { steps_count: 500, interval_s: 3600 }))
  for (;;) {
    await influx.flush()
    const [day] = await services.influxql(database, "SELECT hr_n, steps FROM health_day WHERE policy_id = 'pol-c'")
    if (day) {
      t.same(day.values.map((v) => [v[1], v[2]]), [[1, 0]], 'the day holds the heart rate and no steps: neither the stored ones nor the live one')
      break
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  readings$.complete()
})

t.test('state is rebuilt from InfluxDB with conditions on tags and time only, and an open trip comes back whole (#25 item 4)', async (t) => {
  const database = 'ubiq_scoring_restore_queries'
  const { services, influx, publisher } = await servicesFor(t, database)
  // InfluxDB 1.x's in-memory index answers a condition on a field with every series of the
  // measurement, copied and sorted per query: with one restore per device, O(devices²) work,
  // and a 100k-device fleet took InfluxDB to 22 GB.
  const asked: string[] = []
  const recording: typeof influx = { ...influx, query: (q: string) => (asked.push(q), influx.query(q)), of: () => recording }
  // The car's first 90 seconds are stored (ingest stores before scoring hears; a restart lost
  // scoring's state), and scoring hears it again from second 60: its trip must be the same as one
  // heard whole.
  const car = drive('car', 120)
  await lastValueFrom(from(car.slice(0, 90)).pipe(storeReadings((lines) => influx.write(lines))))
  await influx.flush()
  const readings$ = new Subject<Reading>()
  const { trips$ } = startScoring({
    readings$, mqtt: publisher, influx: recording, logger: pino({ level: 'silent' }), metrics: new Registry(),
    models: () => ({ champions: {}, shadows: {} }),
    policyDevices: (policyId) => [policyId.slice('pol-'.length)],
    trips: defaultTripConfig, detectors: () => [], batch: { maxBatch: 64, maxWaitMs: 20 },
    deviceIdleMs: 200, policyIdleMs: 60_000,
  })
  const trips: Trip[] = []
  trips$.subscribe((trip) => trips.push(trip))
  const watch: Reading = { deviceId: 'watch', policyId: 'pol-watch', kind: 'hr', subject: 'health', seq: 1, ts: T0, receivedAt: T0, fields: { hr_bpm: 70 } }
  readings$.next(watch)
  drive('ref', 120).forEach((r) => readings$.next(r))
  car.slice(60).forEach((r) => readings$.next(r))
  while (trips.length < 2) await new Promise((r) => setTimeout(r, 50))
  readings$.complete()
  const [ref, restored] = ['ref', 'car'].map((d) => trips.find((trip) => trip.deviceId === d))
  const strip = (trip?: Trip) => trip && { ...trip, deviceId: undefined, policyId: undefined }
  t.same(strip(restored), strip(ref), 'the car\'s trip rebuilt from its stored seconds equals the trip heard whole')

  await influx.flush()
  const tagKeys = new Set((await services.influxql(database, retentionPolicyNames.map((rp) => `SHOW TAG KEYS FROM "${rp}"./.*/`).join('; '))).flatMap((s) => s.values.map((v) => String(v[0]))))
  const conditions = asked.map((q) => [q, [...(/ WHERE (.*?)(?: GROUP BY| ORDER BY| LIMIT|$)/.exec(q)?.[1] ?? '').matchAll(/(\w+)\s*(?:=|!=|<>|<=|>=|<|>)/g)].map((m) => m[1]!)] as const)
  t.ok(conditions.some(([q]) => q.includes("device_id = 'car'")) && conditions.some(([q]) => q.includes("device_id = 'watch'")), 'the car\'s open trip and the watch\'s open day were read back')
  for (const [q, names] of conditions) t.ok(names.every((n) => n === 'time' || tagKeys.has(n)), `only tags and time in: ${q}`)
})
