/**
 * `ubiq`: one command for operators (start, audit), demos (demo) and fleets (sim).
 * Errors of configuration and startup print their code and reason and exit non-zero.
 */
import { execFileSync, spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { hostname, userInfo } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import pino, { type Logger } from 'pino'
import pretty from 'pino-pretty'
import { fileURLToPath } from 'node:url'
import {
  cityGeoJson, groundTruth, groundTruthCsv, groundTruthJson, makeCity, makePolicies, policyDevices, policyRegistry,
  readRecording, replayStarts, runReplay, runSimulation, type DeviceMessage, type FaultConfig, type PhoneMount,
} from '../edge-sim/index.ts'
import { codes, deviceRegistry, UbiqError, isId, natsUsers, newCredentials, parseDeviceRegistry, SERVICE_USER, writeBrokerAuth, type BrokerCredentials, subjectList, subjectNames, type DeviceRegistry, type InfluxConfig, type Subject } from '../ingest/index.ts'
import { backtest, backtestCsv, backtestReport, examplePlans, loadPlans, verifyAudit } from '../pricing/index.ts'
import { changeChoice, choiceFile, findModels, loadChoice, loadRoadMap, modelDirs, qualityTable, readChoice, writeChoice, type ChoiceChange } from '../scoring/index.ts'
import { describeConfig, detectorsOf, readConfig, type Config } from './config.ts'
import { credentialsCsv, findCommand, startAedes, startInfluxd, startLocalBroker, type LocalBroker, type LocalServer } from './local-services.ts'
import { tokenAuthority, tokenSecret } from '../dashboards/index.ts'
import { auditLogFile, startPipeline, tokenSecretFile } from './pipeline.ts'
import { demoFleet } from './demo.ts'
import { showProgress } from './progress.ts'
import {
  placeTrack, readLabels, readMapping, readRecordingAt, readRecordings, recordingFormats, trackEnd, trackMessages,
  type CsvMapping, type RecordingFormat, type Track,
} from '../edge-sim/index.ts'
import {
  defaultManoeuvreConfig, detections, eventLabel, evaluateTrips, gridConfigs, leaveOneTripOut, scoreRecording, vehicleDetectors,
  type EvaluatedTrip, type LoadedModel, type OfflineResult, type RoadMap,
} from '../scoring/index.ts'
import { train, trainingReport, writePortfolio } from './train.ts'
import { startWorker } from './worker.ts'
import { startDashboardsProcess } from './dashboards.ts'
import { verifyPartitionChains } from './policy-stage.ts'

const HELP = `ubiq: usage-based insurance stream processor

Usage:
  ubiq start                     run the pipeline: MQTT ingest → scoring → pricing → dashboards
  ubiq start --worker            one of several workers sharing the devices' partitions on NATS JetStream (NATS_URL):
                                 ingest and trips for the device partitions it holds, driving scores and premiums
                                 for the policy partitions it holds, /metrics (docs/scale-out.md)
  ubiq start --dashboards        the dashboards (REST, the policyholders' feed, the pages) as a process of their own,
                                 following scores, events and premiums on MQTT_URL and history in INFLUX_URL, beside
                                 a running ubiq start (same UBIQ_DATA_DIR or TOKEN_SECRET; another PORT). Consent,
                                 privacy, erasure, what-if, household, claims, the drill-down, the export, a trip's
                                 route, ingest health and the backtest stay on the main process (README "Scale out")
  ubiq demo [options]            the pipeline, a simulated fleet and the dashboard; prints its URL
  ubiq sim [options]             simulated policyholders' cars, wearables and homes publishing to MQTT_URL
  ubiq sim replay [options]      publish real recorded trips as one phone's IMU stream to MQTT_URL
  ubiq import PATH [options]     publish recorded trips (CSV with a column mapping, GPX, the shipped dataset) to
                                 MQTT_URL as live phones would: PATH is a file, a recording's folder, or a folder of them
  ubiq evaluate DIR [options]    check ubiq on a folder of labelled recordings with scoring's own code: each trip's
                                 score and events, pairwise ranking accuracy, event precision and recall
  ubiq sim map --out FILE        the simulated city's roads and speed limits as GeoJSON (a road map for ROAD_MAP)
  ubiq sim portfolio --out DIR   a training portfolio: simulated policies' features (from scoring's own code),
                                 true claim frequencies and drawn claims, as driving.csv, health.csv, home.csv
  ubiq train --portfolio DIR     fit the driving, health and home claim-frequency models on a portfolio; writes
                                 each as ONNX with its model card and prints ranking and calibration
  ubiq backtest --portfolio DIR  run the rating plan (RATING_PLAN) with the chosen models over a portfolio: premium
                                 distribution, loss ratio by score decile, capped and floored shares, groups
  ubiq broker-config --out DIR   Mosquitto config with per-device credentials and ACL for DEVICE_REGISTRY
  ubiq broker-config --nats --out DIR   the same for nats-server (scale-out workers): its users file and credentials
  ubiq audit verify [options]    check the audit log's hash chain (premiums, consent, pauses, commands); names the first bad record
  ubiq models list               the models in the model folders, and which score each subject
  ubiq models promote ID         make model ID (name@version) its subject's champion; a running ubiq
                                 switches at its next batch, without restart
  ubiq models shadow ID          let model ID score its subject beside the champion, stored, never priced
  ubiq models unshadow ID        stop a shadow
  ubiq models rollback SUBJECT   back to the champion before (driving, health or home)
  ubiq token policy ID           a signed token that opens policy ID's feed, page and API (--days D, default 30); its id on stderr
  ubiq token analyst             a signed token that opens every policy and the analyst pages (--days D, default 1)
  ubiq erase policy ID           erase policy ID in the running ubiq: its devices, readings, everything derived,
                                 journals, retained messages, consent and tokens; its audit records stay, pseudonymous,
                                 and their key is destroyed (README "Erasure"); prints what was removed and what stays
  ubiq help                      this text

Options (demo):
  --vehicles N                   simulated vehicles (default 6)
  --speedup X                    simulated seconds per real second until the present (default 20)
  --seed N                       fleet seed: the same seed drives the same way (default 1)

Options (sim):
  --devices N                    simulated devices: each policy has a car, a wearable and a home (default 30)
  --days D                       simulated days (default 1)
  --start TIME                   simulated start, ISO 8601 (default: days ago, so the run ends now)
  --speedup X                    simulated seconds per real second (default 60)
  --seed N                       the same seed gives the same policies, personas and streams (default 1)
  --imu-hz N                     vehicles' IMU rate, 10–100 Hz, or 0 for none (default 25)
  --phone-mount YAW,PITCH,ROLL   vehicles are phones in a mount at these angles, degrees (e.g. 110,60,25): GNSS and
                                 the phone's own-frame IMU with gravity (imu_device), no OBD or ignition
  --faults LIST                  device faults, name=rate per message, comma-separated: duplicate,
                                 reorder, malformed, out-of-range, offline, clock (rate per device),
                                 foreign-topic; e.g. duplicate=0.01,clock=0.1
  --connections N                MQTT connections, at most (default 10000, within a process's file limit);
                                 beyond, devices share them, so the broker must allow anonymous clients
  --export DIR                   write the ground truth (policies.csv, claims.csv, truth.json) to DIR
  --write-registry FILE          write the devices' registry to FILE (for 'ubiq start') and exit

Options (sim replay):
  --trip DIR                     a trip folder of the driver behaviour dataset; repeatable
                                 (default: every trip in ${defaultDataset()})
  --device ID                    the replaying phone's device id (default phone-replay)
  --speedup X                    recorded seconds per real second (default 1: real time)
  --write-registry FILE          write the phone's device registry to FILE and exit

Options (import):
  --format csv|gpx|dataset       the recordings' format (default: .gpx files are GPX, a folder with viagem.json
                                 the dataset's, anything else CSV)
  --mapping FILE                 a CSV recording's column mapping, JSON (default: mapping.json in the recording's
                                 folder or the one above); README "ubiq import" describes it
  --device ID                    the device that publishes (default: from the file or folder name; one recording only)
  --policy ID                    the devices' policy in --write-registry (default pol-DEVICE)
  --speedup X                    recorded seconds per real second (default 1: real time)
  --write-registry FILE          write the devices' registry to FILE (for 'ubiq start') and exit

Options (evaluate):
  DIR                            one subfolder (or .gpx file) per recording, and labels.csv: trip,driver,road,label
                                 (label normal, aggressive, drowsy or empty); event intervals in each trip's
                                 groundTruth.csv (label,start_s,end_s) or in DIR/events.csv (trip,label,start_s,end_s)
  --format, --mapping            as for import
  --loo                          also cross-validate the event detector, leaving one trip out: the settings
                                 that were chosen by looking at labelled trips are chosen again on the other
                                 trips (a grid around the defaults) and judged on the one left out
  --json                         print the result as JSON

Options (sim map):
  --out FILE                     where to write the GeoJSON FeatureCollection
  --seed N                       the city of this fleet seed (default 1)

Options (sim portfolio):
  --out DIR                      where to write the CSV files
  --policies N                   simulated policies, each with a car, a wearable and a home (default 600)
  --driving-days D               days of driving observed per policy (default 28)
  --days D                       days of wearable and home data per policy (default 90)
  --years Y                      years of claims history drawn per policy (default 100: the claim counts
                                 of a portfolio a hundred times larger with the same behaviour)
  --start TIME                   start of the observed days, ISO 8601 (default 2026-01-05, a winter)
  --seed N                       fleet and claims seed (default 1)
  --imu-hz N                     vehicles' IMU rate, 10–100 Hz (default 10)

Options (train):
  --portfolio DIR                the portfolio's CSV files (ubiq sim portfolio writes them)
  --out DIR                      where to write the models and cards (default models)
  --version V                    the models' version (default: one above the highest in --out and the shipped ones)
  Exit code 1 when a model misses the quality goals (Gini ratio ≥ 0.9, every decile within ±10%).

Options (backtest):
  --portfolio DIR                the portfolio's CSV files (ubiq sim portfolio writes them)
  --days D                       days of wearable and home data behind each health and home score (default 90,
                                 as ubiq sim portfolio's --days)
  --out FILE                     also write every policy's score, factor and premium as CSV

Options (broker-config):
  --out DIR                      where to write mosquitto.conf, acl, passwd, tls/ and credentials.csv
  --port N                       the plain MQTT listener (default 1883)
  --tls-port N                   the MQTT over TLS listener, with a CA and server certificate made by openssl (default 8883)
  --nats                         instead, nats-server's users.conf (every node includes it; WORKER_PARTITIONS as the
                                 nodes' mapping) and credentials.csv: docs/nats/, docs/scale-out.md

Options (erase policy):
  --url URL                      the running ubiq's dashboards (default http://HOST:PORT, 127.0.0.1 for 0.0.0.0)

Options (audit verify):
  --file PATH                    the audit log (default: audit.jsonl in UBIQ_DATA_DIR; with NATS_URL and no --file,
                                 the workers' chains, one a policy partition, on JetStream)

Environment (start, demo, sim, import, evaluate, audit, models, backtest):
${describeConfig()}
`

/**
 * The help of the command `words` names (`ubiq sim --help`, `ubiq sim portfolio --help`): its usage
 * lines (a command of subcommands, such as models: each of theirs) and its options. The whole text
 * for a command it does not know.
 */
function helpOf(words: readonly string[]): string {
  const sections = HELP.split('\n\n')
  const usage = sections.find((s) => s.startsWith('Usage:')) ?? ''
  // Usage entries: a line "  ubiq SYNOPSIS   description" and its continuation lines.
  const entries = usage.split('\n').slice(1).reduce<string[]>((acc, line) => (line.startsWith('  ubiq ') || acc.length === 0 ? [...acc, line] : [...acc.slice(0, -1), `${acc.at(-1)}\n${line}`]), [])
  const commandOf = (entry: string) => {
    const synopsis = entry.trim().split(/\s{2,}/)[0]!.split(' ').slice(1)
    // Options are not the command's name: `ubiq start --help` lists --worker and --dashboards with it.
    const n = synopsis.findIndex((w) => !/^[a-z][a-z-]*$/.test(w))
    return (n === -1 ? synopsis : synopsis.slice(0, n)).join(' ')
  }
  const commands = new Set(entries.map(commandOf))
  const named = words.filter((w) => !w.startsWith('-'))
  const name = [named.slice(0, 2).join(' '), named[0] ?? ''].find((c) => commands.has(c) || [...commands].some((k) => k.startsWith(`${c} `)))
  if (!name) return HELP
  const own = entries.filter((e) => commandOf(e) === name)
  const mine = own.length > 0 ? own : entries.filter((e) => commandOf(e).startsWith(`${name} `))
  const options = sections.filter((s) => s.startsWith(`Options (${name}):`))
  return [`Usage:\n${mine.join('\n')}`, ...options, "'ubiq help' lists every command and the environment variables.\n"].join('\n\n')
}

async function main(argv: string[]): Promise<void> {
  const [command = 'help', ...rest] = argv
  // `ubiq sim portfolio --help` is how most people ask: help anywhere on the line prints it.
  if (command === 'help' || argv.includes('--help') || argv.includes('-h')) return void process.stdout.write(command === 'help' ? HELP : helpOf(argv))
  if (!['start', 'demo', 'sim', 'broker-config', 'audit', 'train', 'models', 'backtest', 'token', 'import', 'evaluate', 'erase'].includes(command)) throw new codes.UBIQ_USAGE(`unknown command "${command}"`)
  if (command === 'import' || command === 'evaluate') {
    const [path, ...more] = rest
    if (!path || path.startsWith('-')) throw new codes.UBIQ_USAGE(`ubiq ${command} needs a ${command === 'import' ? 'file or folder: ubiq import PATH' : 'folder: ubiq evaluate DIR'} [options]`)
    const opts = parseOptions(command, more)
    return command === 'import' ? importCommand(readConfig(process.env), path, opts) : evaluateCommand(readConfig(process.env), path, opts)
  }
  if (command === 'models') return modelsCommand(readConfig(process.env), rest)
  if (command === 'token') return tokenCommand(readConfig(process.env), rest)
  if (command === 'erase') return eraseCommand(readConfig(process.env), rest)
  if (command === 'audit' && rest[0] !== 'verify') throw new codes.UBIQ_USAGE(rest[0] ? `unknown audit command "${rest[0]}" (ubiq audit verify)` : 'ubiq audit needs a command: ubiq audit verify')
  const sub = command === 'audit' || (command === 'sim' && (rest[0] === 'replay' || rest[0] === 'map' || rest[0] === 'portfolio')) ? rest[0] : undefined
  const replay = sub === 'replay'
  const opts = sub ? parseOptions(`${command} ${sub}`, rest.slice(1)) : parseOptions(command, rest)
  if (sub === 'map') return writeCityMap(opts)
  if (sub === 'portfolio') return simPortfolio(opts)
  if (command === 'train') return trainCommand(opts)
  if (command === 'backtest') return backtestCommand(readConfig(process.env), opts)
  const cfg = readConfig(process.env)
  if (command === 'audit') return verifyAuditCommand(cfg, opts)
  const logger = pino(
    // Position and health values never reach a log, even if a stage logs a whole reading by mistake.
    { level: cfg.LOG_LEVEL, redact: { paths: ['*.fields', '*.payload', 'fields', 'payload'], censor: '[redacted]' } },
    // JSON lines for log collectors; readable lines for a person at a terminal.
    process.stdout.isTTY ? pretty({ sync: true, singleLine: true, ignore: 'pid,hostname', translateTime: 'HH:MM:ss' }) : undefined,
  )
  if (replay) return runReplayCommand(cfg, opts)
  if (command === 'sim') return runSim(cfg, opts, logger)
  if (command === 'broker-config') return writeBrokerConfig(cfg, opts)
  if (opts.worker && opts.dashboards) throw new codes.UBIQ_USAGE('ubiq start takes --worker or --dashboards, not both')
  if (opts.worker) return runWorker(cfg, logger)
  if (opts.dashboards) return runDashboards(cfg, logger)
  return runService(command as 'start' | 'demo', cfg, opts, logger)
}

interface Options {
  out?: string
  file?: string
  port: number
  tlsPort: number
  vehicles: number
  speedup: number
  seed: number
  registry?: string
  trips: string[]
  device: string
  devices: number
  days: number
  imuHz: number
  phoneMount?: PhoneMount
  connections: number
  faults?: FaultConfig
  export?: string
  start?: number
  policies: number
  drivingDays: number
  years: number
  portfolio?: string
  version?: string
  format?: RecordingFormat
  mapping?: string
  policy?: string
  url?: string
  json: boolean
  loo: boolean
  worker: boolean
  dashboards: boolean
  nats: boolean
}

function parseOptions(command: string, args: string[]): Options {
  // Every option takes a value; which ones a command takes:
  const names: Record<string, string[]> = {
    start: ['worker', 'dashboards'],
    demo: ['vehicles', 'speedup', 'seed'],
    sim: ['devices', 'days', 'start', 'speedup', 'seed', 'imu-hz', 'phone-mount', 'faults', 'connections', 'export', 'write-registry'],
    'sim replay': ['trip', 'device', 'speedup', 'write-registry'],
    'sim map': ['out', 'seed'],
    'sim portfolio': ['out', 'policies', 'driving-days', 'days', 'years', 'start', 'seed', 'imu-hz'],
    train: ['portfolio', 'out', 'version'],
    backtest: ['portfolio', 'days', 'out'],
    'broker-config': ['out', 'port', 'tls-port', 'nats'],
    'audit verify': ['file'],
    import: ['format', 'mapping', 'device', 'policy', 'speedup', 'write-registry'],
    evaluate: ['format', 'mapping', 'json', 'loo'],
    'token policy': ['days'],
    'token analyst': ['days'],
    'erase policy': ['url'],
  }
  const allowed = Object.fromEntries((names[command] ?? []).map((n) => [n, { type: ['json', 'loo', 'worker', 'dashboards', 'nats'].includes(n) ? 'boolean' as const : 'string' as const, multiple: n === 'trip' }]))
  let values: Record<string, string | string[] | undefined>
  try {
    values = parseArgs({ args, options: allowed, strict: true, allowPositionals: false }).values as Record<string, string | string[] | undefined>
    if (values.format !== undefined && !recordingFormats.includes(values.format as RecordingFormat)) throw new codes.UBIQ_USAGE(`--format must be ${recordingFormats.join(', ')}, got "${String(values.format)}"`)
  } catch (err) {
    throw new codes.UBIQ_USAGE((err as Error).message)
  }
  const number = (name: string, fallback: number, ok: (n: number) => boolean, rule: string) => {
    const raw = values[name]
    if (raw === undefined || Array.isArray(raw)) return fallback
    const n = Number(raw)
    if (!ok(n)) throw new codes.UBIQ_USAGE(`--${name} must be ${rule}, got "${raw}"`)
    return n
  }
  const time = (name: string, raw: string) => {
    const ms = Date.parse(raw)
    if (!/^\d{4}-\d{2}-\d{2}/.test(raw) || Number.isNaN(ms)) throw new codes.UBIQ_USAGE(`--${name} must be an ISO 8601 time such as 2026-11-16T07:00:00Z, got "${raw}"`)
    return ms
  }
  return {
    out: typeof values.out === 'string' ? values.out : undefined,
    file: typeof values.file === 'string' ? values.file : undefined,
    port: number('port', 1883, (n) => Number.isInteger(n) && n >= 1 && n <= 65535, 'a port from 1 to 65535'),
    tlsPort: number('tls-port', 8883, (n) => Number.isInteger(n) && n >= 1 && n <= 65535, 'a port from 1 to 65535'),
    vehicles: number('vehicles', 6, (n) => Number.isInteger(n) && n >= 1 && n <= 10_000, 'a whole number from 1 to 10000'),
    speedup: number('speedup', { 'sim replay': 1, import: 1, sim: 60 }[command] ?? 20, (n) => n >= 1 && n <= 1_000_000, 'a number from 1 to 1000000'),
    devices: number('devices', 30, (n) => Number.isInteger(n) && n >= 1 && n <= 100_000, 'a whole number from 1 to 100000'),
    days: number('days', { 'sim portfolio': 90, backtest: 90, 'token policy': 30 }[command] ?? 1, (n) => n > 0 && n <= 366, 'a number of days above 0, at most 366'),
    drivingDays: number('driving-days', 28, (n) => Number.isInteger(n) && n >= 1 && n <= 90, 'a whole number of days from 1 to 90'),
    policies: number('policies', 600, (n) => Number.isInteger(n) && n >= 30 && n <= 100_000, 'a whole number from 30 to 100000'),
    years: number('years', 100, (n) => n > 0 && n <= 10_000, 'a number of years above 0, at most 10000'),
    portfolio: typeof values.portfolio === 'string' ? values.portfolio : undefined,
    version: typeof values.version === 'string' ? values.version : undefined,
    imuHz: number('imu-hz', command === 'sim portfolio' ? 10 : 25, (n) => n === 0 || (Number.isInteger(n) && n >= 10 && n <= 100), '0 or a whole number from 10 to 100'),
    phoneMount: typeof values['phone-mount'] === 'string' ? parsePhoneMount(values['phone-mount']) : undefined,
    connections: number('connections', 10_000, (n) => Number.isInteger(n) && n >= 1 && n <= 10_000, 'a whole number from 1 to 10000'),
    faults: typeof values.faults === 'string' ? parseFaults(values.faults) : undefined,
    export: typeof values.export === 'string' ? values.export : undefined,
    start: typeof values.start === 'string' ? time('start', values.start) : undefined,
    seed: number('seed', 1, (n) => Number.isInteger(n) && n >= 0, 'a whole number ≥ 0'),
    registry: typeof values['write-registry'] === 'string' ? values['write-registry'] : undefined,
    trips: Array.isArray(values.trip) ? values.trip : [],
    // import names each device after its recording unless told.
    device: typeof values.device === 'string' ? values.device : command === 'import' ? '' : 'phone-replay',
    format: values.format as RecordingFormat | undefined,
    mapping: typeof values.mapping === 'string' ? values.mapping : undefined,
    policy: typeof values.policy === 'string' ? values.policy : undefined,
    url: typeof values.url === 'string' ? values.url : undefined,
    json: (values.json as unknown) === true,
    loo: (values.loo as unknown) === true,
    worker: (values.worker as unknown) === true,
    dashboards: (values.dashboards as unknown) === true,
    nats: (values.nats as unknown) === true,
  }
}

async function runService(command: 'start' | 'demo', cfg: Config, opts: Options, logger: Logger): Promise<void> {
  const demo = command === 'demo' ? demoFleet({ vehicles: opts.vehicles, seed: opts.seed, dataDir: resolve(cfg.UBIQ_DATA_DIR), roadMap: cfg.ROAD_MAP }) : undefined
  const devices = demo?.registry ?? loadDevices(cfg)
  const started: LocalServer[] = []
  const cleanups: (() => Promise<void>)[] = []
  let stopping: Promise<void> | undefined
  const stop = (signal: string) => {
    stopping ??= (async () => {
      logger.info({ signal }, 'shutting down')
      let failed = false
      for (const c of cleanups.reverse()) {
        await c().catch((err: Error) => {
          failed = true
          logger.error({ err }, 'shutdown step failed')
        })
      }
      for (const s of started.reverse()) await s.stop()
      process.exit(failed ? 1 : 0)
    })()
  }
  process.once('SIGINT', () => stop('SIGINT'))
  process.once('SIGTERM', () => stop('SIGTERM'))

  const local = cfg.MQTT_URL ? undefined : await localBroker(cfg, logger, started, devices)
  const mqttUrl = local?.url ?? cfg.MQTT_URL!
  const influxUrl = cfg.INFLUX_URL ?? (await localInflux(cfg, logger, started))
  const pipeline = await startPipeline({
    mqttUrl,
    influx: influxConfig(cfg, influxUrl),
    devices,
    ...(command === 'start' && cfg.DEVICE_REGISTRY ? { devicesFile: resolve(cfg.DEVICE_REGISTRY) } : {}),
    dataDir: resolve(cfg.UBIQ_DATA_DIR),
    host: cfg.HOST,
    port: cfg.PORT,
    reorderWindowMs: cfg.REORDER_WINDOW_MS,
    roadMapFile: demo?.roadMapFile ?? cfg.ROAD_MAP,
    plans: cfg.RATING_PLAN ? loadPlans(resolve(cfg.RATING_PLAN)) : undefined,
    modelsDir: cfg.MODELS_DIR && resolve(cfg.MODELS_DIR),
    tokenSecret: cfg.TOKEN_SECRET,
    pushSubject: cfg.PUSH_SUBJECT,
    rateLimitPerMinute: cfg.RATE_LIMIT_PER_MINUTE,
    influxStartTimeoutMs: cfg.INFLUX_START_TIMEOUT_S * 1000,
    maxPayloadBytes: cfg.MAX_PAYLOAD_BYTES,
    maxFutureSkewMs: cfg.MAX_FUTURE_SKEW_S * 1000,
    backpressure: { stopAt: cfg.BACKPRESSURE_STOP_LINES, resumeAt: cfg.BACKPRESSURE_RESUME_LINES },
    batch: { maxBatch: cfg.SCORE_BATCH_MAX, maxWaitMs: cfg.SCORE_BATCH_WAIT_MS },
    policyIdleMs: cfg.POLICY_IDLE_H * 3600_000,
    alertThresholds: { windowMin: cfg.ALERT_WINDOW_MIN, lagS: cfg.ALERT_LAG_S, rejectedPct: cfg.ALERT_REJECTED_PCT, driftPsi: cfg.ALERT_DRIFT_PSI, driftWindowH: cfg.ALERT_DRIFT_WINDOW_H, driftMinPolicies: cfg.ALERT_DRIFT_MIN_POLICIES },
    detectors: detectorsOf(cfg),
    ...(cfg.MAP_TILES_URL ? { mapTiles: { url: cfg.MAP_TILES_URL, attribution: cfg.MAP_TILES_ATTRIBUTION } } : {}),
    claims: { url: cfg.CLAIMS_WEBHOOK_URL, secret: cfg.CLAIMS_WEBHOOK_SECRET },
    alertsHook: { url: cfg.ALERTS_WEBHOOK_URL, secret: cfg.ALERTS_WEBHOOK_SECRET },
  }, logger)
  cleanups.push(() => pipeline.stop())

  if (demo) {
    // On ubiq's own broker each device connects as itself, with the password made for the run.
    const run = await demo.run(local?.deviceUrl ?? mqttUrl, opts.speedup, local?.passwords)
    cleanups.push(() => run.stop())
    const url = pipeline.url.replace('127.0.0.1', 'localhost')
    const day = 86_400_000
    const policyholder = pipeline.auth.issue({ role: 'policyholder', policyId: demo.fleet[0]!.policyId }, day)
    const analyst = pipeline.auth.issue({ role: 'analyst' }, day)
    process.stdout.write(`\nubiq demo: ${demo.fleet.length} simulated policies, each a car driving, a wearable and a home.\n` +
      `  ${demo.fleet[0]!.policyId}'s page:  ${url}/#token=${policyholder}\n` +
      `  Every policy (analyst): ${url}/#token=${analyst}\n` +
      `  Portfolio (analyst):    ${url}/analyst#token=${analyst}\n` +
      `  Metrics: curl -H 'Authorization: Bearer ${analyst}' ${url}/metrics\n  Stop with Ctrl-C.\n\n`)
  }
}

/**
 * `ubiq start --worker`: ingest for a share of the devices' partitions on NATS JetStream, beside
 * other workers (docs/scale-out.md). It needs NATS_URL, INFLUX_URL and DEVICE_REGISTRY: a worker
 * starts no servers of its own.
 */
async function runWorker(cfg: Config, logger: Logger): Promise<void> {
  const missing = (['NATS_URL', 'INFLUX_URL', 'DEVICE_REGISTRY'] as const).filter((k) => !cfg[k])
  if (missing.length > 0) throw new codes.UBIQ_CONFIG_INVALID(`ubiq start --worker needs ${missing.join(', ')} (a worker starts no servers of its own; docs/scale-out.md)`)
  const worker = await startWorker({
    servers: cfg.NATS_URL!.split(','),
    partitions: cfg.WORKER_PARTITIONS,
    workerId: cfg.WORKER_ID ?? `${hostname().replace(/[^A-Za-z0-9_-]/g, '_')}-${process.pid}`,
    replicas: cfg.WORKER_REPLICAS,
    influx: influxConfig(cfg, cfg.INFLUX_URL!),
    devices: loadDevices(cfg),
    host: cfg.HOST,
    port: cfg.PORT,
    influxStartTimeoutMs: cfg.INFLUX_START_TIMEOUT_S * 1000,
    maxPayloadBytes: cfg.MAX_PAYLOAD_BYTES,
    maxFutureSkewMs: cfg.MAX_FUTURE_SKEW_S * 1000,
  }, logger)
  stopOnSignals(() => worker.stop(), logger)
}

/** On SIGINT or SIGTERM: `stop`, then exit (1 if it failed). */
function stopOnSignals(stop: () => Promise<void>, logger: Logger): void {
  const on = (signal: string) => {
    logger.info({ signal }, 'shutting down')
    stop().then(() => process.exit(0), (err: Error) => {
      logger.error({ err }, 'shutdown failed')
      process.exit(1)
    })
  }
  process.once('SIGINT', () => on('SIGINT'))
  process.once('SIGTERM', () => on('SIGTERM'))
}

/**
 * `ubiq start --dashboards`: the dashboards as a process of their own (bin/dashboards.ts). It
 * needs MQTT_URL and INFLUX_URL (it starts no servers of its own); DEVICE_REGISTRY when set.
 */
async function runDashboards(cfg: Config, logger: Logger): Promise<void> {
  const missing = (['MQTT_URL', 'INFLUX_URL'] as const).filter((k) => !cfg[k])
  if (missing.length > 0) throw new codes.UBIQ_CONFIG_INVALID(`ubiq start --dashboards needs ${missing.join(', ')} (the broker and InfluxDB the main process uses; it starts no servers of its own)`)
  const dashboards = await startDashboardsProcess({
    mqttUrl: cfg.MQTT_URL!,
    influx: influxConfig(cfg, cfg.INFLUX_URL!),
    dataDir: resolve(cfg.UBIQ_DATA_DIR),
    tokenSecret: cfg.TOKEN_SECRET,
    ...(cfg.DEVICE_REGISTRY ? { devices: loadDevices(cfg) } : {}),
    host: cfg.HOST,
    port: cfg.PORT,
    rateLimitPerMinute: cfg.RATE_LIMIT_PER_MINUTE,
    influxStartTimeoutMs: cfg.INFLUX_START_TIMEOUT_S * 1000,
  }, logger)
  stopOnSignals(() => dashboards.stop(), logger)
}

/** `ubiq token policy ID` / `ubiq token analyst`: a signed dashboards token on stdout, what it opens on stderr. */
function tokenCommand(cfg: Config, args: string[]): void {
  const [role, ...rest] = args
  if (role !== 'policy' && role !== 'analyst') throw new codes.UBIQ_USAGE('ubiq token needs a role: ubiq token policy ID, or ubiq token analyst')
  const policyId = role === 'policy' ? rest.shift() : undefined
  if (role === 'policy' && !(policyId && isId(policyId))) throw new codes.UBIQ_USAGE(`ubiq token policy needs a policy id (letters, digits, "_" or "-"), got "${policyId ?? ''}"`)
  const opts = parseOptions(`token ${role}`, rest)
  const auth = tokenAuthority(tokenSecret(cfg.TOKEN_SECRET, tokenSecretFile(resolve(cfg.UBIQ_DATA_DIR))))
  const token = auth.issue(policyId ? { role: 'policyholder', policyId } : { role: 'analyst' }, opts.days * 86_400_000)
  const until = new Date(Date.now() + opts.days * 86_400_000).toISOString()
  process.stdout.write(`${token}\n`)
  process.stderr.write(`${policyId ? `policy ${policyId}` : 'an analyst (every policy)'}, valid until ${until}, id ${auth.verify(token).tokenId}. ` +
    `Send it as "Authorization: Bearer <token>", or open ${policyId ? '/' : '/analyst'}#token=<token> on the dashboards. ` +
    'An analyst revokes it with POST /api/v1/tokens/revocations {"tokenId": ID}.\n')
}

/**
 * `ubiq erase policy ID`: asks the running ubiq to erase the policy (#21 item 5), as an analyst
 * with a token made here for the purpose (a minute long). Erasure runs there, not here: it takes
 * the policy out of the running pipeline, so that nothing writes it back, at the same time as it
 * removes what is stored.
 */
async function eraseCommand(cfg: Config, args: string[]): Promise<void> {
  const [what, policyId, ...rest] = args
  if (what !== 'policy') throw new codes.UBIQ_USAGE('ubiq erase needs what to erase: ubiq erase policy ID')
  if (!(policyId && isId(policyId))) throw new codes.UBIQ_USAGE(`ubiq erase policy needs a policy id (letters, digits, "_" or "-"), got "${policyId ?? ''}"`)
  const opts = parseOptions('erase policy', rest)
  const base = (opts.url ?? `http://${cfg.HOST === '0.0.0.0' ? '127.0.0.1' : cfg.HOST.includes(':') ? `[${cfg.HOST}]` : cfg.HOST}:${cfg.PORT}`).replace(/\/+$/, '')
  const token = tokenAuthority(tokenSecret(cfg.TOKEN_SECRET, tokenSecretFile(resolve(cfg.UBIQ_DATA_DIR)))).issue({ role: 'analyst' }, 60_000)
  const res = await fetch(`${base}/api/v1/policies/${policyId}/erasure`, { method: 'POST', headers: { authorization: `Bearer ${token}` } }).catch((err: Error & { cause?: { code?: string } }) => {
    throw new codes.UBIQ_UNREACHABLE(base, err.cause?.code ?? err.message)
  })
  const body = (await res.json().catch(() => ({}))) as { message?: string; removed?: Record<string, unknown>; kept?: string[]; pseudonym?: string; auditHash?: string }
  if (res.status === 404) throw new codes.UBIQ_UNKNOWN_POLICY(policyId)
  if (!res.ok) throw new codes.UBIQ_ERASURE_FAILED(policyId, res.status, body.message ?? res.statusText)
  process.stdout.write(`policy ${policyId} erased; in the audit chain it is ${body.pseudonym}, the erasure record ${body.auditHash}\n` +
    `removed: ${Object.entries(body.removed ?? {}).map(([k, v]) => `${k} ${String(v)}`).join(', ')}\n` +
    `stays:\n${(body.kept ?? []).map((k) => `  - ${k}`).join('\n')}\n`)
}

/** `ubiq sim portfolio`: simulates and writes a training portfolio. */
async function simPortfolio(opts: Options): Promise<void> {
  if (!opts.out) throw new codes.UBIQ_USAGE('ubiq sim portfolio needs --out DIR')
  if (opts.imuHz === 0) throw new codes.UBIQ_USAGE('--imu-hz must be 10–100 for a portfolio: phone handling and manoeuvres are features')
  const dir = resolve(opts.out)
  const spec = { policies: opts.policies, days: { driving: opts.drivingDays, health: opts.days, home: opts.days }, years: opts.years, startTs: opts.start ?? Date.UTC(2026, 0, 5), seed: opts.seed, imuHz: opts.imuHz }
  const rows = await writePortfolio(spec, dir)
  const claims = rows.reduce((a, r) => a + r.claims, 0)
  process.stdout.write(`wrote ${dir}/{driving,health,home}.csv: ${rows.length} rows, ${claims} claims over ${opts.years} years per policy\n  Next: ubiq train --portfolio ${opts.out}\n`)
}

/** `ubiq train`: fits and writes the models; exit code 1 when one misses the quality goals. */
function trainCommand(opts: Options): void {
  if (!opts.portfolio) throw new codes.UBIQ_USAGE('ubiq train needs --portfolio DIR (ubiq sim portfolio --out DIR writes one)')
  if (opts.version !== undefined && !/^[A-Za-z0-9._-]{1,32}$/.test(opts.version)) throw new codes.UBIQ_USAGE(`--version must be 1–32 letters, digits, ".", "_" or "-", got "${opts.version}"`)
  const out = resolve(opts.out ?? 'models')
  const report = trainingReport(train(resolve(opts.portfolio), out, opts.version), out)
  process.stdout.write(report.text)
  if (!report.ok) process.exitCode = 1
}

/** `ubiq backtest`: the plan and the chosen champion models over a portfolio; the report on stdout. */
async function backtestCommand(cfg: Config, opts: Options): Promise<void> {
  if (!opts.portfolio) throw new codes.UBIQ_USAGE('ubiq backtest needs --portfolio DIR (ubiq sim portfolio --out DIR writes one)')
  const plans = loadPlans(resolve(cfg.RATING_PLAN ?? examplePlans))
  const { champions } = await loadChoice(readChoice(choiceFile(resolve(cfg.UBIQ_DATA_DIR))), findModels(modelDirs(resolve(cfg.MODELS_DIR))).models)
  const result = await backtest({ portfolio: resolve(opts.portfolio), plans, models: champions, dataDays: opts.days })
  process.stdout.write(backtestReport(result))
  if (opts.out) {
    writeFileSync(resolve(opts.out), backtestCsv(result))
    process.stdout.write(`\nwrote ${resolve(opts.out)}: every policy's score, factor and premium\n`)
  }
}

/** `ubiq audit verify`: walks the audit log; exit code 1 and the first bad record if the chain is broken. */
async function verifyAuditCommand(cfg: Config, opts: Options): Promise<void> {
  if (cfg.NATS_URL && !opts.file) return verifyPartitionChainsCommand(cfg.NATS_URL)
  const file = resolve(opts.file ?? auditLogFile(resolve(cfg.UBIQ_DATA_DIR)))
  if (!existsSync(file)) throw new codes.UBIQ_AUDIT_MISSING(file)
  const verdict = verifyAudit(file)
  if (verdict.ok) return void process.stdout.write(`audit log ${file}: ${verdict.records} records (premium adjustments and consent changes), chain intact, last hash ${verdict.lastHash || '(none)'}\n`)
  process.stderr.write(`audit log ${file}: line ${verdict.line}: ${verdict.reason}\n`)
  process.exitCode = 1
}

/** `ubiq audit verify` with NATS_URL: every policy partition's chain the workers append on JetStream (#25). */
async function verifyPartitionChainsCommand(natsUrl: string): Promise<void> {
  const verdicts = await verifyPartitionChains(natsUrl.split(','))
  for (const [q, v] of [...verdicts].sort(([a], [b]) => a - b)) {
    if (v.ok) process.stdout.write(`policy partition ${q}: ${v.records} records, chain intact, last hash ${v.lastHash}\n`)
    else {
      process.stderr.write(`policy partition ${q}: record ${v.line}: ${v.reason}\n`)
      process.exitCode = 1
    }
  }
  if (verdicts.size === 0) process.stdout.write('no policy partition has an audit chain yet\n')
}

/** `ubiq models …`: shows or changes which models score each subject (the registry's choice file in UBIQ_DATA_DIR). */
async function modelsCommand(cfg: Config, args: string[]): Promise<void> {
  const [action, target, ...extra] = args
  const usage = 'ubiq models list | promote ID | shadow ID | unshadow ID | rollback SUBJECT'
  if (extra.length > 0) throw new codes.UBIQ_USAGE(`unexpected ${extra.join(' ')} (${usage})`)
  const dataDir = resolve(cfg.UBIQ_DATA_DIR)
  const file = choiceFile(dataDir)
  const { models, problems } = findModels(modelDirs(cfg.MODELS_DIR && resolve(cfg.MODELS_DIR)))
  const choice = readChoice(file)
  if (action === 'list') {
    if (target !== undefined) throw new codes.UBIQ_USAGE(`ubiq models list takes nothing more, got "${target}"`)
    const role = (id: string, subject: Subject) => (choice[subject].champion === id ? 'champion' : choice[subject].shadows.includes(id) ? 'shadow' : '')
    const lines = [...models.values()].map((m) => `  ${m.id.padEnd(28)}${m.definition.subject.padEnd(9)}${role(m.id, m.definition.subject).padEnd(10)}${m.path}`)
    process.stdout.write(`models (choice: ${existsSync(file) ? file : 'the shipped models, no choice made yet'}):\n${lines.join('\n')}\n`)
    if (problems.length) process.stdout.write(`not usable:\n  ${problems.join('\n  ')}\n`)
    return
  }
  if (!['promote', 'shadow', 'unshadow', 'rollback'].includes(action ?? '')) throw new codes.UBIQ_USAGE(action ? `unknown models command "${action}" (${usage})` : `ubiq models needs a command: ${usage}`)
  if (!target) throw new codes.UBIQ_USAGE(`ubiq models ${action} needs ${action === 'rollback' ? `a subject: ${subjectList}` : 'a model id, name@version (ubiq models list shows them)'}`)
  let change: ChoiceChange
  if (action === 'rollback') {
    if (!(subjectNames as string[]).includes(target)) throw new codes.UBIQ_USAGE(`ubiq models rollback needs a subject: ${subjectList}, got "${target}"`)
    change = { kind: 'rollback', subject: target as Subject }
  } else change = { kind: action as 'promote' | 'shadow' | 'unshadow', id: target }
  const next = changeChoice(choice, change, models)
  // A choice the service could not load would be refused there: refuse it here, with the reason.
  await loadChoice(next, models)
  mkdirSync(dataDir, { recursive: true })
  writeChoice(file, next)
  const subject = change.kind === 'rollback' ? change.subject : models.get(change.id)!.definition.subject
  process.stdout.write(`${subject}: champion ${next[subject].champion}${next[subject].shadows.length ? `, shadows ${next[subject].shadows.join(', ')}` : ''} (${file}; a running ubiq switches at its next batch)
`)
}

/**
 * Writes mosquitto.conf, acl, passwd, a TLS CA and server certificate, and the credentials to
 * hand out, for the registry's devices. Everything is its owner's only (0700, 0600).
 */
function writeBrokerConfig(cfg: Config, opts: Options): void {
  if (!opts.out) throw new codes.UBIQ_USAGE('ubiq broker-config needs --out DIR')
  const dir = resolve(opts.out)
  const devices = [...loadDevices(cfg).values()]
  const credentials = newCredentials(devices)
  if (opts.nats) return writeNatsUsers(cfg, dir, credentials)
  const auth = writeBrokerAuth(dir, credentials)
  const data = join(dir, 'data')
  mkdirSync(data, { recursive: true, mode: 0o700 })
  const tls = writeBrokerTls(join(dir, 'tls'))
  // Started as root, mosquitto switches to its own user before it reads the password file (and
  // then cannot read a 0600 root file: #20 item 9), so as root the broker's files become that
  // user's; the credentials and the CA key stay root's. Run by anyone else, it stays that user.
  const runAs = process.getuid?.() === 0 ? accountOf('mosquitto') : undefined
  writeFileSync(join(dir, 'mosquitto.conf'), [
    '# Mosquitto for ubiq (generated by ubiq broker-config; see ingest/broker.ts).',
    '# Plain MQTT: for ubiq and devices on a network you trust; others use the TLS listener below.',
    `listener ${opts.port}`,
    ...auth.global,
    ...auth.listener,
    ...(tls
      ? ['# MQTT over TLS: devices verify the server with tls/ca.crt. Your own certificate: replace certfile and keyfile.',
        `listener ${opts.tlsPort}`, ...auth.listener, `cafile ${tls.ca}`, `certfile ${tls.cert}`, `keyfile ${tls.key}`]
      : ['# No TLS listener: openssl was not found. Add one: listener 8883, certfile, keyfile (README "Broker security").']),
    `user ${runAs ? 'mosquitto' : userInfo().username}`,
    'persistence true',
    `persistence_location ${data}/`,
    '',
  ].join('\n'), { mode: 0o600 })
  writeFileSync(join(dir, 'credentials.csv'), credentialsCsv(credentials), { mode: 0o600 })
  // …and every folder above --out must let it through.
  const closed = runAs && ancestors(dir).find((d) => { const st = statSync(d); return (st.mode & 0o001) === 0 && st.uid !== runAs.uid })
  if (closed) process.stderr.write(`warning: mosquitto runs as user mosquitto, which cannot pass ${closed} (chmod o+x ${closed}, or choose another --out)\n`)
  if (runAs) {
    for (const path of [dir, data, join(dir, 'mosquitto.conf'), join(dir, 'acl'), join(dir, 'passwd'), ...(tls ? [join(dir, 'tls'), tls.ca, tls.cert, tls.key] : [])]) {
      chownSync(path, runAs.uid, runAs.gid)
    }
  }
  process.stdout.write(`wrote ${dir}/{mosquitto.conf,acl,passwd,credentials.csv${tls ? ',tls/' : ''}} for ${devices.length} devices.\n` +
    `  Run:   mosquitto -c ${join(dir, 'mosquitto.conf')}\n` +
    `  ubiq:  MQTT_URL=mqtt://${SERVICE_USER}:<password from credentials.csv>@<host>:${opts.port}\n` +
    `  Each device connects with its device id as username (its client id is made the same) and its password from credentials.csv (keep that file secret)${tls ? `, over TLS on port ${opts.tlsPort} trusting ${tls.ca}` : ''}.\n`)
}

/** broker-config --nats: nats-server's users file and the credentials to hand out, its owner's only. */
function writeNatsUsers(cfg: Config, dir: string, credentials: BrokerCredentials): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  writeFileSync(join(dir, 'users.conf'), natsUsers(credentials, cfg.WORKER_PARTITIONS), { mode: 0o600 })
  writeFileSync(join(dir, 'credentials.csv'), credentialsCsv(credentials), { mode: 0o600 })
  process.stdout.write(`wrote ${dir}/{users.conf,credentials.csv} for ${credentials.devices.size} devices and ${cfg.WORKER_PARTITIONS} partitions.\n` +
    `  Each node: users.conf beside its nats.conf (docs/nats/n1.conf includes it), readable by nats-server's user only.\n` +
    `  Workers: NATS_URL=nats://${SERVICE_USER}:<password from credentials.csv>@n1:4222,nats://n2:4222,… WORKER_PARTITIONS=${cfg.WORKER_PARTITIONS}\n` +
    '  Each device connects over MQTT 3.1.1 with its device id as username and its password from credentials.csv (keep that file secret).\n')
}

