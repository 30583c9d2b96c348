/**
 * The ingest service: MQTT subscribe → decode/validate → dedupe → InfluxDB write → readings.
 */
import type { MqttClient } from 'mqtt'
import type { Logger } from 'pino'
import { Counter, type Registry } from 'prom-client'
import { Observable, Subject as RxSubject, filter, map, partition, share, type OperatorFunction } from 'rxjs'
import { topics, type Reading } from './contract.ts'
import { decodeMessage, isRejection, type DecodeConfig, type Rejection } from './decode.ts'
import { toLine, type Influx } from './influx.ts'

export interface IngestDeps {
  mqtt: MqttClient
  influx: Influx
  decode: DecodeConfig
  logger: Logger
  metrics: Registry
  /** How many recent seqs per device are remembered to drop redeliveries. */
  dedupeWindow?: number
}

export interface Ingest {
  /** Every stored reading, once, in arrival order. */
  readings$: Observable<Reading>
  /** Disconnects (ingest owns its MQTT connection) and completes readings$. */
  stop(): Promise<void>
}

interface Message {
  topic: string
  payload: Buffer
  receivedAt: number
}

/** Subscribes to every device stream and starts storing; readings$ is hot and shared. */
export async function startIngest(deps: IngestDeps): Promise<Ingest> {
  const log = deps.logger.child({ stage: 'ingest' })
  const counters = ingestCounters(deps.metrics)
  const messages = new RxSubject<Message>()
  const onMessage = (topic: string, payload: Buffer) => {
    if (topic.startsWith(`${topics.prefix}/dev/`)) messages.next({ topic, payload, receivedAt: Date.now() })
  }
  deps.mqtt.on('message', onMessage)

  const decoded$ = messages.pipe(
    map((m) => {
      counters.received.inc()
      return decodeMessage(deps.decode, m.topic, m.payload, m.receivedAt)
    }),
    share(),
  )
  const [rejected$, accepted$] = partition(decoded$, isRejection)
  rejected$.subscribe((r) => {
    counters.rejected.inc({ reason: r.reason })
    log.debug({ deviceId: r.deviceId, kind: r.kind, reason: r.reason }, 'message rejected')
    deps.mqtt.publish(topics.rejected(r.deviceId), JSON.stringify(r), { qos: 1 })
  })
  const readings$ = (accepted$ as Observable<Reading>).pipe(
    dropDuplicates(deps.dedupeWindow ?? 4096, () => counters.duplicates.inc()),
    storeReadings(deps.influx, () => counters.stored.inc()),
    share(),
  )
  // Storage must not depend on someone downstream listening.
  const storing = readings$.subscribe()

  await deps.mqtt.subscribeAsync(topics.allDevices, { qos: 1 })
  log.info({ topic: topics.allDevices }, 'ingest subscribed')
  return {
    readings$,
    async stop() {
      // End the connection first, so nothing is acknowledged after this; the subscription stays in
      // the broker's persistent session and what arrives meanwhile waits there for the restart.
      await deps.mqtt.endAsync()
      deps.mqtt.off('message', onMessage)
      messages.complete()
      storing.unsubscribe()
    },
  }
}

/**
 * Drops a reading whose (deviceId, seq) was seen among the device's last `window` seqs: QoS 1
 * redeliveries and device resends after a reconnect are stored and scored once.
 */
export function dropDuplicates(window: number, onDuplicate: () => void = () => {}): OperatorFunction<Reading, Reading> {
  return (source) => new Observable<Reading>((subscriber) => {
    const recent = new Map<string, { seen: Set<number>; order: number[] }>()
    return source.pipe(filter((r) => {
      let dev = recent.get(r.deviceId)
      if (!dev) recent.set(r.deviceId, (dev = { seen: new Set(), order: [] }))
      if (dev.seen.has(r.seq)) {
        onDuplicate()
        return false
      }
      dev.seen.add(r.seq)
      dev.order.push(r.seq)
      if (dev.order.length > window) dev.seen.delete(dev.order.shift()!)
      return true
    })).subscribe(subscriber)
  })
}

/** Queues each reading for InfluxDB: measurement = kind, tag = device id, fields = values + seq. */
export function storeReadings(influx: Influx, onStored: () => void = () => {}): OperatorFunction<Reading, Reading> {
  return map((r) => {
    // Telemetry is tagged by device only: the device → policy link lives in the registry, not
    // beside positions and health values (privacy by design).
    influx.write([toLine(r.kind, { device_id: r.deviceId }, { ...r.fields, seq: r.seq }, r.ts, ['seq'])])
    onStored()
    return r
  })
}

function ingestCounters(registry: Registry) {
  return {
    received: new Counter({ name: 'ubiq_ingest_messages_received_total', help: 'Device messages received', registers: [registry] }),
    stored: new Counter({ name: 'ubiq_ingest_messages_stored_total', help: 'Device messages queued for InfluxDB', registers: [registry] }),
    duplicates: new Counter({ name: 'ubiq_ingest_duplicates_total', help: 'Device messages dropped as redeliveries of a seen (device, seq)', registers: [registry] }),
    rejected: new Counter({ name: 'ubiq_ingest_messages_rejected_total', help: 'Device messages rejected, by reason', labelNames: ['reason'], registers: [registry] }),
  }
}

export type { Rejection }
