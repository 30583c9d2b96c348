/**
 * The test harness: a real Mosquitto and a real InfluxDB per test file, on free ports with
 * temporary data directories, stopped when the test ends. No mocks of either.
 */
import { appendFileSync, mkdtempSync, rmSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { firstValueFrom, filter, type Observable } from 'rxjs'
import { startInfluxd, startMosquitto } from '../bin/local-services.ts'
import { startPipeline, type Pipeline, type PipelineConfig } from '../bin/pipeline.ts'
import { fleetRegistry, makeCity, makePolicies, policyDevices, type SimVehicle } from '../edge-sim/index.ts'
import { deviceRegistry, newCredentials, qualified, retentionPolicyNames, SERVICE_USER, writeBrokerAuth, type RetentionPolicyName, type Series } from '../ingest/index.ts'

/** The part of a tap Test the harness needs (teardown registration). */
interface Teardown {
  teardown(fn: () => unknown): void
}

export interface Services {
  mqttUrl: string
  influxUrl: string
  /** An empty folder for the service's own state (its journal), removed at teardown. */
  dataDir: string
  /** Runs InfluxQL against `db` directly, not through ubiq's own client. */
  influxql(db: string, q: string): Promise<Series[]>
}

/** Starts Mosquitto and InfluxDB for one test; both stop at its teardown. */
export async function startServices(t: Teardown): Promise<Services> {
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-test-'))
  const [broker, influx] = await Promise.all([startMosquitto(join(dir, 'mosquitto')), startInfluxd(join(dir, 'influxdb'))])
  t.teardown(async () => {
    await Promise.all([broker.stop(), influx.stop()])
    rmSync(dir, { recursive: true, force: true })
  })
  return {
    mqttUrl: broker.url,
    influxUrl: influx.url,
    dataDir: join(dir, 'ubiq'),
    influxql: influxqlAt(influx.url),
  }
}

/** Runs InfluxQL against database `db` of the InfluxDB at `url`, not through ubiq's own client. */
const influxqlAt = (url: string) => async (db: string, q: string): Promise<Series[]> => {
  const res = await fetch(`${url}/query?${new URLSearchParams({ db, q, epoch: 'ms' })}`)
  const body = (await res.json()) as { results: { error?: string; series?: Series[] }[] }
  const error = body.results.find((r) => r.error)?.error
  if (error) throw new Error(error)
  return body.results.flatMap((r) => r.series ?? [])
}

/** One more real InfluxDB beside `services`' own, for several InfluxDBs by policy partition (#25 item 4); stopped at teardown. */
export async function anotherInflux(t: Teardown, services: Services): Promise<Pick<Services, 'influxUrl' | 'influxql'>> {
  // In the test's folder, beside the first one's: removed with it.
  const influx = await startInfluxd(mkdtempSync(join(services.dataDir, '..', 'influxdb-')))
  t.teardown(() => influx.stop())
  return { influxUrl: influx.url, influxql: influxqlAt(influx.url) }
}

/**
 * A second Mosquitto beside `services`' own, with ubiq's broker config (credentials, ACL, client id
 * = username) for `devices`. `watcher`, when given, is one more user, not a device, who may read
 * everything under ubiq/v1/ (scores, events, premiums, every device's rejections): a test's eyes,
 * where the ACL gives a device only its own rejections and nobody else ubiq's service users.
 */
export async function securedBroker(t: Teardown, services: Services, devices: readonly { deviceId: string }[], watcher?: string) {
  const credentials = newCredentials(watcher ? [...devices, { deviceId: watcher }] : devices)
  const dir = join(services.dataDir, 'broker-auth')
  const conf = writeBrokerAuth(dir, credentials)
  if (watcher) appendFileSync(join(dir, 'acl'), `\n# A test's observer\nuser ${watcher}\ntopic read ubiq/v1/#\n`)
  const broker = await startMosquitto(join(services.dataDir, 'mosquitto'), { conf, username: SERVICE_USER, password: credentials.service })
  t.teardown(() => broker.stop())
  const serviceUrl = `mqtt://${SERVICE_USER}:${encodeURIComponent(credentials.service)}@${new URL(broker.url).host}`
  return { credentials, broker, serviceUrl }
}

/** A logger for tests: silent unless UBIQ_TEST_LOG is set to a level. */
export const testLogger = () => pino({ level: process.env.UBIQ_TEST_LOG ?? 'silent' })

/** The first value of `source$` that satisfies `predicate` (tap's per-file timeout guards hangs). */
export const firstMatch = <T>(source$: Observable<T>, predicate: (x: T) => boolean) => firstValueFrom(source$.pipe(filter(predicate)))

/**
 * Retention for tests that replay fixed past dates (a simulated November): every policy keeps its
 * points for ever, so that a date's age does not decide what a test finds. Tests about retention
 * give the declared durations instead (ingest/retention.test.ts, test/retention.test.ts).
 */
export const keepForever: Partial<Record<RetentionPolicyName, number>> = Object.fromEntries(retentionPolicyNames.map((n) => [n, 0]))

/**
 * The whole pipeline in this process, on the test's services, for a simulated fleet, writing to
 * InfluxDB database `db` through the v1 API. Stopped at teardown unless the test stopped it.
 */
export async function startTestPipeline(
  t: Teardown, services: Services, fleet: readonly SimVehicle[], db: string, overrides: Partial<PipelineConfig> = {},
): Promise<Pipeline> {
  const pipeline = await startPipeline({
    mqttUrl: services.mqttUrl,
    influx: { api: 'v1', url: services.influxUrl, database: db, retentionDays: keepForever },
    devices: deviceRegistry(fleetRegistry(fleet)),
    dataDir: services.dataDir,
    host: '127.0.0.1',
    port: 0,
    ...overrides,
  }, testLogger())
  let stopped = false
  const stop = pipeline.stop
  t.teardown(() => (stopped ? undefined : stop()))
  return { ...pipeline, stop: () => ((stopped = true), stop()) }
}

/** Waits until ingest has stored `n` messages (tap's per-file timeout guards hangs). */
export async function untilStored(pipeline: Pipeline, n: number): Promise<void> {
  const stored = async () => Number(/ (\d+)$/.exec(await pipeline.metrics.getSingleMetricAsString('ubiq_ingest_messages_stored_total'))![1])
  while ((await stored()) < n) await new Promise((r) => setTimeout(r, 20))
}

const DAY_MS = 86_400_000

/**
 * Two simulated policies, a car, a wearable and a home each, over two days that ended yesterday
 * (every reading in the past, as ingest requires), with each device's messages made ahead in
 * `sent`: the first policy's car crashes on its second trip, and its home has a leak.
 */
export function twoPolicies(now = Date.now()) {
  const city = makeCity()
  const policies = makePolicies(city, 2)
  const start = Math.floor(now / DAY_MS) * DAY_MS - 3 * DAY_MS
  const devices = policies.flatMap((p, i) => policyDevices(city, p, { startTs: start, days: 2, imuHz: 10, scenarios: i === 0 ? { crashOnTrip: 1, leakAt: start + 30 * 3600_000 } : {} }))
    .map((d) => ({ ...d, sent: [...d.messages] }))
  const [policy, other] = policies.map((p) => p.policyId) as [string, string]
  return { policies, start, devices, policy, other }
}

/**
 * Rows and distinct (device, seq) in InfluxDB: `lost` are sent seqs missing; `duplicated` are rows
 * beyond one per seq (a redelivery with the same device time overwrites its point, so this counts
 * only copies stored under another time).
 */
export async function tally(services: Services, db: string, expected: number) {
  const [rows] = await services.influxql(db, `SELECT count(seq) FROM ${qualified('obd')}`)
  const stored = Number(rows?.values[0]?.[1] ?? 0)
  const distinct = (await services.influxql(db, `SELECT count(distinct(seq)) FROM ${qualified('obd')} GROUP BY device_id`))
    .reduce((a, s) => a + Number(s.values[0]![1]), 0)
  return { stored, lost: expected - distinct, duplicated: stored - distinct }
}

/** Waits until InfluxDB holds `expected` rows, or nothing has changed for 10 s (then something was lost). */
export async function settle(services: Services, db: string, expected: number) {
  let last = -1
  let still = 0
  for (;;) {
    const { stored } = await tally(services, db, expected)
    if (stored >= expected) return
    still = stored === last ? still + 1 : 0
    if (still >= 20) return
    last = stored
    await sleep(500)
  }
}