/**
 * A CA and a server certificate it signs (for this host's name, localhost and 127.0.0.1), made
 * with openssl (node:crypto cannot issue certificates); undefined when openssl is missing.
 */
function writeBrokerTls(dir: string): { ca: string; cert: string; key: string } | undefined {
  const openssl = findCommand('openssl')
  if (!openssl) return undefined
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const [caKey, ca, key, csr, cert] = ['ca.key', 'ca.crt', 'server.key', 'server.csr', 'server.crt'].map((f) => join(dir, f)) as [string, string, string, string, string]
  const ssl = (...args: string[]) => execFileSync(openssl, args, { stdio: ['ignore', 'ignore', 'pipe'] })
  ssl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', caKey, '-out', ca, '-days', '3650', '-subj', '/CN=ubiq broker CA')
  ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', `/CN=${hostname()}`)
  const ext = join(dir, 'server.ext')
  writeFileSync(ext, `subjectAltName=DNS:${hostname()},DNS:localhost,IP:127.0.0.1\n`, { mode: 0o600 })
  ssl('x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-set_serial', `0x${randomBytes(16).toString('hex')}`, '-out', cert, '-days', '825', '-extfile', ext)
  for (const f of [csr, ext]) rmSync(f)
  for (const f of [caKey, key, ca, cert]) chmodSync(f, 0o600)
  return { ca, cert, key }
}

