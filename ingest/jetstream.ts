/**
 * Ingest on NATS JetStream, for `ubiq start --worker` (#25, docs/scale-out.md): devices publish
 * over MQTT to nats-server, which maps each device's subject to one of P partitions
 * (`partitionMapping`); a work-queue stream keeps each message until a worker has stored it. A
 * worker takes partitions by lease and drains each with one pull consumer: a batch goes through
 * `takeMessages` (the MQTT path's own steps), its lines to InfluxDB, and only once InfluxDB has
 * confirmed them is the batch acknowledged (#25 item 3). The replicated stream is the journal.
 */
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type JsMsg } from '@nats-io/jetstream'
import { connect, nanos, type NatsConnection } from '@nats-io/transport-node'
import type { Logger } from 'pino'
import { Counter, Gauge, type Registry } from 'prom-client'
import { Subject as RxSubject, share, type Observable } from 'rxjs'
import { topics, type Reading } from './contract.ts'
import { clockTracker } from './clock.ts'
import type { Refusal } from './influx.ts'
import { messageCounters, takeMessages, type DeviceMessage, type IngestDeps } from './ingest.ts'
import { deviceAcl, SERVICE_USER, type BrokerCredentials } from './broker.ts'

/** The stream of device messages, by partition: `ubiq.part.{p}.{deviceId}.{stream}`. */
export const DEVICE_STREAM = 'UBIQ_DEV'
/** The stream of leases: `ubiq.lease.part.{p}` (its owner) and `ubiq.lease.worker.{id}` (a worker's heartbeat). */
export const LEASE_STREAM = 'UBIQ_LEASES'
/** Messages no worker has stored are kept this long, ms: how long every worker may be down without loss. */
const MAX_AGE_MS = 7 * 86_400_000
/**
 * A lease not renewed for this long is gone, and its partition free for another worker, ms: five
 * missed renewals, as a loaded machine delays them (at 3 s, a busy test machine lost leases).
 */
export const LEASE_TTL_MS = 6000
/** How often a worker renews its leases, counts the workers and takes or gives back partitions, ms. */
const RENEW_MS = 1000
/** Most messages a worker takes from a partition at once: written in one batch, acknowledged with one ack. */
const BATCH = 1000
/** Batches of a partition waiting for InfluxDB while the next is fetched (each acknowledged once stored). */
const IN_FLIGHT = 2
/** How long a fetch waits for a batch to fill before it takes what there is, ms (the client's least). */
const FETCH_WAIT_MS = 1000

/**
 * nats-server's subject mapping (its `mappings` block) that partitions device messages: a device's
 * MQTT topic `ubiq/v1/dev/{deviceId}/{stream}` is subject `ubiq.v1.dev.{deviceId}.{stream}`, and
 * the server hashes the device id to one of `partitions` (nats-server 2.8+). The same device always
 * lands in the same partition, so its readings reach one worker, in order. Every server of a
 * cluster needs the same mapping, and every worker the same `partitions` (WORKER_PARTITIONS).
 */
export const partitionMapping = (partitions: number) => ({
  'ubiq.v1.dev.*.*': `ubiq.part.{{partition(${partitions},1)}}.{{wildcard(1)}}.{{wildcard(2)}}`,
})

/** One nats-server of a ubiq cluster: its name, addresses and the other nodes' cluster routes. */
export interface NatsNode {
  name: string
  host: string
  /** Clients (the workers). */
  port: number
  /** Devices: nats-server's MQTT 3.1.1 listener. */
  mqttPort: number
  /** Other nodes (routes), when clustered. */
  clusterPort?: number
  routes?: string[]
  storeDir: string
}

/**
 * A nats-server configuration for ubiq: JetStream (where the device stream, the leases and MQTT's
 * own sessions live), the MQTT listener for devices, the cluster routes, and the partition mapping.
 * With `usersFile`, the users natsUsers wrote (its path relative to this file: nats-server reads
 * an include there, absolute or not): no one else connects. The test cluster and the operators' examples in docs/nats/ are made by this one
 * function.
 */
