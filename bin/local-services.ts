/**
 * Starts a real Mosquitto and a real InfluxDB as child processes on free loopback ports, each with
 * its own data directory. Used by `ubiq start`/`ubiq demo` when no MQTT_URL / INFLUX_URL is given,
 * and by the test harness, so that what the tests run against is what users run.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { userInfo } from 'node:os'
import { join } from 'node:path'
import mqtt from 'mqtt'
import { connect } from '@nats-io/transport-node'
import { aclAllows, codes, natsConnectOptions, natsServerConfig, natsUsers, newCredentials, SERVICE_USER, writeBrokerAuth, type BrokerCredentials } from '../ingest/index.ts'

/** A server this process started; `stop()` ends it and waits for it to exit. */
export interface LocalServer {
  url: string
  stop(): Promise<void>
}

/** Finds a command on the PATH or in the sbin folders (Debian puts mosquitto in /usr/sbin). */
export function findCommand(command: string): string | undefined {
  const path = `${process.env.PATH ?? ''}:/usr/sbin:/usr/local/sbin`
  const r = spawnSync('sh', ['-c', `PATH="${path}" command -v ${command}`], { encoding: 'utf8' })
  return r.status === 0 ? r.stdout.trim() : undefined
}

/** Asks the kernel for a free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.unref()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}

/** mosquitto.conf lines for credentials, ACL and limits (ingest's writeBrokerAuth), and a user to probe with. */
export interface MosquittoAuth {
  conf: ReturnType<typeof writeBrokerAuth>
  username: string
  password: string
}

/**
 * Starts Mosquitto on 127.0.0.1 with persistence in `dir`; resolves once it accepts an MQTT
 * connection. Without `auth`, anonymous clients may connect: for tests and benchmarks only;
 * `ubiq start` and the demo use startLocalBroker.
 */
export const startMosquitto = (dir: string, auth?: MosquittoAuth) => onFreePorts(() => launchMosquitto(dir, auth))

async function launchMosquitto(dir: string, auth?: MosquittoAuth): Promise<LocalServer> {
  const bin = findCommand('mosquitto')
  if (!bin) throw new codes.UBIQ_MOSQUITTO_NOT_FOUND()
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const port = await freePort()
  const conf = join(dir, 'mosquitto.conf')
  writeFileSync(conf, [
    `listener ${port} 127.0.0.1`,
    ...(auth ? [...auth.conf.listener, ...auth.conf.global] : ['allow_anonymous true', 'max_queued_messages 1000000']),
    // Run as root, mosquitto would switch to its own user, which cannot write our data directory.
    `user ${userInfo().username}`,
    'persistence true',
    `persistence_location ${dir}/`,
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    '',
  ].join('\n'), { mode: 0o600 })
  const url = `mqtt://127.0.0.1:${port}`
  const child = spawnServer(bin, ['-c', conf], 'mosquitto')
  await waitUntil(child, 'mosquitto', async () => {
    const client = await mqtt.connectAsync(url, { reconnectPeriod: 0, connectTimeout: 1000, username: auth?.username, password: auth?.password })
    await client.endAsync()
  })
  return { url, stop: () => stopChild(child) }
}

/** ubiq's own broker, as `ubiq start` and the demo run it, with the credentials made for the run. */
export interface LocalBroker extends LocalServer {
  /** The URL with the service user's credentials, for ubiq's MQTT_URL. */
  serviceUrl: string
  credentials: BrokerCredentials
  /** Each user's password, as CSV (username,password), readable by this user only. */
  credentialsFile: string
}

/**
 * Starts Mosquitto for `ubiq start` and the demo: on 127.0.0.1 only, no anonymous clients, fresh
 * credentials for the service and each of `deviceIds` written to `dir/credentials.csv`, and the
 * ACL and client-id rule of ubiq's broker config (#20 item 9: it used to accept anyone).
 */
export async function startLocalBroker(dir: string, deviceIds: readonly string[]): Promise<LocalBroker> {
  const credentials = newCredentials(deviceIds.map((deviceId) => ({ deviceId })))
  const conf = writeBrokerAuth(join(dir, 'auth'), credentials)
  const credentialsFile = join(dir, 'credentials.csv')
  writeFileSync(credentialsFile, credentialsCsv(credentials), { mode: 0o600 })
  const server = await startMosquitto(dir, { conf, username: SERVICE_USER, password: credentials.service })
  const url = new URL(server.url)
  url.username = SERVICE_USER
  url.password = encodeURIComponent(credentials.service)
  return { ...server, serviceUrl: url.toString(), credentials, credentialsFile }
}