/** The folders above `dir`, nearest first. */
function ancestors(dir: string): string[] {
  const up = dirname(dir)
  return up === dir ? [] : [up, ...ancestors(up)]
}

/** The uid and gid of a local account, or undefined when there is none. */
function accountOf(name: string): { uid: number; gid: number } | undefined {
  const id = (flag: string) => spawnSync('id', [flag, name], { encoding: 'utf8' })
  const [uid, gid] = [id('-u'), id('-g')]
  return uid.status === 0 && gid.status === 0 ? { uid: Number(uid.stdout), gid: Number(gid.stdout) } : undefined
}

function loadDevices(cfg: Config): DeviceRegistry {
  if (!cfg.DEVICE_REGISTRY) throw new codes.UBIQ_CONFIG_INVALID('DEVICE_REGISTRY is not set: ubiq start needs the device registry file (see ubiq help; ubiq sim --write-registry FILE writes one)')
  let text: string
  try {
    text = readFileSync(cfg.DEVICE_REGISTRY, 'utf8')
  } catch (err) {
    throw new codes.UBIQ_CONFIG_INVALID(`cannot read DEVICE_REGISTRY ${cfg.DEVICE_REGISTRY}: ${(err as Error).message}`)
  }
  return parseDeviceRegistry(text)
}