export function natsServerConfig(node: NatsNode, partitions: number, usersFile?: string): string {
  const [[from, to]] = Object.entries(partitionMapping(partitions)) as [[string, string]]
  return [
    '# ubiq: one nats-server of the cluster (docs/scale-out.md). MQTT needs JetStream and a server name.',
    `server_name: ${node.name}`,
    `listen: ${node.host}:${node.port}`,
    ...(usersFile === undefined ? [] : [
      '# The workers\' user and one user per device, its subjects its own (ubiq broker-config --nats writes it from the registry).',
      `include "${usersFile}"`,
    ]),
    `jetstream { store_dir: "${node.storeDir}" }`,
    ...(node.clusterPort === undefined ? [] : [
      'cluster {',
      '  name: ubiq',
      `  listen: ${node.host}:${node.clusterPort}`,
      `  routes: [${(node.routes ?? []).map((r) => `"${r}"`).join(', ')}]`,
      '}',
    ]),
    // Left to itself nats-server 2.9 sizes its MQTT streams by counting route URLs, not nodes: a node listing its two peers
    // made them R2, and losing a node of theirs stopped every MQTT CONNECT and PUBACK for good.
    ...(node.clusterPort === undefined ? [`mqtt { listen: ${node.host}:${node.mqttPort} }`] : [
      '# MQTT\'s own streams ($MQTT_sess, $MQTT_msgs, $MQTT_rmsgs) replicated like ubiq\'s, to survive a lost node (docs/scale-out.md).',
      'mqtt {',
      `  listen: ${node.host}:${node.mqttPort}`,
      `  stream_replicas: ${Math.min((node.routes ?? []).length + 1, 3)}`,
      '}',
    ]),
    `# Each device's subject to one of ${partitions} partitions by its id (the same on every node, and WORKER_PARTITIONS on every worker).`,
    `mappings { "${from}": "${to}" }`,
    '',
  ].join('\n')
}

/**
 * The partition of a token as nats-server's mapping computes it: its `partition(P, token)` is the
 * 32-bit FNV-1a hash of the token modulo P (nats-server's subject transform; checked against 2.9.10
 * by test/nats-auth.test.ts). A device's users file entry needs its device partition (natsUsers),
 * and the workers put a policy in its policy partition by the same hash (bin/policy-stage.ts).
 */
export function natsPartition(token: string, partitions: number): number {
  let hash = 0x811c9dc5
  for (const byte of Buffer.from(token)) hash = Math.imul(hash ^ byte, 0x01000193) >>> 0
  return hash % partitions
}

/**
 * An MQTT topic filter as the NATS subjects nats-server uses for it: `/` → `.`, `+` → `*`, and
 * `#` → both the level above it and `>` (MQTT's `#` matches its parent level, NATS's `>` does not).
 */
/** An MQTT topic's NATS subject, as nats-server's MQTT listener maps them (`ubiq/v1/scores/x` is `ubiq.v1.scores.x`). */
export const natsSubjectOf = (topic: string) => topic.replaceAll('/', '.')

const natsSubjects = (filter: string) => {
  const subject = natsSubjectOf(filter).replaceAll('+', '*')
  return subject.endsWith('.#') ? [subject.slice(0, -2), `${subject.slice(0, -1)}>`] : [subject]
}

/**
 * nats-server's users for ubiq (an `authorization` block, for natsServerConfig's `usersFile`):
 * each device a user named by its device id, with its own password, that may do only what
 * Mosquitto's ACL lets it, as subjects, and connect only over MQTT:
 * - publish its own streams, `ubiq/v1/dev/{id}/{stream}`. nats-server checks an MQTT publish's
 *   permission on the subject after the partition mapping, so what is allowed is the mapped
 *   subject in the device's own partition, `ubiq.part.{p}.{id}.*`: not another device's, and not
 *   another partition's (published there directly, its readings would reach a second worker).
 * - read its own rejections, commands, consent and pauses (brokerAcl's `pattern read` lines under
 *   ubiq/v1/; the adapters' formats are not mapped into the stream), and `$MQTT.sub.>`, where
 *   nats-server delivers QoS 1 subscriptions (no MQTT client may subscribe to `$MQTT/…` itself;
 *   a NATS client could, hence MQTT only).
 * The workers connect as the service user, with no subject limits: they manage the streams, and
 * JetStream's API reaches every subject's data anyway. Passwords are in clear (nats-server also
 * takes bcrypt hashes): the file must be readable by nats-server's user only. Every node and
 * every worker need the same `partitions`.
 */