/** The credentials to hand out, one `username,password` line each, the service users first. */
export function credentialsCsv(credentials: BrokerCredentials): string {
  const rows = [['username', 'password'], [SERVICE_USER, credentials.service], ...credentials.devices]
  return `${rows.map((r) => r.join(',')).join('\n')}\n`
}

/** Starts InfluxDB 1.x with its data in `dir`; resolves once `/ping` answers. */
export const startInfluxd = (dir: string) => onFreePorts(() => launchInfluxd(dir))

async function launchInfluxd(dir: string): Promise<LocalServer> {
  const bin = findCommand('influxd')
  if (!bin) throw new codes.UBIQ_INFLUXD_NOT_FOUND()
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  const [httpPort, rpcPort] = [await freePort(), await freePort()]
  const conf = join(dir, 'influxdb.conf')
  writeFileSync(conf, `
reporting-disabled = true
bind-address = "127.0.0.1:${rpcPort}"
[meta]
  dir = "${dir}/meta"
[data]
  dir = "${dir}/data"
  wal-dir = "${dir}/wal"
  query-log-enabled = false
  # The series index on disk (TSI), not the default in-memory one that holds every series of every
  # shard in the heap: memory follows the series in use, not every device ever seen (#25 item 4).
  # Shards made before keep the index they have.
  index-version = "tsi1"
  # Half the default (1 GB): the write cache is what a burst of new devices fills before a snapshot
  # to disk; past it InfluxDB refuses writes, which ubiq retries, rather than grow.
  cache-max-memory-size = "512m"
  # One compaction at a time: on a small machine they compete with ingest for the cores.
  max-concurrent-compactions = 1
[http]
  bind-address = "127.0.0.1:${httpPort}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[retention]
  # How often InfluxDB drops the shard groups its retention policies no longer cover (default 30 min):
  # a retention ubiq shortened at start (POSITION_RETENTION_DAYS) takes effect within seconds.
  check-interval = "5s"
[subscriber]
  enabled = false
[logging]
  level = "warn"
`, { mode: 0o600 })
  const url = `http://127.0.0.1:${httpPort}`
  const child = spawnServer(bin, ['-config', conf], 'influxd')
  await waitUntil(child, 'influxd', async () => {
    const res = await fetch(`${url}/ping`)
    if (res.status !== 204) throw new Error(`ping answered ${res.status}`)
  })
  return { url, stop: () => stopChild(child) }
}

/** One nats-server this process started: its client and MQTT addresses. */
export interface LocalNats extends LocalServer {
  mqttUrl: string
}

/** One nats-server this process started, as a node of its cluster. */
export interface LocalNatsNode extends LocalNats {
  /** Starts it again, on the same ports and data, after `kill` or `stop`. */
  start(): Promise<void>
  /** kill -9: it ends at once, as a crashed machine's would. */
  kill(): Promise<void>
}

/**
 * Starts `nodes` nats-servers on 127.0.0.1 as one JetStream cluster (one node: no cluster), with
 * ubiq's configuration (natsServerConfig) and data in `dir`; resolves once each accepts a client.
 * With `credentials`, only the service (the workers: `url` carries its user) and the devices may
 * connect, each device to its own subjects (natsUsers); without, anyone may. For tests and
 * benchmarks: operators run their own (docs/nats/).
 */
export async function startNatsCluster(dir: string, nodes: number, partitions: number, credentials?: BrokerCredentials): Promise<LocalNatsNode[]> {
  const bin = findCommand('nats-server')
  if (!bin) throw new codes.UBIQ_NATS_NOT_FOUND()
  mkdirSync(dir, { recursive: true, mode: 0o700 })
  if (credentials) writeFileSync(join(dir, 'users.conf'), natsUsers(credentials, partitions), { mode: 0o600 })
  const auth = credentials ? `${SERVICE_USER}:${encodeURIComponent(credentials.service)}@` : ''
  const ports: { port: number; mqttPort: number; clusterPort?: number }[] = []
  for (let i = 0; i < nodes; i++) ports.push({ port: await freePort(), mqttPort: await freePort(), clusterPort: nodes > 1 ? await freePort() : undefined })
  return Promise.all(ports.map(async (p, i) => {
    const name = `n${i + 1}`
    mkdirSync(join(dir, name), { recursive: true, mode: 0o700 })
    const conf = join(dir, name, 'nats.conf')
    const routes = ports.filter((o) => o !== p && o.clusterPort).map((o) => `nats-route://127.0.0.1:${o.clusterPort}`)
    writeFileSync(conf, natsServerConfig({ name, host: '127.0.0.1', ...p, routes, storeDir: join(dir, name, 'js') }, partitions, credentials && '../users.conf'))
    const url = `nats://${auth}127.0.0.1:${p.port}`
    let child: ChildProcess
    const start = async () => {
      child = spawnServer(bin, ['-c', conf], `nats-server ${name}`)
      await waitUntil(child, `nats-server ${name}`, async () => void (await (await connect({ ...natsConnectOptions(url), reconnect: false })).close()))
    }
    await start()
    return {
      url,
      mqttUrl: `mqtt://127.0.0.1:${p.mqttPort}`,
      start,
      stop: () => stopChild(child),
      async kill() {
        stopping.add(child)
        const exited = new Promise((resolve) => child.once('exit', resolve))
        process.kill(-child.pid!, 'SIGKILL') // the watchdog's process group: the server with it
        await exited
      },
    }
  }))
}