/**
 * ubiq's own broker when MQTT_URL is not set: Mosquitto on 127.0.0.1 that takes only the
 * credentials made for this run (the service's, and each registered device's, written to
 * UBIQ_DATA_DIR/mosquitto/credentials.csv); the embedded aedes broker where Mosquitto cannot run.
 */
async function localBroker(cfg: Config, logger: Logger, started: LocalServer[], devices: DeviceRegistry): Promise<{ url: string; deviceUrl: string; passwords: ReadonlyMap<string, string> }> {
  const dir = resolve(cfg.UBIQ_DATA_DIR, 'mosquitto')
  let server: LocalBroker | undefined
  if (findCommand('mosquitto')) {
    server = await startLocalBroker(dir, [...devices.keys()]).catch((err: Error) => {
      logger.warn({ err }, 'mosquitto would not start; using the embedded aedes broker')
      return undefined
    })
  }
  if (server) {
    started.push(server)
    logger.info({ url: server.url, broker: 'mosquitto', credentials: server.credentialsFile }, 'started a local MQTT broker; set MQTT_URL to use another')
    return { url: server.serviceUrl, deviceUrl: server.url, passwords: server.credentials.devices }
  }
  const credentials = newCredentials([...devices.values()])
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const credentialsFile = join(dir, 'credentials.csv')
  writeFileSync(credentialsFile, credentialsCsv(credentials), { mode: 0o600 })
  const aedes = await startAedes(credentials)
  started.push(aedes)
  logger.info({ url: aedes.url, broker: 'aedes (embedded)', credentials: credentialsFile }, 'started a local MQTT broker; set MQTT_URL to use another')
  const url = new URL(aedes.url)
  url.username = SERVICE_USER
  url.password = encodeURIComponent(credentials.service)
  return { url: url.toString(), deviceUrl: aedes.url, passwords: credentials.devices }
}

