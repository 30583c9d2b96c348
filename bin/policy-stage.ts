/**
 * The policy stage of `ubiq start --worker` (#25, docs/scale-out.md 3a). A policy's devices may
 * hash to different device partitions, so trips cross to the policy's own partition: each worker
 * sends the trips its devices close on the stream UBIQ_POL (`ubiq.pol.{q}.{policyId}`), and the
 * worker that holds policy partition q by lease (leasePartitions, as device partitions are held)
 * scores them with scoring's own stage (ScoringDeps.policyTrips) and prices the scores. Each
 * adjustment is appended to its partition's audit chain, the subject `ubiq.audit.{q}` of
 * UBIQ_AUDIT, with the expected last subject sequence before it is published or stored: a worker
 * that lost the lease without noticing is refused by nats-server, so a chain never forks and no
 * premium is written twice.
 *
 * Redelivery stays idempotent: a trip is sent with its identity as the message id (nats-server
 * drops a resend), a new owner rebuilds pricing's state from the partition's chain (a score no
 * later than the policy's last priced one is not priced again) and scoring's from InfluxDB, and a
 * trip is acknowledged only once a score of its policy at or after its end has been priced or
 * refused by pricing.
 */
import { AckPolicy, DeliverPolicy, RetentionPolicy, jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import { Subject as RxSubject, concatMap, lastValueFrom, type Observable } from 'rxjs'
import { leasePartitions, natsConnectOptions, natsPartition, natsSubjectOf, topics, type Influx, type Lease } from '../ingest/index.ts'
import { premiumLine, priceScores, pricingStateFromAudit, verifyChain, type AuditRecord, type AuditVerdict, type PremiumAdjustment, type RatingPlan } from '../pricing/index.ts'
import type { Score, Trip } from '../scoring/index.ts'

/** Closed trips on their way to their policy's partition: `ubiq.pol.{q}.{policyId}`, a work queue. */
export const POLICY_STREAM = 'UBIQ_POL'
/** The audit chains, one a policy partition: `ubiq.audit.{q}`, kept for good. */
export const AUDIT_STREAM = 'UBIQ_AUDIT'
export const auditSubject = (q: number) => `ubiq.audit.${q}`
/** Most trips a policy partition has in hand, not yet acknowledged. */
const IN_HAND = 1000
/** How long a fetch waits for trips before it takes what there is, ms. */
const FETCH_WAIT_MS = 1000

/** A trip's identity across resends and redeliveries. */
const tripId = (t: Trip) => `${t.deviceId}.${t.from}`

/** What scoring publishes on MQTT, published as core NATS instead (scores, events: followed over nats-server's MQTT listener). */
export const natsPublisher = (nc: NatsConnection) => ({ publish: (topic: string, payload: string) => void nc.publish(natsSubjectOf(topic), payload) })

export interface PolicyStageDeps {
  servers: string[]
  workerId: string
  /** Q, the policy partitions (WORKER_PARTITIONS, as P). */
  partitions: number
  replicas: number
  influx: Influx
  plans: readonly RatingPlan[]
  logger: Logger
  metrics: Registry
}

/** One held policy partition: its chain's end, its pricing, and its trips in hand. */
interface Partition {
  /** The chain's last sequence on its subject (0: none yet): the next append's expectation. */
  lastSeq: number
  scores: RxSubject<Score>
  /** Trips given to scoring, by identity: a redelivery to the same owner only waits for its acknowledgement. */
  handed: Set<string>
  /** The policies whose trips came here: their scoring state goes with the partition. */
  policies: Set<string>
  /** Each policy's trips not yet acknowledged, by trip identity: their end, and their latest delivery's ack. */
  waiting: Map<string, Map<string, { to: number; ack(): void }>>
  /** An append nats-server refused: another worker holds the chain; the partition goes. */
  refused?: Error
}

/** Connects to nats-server and makes the policy and audit streams; `start` takes partitions. */
export async function startPolicyStage(deps: PolicyStageDeps) {
  const log = deps.logger.child({ stage: 'policies', worker: deps.workerId })
  const nc = await connect({ ...natsConnectOptions(deps.servers), name: `ubiq-policies-${deps.workerId}`, maxReconnectAttempts: -1 })
  const jsm = await jetstreamManager(nc)
  const js = jetstream(nc)
  await jsm.streams.add({ name: POLICY_STREAM, subjects: ['ubiq.pol.>'], retention: RetentionPolicy.Workqueue, num_replicas: deps.replicas })
  await jsm.streams.add({ name: AUDIT_STREAM, subjects: ['ubiq.audit.>'], num_replicas: deps.replicas })
  const priced = new Counter({ name: 'ubiq_premium_adjustments_total', help: 'Premium adjustments appended to a partition chain and published', labelNames: ['subject'], registers: [deps.metrics] })
  const unpriced = new Counter({ name: 'ubiq_scores_unpriced_total', help: 'Scores that moved no premium, by reason', labelNames: ['reason'], registers: [deps.metrics] })

  const held = new Map<number, Partition>()
  const trips$ = new RxSubject<Trip>()
  /** Policies and their scoring state handed over when a partition goes. */
  const handedOver$ = new RxSubject<{ policyIds: readonly string[]; deviceIds: readonly string[] }>()
  const partitionOf = (policyId: string) => natsPartition(policyId, deps.partitions)

  /** Acknowledges the policy's trips that end no later than `to`: a score at or after them is priced or refused. */
  const settle = (part: Partition, policyId: string, to: number) => {
    const trips = part.waiting.get(policyId)
    for (const [id, w] of trips ?? []) {
      if (w.to > to) continue
      w.ack()
      trips!.delete(id)
      part.handed.delete(id) // acknowledged: it does not come again
    }
    if (trips?.size === 0) part.waiting.delete(policyId)
  }

  /** Appends `a` to partition q's chain, expecting its last sequence: refused when another worker appended since. */
  async function append(q: number, part: Partition, a: PremiumAdjustment) {
    try {
      part.lastSeq = (await js.publish(auditSubject(q), JSON.stringify(a), { expect: { lastSubjectSequence: part.lastSeq } })).seq
    } catch (err) {
      part.refused ??= err as Error
      part.scores.complete()
      log.warn({ partition: q, err: (err as Error).message }, 'audit chain append refused: another worker holds the partition')
      return
    }
    priced.inc({ subject: a.subject })
    nc.publish(natsSubjectOf(topics.premiums(a.policyId, a.subject)), JSON.stringify(a))
    deps.influx.write([premiumLine(a)])
    settle(part, a.policyId, Date.parse(a.effectiveFrom))
  }

  /** Holds policy partition q: its chain read back, its pricing started, then its trips drained. */
  async function run(q: number, lease: Lease) {
    const records = await chainOf(js, jsm, q)
    const part: Partition = { lastSeq: records.at(-1)?.seq ?? 0, scores: new RxSubject(), handed: new Set(), policies: new Set(), waiting: new Map() }
    held.set(q, part)
    const state = pricingStateFromAudit(records.map((r) => r.record))
    const pricing = lastValueFrom(part.scores.pipe(
      priceScores(deps.plans, state, (reason, s) => {
        unpriced.inc({ reason })
        settle(part, s.policyId, s.window.to)
      }, undefined, (err, s) => log.error({ err, policyId: s.policyId }, 'pricing a score threw: it is left unpriced')),
      concatMap((a) => append(q, part, a)),
    ), { defaultValue: undefined })
    // A fresh consumer a new owner: every trip not acknowledged comes again (the stream keeps only those).
    const name = `pol-${q}`
    await jsm.consumers.delete(POLICY_STREAM, name).catch(() => undefined)
    await jsm.consumers.add(POLICY_STREAM, { durable_name: name, filter_subject: `ubiq.pol.${q}.>`, ack_policy: AckPolicy.Explicit, deliver_policy: DeliverPolicy.All, max_ack_pending: IN_HAND })
    const consumer = await js.consumers.get(POLICY_STREAM, name)
    while (lease.state === 'held') {
      if (part.refused) throw part.refused
      try {
        for await (const m of await consumer.fetch({ max_messages: IN_HAND, expires: FETCH_WAIT_MS })) {
          // Gone meanwhile: scoring has forgotten its policies, and the next owner takes its trips.
          if (held.get(q) !== part) break
          const trip = m.json<Trip>()
          // A redelivery replaces its trip's entry: one entry a trip, acknowledged through its latest delivery.
          if (!part.waiting.has(trip.policyId)) part.waiting.set(trip.policyId, new Map())
          part.waiting.get(trip.policyId)!.set(tripId(trip), { to: trip.to, ack: () => m.ack() })
          if (part.handed.has(tripId(trip))) continue
          part.handed.add(tripId(trip))
          part.policies.add(trip.policyId)
          trips$.next(trip)
        }
      } catch (err) {
        // A fetch cut short (a loaded machine, a stream leader moving): what it delivered and was
        // not acknowledged comes again after the ack wait; a consumer another owner took fails
        // until the lease round finds the lease gone.
        log.warn({ err: (err as Error).message, partition: q }, 'fetching trips failed')
        await new Promise((r) => setTimeout(r, FETCH_WAIT_MS))
      }
    }
    // Given back: the scores in hand are priced and appended before the lease goes (LeaseDeps.run),
    // so the next owner reads a chain with them.
    part.scores.complete()
    await pricing
  }

  let partitions: ReturnType<typeof leasePartitions> | undefined

  return {
    /** Its connection: scores and events are published on it too. */
    nc,
    handedOver$: handedOver$.asObservable(),
    /**
     * ScoringDeps.policyTrips: sends each trip closed here to its policy's partition (resent until
     * nats-server has it; `hold` keeps the device batch that closed it unacknowledged till then),
     * and gives back the trips of the policy partitions this worker holds.
     */
    policyTrips: (hold: (work: Promise<unknown>) => void) => (closed$: Observable<Trip>): Observable<Trip> => {
      closed$.subscribe((trip) => hold((async () => {
        for (;;) {
          try {
            return await js.publish(`ubiq.pol.${partitionOf(trip.policyId)}.${trip.policyId}`, JSON.stringify(trip), { msgID: tripId(trip) })
          } catch (err) {
            log.warn({ err: (err as Error).message, policyId: trip.policyId }, 'sending a trip to its policy partition failed; again in 1 s')
            await new Promise((r) => setTimeout(r, FETCH_WAIT_MS))
          }
        }
      })()))
      return trips$
    },
    /** Prices the scores of the policies this worker holds; a score of another's is dropped (its trip goes to the owner). */
    price(scores$: Observable<Score>) {
      scores$.subscribe((s) => held.get(partitionOf(s.policyId))?.scores.next(s))
    },
    /** Starts taking policy partitions: once scoring listens. */
    start() {
      partitions ??= leasePartitions({
        js, jsm, log, metrics: deps.metrics, workerId: deps.workerId, kind: 'pol', partitions: deps.partitions, run,
        gone(q) {
          const part = held.get(q)
          held.delete(q)
          part?.scores.complete()
          // Its trips not acknowledged go to the next owner, and its policies' scoring state with them.
          if (part) handedOver$.next({ policyIds: [...part.policies], deviceIds: [] })
        },
      })
    },
    owned: () => partitions?.owned() ?? [],
    async stop() {
      await partitions?.stop()
      trips$.complete()
      handedOver$.complete()
      await nc.drain()
    },
  }
}

/** Partition q's chain, in order, with each record's sequence on the stream. */
async function chainOf(js: JetStreamClient, jsm: JetStreamManager, q: number): Promise<{ seq: number; text: string; record: AuditRecord }[]> {
  const last = await jsm.streams.getMessage(AUDIT_STREAM, { last_by_subj: auditSubject(q) }).catch(() => null)
  if (!last) return []
  const out: { seq: number; text: string; record: AuditRecord }[] = []
  const consumer = await js.consumers.get(AUDIT_STREAM, { filter_subjects: auditSubject(q) })
  for await (const m of await consumer.consume()) {
    out.push({ seq: m.seq, text: m.string(), record: m.json<AuditRecord>() })
    if (m.seq >= last.seq) break
  }
  return out
}

/** Each policy partition's chain on `servers`, verified as `ubiq audit verify` verifies a log (`verifyChain`). */
export async function verifyPartitionChains(servers: string[]): Promise<Map<number, AuditVerdict>> {
  const nc = await connect(natsConnectOptions(servers))
  try {
    const jsm = await jetstreamManager(nc)
    const js = jetstream(nc)
    const subjects = (await jsm.streams.info(AUDIT_STREAM, { subjects_filter: 'ubiq.audit.>' })).state.subjects ?? {}
    const verdicts = new Map<number, AuditVerdict>()
    for (const subject of Object.keys(subjects)) {
      const q = Number(subject.split('.')[2])
      const chain = await chainOf(js, jsm, q)
      verdicts.set(q, verifyChain(chain.map((c) => ({ text: c.text, ended: true }))))
    }
    return verdicts
  } finally {
    await nc.close()
  }
}
