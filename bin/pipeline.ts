/**
 * Wires the services in the direction the data flows: ingest → scoring → pricing → dashboards.
 * The only place that knows them all; each receives its configuration and dependencies here.
 */
import { createHash } from 'node:crypto'
import { chmodSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import mqtt from 'mqtt'
import type { Logger } from 'pino'
import { Counter, Registry, collectDefaultMetrics } from 'prom-client'
import { pushAlerts, startDashboards, tokenAuthority, tokenSecret, type AlertThresholds, type TokenAuthority } from '../dashboards/index.ts'
import { codes, commandMessages, commandStore, COMMANDS, connectInflux, influxUrls, withoutExpired, consentNotice, consentStore, createAdapters, openJournal, orderWithin, privacyNotice, privacyStore, startIngest, topics, within, type DeviceRegistry, type InfluxConfig, type Subject } from '../ingest/index.ts'
import { auditRecords, claimsStage, webhookSender, cachedBacktest, examplePlans, loadPlans, openAuditLog, openPolicyKeys, planId, pricingStateFromAudit, reveal, startPricing, whatIf, type AuditRecord, type ClaimRecord, type CommandRecord, type ConsentRecord, type PolicyKeys, type PrivacyRecord, type PremiumAdjustment, type RatingPlan, type ValveTest } from '../pricing/index.ts'
import { eventCommands, loadRoadMap, referencePortfolio, defaultTripConfig, choiceFile, modelDirs, openModelRegistry, startScoring, vehicleDetectors, type DetectorConfigs, type PolicyEvent, type RoadMap, type Score, type Trip, type ActiveModels } from '../scoring/index.ts'
import { config as rxConfig, Subject as RxSubject, type Observable } from 'rxjs'
import { eraser } from './erase.ts'

export interface PipelineConfig {
  mqttUrl: string
  influx: InfluxConfig
  devices: DeviceRegistry
  /** The file `devices` was read from (DEVICE_REGISTRY): an erasure rewrites it without the policy's devices. */
  devicesFile?: string
  /** Where ubiq keeps its own state (the ingest journal, the audit log). */
  dataDir: string
  host: string
  port: number
  /** Readings arriving out of order within this long are put back in device-time order before scoring. */
  reorderWindowMs?: number
  /** A folder of trained models (MODELS_DIR) beside the shipped ones, for the model registry. */
  modelsDir?: string
  /** The rating plan's versions (default: the shipped example plan, pricing/plans/). */
  plans?: readonly RatingPlan[]
  /** A GeoJSON road map with speed limits: speeding is judged against it (none: no speeding events). */
  roadMapFile?: string
  /** Unconfirmed InfluxDB lines at which ingest stops acknowledging, and resumes. */
  backpressure?: { stopAt: number; resumeAt: number }
  /** Signs the dashboards' tokens (default: the one made once in dataDir, tokenSecretFile). */
  tokenSecret?: string
  /** Who runs the service, for web push services (VAPID subject, a mailto: or https: URL). */
  pushSubject?: string
  /** Host names of the push services alerts may go to (default dashboards' PUSH_HOSTS). */
  pushHosts?: readonly string[]
  /** Dashboards requests a client address may make a minute. */
  rateLimitPerMinute?: number
  /** How long to wait for InfluxDB to answer before giving up with UBIQ_INFLUX_UNREACHABLE, ms (default 60 s). */
  influxStartTimeoutMs?: number
  /** Lines waiting this long with none confirmed fail /healthz's storing check, ms (default STALL_MS). */
  stallMs?: number
  /** A device message larger than this is rejected (default 64 KiB). */
  maxPayloadBytes?: number
  /** A reading timed further ahead of the server than this is rejected, ms (default 5 min). */
  maxFutureSkewMs?: number
  /** Scoring's micro-batches (default scoringLimits). */
  batch?: { maxBatch: number; maxWaitMs: number }
  /** A policy with no reading (no trip) for this long leaves scoring's memory, ms (default scoringLimits.policyIdleMs, as POLICY_IDLE_H's; shorter in tests). */
  policyIdleMs?: number
  /** The analyst alert rules' thresholds (ALERT_*; default defaultAlertThresholds). */
  alertThresholds?: AlertThresholds
  /** Map tiles under a trip's route on the policyholder's page (MAP_TILES_URL, MAP_TILES_ATTRIBUTION). */
  mapTiles?: { url: string; attribution?: string }
  /** The vehicle detectors' thresholds (default: as each detector declares them). */
  detectors?: DetectorConfigs
  /**
   * The insurer's claims system (CLAIMS_WEBHOOK_URL, CLAIMS_WEBHOOK_SECRET): claims are delivered
   * there as signed webhooks. Without it claims are opened and listed, not sent. `retry` and
   * `graceMs` are for tests (the defaults: pricing/webhooks.ts, pricing/claims.ts).
   */
  claims?: { url?: string; secret?: string; retry?: { maxAttempts?: number; baseDelayMs?: number }; graceMs?: number }
  /** The insurer's alert receiver (ALERTS_WEBHOOK_URL, ALERTS_WEBHOOK_SECRET): urgent events and premium changes, as signed webhooks through the claims' sender. */
  alertsHook?: { url?: string; secret?: string }
}

export interface Pipeline {
  /** The dashboards' address. */
  url: string
  scores$: Observable<Score>
  events$: Observable<PolicyEvent>
  trips$: Observable<Trip>
  premiums$: Observable<PremiumAdjustment>
  /** The models scoring now: the registry's champions and shadows. */
  models(): ActiveModels
  /** Issues and checks the dashboards' tokens. */
  auth: TokenAuthority
  metrics: Registry
  /** Stops taking messages, finishes what is in flight, flushes InfluxDB, closes everything. */
  stop(): Promise<void>
}

/** Scoring's micro-batches and idle expiry, as the service runs them (bench/scoring.ts uses the same). */
export const scoringLimits = {
  batch: { maxBatch: 64, maxWaitMs: 20 },
  deviceIdleMs: defaultTripConfig.maxGap_s * 1000,
  // Half an hour, as POLICY_IDLE_H's default: a policy that comes back is rebuilt from InfluxDB (its
  // stored trips, days and the open day, stored unscored as it stood: test/restart.test.ts), so
  // holding it longer bought nothing but memory (#20 item 5: a heap growing for 6 h in bench:soak).
  policyIdleMs: 30 * 60_000,
}

/** The premium adjustments' audit log in a data directory. */
export const auditLogFile = (dataDir: string) => join(dataDir, 'audit.jsonl')

/** The audit chain's per-policy keys (pricing/pseudonyms.ts): an erasure destroys one. */
export const auditKeysFile = (dataDir: string) => join(dataDir, 'audit-keys.json')

/** The webhook deliveries waiting (pending/) and given up (dead/) (pricing/webhooks.ts). */
export const webhooksDir = (dataDir: string) => join(dataDir, 'webhooks')

/** The dashboards' token secret, when TOKEN_SECRET does not give one. */
export const tokenSecretFile = (dataDir: string) => join(dataDir, 'token-secret')

/** The dashboards' token revocations (#21 item 7). */
export const revocationsFile = (dataDir: string) => join(dataDir, 'token-revocations.json')

/** The changes consent, privacy mode, commands and claims record in the audit chain, as their stores take them back. */
type RecordedChanges = { consent: Omit<ConsentRecord, 'record' | 'prevHash'>; privacy: Omit<PrivacyRecord, 'record' | 'prevHash'>; command: Omit<CommandRecord, 'record' | 'prevHash'>; claim: Omit<ClaimRecord, 'record' | 'prevHash'> }

/**
 * The audit chain read once at start: pricing's state, and the changes the consent, privacy and
 * command stores take back (an erased policy's are gone with its key).
 */
function fromAudit(file: string, keys: PolicyKeys) {
  const changes: { [K in keyof RecordedChanges]: RecordedChanges[K][] } = { consent: [], privacy: [], command: [], claim: [] }
  function* records(): Generator<AuditRecord> {
    for (const r of auditRecords(file)) {
      const known = reveal(r, keys)
      if (known?.record === 'consent' || known?.record === 'privacy' || known?.record === 'command' || known?.record === 'claim') {
        const { record, prevHash: _, ...change } = known
        ;(changes[record] as unknown[]).push(change)
      }
      yield r
    }
  }
  return { pricingState: pricingStateFromAudit(records(), keys), changes }
}

/** The webhook event type of a claim (X-Ubiq-Event). */
export const CLAIM_EVENT = 'claim.opened'
/** The alert webhooks' event types (X-Ubiq-Event). */
export const URGENT_EVENT = 'event.urgent'
export const PREMIUM_CHANGED = 'premium.changed'

/** How often ubiq says it is still waiting for InfluxDB, and asks it again, ms. */
const INFLUX_WAIT_EVERY_MS = 5000

/** Waits for every InfluxDB of `influx` (one, or the partitions' several) as untilInfluxAnswers does, 60 s at most by default. */
export const untilInfluxesAnswer = (influx: InfluxConfig, timeoutMs: number | undefined, logger: Logger) =>
  Promise.all(influxUrls(influx).map((url) => untilInfluxAnswers(url, timeoutMs ?? 60_000, logger)))

/**
 * Waits for InfluxDB to answer at `url`, saying so every 5 s, for at most `timeoutMs` (#20: with
 * InfluxDB down or hung, ubiq start waited with no word and no end). Any HTTP answer to /ping will
 * do (1.x, 2.x and 3.x have it): credentials and the database are connectInflux's to check, with
 * their own errors. A startup wait, not a retry loop for a running service: InfluxDB that starts
 * after ubiq (a compose file, a reboot) is waited for, one that never comes is a coded error.
 */
export async function untilInfluxAnswers(url: string, timeoutMs: number, logger: Logger, everyMs = INFLUX_WAIT_EVERY_MS): Promise<void> {
  const shown = new URL(url)
  shown.username = shown.password = '' // never a password in the log (and fetch refuses one in a URL)
  const ping = `${shown.href.replace(/\/+$/, '')}/ping`
  const start = Date.now()
  for (;;) {
    const asked = Date.now()
    // Each ask has a bound of its own: a server that takes the connection and never answers is the hung case.
    const why = await fetch(ping, { signal: AbortSignal.timeout(everyMs) }).then(
      (res) => void res.body?.cancel(),
      (err: Error & { cause?: { code?: string } }) => (err.name === 'TimeoutError' ? `no answer in ${everyMs / 1000} s` : err.cause?.code ?? err.message),
    )
    if (why === undefined) return
    const waited = Date.now() - start
    if (waited >= timeoutMs) {
      throw new codes.UBIQ_INFLUX_UNREACHABLE(`InfluxDB at ${shown.href} did not answer within ${timeoutMs / 1000} s (INFLUX_START_TIMEOUT_S): ${why}`)
    }
    logger.warn({ url: shown.href, waited_s: Math.round(waited / 1000), timeout_s: timeoutMs / 1000, reason: why }, 'waiting for InfluxDB to answer')
    // One ask every `everyMs`, however long this one took to fail.
    await new Promise((r) => setTimeout(r, Math.min(asked + everyMs - Date.now(), timeoutMs - waited)))
  }
}

/** How long stop() waits for the broker to take the publisher's last messages, ms (README "Durability"). */
const PUBLISHER_END_WAIT_MS = 5000

/** Lines InfluxDB has not confirmed for this long, with none confirmed meanwhile, mean storing has stalled, ms (README /healthz). */
const STALL_MS = 30_000

/** A stage's stream, watched for /healthz: when it last gave something, and whether it has ended. */
export interface StageWatch {
  lastAt?: number
  ended?: 'completed' | 'failed'
}

/** Watches `stream$` (hot) for /healthz; a stream that fails is logged once, here, with its error. */
export function watchStage(name: string, stream$: Observable<unknown>, logger: Logger, now: () => number = Date.now): StageWatch {
  const w: StageWatch = {}
  stream$.subscribe({
    next: () => void (w.lastAt = now()),
    error: (err: unknown) => {
      w.ended = 'failed'
      logger.error({ err, stream: name }, 'a stage\'s stream failed: the stage has stopped')
    },
    complete: () => void (w.ended = 'completed'),
  })
  return w
}

/**
 * Where an error no subscriber handles goes: a stage's stream that failed (watchStage has logged
 * it, and /healthz says so) reaches every other subscriber of that stream, and a bug in a
 * subscriber's own callback comes here too. RxJS rethrows them by default, which ends the process
 * (#20 item 6): ingest would stop storing because scoring failed. Logged and counted instead; the
 * returned function puts back what was there before.
 */
export function reportUnhandledErrors(logger: Logger, metrics: Registry): () => void {
  const unhandled = new Counter({ name: 'ubiq_unhandled_errors_total', help: 'Errors no stream subscriber handled (a failed stage, a bug in a callback): logged, the process runs on', registers: [metrics] })
  const previous = rxConfig.onUnhandledError
  const report = (err: unknown) => {
    unhandled.inc()
    logger.error({ err }, 'an error no subscriber handled: the stage it came from may have stopped (see /healthz)')
  }
  rxConfig.onUnhandledError = report
  return () => {
    if (rxConfig.onUnhandledError === report) rxConfig.onUnhandledError = previous
  }
}

/**
 * Whether storing keeps up: lines in the journal that InfluxDB has not confirmed, with nothing
 * confirmed for `stallMs` since they came (or since the last confirmation), is a stall. An idle
 * journal is not: an hour without readings is no stall, and the first line after it starts afresh.
 */
export function storingWatch(journal: { readonly pending: number }, now: () => number = Date.now) {
  // Since when lines have waited without any confirmed: recovered lines wait from the start.
  let waitingSince = journal.pending > 0 ? now() : undefined
  let lastAt: number | undefined
  return {
    /** A reading's lines went into the journal. */
    appended: () => void (waitingSince ??= now()),
    /** InfluxDB confirmed lines: progress. */
    confirmed() {
      lastAt = now()
      waitingSince = journal.pending > 0 ? lastAt : undefined
    },
    /** How long lines have waited with nothing confirmed, ms (0: none waiting). */
    stalledMs() {
      if (journal.pending === 0) return (waitingSince = undefined), 0
      return now() - (waitingSince ??= now())
    },
    lastAt: () => lastAt,
  }
}

/**
 * /healthz's checks (#20: it said ok while ingest stood still and would have while scoring had
 * died): each stage's liveness beside the MQTT connections. `receiving`: ingest's stream of stored
 * readings runs; `storing`: the journal's lines are being confirmed (storingWatch); `scoring` and
 * `pricing`: their streams run (an error ends an Rx stream for good). Booleans are the checks;
 * numbers are for the operator: pending lines, and seconds since each stage last gave something.
 */
export function stageChecks(parts: {
  mqttIngest(): boolean
  mqttPublisher(): boolean
  journal: { readonly pending: number }
  receiving: StageWatch
  storing: ReturnType<typeof storingWatch>
  scoring: readonly StageWatch[]
  pricing: StageWatch
  stallMs: number
  now?: () => number
}): () => { ok: boolean; checks: Record<string, boolean | number> } {
  const now = parts.now ?? Date.now
  const since = (name: string, at: number | undefined) => (at === undefined ? {} : { [name]: Math.round((now() - at) / 1000) })
  const latest = (ats: (number | undefined)[]) => ats.reduce<number | undefined>((a, b) => (b === undefined || (a !== undefined && a >= b) ? a : b), undefined)
  return () => {
    const checks = {
      mqttIngest: parts.mqttIngest(),
      mqttPublisher: parts.mqttPublisher(),
      receiving: !parts.receiving.ended,
      storing: parts.storing.stalledMs() < parts.stallMs,
      scoring: parts.scoring.every((w) => !w.ended),
      pricing: !parts.pricing.ended,
      journalPendingLines: parts.journal.pending,
      ...since('sinceReading_s', parts.receiving.lastAt),
      ...since('sinceStored_s', parts.storing.lastAt()),
      ...since('sinceScoring_s', latest(parts.scoring.map((w) => w.lastAt))),
      ...since('sincePremium_s', parts.pricing.lastAt),
    }
    return { ok: Object.values(checks).every((v) => v !== false), checks }
  }
}

/**
 * The URL and client id of ubiq's two MQTT connections. With a user in MQTT_URL, each connection's
 * client id is its username, as ubiq's broker config enforces (use_username_as_clientid, #20):
 * ingest is the URL's user, the publisher `<user>-out` with the same password (ingest/broker.ts,
 * PUBLISHER_USER), so neither ends the other's session. Without a user (an anonymous broker),
 * ingest keeps its fixed id for its persistent session and the publisher has one per process.
 */
export function serviceClients(mqttUrl: string): Record<'ingest' | 'publisher', { url: string; clientId: string }> {
  const url = new URL(mqttUrl)
  const user = decodeURIComponent(url.username)
  if (!user) return { ingest: { url: mqttUrl, clientId: 'ubiq-ingest' }, publisher: { url: mqttUrl, clientId: `ubiq-out-${process.pid}` } }
  const publisher = `${user}-out`
  url.username = encodeURIComponent(publisher)
  return { ingest: { url: mqttUrl, clientId: user }, publisher: { url: url.toString(), clientId: publisher } }
}

/** Starts every service; rejects with a coded error if one cannot start. */
export async function startPipeline(cfg: PipelineConfig, logger: Logger): Promise<Pipeline> {
  const metrics = new Registry()
  collectDefaultMetrics({ register: metrics })
  const writeErrors = new Counter({ name: 'ubiq_influx_write_errors_total', help: 'InfluxDB write batches that failed (and are retried)', registers: [metrics] })
  const plans = cfg.plans ?? loadPlans(examplePlans)
  // Nothing in a running pipeline knows a policy's attributes yet (age of the car, region…): a plan
  // that rates on them could not price anyone, so it is refused rather than silently skipped.
  const rated = plans.find((p) => Object.keys(p.attributes ?? {}).length > 0)
  if (rated) throw new codes.UBIQ_PLAN_INVALID(`${planId(rated)} rates on policy attributes (${Object.keys(rated.attributes!).join(', ')}); ubiq start has no source of policy attributes: use such a plan in ubiq backtest`)
  // Before anything is opened: a start that gives up leaves nothing behind.
  await untilInfluxesAnswer(cfg.influx, cfg.influxStartTimeoutMs, logger)
  // Everything ubiq keeps is private to its user (#20 item 10): positions and heart rates in the
  // journal, premiums in the audit log, the token secret. The folder is made (or closed) first,
  // so nothing any stage writes inside is within others' reach.
  mkdirSync(cfg.dataDir, { recursive: true, mode: 0o700 })
  chmodSync(cfg.dataDir, 0o700)
  const journal = openJournal(join(cfg.dataDir, 'journal'))
  const storing = storingWatch(journal)
  // The chain's records name policies and devices by pseudonyms under per-policy keys (#21 item 5).
  const keys = openPolicyKeys(auditKeysFile(cfg.dataDir))
  const audit = openAuditLog(auditLogFile(cfg.dataDir), keys)
  // Idempotent across restarts: the audit log says what was priced, from which standing.
  const { pricingState, changes } = fromAudit(auditLogFile(cfg.dataDir), keys)
  // The running registry: an erasure takes a policy's devices out of it (#21 item 5).
  const registry = new Map(cfg.devices)
  let confirm: (lines: readonly string[]) => void = (lines) => journal.confirm(lines) // until ingest takes over
  const influx = await connectInflux(cfg.influx, {
    onWritten: (lines) => {
      confirm(lines)
      storing.confirmed()
    },
    onWriteError: (error) => {
      writeErrors.inc()
      logger.warn({ error }, 'InfluxDB write failed; the client retries')
    },
    // A shorter policy drops the points it no longer covers at InfluxDB's next retention check.
    onRetentionChange: (change) => logger.info(change, change.fromHours === undefined ? 'InfluxDB retention policy created' : 'InfluxDB retention policy altered'),
    policyOf: (deviceId) => registry.get(deviceId)?.policyId,
  })
  const models = await openModelRegistry({
    dirs: modelDirs(cfg.modelsDir),
    file: choiceFile(cfg.dataDir),
    onChange: (e) => (e.ok
      ? logger.info({ choice: e.choice }, 'models changed: the new choice scores from the next batch')
      : logger.error({ err: e.error }, 'model change refused: the running models stay')),
  })
  const roads = cfg.roadMapFile ? await loadRoadMap(cfg.roadMapFile) : undefined
  const clients = serviceClients(cfg.mqttUrl)
  const publisher = await mqtt.connectAsync(clients.publisher.url, { clientId: clients.publisher.clientId, reconnectPeriod: 1000 })
  const consentChanges = new Counter({ name: 'ubiq_consent_changes_total', help: 'Consent changes recorded, by who made them and whether they granted', labelNames: ['by', 'granted'], registers: [metrics] })
  // Consent (#21): rebuilt from the audit chain, where every change is recorded before it takes effect.
  const consents = consentStore({
    registry,
    history: changes.consent,
    record: (change) => audit.link<ConsentRecord>({ record: 'consent', ...change }).hash,
    onChange(change, consent) {
      consentChanges.inc({ by: change.by.role, granted: String(change.granted) })
      logger.info({ policyId: change.policyId, streams: change.streams, purposes: change.purposes, granted: change.granted, by: change.by.role }, 'consent changed')
      for (const d of registry.values()) {
        if (d.policyId === change.policyId) publisher.publish(topics.consent(d.deviceId), JSON.stringify(consentNotice(change, consent, d)), { qos: 1, retain: true })
      }
    },
  })

  const privacyChanges = new Counter({ name: 'ubiq_privacy_changes_total', help: 'Privacy mode pauses and early ends recorded, by who and what', labelNames: ['by', 'action', 'scope'], registers: [metrics] })
  // Privacy mode (#21): rebuilt from the audit chain too; each device is told its policy's pauses.
  const privacy = privacyStore({
    registry,
    history: changes.privacy,
    record: (change) => audit.link<PrivacyRecord>({ record: 'privacy', ...change }).hash,
    onChange(change, pauses) {
      privacyChanges.inc({ by: change.by.role, action: change.action, scope: change.scope })
      logger.info({ policyId: change.policyId, action: change.action, scope: change.scope, from: change.from, to: change.to, by: change.by.role }, 'privacy mode changed')
      for (const d of registry.values()) {
        if (d.policyId === change.policyId) publisher.publish(topics.privacy(d.deviceId), JSON.stringify(privacyNotice(change, pauses, d.deviceId, Date.now())), { qos: 1, retain: true })
      }
    },
  })

  const adapters = createAdapters({ discoveryDir: join(cfg.dataDir, 'home-assistant-discovery') })
  const commandSteps = new Counter({ name: 'ubiq_commands_total', help: 'Commands to devices recorded: sent, acknowledged (by status) and confirmed by the device\'s report', labelNames: ['command', 'action', 'status'], registers: [metrics] })
  // Commands (#24): on the audit chain before they are sent, rebuilt from it, so an acknowledgement after a restart finds its command.
  const commands = commandStore({
    registry,
    history: changes.command,
    record: (change) => audit.link<CommandRecord>({ record: 'command', ...change }).hash,
    onSent(command) {
      commandSteps.inc({ command: command.command, action: 'sent', status: '' })
      logger.info({ policyId: command.policyId, deviceId: command.deviceId, command: command.command, id: command.id }, 'command sent')
      for (const m of commandMessages(adapters, command)) publisher.publish(m.topic, m.payload, { qos: 1 })
    },
    onAnswer(change, command) {
      commandSteps.inc({ command: command.command, action: change.action, status: change.status ?? '' })
      logger.info({ policyId: command.policyId, deviceId: command.deviceId, command: command.command, id: command.id, action: change.action, status: change.status }, 'command answered')
    },
  })

  const stopReporting = reportUnhandledErrors(logger, metrics)
  const limits = { ...scoringLimits, ...(cfg.batch ? { batch: cfg.batch } : {}), ...(cfg.policyIdleMs ? { policyIdleMs: cfg.policyIdleMs } : {}) }
  const ingest = startIngest({
    mqttUrl: clients.ingest.url,
    clientId: clients.ingest.clientId,
    influx,
    logger,
    metrics,
    journal,
    backpressure: cfg.backpressure ?? { stopAt: 100_000, resumeAt: 50_000 },
    // A redelivery that dedupe has forgotten must find scoring's states of its policy gone too, to
    // be rebuilt from InfluxDB where it is counted already (dropDuplicates): an hour to spare.
    dedupeIdleMs: limits.deviceIdleMs + limits.policyIdleMs + 3600_000,
    decode: {
      registry,
      maxPayloadBytes: cfg.maxPayloadBytes ?? 64 * 1024,
      maxFutureSkewMs: cfg.maxFutureSkewMs ?? 5 * 60_000,
      adapters,
      consents,
      privacy,
      commands,
    },
  })
  confirm = ingest.confirm
  const devicesByPolicy = new Map<string, string[]>()
  for (const d of registry.values()) {
    if (!devicesByPolicy.has(d.policyId)) devicesByPolicy.set(d.policyId, [])
    devicesByPolicy.get(d.policyId)!.push(d.deviceId)
  }
  // What scoring and pricing derive from a late upload is published, and stored only within retention.
  const expiredOutputs = new Counter({ name: 'ubiq_outputs_expired_total', help: "Derived lines (trips, events, scores, premiums) older than their measurement's retention: published, not stored", labelNames: ['measurement'], registers: [metrics] })
  const derived = withoutExpired(influx, (measurement) => expiredOutputs.inc({ measurement }))
  const erased$ = new RxSubject<{ policyId: string; deviceIds: readonly string[] }>()
  const { scores$, events$, trips$ } = startScoring({
    // Scoring takes only the streams the policy lets feed its prices (consents), as they leave the reorder buffer.
    readings$: ingest.readings$.pipe(orderWithin(cfg.reorderWindowMs ?? 2000)),
    mqtt: publisher,
    influx: derived,
    models: models.current,
    policyDevices: (policyId) => devicesByPolicy.get(policyId) ?? [],
    logger,
    metrics,
    trips: defaultTripConfig,
    detectors: vehicleDetectors(roads, cfg.detectors),
    consents,
    pausedMs: privacy.pausedMs,
    erased$,
    enrolled: (policyId) => devicesByPolicy.has(policyId),
    ...limits,
  })
  // The device's report that it carried a command out (the valve says it is closed) confirms it.
  ingest.readings$.subscribe((r) => commands.observe(r))
  // An urgent event sends its command to the policy's devices that can carry it out (a leak closes the valve).
  events$.subscribe((e) => {
    const command = eventCommands[e.type]
    if (!command || !e.urgent) return
    for (const deviceId of devicesByPolicy.get(e.policyId) ?? []) {
      if (!registry.get(deviceId)?.kinds.includes(COMMANDS[command].stream)) continue
      try {
        commands.send(deviceId, command, `${e.type} at ${e.deviceId} from ${new Date(e.from).toISOString()}`)
      } catch (err) {
        logger.error({ err, deviceId, command }, 'a command could not be recorded: not sent')
      }
    }
  })
  // A valve that answered a command (acknowledged done, or reported closed) is fitted and works:
  // the home plan's valveTested discount (#24), from its latest answer.
  const valveTest = (policyId: string): ValveTest | undefined => (devicesByPolicy.get(policyId) ?? [])
    .flatMap((d) => commands.of(d))
    .flatMap((c) => {
      const at = c.ack?.status === 'done' ? c.ack.at : c.confirmedAt
      return at ? [{ id: c.id, at }] : []
    })
    .reduce<ValveTest | undefined>((last, x) => (!last || Date.parse(x.at) > Date.parse(last.at) ? x : last), undefined)
  // First notice of loss (#24): urgent losses open claims, delivered as signed webhooks that survive a restart.
  let claims: ReturnType<typeof claimsStage> | undefined
  const webhooks = webhookSender({
    dir: webhooksDir(cfg.dataDir), logger, metrics, ...cfg.claims?.retry,
    onDone: (d, outcome) => void (d.type === CLAIM_EVENT && claims?.settled(d.id, outcome)),
  })
  const claimsHook = cfg.claims?.url ? { url: cfg.claims.url, secret: cfg.claims.secret ?? '' } : undefined
  claims = claimsStage({
    influx, consents, logger, metrics,
    device: (deviceId) => registry.get(deviceId),
    devicesOf: (policyId) => devicesByPolicy.get(policyId) ?? [],
    record: (change) => void audit.link<ClaimRecord>({ record: 'claim', ...change }),
    history: changes.claim,
    ...(claimsHook ? { send: (id: string, policyId: string, payload: unknown) => void webhooks.deliver(claimsHook.url, claimsHook.secret, CLAIM_EVENT, payload, { id, owner: policyId }) } : {}),
    ...(cfg.claims?.graceMs === undefined ? {} : { graceMs: cfg.claims.graceMs }),
  })
  events$.subscribe((e) => claims!.take(e))
  // A claim that was waiting for its window when ubiq last stopped.
  claims.resume().catch((err: unknown) => logger.error({ err }, 'claims waiting at the last stop could not be resumed'))
  const pricing = startPricing({ scores$, mqtt: publisher, influx: derived, plans, audit, state: pricingState, logger, metrics, valveTest })
  const { premiums$ } = pricing
  // Urgent events and premium changes to the insurer's systems (#23 item 4), through the claims'
  // sender: signed, retried, dead-lettered, resumed after a restart; the idempotency key is the
  // event's identity or the adjustment's audit hash, so a receiver takes each once.
  const alertsHook = cfg.alertsHook?.url ? { url: cfg.alertsHook.url, secret: cfg.alertsHook.secret ?? '' } : undefined
  if (alertsHook) {
    const alert = (type: string, id: string, policyId: string, body: unknown) => void webhooks.deliver(alertsHook.url, alertsHook.secret, type, body, { id, owner: policyId })
    events$.subscribe((e) => e.urgent && alert(URGENT_EVENT, createHash('sha256').update(`${e.deviceId}|${e.type}|${e.from}`).digest('hex'), e.policyId, { event: e }))
    premiums$.subscribe((p) => p.factor !== p.previousFactor && alert(PREMIUM_CHANGED, p.hash, p.policyId, { premium: p }))
  }
  const completed = (o: Observable<unknown>) => new Promise<void>((resolve) => o.subscribe({ complete: resolve, error: () => resolve() }))
  const drained = Promise.all([completed(premiums$), completed(events$)])
  ingest.readings$.subscribe(() => storing.appended())
  const health = stageChecks({
    mqttIngest: () => ingest.connected,
    mqttPublisher: () => publisher.connected,
    journal,
    receiving: watchStage('readings', ingest.readings$, logger),
    storing,
    scoring: [watchStage('trips', trips$, logger), watchStage('events', events$, logger), watchStage('scores', scores$, logger)],
    pricing: watchStage('premiums', premiums$, logger),
    stallMs: cfg.stallMs ?? STALL_MS,
  })
  // The premium simulator re-prices the policy's latest score (the dashboards' feed holds it, or
  // reads it from InfluxDB) from where pricing stood before pricing it, so with no change it gives
  // the latest premium exactly.
  const whatIfFor = async (score: Score, changes: unknown) => {
    const model = models.current().champions[score.subject]
    return model ? whatIf(model, plans, score, pricing.standing(score.policyId, score.subject)?.before, changes, valveTest(score.policyId)) : undefined
  }
  const auth = tokenAuthority(tokenSecret(cfg.tokenSecret, tokenSecretFile(cfg.dataDir)), { revocationsFile: revocationsFile(cfg.dataDir) })
  const dashboards = await startDashboards({
    scores$, events$, premiums$, influx, auth, metrics, whatIf: whatIfFor, household: pricing.household, health, deviceClock: ingest.clock, logger, consents, privacy, claims: claims.list,
    host: cfg.host, port: cfg.port, rateLimitPerMinute: cfg.rateLimitPerMinute, alertThresholds: cfg.alertThresholds, mapTiles: cfg.mapTiles,
    devicesOf: (policyId) => (devicesByPolicy.get(policyId) ?? []).map((id) => registry.get(id)!),
    enrolled: (policyId) => devicesByPolicy.has(policyId),
    erase: eraser({
      registry, registryFile: cfg.devicesFile, dataDir: cfg.dataDir, influx, journal, mqtt: publisher, audit, keys, consents, privacy, commands, claims, webhooks, logger,
      forget(policyId, deviceIds) {
        devicesByPolicy.delete(policyId)
        ingest.forget(deviceIds)
        erased$.next({ policyId, deviceIds })
      },
      restore: (policyId, deviceIds) => void devicesByPolicy.set(policyId, [...deviceIds]),
    }),
    push: pushAlerts({ dir: cfg.dataDir, subject: cfg.pushSubject, hosts: cfg.pushHosts, logger, metrics }),
    backtest: cachedBacktest({ portfolio: referencePortfolio, plans }, () => models.current().champions),
  })
  // Only now, with everything downstream listening, do messages start to flow.
  await ingest.connect()
  logger.info({ url: dashboards.url }, 'pipeline started')

  return {
    url: dashboards.url,
    scores$,
    events$,
    trips$,
    premiums$,
    models: models.current,
    auth,
    metrics,
    async stop() {
      // Each step runs even if one before it failed; the first failure is reported at the end.
      const failures: unknown[] = []
      const step = async (fn: () => unknown) => {
        try {
          await fn()
        } catch (err) {
          failures.push(err)
        }
      }
      await step(() => ingest.stop())
      await step(() => drained)
      // A claim still waiting for its window is dropped (its event is stored); deliveries stay pending on disk.
      await step(() => claims!.close())
      webhooks.close()
      await step(() => audit.close())
      await step(() => models.close())
      // What InfluxDB does not confirm now stays in the journal for the next start.
      await step(() => influx.close())
      await step(() => journal.close())
      // The publisher's end waits for the broker to acknowledge what is in flight: a broker that
      // does not answer would hold the shutdown, so after PUBLISHER_END_WAIT_MS the socket goes. A
      // message the broker has not acknowledged by then is not sent again; it is in InfluxDB (and a
      // premium in the audit log), where the REST API reads it.
      await step(async () => (await within(PUBLISHER_END_WAIT_MS, publisher.endAsync())) === 'timeout' && publisher.end(true))
      await step(() => dashboards.close())
      stopReporting()
      if (failures.length > 0) throw failures[0]
      logger.info('pipeline stopped')
    },
  }
}
