/**
 * Scale-out tests' cluster (#25): three nats-server nodes (JetStream, R3, an MQTT listener each)
 * beside the harness's InfluxDB, and ubiq workers as real processes (`ubiq start --worker`), with
 * what the tests read from them: each worker's partitions and devices, and its CPU.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { jetstreamManager } from '@nats-io/jetstream'
import { connect } from '@nats-io/transport-node'
import { fleetRegistry, type SimVehicle } from '../edge-sim/index.ts'
import { freePort, startNatsCluster, type LocalNatsNode } from '../bin/local-services.ts'
import { cpuSeconds } from '../bench/server-rss.ts'
import { natsConnectOptions, type BrokerCredentials } from '../ingest/index.ts'
import { startServices, type Services } from './harness.ts'

const ubiq = fileURLToPath(new URL('../bin/ubiq.js', import.meta.url))

/** The part of a tap Test the cluster needs. */
interface Teardown {
  teardown(fn: () => unknown): void
}

export interface Cluster {
  services: Services
  natsDir: string
  nodes: LocalNatsNode[]
  partitions: number
  /** The device registry's file, for the workers. */
  registry: string
  /** The InfluxDB database the workers write. */
  db: string
}

/**
 * InfluxDB and three nats-server nodes, resolved once the cluster has elected its JetStream meta
 * leader (it takes a moment after the nodes accept clients). With `credentials`, nats-server has
 * ubiq's users (natsUsers): each node's `url` carries the service user, devices need theirs.
 */
export async function startCluster(t: Teardown, opts: { partitions: number; fleet: readonly SimVehicle[]; db: string; credentials?: BrokerCredentials }): Promise<Cluster> {
  const services = await startServices(t)
  const natsDir = join(services.dataDir, '..', 'nats')
  const nodes = await startNatsCluster(natsDir, 3, opts.partitions, opts.credentials)
  t.teardown(() => Promise.all(nodes.map((n) => n.stop())))
  const nc = await connect(natsConnectOptions(nodes.map((n) => n.url)))
  const jsm = await jetstreamManager(nc, { checkAPI: false })
  while (!(await jsm.getAccountInfo().then(() => true, () => false))) await sleep(200)
  await nc.close()
  const registry = join(services.dataDir, '..', 'devices.json')
  writeFileSync(registry, JSON.stringify({ devices: fleetRegistry(opts.fleet) }))
  return { services, natsDir, nodes, partitions: opts.partitions, registry, db: opts.db }
}

/** A worker's partitions and the devices it has heard from in each, from its /metrics. */
export async function ownership(url: string): Promise<Map<number, number>> {
  let text: string | undefined
  // A keep-alive socket the worker closed as it was reused fails the fetch (seen on the loaded machine): ask again.
  while ((text = await fetch(`${url}/metrics`).then((r) => r.text(), () => undefined)) === undefined) await sleep(100)
  return new Map([...text.matchAll(/^ubiq_worker_partition_devices\{partition="(\d+)"\} (\d+)$/gm)].map((m) => [Number(m[1]), Number(m[2])]))
}

/** Workers as processes on `cluster`: started, killed with -9, their ownership settled, their CPU. */
export function workerPool(t: Teardown, cluster: Cluster) {
  /** The live workers, and the CPU-seconds each had used once started (its own start-up is not per message). */
  const workers = new Map<string, { child: ChildProcess; url: string; cpuAtStart: number }>()
  /** CPU-seconds the workers have used on messages so far, the dead ones' included. */
  let deadWorkersCpu = 0
  t.teardown(() => workers.forEach((w) => w.child.kill('SIGKILL')))
  return {
    workers,
    cpu: () => deadWorkersCpu + [...workers.values()].reduce((a, w) => a + cpuSeconds(w.child.pid!) - w.cpuAtStart, 0),
    async start(id: string) {
      const port = await freePort()
      const child = spawn(process.execPath, [ubiq, 'start', '--worker'], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: {
          ...process.env, NATS_URL: cluster.nodes.map((n) => n.url).join(','), INFLUX_URL: cluster.services.influxUrl, INFLUX_DATABASE: cluster.db, DEVICE_REGISTRY: cluster.registry,
          WORKER_PARTITIONS: String(cluster.partitions), WORKER_ID: id, WORKER_REPLICAS: '3', PORT: String(port), LOG_LEVEL: 'warn',
        },
      })
      const url = `http://127.0.0.1:${port}`
      while (!(await fetch(`${url}/healthz`).then((r) => r.ok, () => false))) {
        if (child.exitCode !== null) throw new Error(`worker ${id} exited with ${child.exitCode}`)
        await sleep(100)
      }
      workers.set(id, { child, url, cpuAtStart: cpuSeconds(child.pid!) })
    },
    /** kill -9 the worker, once its CPU is counted. */
    async kill(id: string) {
      const { child, cpuAtStart } = workers.get(id)!
      deadWorkersCpu += cpuSeconds(child.pid!) - cpuAtStart
      child.kill('SIGKILL')
      await new Promise((resolve) => child.once('exit', resolve))
      workers.delete(id)
    },
    /**
     * Each live worker's partitions, once every partition has exactly one owner among them and each
     * owns its fair share, ceil(P / workers) or the rest (tap's timeout says if that never comes).
     */
    async settled() {
      for (;;) {
        const owners = await Promise.all([...workers].map(async ([id, w]) => [id, await ownership(w.url)] as const))
        const owned = owners.flatMap(([, m]) => [...m.keys()])
        const share = Math.ceil(cluster.partitions / owners.length)
        if (owned.length === cluster.partitions && new Set(owned).size === cluster.partitions && owners.every(([, m]) => m.size <= share)) return new Map(owners)
        await sleep(200)
      }
    },
  }
}
