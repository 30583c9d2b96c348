/**
 * Scale-out (#25): a three-node nats-server cluster (JetStream, R3 streams, MQTT listener on each
 * node) and ubiq workers as real processes (`ubiq start --worker`), a simulated fleet publishing
 * to all three nodes. One worker is killed with -9 mid-stream and another added: every message is
 * stored once (counted by device and seq in InfluxDB), the dead worker's partitions move to the
 * others, and each partition, so each device, is owned by exactly one worker (their metrics). Each
 * device drives one trip through it all: every trip is scored once (those open on the killed
 * worker rebuilt from InfluxDB by the next owner), each policy is priced once, and every policy
 * partition's audit chain on JetStream verifies.
 */
import t from 'tap'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import mqtt from 'mqtt'
import { makeFleet, runFleet } from '../edge-sim/index.ts'
import { cpuSeconds, serverPid } from '../bench/server-rss.ts'
import { connect } from '@nats-io/transport-node'
import { natsConnectOptions, qualified } from '../ingest/index.ts'
import { settle, tally } from './harness.ts'
import { startCluster, workerPool } from './cluster-harness.ts'
import { verifyPartitionChains } from '../bin/policy-stage.ts'

const PARTITIONS = 12
const DEVICES = 9
const PER_DEVICE = 1200