export function natsUsers(credentials: BrokerCredentials, partitions: number): string {
  const device = ([deviceId, password]: [string, string]) => {
    const reads = deviceAcl(deviceId).filter((r) => r.filter.startsWith('ubiq/v1/') && r.access !== 'write').flatMap((r) => natsSubjects(r.filter))
    const publish = { allow: [`ubiq.part.${natsPartition(deviceId, partitions)}.${deviceId}.*`] }
    return { user: deviceId, password, allowed_connection_types: ['MQTT'], permissions: { publish, subscribe: { allow: [...reads, '$MQTT.sub.>'] } } }
  }
  const users = [{ user: SERVICE_USER, password: credentials.service }, ...[...credentials.devices].map(device)]
  return `# ubiq's nats-server users (natsUsers in ingest/jetstream.ts): keep this file secret.\nauthorization {\n  users: [\n${users.map((u) => `    ${JSON.stringify(u)}`).join('\n')}\n  ]\n}\n`
}

/**
 * nats.js connection options for NATS_URL's servers: a user and password in the URLs
 * (`nats://ubiq:secret@n1:4222`, as MQTT_URL carries them) become the connection's own, since
 * nats.js does not read them from a URL.
 */
export function natsConnectOptions(urls: string | readonly string[]): { servers: string[]; user?: string; pass?: string } {
  const parsed = [urls].flat().map((u) => new URL(u))
  const withUser = parsed.find((u) => u.username)
  const servers = parsed.map((u) => `${u.protocol}//${u.host}`)
  return withUser ? { servers, user: decodeURIComponent(withUser.username), pass: decodeURIComponent(withUser.password) } : { servers }
}

/** A partition's message subject back to the device topic it was published on. */
const topicOf = (subject: string) => {
  const [, , , deviceId, stream] = subject.split('.')
  return topics.device(deviceId!, stream!)
}

export interface WorkerIngestDeps extends Pick<IngestDeps, 'influx' | 'decode' | 'logger' | 'metrics' | 'maxGpsSpeedKmh' | 'dedupeWindow' | 'dedupeIdleMs'> {
  /** nats-server URLs (any of the cluster's). */
  servers: string[]
  /** P: the partitions nats-server maps device subjects to (partitionMapping). */
  partitions: number
  /** This worker's name in the leases; unique among running workers. */
  workerId: string
  /** The streams' replicas (3 in a three-node cluster). */
  replicas: number
}

export interface WorkerIngest {
  /** Every stored reading of the partitions this worker owns, once, in arrival order. */
  readings$: Observable<Reading>
  /** The partitions this worker owns now. */
  owned(): number[]
  /** The devices of each partition given back or lost, when it goes (ScoringDeps.handedOver$). */
  handedOver$: Observable<{ policyIds: readonly string[]; deviceIds: readonly string[] }>
  /** Work a batch started (a trip it closed, sent on): no batch is acknowledged while any such work is pending. */
  hold(work: Promise<unknown>): void
  /** Hand it what InfluxDB confirmed (InfluxHooks.onWritten): a batch whose lines are all confirmed is acknowledged. */
  confirm(lines: readonly string[]): void
  /** Gives its partitions back (each after its batch in hand is stored and acknowledged) and disconnects. */
  stop(): Promise<void>
}

/** One owned partition: its lease's revision, and whether it is still held, being given back, or lost. */
export interface Lease {
  revision: number
  state: 'held' | 'releasing' | 'lost'
  running?: Promise<void>
}