async function localInflux(cfg: Config, logger: Logger, started: LocalServer[]): Promise<string> {
  const server = await startInfluxd(resolve(cfg.UBIQ_DATA_DIR, 'influxdb'))
  started.push(server)
  logger.info({ url: server.url }, 'started a local InfluxDB; set INFLUX_URL to use another')
  return server.url
}

function influxConfig(cfg: Config, url: string): InfluxConfig {
  return { api: 'v1', url: url.split(','), database: cfg.INFLUX_DATABASE, username: cfg.INFLUX_USERNAME, password: cfg.INFLUX_PASSWORD, retentionDays: { raw_positions: cfg.POSITION_RETENTION_DAYS } }
}

/** `--faults duplicate=0.01,clock=0.1`: each named fault at its rate, with typical magnitudes. */
function parseFaults(spec: string): FaultConfig {
  const faults: FaultConfig = {}
  for (const part of spec.split(',')) {
    const [name, raw] = part.split('=')
    const rate = Number(raw)
    if (!(rate >= 0 && rate <= 1)) throw new codes.UBIQ_USAGE(`--faults: ${part} needs a rate from 0 to 1, as name=0.01`)
    switch (name) {
      case 'duplicate': faults.duplicate = rate; break
      case 'reorder': faults.reorder = { rate }; break
      case 'malformed': faults.malformed = rate; break
      case 'out-of-range': faults.outOfRange = rate; break
      case 'offline': faults.offline = { rate, duration_s: [60, 1800] }; break
      case 'clock': faults.clock = { rate, skew_ms: [-120_000, 120_000], drift_ppm: [-200, 200] }; break
      case 'foreign-topic': faults.foreignTopic = { rate, deviceIds: [] }; break // filled with the fleet's ids
      default: throw new codes.UBIQ_USAGE(`--faults: unknown fault "${name}" (duplicate, reorder, malformed, out-of-range, offline, clock, foreign-topic)`)
    }
  }
  return faults
}

