/**
 * A worker's batches on JetStream (#25, docs/scale-out.md): while InfluxDB does not answer, the
 * worker fetches a partition's next batch as the earlier one waits for its write (one batch at a
 * time left the partition idle for a write and an ack each time), and acknowledges none of them;
 * once InfluxDB answers, every message is stored once, acknowledged, and trimmed from the journal.
 */
import t from 'tap'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { jetstream, jetstreamManager } from '@nats-io/jetstream'
import { connect } from '@nats-io/transport-node'
import pino from 'pino'
import { startNatsCluster } from '../bin/local-services.ts'
import { startWorker } from '../bin/worker.ts'
import { serverPid } from '../bench/server-rss.ts'
import { benchRegistry, message } from '../bench/traffic.ts'
import { DEVICE_STREAM, deviceRegistry } from '../ingest/index.ts'
import { startServices, tally } from './harness.ts'

const MESSAGES = 2500

t.test('a worker fetches the next batch while earlier ones wait for InfluxDB, and acknowledges each only once stored', async (t) => {
  const services = await startServices(t)
  const [nats] = await startNatsCluster(join(services.dataDir, '..', 'nats'), 1, 1)
  t.teardown(() => nats!.stop())
  const db = 'ubiq_worker'
  const worker = await startWorker({
    servers: [nats!.url], partitions: 1, workerId: 'w1', replicas: 1, influx: { api: 'v1', url: services.influxUrl, database: db },
    devices: deviceRegistry(benchRegistry(1)), host: '127.0.0.1', port: 0,
  }, pino({ level: 'warn' }))
  const influxd = serverPid(join(services.dataDir, '..'), 'influxd')!
  process.kill(influxd, 'SIGSTOP')
  t.teardown(() => process.kill(influxd, 'SIGCONT'))

  const nc = await connect({ servers: nats!.url })
  t.teardown(() => nc.close())
  const js = jetstream(nc)
  const jsm = await jetstreamManager(nc)
  // Device bench-0 sends OBD; nats-server maps ubiq.v1.dev.bench-0.obd to the one partition's subject.
  // All at once, so that the worker's fetches find more than a batch (up to 1,000) in the stream.
  const start = Date.now() - MESSAGES * 1000
  await Promise.all(Array.from({ length: MESSAGES }, (_, seq) => {
    const [topic, payload] = message(0, seq, start + seq * 1000)
    return js.publish(topic.replaceAll('/', '.'), payload)
  }))
  // More than a batch delivered and waiting for InfluxDB: the next was fetched while the first
  // waited (one batch at a time never has more than 1,000; tap's timeout says if that never comes).
  const consumer = () => jsm.consumers.info(DEVICE_STREAM, 'part-0')
  // (The worker makes its consumer at its first lease round.)
  while (((await consumer().catch(() => undefined))?.num_ack_pending ?? 0) <= 1000) await sleep(100)
  const held = await consumer()
  t.ok(held.num_ack_pending > 1000, `${held.num_ack_pending} messages delivered and waiting for InfluxDB`)
  t.equal(held.ack_floor.stream_seq, 0, 'nothing is acknowledged while InfluxDB has stored nothing')
  t.equal((await jsm.streams.info(DEVICE_STREAM)).state.messages, MESSAGES, 'the journal keeps every message')

  process.kill(influxd, 'SIGCONT')
  while ((await consumer()).ack_floor.stream_seq < MESSAGES) await sleep(200)
  t.same(await tally(services, db, MESSAGES), { stored: MESSAGES, lost: 0, duplicated: 0 }, 'every message stored once')
  // The journal is trimmed at the worker's next round (every second).
  while ((await jsm.streams.info(DEVICE_STREAM)).state.messages > 0) await sleep(200)
  t.pass('what is stored leaves the journal')
  await worker.stop()
})