export interface LeaseDeps {
  js: JetStreamClient
  jsm: JetStreamManager
  log: Logger
  metrics: Registry
  workerId: string
  /** Which partitions: `part` (devices, ingest) or `pol` (policies, the policy stage); leases `ubiq.lease.{kind}.{p}`. */
  kind: string
  partitions: number
  /** Works partition `p` while `lease.state` is 'held' (drains its consumer); what it holds must be done when it returns. */
  run(p: number, lease: Lease): Promise<void>
  /** Partition `p` is no longer this worker's (given back, or lost): its state goes. */
  gone?(p: number): void
}

/**
 * A worker's fair share of one kind of partitions, by lease (docs/scale-out.md 3a): each round says
 * the worker lives (`ubiq.lease.worker.{id}`), renews its leases with the expected last sequence (a
 * renewal refused: another worker holds it, stop at once), then owns ceil(P / live workers): gives
 * back partitions above it (a worker joined), takes free ones below it (one died, or this one is
 * new). Device partitions and policy partitions are leased the same way, each by its own rounds.
 */
export function leasePartitions(deps: LeaseDeps): { owned(): number[]; stop(): Promise<void> } {
  const { js, jsm, log, kind } = deps
  const leases = new Map<number, Lease>()
  const registers = [deps.metrics]
  const owned = (deps.metrics.getSingleMetric('ubiq_worker_partitions_owned') ?? new Gauge({ name: 'ubiq_worker_partitions_owned', help: 'Partitions this worker owns, by kind (part: devices, pol: policies)', labelNames: ['kind'], registers })) as Gauge
  const moves = (deps.metrics.getSingleMetric('ubiq_worker_partition_changes_total') ?? new Counter({ name: 'ubiq_worker_partition_changes_total', help: 'Partitions this worker took, gave back or lost, by kind', labelNames: ['kind', 'change'], registers })) as Counter
  const changed = (p: number, change: 'taken' | 'released' | 'lost') => {
    moves.inc({ kind, change })
    owned.set({ kind }, [...leases.values()].filter((l) => l.state !== 'lost').length)
    if (change !== 'taken') deps.gone?.(p)
  }
  /** Each partition's latest run, going or ended. */
  const running = new Map<number, Promise<void>>()
  const leaseSubject = (p: number) => `ubiq.lease.${kind}.${p}`
  const heartbeat = `ubiq.lease.worker.${deps.workerId}`
  /** Stops `lease` of partition `p` at once (another worker holds it, or it cannot be worked). */
  const lose = (p: number, lease: Lease, why: string) => {
    if (lease.state === 'lost') return
    lease.state = 'lost'
    if (leases.get(p) === lease) leases.delete(p)
    changed(p, 'lost')
    log.warn({ partition: p, kind, why }, 'partition lost')
  }
  /** Gives `p` back once its work in hand is done. */
  async function release(p: number) {
    const lease = leases.get(p)
    if (!lease || lease.state !== 'held') return
    lease.state = 'releasing'
    await lease.running
    if (lease.state !== 'releasing') return
    leases.delete(p)
    await jsm.streams.purge(LEASE_STREAM, { filter: leaseSubject(p) }).catch(() => undefined) // or it expires
    changed(p, 'released')
    log.info({ partition: p, kind }, 'partition given back')
  }

  async function round() {
    await js.publish(heartbeat, deps.workerId)
    // Those being given back too: a lease that expired while its last batch was stored would be another's when purged.
    await Promise.all([...leases].map(async ([p, l]) => {
      try {
        l.revision = (await js.publish(leaseSubject(p), deps.workerId, { expect: { lastSubjectSequence: l.revision } })).seq
      } catch (err) {
        lose(p, l, (err as Error).message)
      }
    }))
    const subjects = (await jsm.streams.info(LEASE_STREAM, { subjects_filter: 'ubiq.lease.>' })).state.subjects ?? {}
    const workers = Object.keys(subjects).filter((s) => s.startsWith('ubiq.lease.worker.')).length
    const share = Math.ceil(deps.partitions / Math.max(1, workers))
    const held = [...leases].filter(([, l]) => l.state === 'held').map(([p]) => p)
    for (const p of held.slice(share)) void release(p)
    for (let p = 0; p < deps.partitions && leases.size < share; p++) {
      if (leases.has(p) || subjects[leaseSubject(p)]) continue
      try {
        const { seq } = await js.publish(leaseSubject(p), deps.workerId, { expect: { lastSubjectSequence: 0 } })
        const lease: Lease = { revision: seq, state: 'held' }
        leases.set(p, lease)
        changed(p, 'taken')
        log.info({ partition: p, kind }, 'partition taken')
        // A partition lost and taken back here starts once the earlier run has ended: that one's
        // batch may still wait for InfluxDB, and dedupe would drop its redelivery here, so this
        // run's ack would acknowledge it before it is stored.
        const previous = lease.running = (running.get(p) ?? Promise.resolve()).then(() => deps.run(p, lease)).catch((err: Error) => lose(p, lease, err.message))
        running.set(p, previous)
      } catch {
        // Another worker took it first.
      }
    }
  }
  let stopping = false
  const rounds = (async () => {
    while (!stopping) {
      await round().catch((err: Error) => log.warn({ err, kind }, 'a lease round failed'))
      await new Promise((r) => setTimeout(r, RENEW_MS))
    }
  })()
  return {
    owned: () => [...leases].filter(([, l]) => l.state !== 'lost').map(([p]) => p).sort((a, b) => a - b),
    async stop() {
      stopping = true
      await rounds
      await Promise.all([...leases.keys()].map(release))
      await jsm.streams.purge(LEASE_STREAM, { filter: heartbeat }).catch(() => undefined)
    },
  }
}