t.setTimeout(600_000)
t.test('three nodes, three workers: kill -9 one and add one mid-stream; every message stored once, every trip scored and priced once, every device on one worker', async (t) => {
  t.setTimeout(600_000)
  const fleet = makeFleet(DEVICES, 7)
  const db = 'ubiq_cluster'
  const cluster = await startCluster(t, { partitions: PARTITIONS, fleet, db })
  const { services, natsDir, nodes } = cluster
  // Premiums as MQTT subscribers and a feed follow them: core NATS from the policy partitions' owners.
  const nc = await connect(natsConnectOptions(nodes.map((n) => n.url)))
  t.teardown(() => nc.close())
  const premiums: { policyId: string; hash: string }[] = []
  nc.subscribe('ubiq.v1.premiums.>', { callback: (_, m) => void premiums.push(m.json()) })
  const pool = workerPool(t, cluster)
  const { workers, settled } = pool
  const startWorker = pool.start
  const workersCpu = pool.cpu
  await Promise.all(['w1', 'w2', 'w3'].map(startWorker))
  const before = await settled()
  t.same([...before.values()].map((m) => m.size), [4, 4, 4], 'three workers share twelve partitions evenly')

  // A third of the fleet on each node (MQTT 3.1.1: nats-server's); 30 messages a second per device, 40 s of traffic.
  const startTs = Date.now() - 24 * 3600_000
  const runs = await Promise.all(nodes.map((n, i) => runFleet({ mqttUrl: n.mqttUrl, fleet: fleet.filter((_, j) => j % 3 === i), startTs, speedup: 30, samples: PER_DEVICE, protocolVersion: 4 })))
  t.teardown(() => Promise.all(runs.map((r) => r.stop())))
  // CPU-seconds a message of each part (docs/scale-out.md's capacity model), from the fleet's start
  // to the last message stored: on a shared machine, a figure beside the benchmarks', not a goal.
  const natsPids = nodes.map((_, i) => serverPid(join(natsDir, `n${i + 1}`), 'nats-server')!)
  const influxdPid = serverPid(join(services.dataDir, '..'), 'influxd')!
  const partsCpu = () => ({ workers: workersCpu(), nats: natsPids.reduce((a, pid) => a + cpuSeconds(pid), 0), influxd: cpuSeconds(influxdPid) })
  const cpuBefore = partsCpu()
  const acknowledged = () => runs.reduce((a, r) => a + r.acknowledged, 0)
  const midway = async (share: number) => {
    while (acknowledged() < DEVICES * PER_DEVICE * share) await sleep(50)
  }

  await midway(1 / 4)
  const dead = [...before.get('w1')!.keys()]
  const killedAt = Date.now()
  await pool.kill('w1')
  const after = await settled()
  t.comment(`kill -9 w1 after ${acknowledged()} messages acknowledged by the cluster: its partitions ${dead.join(', ')} taken over in ${Date.now() - killedAt} ms`)
  t.same([...after.values()].map((m) => m.size).sort(), [6, 6], 'the two left share its partitions')

  // While the fleet still sends: each device is heard again by whoever owns its partition last.
  await startWorker('w4')
  const joined = await settled()
  t.same([...joined.values()].map((m) => m.size).sort(), [4, 4, 4], 'a worker that joins takes its share from the others')

  await Promise.all(runs.map((r) => r.done))
  await settle(services, db, DEVICES * PER_DEVICE)
  const result = await tally(services, db, DEVICES * PER_DEVICE)
  const cpuAfter = partsCpu()
  const perMessage = (part: keyof typeof cpuAfter) => `${((cpuAfter[part] - cpuBefore[part]) / (DEVICES * PER_DEVICE) * 1e6).toFixed(0)} µs`
  t.comment(`CPU a message: workers ${perMessage('workers')}, nats-server ×3 ${perMessage('nats')}, InfluxDB ${perMessage('influxd')}`)
  t.comment(`${DEVICES * PER_DEVICE} sent, ${result.stored} stored, ${result.lost} lost, ${result.duplicated} duplicated`)
  t.same(result, { stored: DEVICES * PER_DEVICE, lost: 0, duplicated: 0 }, 'kill -9 and a join mid-stream: nothing lost, nothing stored twice')

  // Each device's one trip (ignition on to off), scored once and priced once, the trips open on
  // the killed worker's devices included: the next owner rebuilt them from InfluxDB.
  const rowsOf = async (q: string) => (await services.influxql(db, q)).flatMap((s) => s.values.map((v) => Object.fromEntries(s.columns.map((c, i) => [c, v[i]]))))
  let trips: Record<string, unknown>[] = []
  while ((trips = await rowsOf(`SELECT * FROM ${qualified('trip')}`)).length < DEVICES || premiums.length < DEVICES) await sleep(200)
  const scores = await rowsOf(`SELECT * FROM ${qualified('score')}`)
  t.same(trips.map((r) => r.device_id).sort(), fleet.map((v) => v.deviceId), 'one trip a device: none twice, none missing')
  t.ok(trips.every((r) => r.time === startTs), 'each trip from the ignition on, not from a takeover')
  t.same(trips.map((r) => r.ended), fleet.map(() => 'ignition'), 'each ended by its ignition off, not cut short by a move')
  t.same(scores.map((r) => r.policy_id).sort(), fleet.map((v) => v.policyId), 'one driving score a policy')
  const chains = await verifyPartitionChains(nodes.map((n) => n.url))
  t.ok([...chains.values()].every((v) => v.ok), `every policy partition's audit chain verifies (${chains.size} chains)`)
  t.equal([...chains.values()].reduce((a, v) => a + (v.ok ? v.records : 0), 0), DEVICES, 'one adjustment a policy in the chains')
  t.same(premiums.map((p) => p.policyId).sort(), fleet.map((v) => v.policyId), 'one premium published a policy: none twice')

  // After the last move, each device says once more that its ignition is off (a seq of its own),
  // to whichever node: one owner a partition, and a device's partition the server's hash of its
  // id, make one owner a device; the live workers' metrics show each device heard exactly once.
  const final = await settled()
  const devicesNow = () => settled().then((owners) => [...owners.values()].flatMap((m) => [...m.values()]).reduce((a, n) => a + n, 0))
  const heard = await devicesNow()
  const client = await mqtt.connectAsync(nodes[2]!.mqttUrl, { clientId: 'cluster-test', protocolVersion: 4 })
  for (const v of fleet) await client.publishAsync(`ubiq/v1/dev/${v.deviceId}/status`, JSON.stringify({ seq: 1_000_000, ts: Date.now() - 1000, ignition_on: false }), { qos: 1 })
  await client.endAsync()
  while ((await services.influxql(db, `SELECT count(ignition_on) FROM ${qualified('status')} WHERE seq = 1000000`))[0]?.values[0]?.[1] !== DEVICES) await sleep(200)
  t.equal(await devicesNow(), DEVICES, `every device is heard by exactly one of the ${final.size} live workers (${heard} heard since the last move before their last message)`)
})