async function runSim(cfg: Config, opts: Options, logger: Logger): Promise<void> {
  const city = makeCity({ seed: opts.seed })
  const policies = makePolicies(city, Math.ceil(opts.devices / 3), { seed: opts.seed })
  const registry = policyRegistry(policies).slice(0, opts.devices)
  if (opts.registry) {
    writeFileSync(opts.registry, `${JSON.stringify({ devices: registry }, null, 2)}\n`)
    return void process.stdout.write(`wrote the device registry of ${registry.length} devices (${policies.length} policies) to ${resolve(opts.registry)}\n`)
  }
  const DAY = 86_400_000
  // Device time never runs ahead of the real clock: by default the run starts in the past and reaches
  // now as it ends; a later --start only holds messages back until their time comes.
  const startTs = opts.start ?? Math.round(Date.now() - opts.days * DAY * (1 - 1 / opts.speedup))
  if (opts.export) {
    const truth = groundTruth(city, policies, { startTs, days: opts.days, seed: opts.seed })
    mkdirSync(opts.export, { recursive: true })
    const csv = groundTruthCsv(truth)
    writeFileSync(join(opts.export, 'policies.csv'), csv.policies)
    writeFileSync(join(opts.export, 'claims.csv'), csv.claims)
    writeFileSync(join(opts.export, 'truth.json'), groundTruthJson(truth))
    process.stderr.write(`wrote the ground truth of ${policies.length} policies to ${resolve(opts.export)}/{policies.csv,claims.csv,truth.json}\n`)
  }
  if (!cfg.MQTT_URL) throw new codes.UBIQ_USAGE('ubiq sim needs MQTT_URL (the broker to publish to)')
  const ids = new Set(registry.map((d) => d.deviceId))
  const faults = opts.faults?.foreignTopic ? { ...opts.faults, foreignTopic: { ...opts.faults.foreignTopic, deviceIds: [...ids] } } : opts.faults
  const devices = policies.flatMap((p) => policyDevices(city, p, { startTs, days: opts.days, imuHz: opts.imuHz, ...(opts.phoneMount ? { phone: opts.phoneMount } : {}), ...(faults ? { faults } : {}) }))
    .filter((d) => ids.has(d.deviceId))
  const clients = Math.min(devices.length, opts.connections)
  process.stderr.write(`simulating ${devices.length} devices of ${policies.length} policies for ${opts.days} days at ${opts.speedup}× real time` +
    `${clients < devices.length ? ` over ${clients} shared MQTT connections` : ''}; connecting…\n`)
  const cpu = process.cpuUsage()
  const run = await runSimulation({ mqttUrl: cfg.MQTT_URL, devices, startTs, speedup: opts.speedup, connections: clients })
  const span = opts.days * DAY
  const progress = showProgress('sim', () => ({ done: run.acknowledged, unit: 'msg', detail: `${run.sent} sent, ${run.acknowledged} acknowledged`, fraction: Math.min(1, Math.max(0, (run.simulatedTs - startTs) / span)) }))
  const t0 = Date.now()
  const finish = async () => {
    await run.stop()
    const seconds = (Date.now() - t0) / 1000
    const used = process.cpuUsage(cpu)
    const injected = devices.reduce((n, d) => n + d.faults.duplicate + d.faults.reordered + d.faults.malformed + d.faults.outOfRange + d.faults.foreignTopic + d.faults.offline.buffered, 0)
    progress.done(`sim: ${run.acknowledged} messages acknowledged (${(run.acknowledged / seconds).toFixed(0)} msg/s), ${run.refused} refused by the broker, ` +
      `${injected} faults injected, most behind schedule ${(run.maxBehindMs / 1000).toFixed(1)} s, CPU ${((100 * (used.user + used.system)) / 1e6 / seconds).toFixed(0)}% of a core`)
    logger.debug({ faults: devices.map((d) => d.faults) }, 'faults injected')
    process.exit(0)
  }
  process.once('SIGINT', finish)
  process.once('SIGTERM', finish)
  await run.done
  await finish()
}