/** Connects to nats-server, makes the streams if missing, and starts taking partitions. */
export async function startWorkerIngest(deps: WorkerIngestDeps): Promise<WorkerIngest> {
  const log = deps.logger.child({ stage: 'ingest', worker: deps.workerId })
  const nc = await connect({ ...natsConnectOptions(deps.servers), name: `ubiq-worker-${deps.workerId}`, maxReconnectAttempts: -1 })
  const jsm = await jetstreamManager(nc)
  const js = jetstream(nc)
  // The journal of what is not yet stored: each owner purges its partition up to what it has
  // acknowledged (a work queue without one ack a message, which nats-server 2.9 requires of a
  // work queue; AckAll is one ack a batch). MAX_AGE is how long the workers may all be down.
  await jsm.streams.add({ name: DEVICE_STREAM, subjects: ['ubiq.part.>'], max_age: nanos(MAX_AGE_MS), num_replicas: deps.replicas })
  // What the key-value API is built on, without its package: one message a subject, gone after the
  // TTL, written with the expected last revision (compare-and-set).
  await jsm.streams.add({ name: LEASE_STREAM, subjects: ['ubiq.lease.>'], max_msgs_per_subject: 1, max_age: nanos(LEASE_TTL_MS), num_replicas: deps.replicas })

  const clocks = clockTracker()
  const counters = messageCounters(deps.metrics, clocks)
  /** The devices heard from in each partition this worker owns, since it took it. */
  const heard = new Map<number, Set<string>>()
  new Gauge({
    name: 'ubiq_worker_partition_devices', help: 'Devices heard from in each partition this worker owns, since it took it (one worker owns a partition)', labelNames: ['partition'], registers: [deps.metrics],
    collect() {
      this.reset()
      for (const p of partitions.owned()) this.set({ partition: String(p) }, heard.get(p)?.size ?? 0)
    },
  })
  /** Devices of partitions given back or lost: their scoring state goes (another worker rebuilds it). */
  const handedOver$ = new RxSubject<{ policyIds: readonly string[]; deviceIds: readonly string[] }>()
  /**
   * Work batches started and not yet done (a trip closed, being sent on). A batch is acknowledged
   * only once every work pending at its acknowledgement is done: a trip may close after its batch
   * was pushed (its tracker rebuilt from InfluxDB first), so the batch's own list would miss it.
   */
  const pendingWork = new Set<Promise<unknown>>()
  // Refused lines are settled (never retried, never acknowledged as stored) and counted; the
  // MQTT path's dead-letter folder is not kept here yet (docs/scale-out.md).
  deps.influx.onRefused((refused: readonly Refusal[]) => {
    settle(refused.map((r) => r.line))
    for (const r of refused) counters.quarantined.inc({ reason: r.kind })
    log.error({ lines: refused.length, kinds: [...new Set(refused.map((r) => r.kind))] }, 'InfluxDB refused lines: dropped')
  })

  /** Lines sent to InfluxDB and not yet confirmed, each with the batches waiting for it. */
  const waiting = new Map<string, { left: number; done(): void }[]>()
  const settle = (lines: readonly string[]) => {
    for (const line of lines) {
      const batches = waiting.get(line)
      waiting.delete(line)
      for (const b of batches ?? []) if (--b.left === 0) b.done()
    }
  }
  /** Resolves once InfluxDB has confirmed (or refused) every one of `lines`. */
  const written = (lines: readonly string[]) => new Promise<void>((done) => {
    const unique = new Set(lines)
    if (unique.size === 0) return done()
    const batch = { left: unique.size, done }
    for (const line of unique) waiting.set(line, [...(waiting.get(line) ?? []), batch])
  })

  const messages = new RxSubject<DeviceMessage>()
  /** The lines of the batch being pushed through takeMessages (synchronous from push to store). */
  let batchLines: string[] = []
  const readings$ = messages.pipe(
    takeMessages({
      ...deps,
      log,
      counters,
      clocks,
      pending: (lines) => batchLines.push(...lines),
      // Rejections reach the device as on the MQTT path: nats-server delivers the subject to its MQTT subscribers.
      reject: (r) => nc.publish(natsSubjectOf(topics.rejected(r.deviceId)), JSON.stringify(r)),
    }),
    share(),
  )
  const storing = readings$.subscribe()

  /**
   * Takes the partition's consumer afresh, from its last acknowledged message: the previous
   * owner's delivered but unacknowledged messages would otherwise come back only after the ack
   * wait (30 s), behind newer ones, and acknowledging a newer batch (AckAll) would acknowledge them
   * unread. A previous owner that has not noticed its lease is gone loses its consumer with it,
   * and fetches nothing more.
   */
  async function freshConsumer(p: number) {
    const name = `part-${p}`
    const before = await jsm.consumers.info(DEVICE_STREAM, name).catch(() => undefined) // none yet: from the start
    if (before) await jsm.consumers.delete(DEVICE_STREAM, name)
    await jsm.consumers.add(DEVICE_STREAM, {
      durable_name: name, filter_subject: `ubiq.part.${p}.>`, ack_policy: AckPolicy.All, max_ack_pending: (IN_FLIGHT + 1) * BATCH,
      ...(before ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: before.ack_floor.stream_seq + 1 } : { deliver_policy: DeliverPolicy.All }),
    })
    return js.consumers.get(DEVICE_STREAM, name)
  }

  /**
   * Drains partition `p` while its lease is held: the next batch is fetched and pushed while up to
   * IN_FLIGHT earlier ones wait for InfluxDB (one at a time, the partition waited a write and an
   * ack a batch, idle). AckAll acknowledges every earlier delivery too, so each batch is
   * acknowledged once it is stored and the batches before it are acknowledged.
   */
  async function drain(p: number, lease: Lease) {
    heard.set(p, new Set())
    let consumer = await freshConsumer(p)
    // The lease's state changes while this awaits (a round renews or gives it back).
    const lost = () => (lease.state as Lease['state']) === 'lost'
    /** The batches pushed and not yet acknowledged, and the last one's acknowledgement. */
    const inFlight = new Set<Promise<void>>()
    let acked = Promise.resolve()
    while (lease.state === 'held') {
      try {
        const batch: JsMsg[] = []
        for await (const m of await consumer.fetch({ max_messages: BATCH, expires: FETCH_WAIT_MS })) batch.push(m)
        if (batch.length === 0 || lost()) continue
        batchLines = []
        for (const m of batch) {
          heard.get(p)!.add(m.subject.split('.')[3]!)
          messages.next({ topic: topicOf(m.subject), payload: Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength), receivedAt: Math.round(m.info.timestampNanos / 1e6) })
        }
        const stored = written(batchLines)
        const before = acked
        const done = acked = (async () => {
          await stored
          // The trips it closed are on the policy stream before the batch is acknowledged.
          await Promise.all([...pendingWork])
          await before
          // Lost meanwhile: the next owner takes the batch again; InfluxDB keeps one point per series and time.
          if (lost()) return
          await batch.at(-1)!.ackAck() // AckPolicy.All: the batch's last acknowledges the batch
        })()
        inFlight.add(done)
        done.then(() => inFlight.delete(done), () => inFlight.delete(done))
        if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight)
      } catch (err) {
        // nats-server moving a stream's leader, a fetch cut short, an ack refused, or a consumer
        // taken by a new owner. Messages delivered to a failed fetch were not stored: acknowledging
        // a later batch (AckAll) would acknowledge them too, so once the batches in flight are
        // stored the consumer starts again from the last acknowledged message (dedupe drops those
        // already stored; a later ack covers them).
        log.warn({ err: (err as Error).message, partition: p }, 'fetching from the partition failed')
        await Promise.allSettled(inFlight)
        acked = Promise.resolve()
        await new Promise((r) => setTimeout(r, RENEW_MS))
        if (lease.state === 'held') consumer = await freshConsumer(p)
      }
    }
    await Promise.allSettled(inFlight)
  }

  const partitions = leasePartitions({
    js, jsm, log, metrics: deps.metrics, workerId: deps.workerId, kind: 'part', partitions: deps.partitions, run: drain,
    gone(p) {
      handedOver$.next({ policyIds: [], deviceIds: [...heard.get(p) ?? []] })
      heard.delete(p)
    },
  })

  /**
   * What every partition has stored leaves the journal: the stream is purged below the lowest of
   * the partitions' floors, a partition's floor being its ack floor while messages wait for an ack,
   * else the last message it delivered (all acknowledged). Each consumer's own figures, never the
   * stream's last message: in a cluster a consumer's replica may lag the stream leader's, and a
   * consumer "with nothing left" may not have seen the newest messages yet (a first version that
   * trusted the stream's last message lost 139 of 10,800 in the cluster test). A partition without a consumer (being taken afresh) skips the purge.
   * One purge of the stream's head: nats-server 2.9 answers a purge filtered by partition by
   * reading the stream from its first message, which cost it about 100 µs a message drained
   * (docs/scale-out.md). The holder of partition 0 trims, once a round of its own (a slow purge must not delay
   * the lease renewals).
   */
  async function trim() {
    let floor = Infinity
    let consumers = 0
    for await (const c of jsm.consumers.list(DEVICE_STREAM)) {
      if (!c?.name.startsWith('part-')) continue // null: one being deleted, so not counted
      consumers++
      floor = Math.min(floor, c.num_ack_pending > 0 ? c.ack_floor.stream_seq : c.delivered.stream_seq)
    }
    const first = (await jsm.streams.info(DEVICE_STREAM)).state.first_seq
    // Only with something to purge: nats-server 2.9.10 takes a purge up to sequence 1 for "purge everything".
    if (consumers === deps.partitions && floor >= first) await jsm.streams.purge(DEVICE_STREAM, { seq: floor + 1 })
  }

  let trimmingStopped = false
  const trimming = (async () => {
    while (!trimmingStopped) {
      // One trimmer, the holder of partition 0: every worker listing every consumer each second is N times the work.
      if (partitions.owned().includes(0)) await trim().catch((err: Error) => log.warn({ err: err.message }, 'trimming the journal failed'))
      await new Promise((r) => setTimeout(r, RENEW_MS))
    }
  })()

  return {
    readings$,
    owned: partitions.owned,
    handedOver$,
    hold(work) {
      pendingWork.add(work)
      void work.finally(() => pendingWork.delete(work))
    },
    confirm: settle,
    async stop() {
      trimmingStopped = true
      await trimming
      await partitions.stop()
      messages.complete()
      handedOver$.complete()
      storing.unsubscribe()
      await nc.drain()
    },
  }
}