/**
 * A port found free can be taken by another process (a test file running beside) before the
 * server binds it: then the server is started again on new ports, a few times.
 */
async function onFreePorts(launch: () => Promise<LocalServer>): Promise<LocalServer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await launch()
    } catch (err) {
      if (attempt === 3 || !/address already in use/i.test((err as Error).message)) throw err
    }
  }
}

/**
 * The server runs under a small shell that kills it when its stdin closes, which happens when
 * this process ends for any reason, kill -9 included: a server ubiq started never outlives it.
 * It has its own process group, so Ctrl-C reaches only ubiq, which stops it last, after flushing.
 */
// (A background job's stdin is /dev/null unless redirected, hence the copy to fd 3.)
const WATCHDOG = 'exec 3<&0; "$@" </dev/null & pid=$!; (cat <&3 >/dev/null; kill $pid 2>/dev/null) & wait $pid'

function spawnServer(bin: string, args: string[], name: string): ChildProcess {
  const child = spawn('sh', ['-c', WATCHDOG, 'sh', bin, ...args], { stdio: ['pipe', 'ignore', 'pipe'], detached: true })
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  child.once('exit', (code, signal) => {
    if (!stopping.has(child)) process.emitWarning(`${name} exited (code ${code}, signal ${signal}): ${stderr.trim()}`)
  })
  Object.assign(child, { lastStderr: () => stderr })
  return child
}

const stopping = new WeakSet<ChildProcess>()

async function waitUntil(child: ChildProcess, name: string, probe: () => Promise<void>): Promise<void> {
  // Startup wait for a server we launched, not a test time limit: a server that does not answer
  // within 30 s is broken, and saying so beats hanging.
  const deadline = Date.now() + 30_000
  let lastError: unknown
  while (Date.now() < deadline) {
    if (child.exitCode !== null) break
    try {
      await probe()
      return
    } catch (err) {
      lastError = err
      await new Promise((r) => setTimeout(r, 100))
    }
  }
  const stderr = (child as ChildProcess & { lastStderr(): string }).lastStderr()
  await stopChild(child)
  throw new codes.UBIQ_SERVICE_START_FAILED(name, stderr.trim() || String(lastError))
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  stopping.add(child)
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  child.stdin!.end() // the watchdog sends SIGTERM
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), 10_000)
  await exited
  clearTimeout(timer)
}

/**
 * Starts the embedded aedes broker in this process: the fallback where Mosquitto cannot run. With
 * `credentials`, only their users may connect, the service's client ids are the service's alone
 * (no device takes over ingest's session, #20), and the ACL Mosquitto is given holds here too
 * (aclAllows): a publish it refuses ends the client's connection (MQTT 3.1.1 has no way to say
 * no), and a message a client may not read is not delivered to it.
 */
export async function startAedes(credentials?: BrokerCredentials): Promise<LocalServer> {
  const { Aedes } = await import('aedes')
  const broker = await Aedes.createBroker()
  if (credentials) {
    // ubiq's clients use their username as client id (bin/pipeline.ts serviceClients).
    const service = [SERVICE_USER, `${SERVICE_USER}-out`]
    const passwords = new Map([...service.map((u) => [u, credentials.service] as const), ...credentials.devices])
    const users = new WeakMap<object, string>()
    broker.authenticate = (client, username, password, done) => {
      const ok = username !== undefined && passwords.get(username) === password?.toString() &&
        (!service.includes(client.id) || client.id === username)
      if (ok) users.set(client, username)
      done(null, ok)
    }
    // (No client: the broker's own messages.)
    broker.authorizePublish = (client, packet, done) =>
      done(!client || aclAllows(users.get(client)!, 'write', packet.topic) ? null : new Error(`not authorized to publish on ${packet.topic}`))
    broker.authorizeForward = (client, packet) => (aclAllows(users.get(client)!, 'read', packet.topic) ? packet : null)
  }
  const server = createServer(broker.handle)
  const port = await freePort()
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  return {
    url: `mqtt://127.0.0.1:${port}`,
    async stop() {
      await new Promise<void>((resolve) => broker.close(() => resolve()))
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