/** `ubiq sim map`: the simulated city (the one `ubiq sim --seed` drives in) as a GeoJSON road map. */
function writeCityMap(opts: Options): void {
  if (!opts.out) throw new codes.UBIQ_USAGE('ubiq sim map needs --out FILE')
  const map = cityGeoJson(makeCity({ seed: opts.seed }))
  writeFileSync(opts.out, `${JSON.stringify(map)}\n`)
  process.stdout.write(`wrote the ${map.features.length} roads of the city of seed ${opts.seed} to ${resolve(opts.out)}\n`)
}

/** The driver behaviour dataset beside the repository (../shared/data), as the project ships it. */
function defaultDataset(): string {
  return fileURLToPath(new URL('../../shared/data/driver-behavior-dataset', import.meta.url))
}

/** `ubiq sim replay`: real recorded trips, as a live phone would send them. */
async function runReplayCommand(cfg: Config, opts: Options): Promise<void> {
  if (!isId(opts.device)) throw new codes.UBIQ_USAGE(`--device must be a device id (letters, digits, _ and -), got "${opts.device}"`)
  if (opts.registry) {
    writeFileSync(opts.registry, `${JSON.stringify({ devices: [{ deviceId: opts.device, policyId: `pol-${opts.device}`.slice(0, 64), kinds: ['imu'] }] }, null, 2)}\n`)
    return void process.stdout.write(`wrote the device registry of ${opts.device} to ${resolve(opts.registry)}\n`)
  }
  let trips = opts.trips
  if (trips.length === 0) {
    const dataset = defaultDataset()
    if (!existsSync(dataset)) throw new codes.UBIQ_USAGE(`no --trip given and no dataset at ${dataset}`)
    trips = readdirSync(dataset).filter((f) => f.startsWith('trip-')).sort().map((f) => join(dataset, f))
  }
  const recordings = trips.map((dir) => {
    try {
      return readRecording(dir)
    } catch (err) {
      throw new codes.UBIQ_USAGE(`--trip ${dir}: ${(err as Error).message}`)
    }
  })
  if (!cfg.MQTT_URL) throw new codes.UBIQ_USAGE('ubiq sim replay needs MQTT_URL (the broker to publish to)')
  const total = recordings.reduce((n, r) => n + Math.ceil(r.samples.length / r.rateHz), 0)
  process.stderr.write(`replaying ${recordings.map((r) => `${r.name} (${(r.samples.length / r.rateHz).toFixed(0)} s, ${r.events.length} labelled events)`).join(', ')} as ${opts.device} at ${opts.speedup}× real time\n`)
  // Device time must never run ahead of the real clock: an accelerated replay starts in the past
  // so that it reaches the present as it ends.
  const spanMs = replayStarts(recordings, 0).at(-1)! + recordings.at(-1)!.samples.length * (1000 / recordings.at(-1)!.rateHz)
  const startTs = Math.round(Date.now() - spanMs * (1 - 1 / opts.speedup))
  // seq counts on from the launch time (ms), so ingest never takes a second replay for a resend of the first.
  const run = await runReplay({ mqttUrl: cfg.MQTT_URL, deviceId: opts.device, recordings, startTs, speedup: opts.speedup, firstSeq: Date.now() })
  const progress = showProgress('replay', () => ({ done: run.acknowledged, unit: 'msg', detail: `${run.sent} sent, ${run.acknowledged} acknowledged`, fraction: run.acknowledged / total }))
  const finish = async () => {
    await run.stop()
    progress.done(`replay: ${run.acknowledged} of ${total} imu messages acknowledged`)
    process.exit(0)
  }
  process.once('SIGINT', finish)
  process.once('SIGTERM', finish)
  await run.done
  await finish()
}

/** A device id from a recording's name: ingest's id characters only (DESIGN: topic-safe ids). */
const idFromName = (name: string) => name.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 64) || 'recording'

/** A path's recordings, or a usage error naming the file and what is wrong with it. */
function recordingsAt(path: string, opts: Options): Track[] {
  try {
    const mapping: CsvMapping | undefined = opts.mapping ? readMapping(opts.mapping) : undefined
    return readRecordings(path, { ...(opts.format ? { format: opts.format } : {}), ...(mapping ? { mapping } : {}) })
  } catch (err) {
    if (err instanceof codes.UBIQ_RECORDING_INVALID) throw new codes.UBIQ_USAGE(err.message)
    throw err
  }
}

/** What a track sends, in a few words: "234 gps, 234 imu, 2 status over 234 s". */
const describeMessages = (counts: Record<string, number>, track: Track) =>
  `${Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(', ')} over ${(trackEnd(track) / 1000).toFixed(0)} s${track.skipped.length ? ` (left out: ${track.skipped.join('; ')})` : ''}`

/** `ubiq import`: recorded trips published through MQTT_URL as the live phones that drove them would. */
async function importCommand(cfg: Config, path: string, opts: Options): Promise<void> {
  const tracks = recordingsAt(path, opts)
  if (opts.device && tracks.length > 1) throw new codes.UBIQ_USAGE(`--device names one device; ${path} holds ${tracks.length} recordings (each gets its own device, named after it)`)
  if (opts.device && !isId(opts.device)) throw new codes.UBIQ_USAGE(`--device must be a device id (letters, digits, _ and -, at most 64), got "${opts.device}"`)
  if (opts.policy !== undefined && !isId(opts.policy)) throw new codes.UBIQ_USAGE(`--policy must be a policy id (letters, digits, _ and -, at most 64), got "${opts.policy}"`)
  const ids = new Set<string>()
  const now = Date.now()
  const devices = tracks.map((track) => {
    // Two recordings of one name (a.gpx beside a/) still get a device each.
    let deviceId = opts.device || idFromName(track.name)
    for (let n = 2; ids.has(deviceId); n++) deviceId = `${idFromName(track.name).slice(0, 60)}-${n}`
    ids.add(deviceId)
    // seq counts on from the launch time (ms), so ingest never takes a second import for a resend of the first.
    const messages = trackMessages(track, { deviceId, startTs: placeTrack(track, now), firstSeq: now })
    const counts: Record<string, number> = {}
    for (const m of messages) counts[m.kind] = (counts[m.kind] ?? 0) + 1
    return { track, deviceId, messages, counts }
  })
  if (opts.registry) {
    const entries = devices.map((d) => ({ deviceId: d.deviceId, policyId: opts.policy ?? `pol-${d.deviceId}`.slice(0, 64), kinds: Object.keys(d.counts) }))
    writeFileSync(opts.registry, `${JSON.stringify({ devices: entries }, null, 2)}\n`)
    return void process.stdout.write(`wrote the device registry of ${entries.map((e) => `${e.deviceId} (${e.kinds.join(', ')})`).join(', ')} to ${resolve(opts.registry)}\n`)
  }
  if (!cfg.MQTT_URL) throw new codes.UBIQ_USAGE('ubiq import needs MQTT_URL (the broker to publish to)')
  for (const d of devices) process.stderr.write(`importing ${d.track.name} as ${d.deviceId}: ${describeMessages(d.counts, d.track)}\n`)
  const total = devices.reduce((n, d) => n + d.messages.length, 0)
  const startTs = Math.min(...devices.map((d) => d.messages[0]?.sendAt ?? now))
  process.stderr.write(`publishing ${total} messages at ${opts.speedup}× real time; connecting…\n`)
  const run = await runSimulation({ mqttUrl: cfg.MQTT_URL, devices: devices.map((d) => ({ deviceId: d.deviceId, messages: d.messages.values() as Generator<DeviceMessage> })), startTs, speedup: opts.speedup })
  const progress = showProgress('import', () => ({ done: run.acknowledged, unit: 'msg', detail: `${run.sent} sent, ${run.acknowledged} acknowledged`, fraction: run.acknowledged / total }))
  const finish = async () => {
    await run.stop()
    progress.done(`import: ${run.acknowledged} of ${total} messages acknowledged${run.refused ? `, ${run.refused} refused by the broker (is each device in its ACL?)` : ''}; ingest's rejections, if any, are on ubiq/v1/rejected/DEVICE`)
    process.exit(run.acknowledged === total ? 0 : 1)
  }
  process.once('SIGINT', finish)
  process.once('SIGTERM', finish)
  await run.done
  await finish()
}

/** Device time of a relative recording's start in \`ubiq evaluate\`: a fixed weekday morning, so the same folder always scores the same (night driving depends on the time). */
const EVALUATE_START = Date.parse('2026-01-05T09:00:00Z')

/** \`ubiq evaluate\`: labelled recordings through scoring's own code, and how well ubiq ranks and detects on them. */
async function evaluateCommand(cfg: Config, dir: string, opts: Options): Promise<void> {
  let labelled: ReturnType<typeof readLabels>
  let tracks: Track[]
  try {
    if (!existsSync(dir)) throw new codes.UBIQ_RECORDING_INVALID(`${dir}: no such folder`)
    labelled = readLabels(dir)
    const mapping = opts.mapping ? readMapping(opts.mapping) : existsSync(join(dir, 'mapping.json')) ? readMapping(join(dir, 'mapping.json')) : undefined
    tracks = labelled.trips.map(({ trip }) => {
      const at = [join(dir, trip), join(dir, `${trip}.gpx`)].find((p) => existsSync(p))
      if (!at) throw new codes.UBIQ_RECORDING_INVALID(`labels.csv: trip "${trip}" has no recording in ${dir} (a folder ${trip}/ or a file ${trip}.gpx)`)
      return readRecordingAt(at, { ...(opts.format ? { format: opts.format } : {}), ...(mapping ? { mapping } : {}) })
    })
  } catch (err) {
    if (err instanceof codes.UBIQ_RECORDING_INVALID) throw new codes.UBIQ_USAGE(err.message)
    throw err
  }
  const labelsOf = (i: number) => [...tracks[i]!.labels, ...(labelled.events.get(labelled.trips[i]!.trip) ?? [])].map((l) => {
    try {
      return { ...l, label: eventLabel(l.label) }
    } catch (err) {
      throw new codes.UBIQ_USAGE(`trip ${labelled.trips[i]!.trip}: ${(err as Error).message}`)
    }
  })
  const eventLabels = tracks.map((_, i) => labelsOf(i))
  const { champions } = await loadChoice(readChoice(choiceFile(resolve(cfg.UBIQ_DATA_DIR))), findModels(modelDirs(cfg.MODELS_DIR && resolve(cfg.MODELS_DIR))).models)
  const roads = cfg.ROAD_MAP ? await loadRoadMap(cfg.ROAD_MAP) : undefined
  const detectors = vehicleDetectors(roads)
  let done = 0
  const progress = showProgress('evaluate', () => ({ done, unit: 'trips', fraction: done / tracks.length }))
  const results: { result: OfflineResult; evaluated: EvaluatedTrip }[] = []
  for (const [i, track] of tracks.entries()) {
    const { trip, ...label } = labelled.trips[i]!
    const deviceId = idFromName(trip)
    const startTs = track.epochMs ?? EVALUATE_START
    // Each trip its own policy: its score is its own driving, not a history's.
    const result = await scoreRecording(trackMessages(track, { deviceId, startTs, firstSeq: 0 }), { deviceId, policyId: `pol-${deviceId}`.slice(0, 64) }, { detectors, model: champions.driving! })
    results.push({ result, evaluated: { trip, ...label, ...(result.score ? { score: result.score.value } : {}), detections: detections(result.events, startTs), labels: eventLabels[i]! } })
    done++
  }
  const evaluation = evaluateTrips(results.map((r) => r.evaluated))
  progress.done(`evaluate: ${tracks.length} trips scored with ${champions.driving!.definition.name}@${champions.driving!.definition.version}`)
  const loo = opts.loo ? await crossValidate(tracks, results.map((r) => r.evaluated), roads, champions.driving!) : undefined
  const rows = results.map(({ result, evaluated }) => {
    const events: Record<string, number> = {}
    for (const e of result.events) events[e.type] = (events[e.type] ?? 0) + 1
    const { detections: _, labels, ...trip } = evaluated
    return { ...trip, readings: result.readings, rejected: result.rejected, trips: result.trips.length, distance_km: Math.round(result.trips.reduce((a, t) => a + t.distance_km, 0) * 100) / 100, events, labelledEvents: labels.length }
  })
  if (opts.json) return void process.stdout.write(`${JSON.stringify({ model: `${champions.driving!.definition.name}@${champions.driving!.definition.version}`, trips: rows, ranking: { aggressive: evaluation.aggressive, drowsy: evaluation.drowsy }, events: evaluation.events, ...(loo ? { leaveOneTripOut: loo } : {}) }, null, 2)}\n`)
  const table = [['trip', 'driver', 'road', 'label', 'trips', 'km', 'score', 'events'], ...rows.map((r) => [
    r.trip, r.driver ?? '-', r.road ?? '-', r.label ?? '-', String(r.trips), r.distance_km.toFixed(1), r.score?.toFixed(1) ?? '-',
    Object.entries(r.events).map(([k, n]) => `${k} ${n}`).join(', ') + (Object.keys(r.rejected).length ? ` (rejected: ${Object.entries(r.rejected).map(([k, n]) => `${k} ${n}`).join(', ')})` : ''),
  ])]
  const widths = table[0]!.map((_, j) => Math.max(...table.map((row) => row[j]!.length)))
  const pairs = (p: typeof evaluation.aggressive) => `${p.correct} of ${p.pairs} pairs${p.unscored ? ` (${p.unscored} more without a score: no trip was made of a recording)` : ''}`
  process.stdout.write([
    ...table.map((row) => row.map((c, j) => c.padEnd(widths[j]!)).join('  ').trimEnd()),
    '',
    'ranking, same driver and road (right: the first scores lower):',
    `  aggressive below normal: ${pairs(evaluation.aggressive)}`,
    `  drowsy below normal: ${pairs(evaluation.drowsy)}`,
    '',
    `events on the ${rows.filter((r) => r.labelledEvents > 0).length} trips with labelled events (correct: overlaps a label of its axis ±1 s):`,
    qualityTable(evaluation.events),
    '',
    ...(loo ? [
      `leave one trip out (${loo.heldOut.length} labelled trips; the detector's settings chosen on the others, judged on each):`,
      ...loo.heldOut.map((h) => `  ${h.trip}: ${Object.entries(h.chosen).map(([k, v]) => `${k} ${v}`).join(', ')}`),
      qualityTable(loo.pooled),
      '',
    ] : []),
  ].join('\n'))
}

/** `evaluate --loo`: every labelled trip re-detected under each setting of the grid, then leave-one-trip-out. */
async function crossValidate(tracks: readonly Track[], trips: readonly EvaluatedTrip[], roads: RoadMap | undefined, model: LoadedModel) {
  const configs = gridConfigs(defaultManoeuvreConfig)
  let done = 0, of = 1
  const progress = showProgress('leave one trip out', () => ({ done, unit: 'runs', fraction: done / of }))
  const result = await leaveOneTripOut(trips, configs, async (config, i) => {
    const deviceId = idFromName(trips[i]!.trip)
    const startTs = tracks[i]!.epochMs ?? EVALUATE_START
    const r = await scoreRecording(trackMessages(tracks[i]!, { deviceId, startTs, firstSeq: 0 }), { deviceId, policyId: `pol-${deviceId}`.slice(0, 64) }, { detectors: vehicleDetectors(roads, { manoeuvres: config }), model })
    return detections(r.events, startTs)
  }, (d, n) => ([done, of] = [d, n]))
  progress.done(`leave one trip out: ${configs.length} settings of the detector on ${result.heldOut.length} labelled trips`)
  return result
}

/** `--phone-mount YAW,PITCH,ROLL`: three angles in degrees. */
function parsePhoneMount(text: string): PhoneMount {
  const angles = text.split(',').map((x) => Number(x.trim()))
  if (angles.length !== 3 || angles.some((a) => !Number.isFinite(a) || Math.abs(a) > 360)) throw new codes.UBIQ_USAGE(`--phone-mount: expected three angles in degrees, YAW,PITCH,ROLL (e.g. 110,60,25), got "${text}"`)
  const [yaw_deg, pitch_deg, roll_deg] = angles as [number, number, number]
  return { yaw_deg, pitch_deg, roll_deg }
}

main(process.argv.slice(2)).catch((err: Error & { code?: string }) => {
  if (err instanceof codes.UBIQ_USAGE) {
    process.stderr.write(`ubiq: ${err.message}\nRun 'ubiq help' for usage.\n`)
    process.exit(2)
  }
  const hint = err.code === 'EADDRINUSE' ? ' (set PORT to a free port, or 0 for any)' : ''
  // A catalogued error says all an operator needs; any other is a fault: its stack says where it came from.
  const stack = err instanceof UbiqError || !err.stack ? '' : `${err.stack}\n`
  process.stderr.write(`ubiq: ${err.code ? `[${err.code}] ` : ''}${err.message}${hint}\n${stack}`)
  process.exit(1)
})
