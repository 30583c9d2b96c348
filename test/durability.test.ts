/**
 * Nothing the broker accepted is lost: not when ubiq is killed with -9 mid-stream, not when it is
 * stopped with SIGTERM under load, not when InfluxDB stops answering for 30 s. Counted by
 * (device, seq) in InfluxDB, against real Mosquitto and InfluxDB, with ubiq as a real process.
 */
import t from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { fleetRegistry, makeFleet, runFleet, type SimulationRun } from '../edge-sim/index.ts'
import { freePort } from '../bin/local-services.ts'
import { settle, startServices, startTestPipeline, tally } from './harness.ts'

const ubiq = fileURLToPath(new URL('../bin/ubiq.js', import.meta.url))
const DEVICES = 5

t.test('kill -9 and SIGTERM mid-stream: every accepted message reaches InfluxDB once', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(DEVICES, 3)
  const registry = join(services.dataDir, '..', 'devices.json')
  writeFileSync(registry, JSON.stringify({ devices: fleetRegistry(fleet) }))
  const port = await freePort()
  const env = {
    ...process.env, MQTT_URL: services.mqttUrl, INFLUX_URL: services.influxUrl, INFLUX_DATABASE: 'ubiq_durability',
    DEVICE_REGISTRY: registry, UBIQ_DATA_DIR: services.dataDir, PORT: String(port), LOG_LEVEL: 'warn',
  }
  let child: ChildProcess | undefined
  const start = async () => {
    child = spawn(process.execPath, [ubiq, 'start'], { env, stdio: ['ignore', 'ignore', 'inherit'] })
    for (;;) {
      const up = await fetch(`http://127.0.0.1:${port}/healthz`).then((r) => r.ok, () => false)
      if (up) return
      if (child.exitCode !== null) throw new Error(`ubiq start exited with ${child.exitCode}`)
      await sleep(100)
    }
  }
  const stopped = () => new Promise<number | null>((resolve) => child!.once('exit', (code) => resolve(code)))
  t.teardown(() => void child?.kill('SIGKILL'))
  const midway = async (run: SimulationRun, count: number) => {
    while (run.acknowledged < count) await sleep(20)
  }

  const PER_DEVICE = 3000
  await start()
  const startTs = Date.now() - 24 * 3600_000
  const run = await runFleet({ mqttUrl: services.mqttUrl, fleet, startTs, speedup: Infinity, samples: PER_DEVICE })
  t.teardown(() => run.stop())
  await midway(run, (DEVICES * PER_DEVICE) / 3)
  const exited = stopped()
  child!.kill('SIGKILL')
  await exited
  t.comment(`killed -9 after the broker had acknowledged ${run.acknowledged} messages`)
  await midway(run, (DEVICES * PER_DEVICE * 2) / 3)
  await start()
  // SIGTERM under load: a clean stop finishes what it acknowledged.
  await midway(run, (DEVICES * PER_DEVICE * 5) / 6)
  const terminated = stopped()
  child!.kill('SIGTERM')
  t.equal(await terminated, 0, 'SIGTERM stops ubiq cleanly, exit code 0')
  await start()
  await run.done
  await settle(services, 'ubiq_durability', DEVICES * PER_DEVICE)
  const result = await tally(services, 'ubiq_durability', DEVICES * PER_DEVICE)
  t.comment(`kill -9 + SIGTERM + restarts: ${DEVICES * PER_DEVICE} sent, ${result.stored} stored, ${result.lost} lost, ${result.duplicated} duplicated`)
  t.same(result, { stored: DEVICES * PER_DEVICE, lost: 0, duplicated: 0 })
  const exit = stopped()
  child!.kill('SIGTERM')
  await exit
  t.same(spawnSync('ls', [join(services.dataDir, 'journal')], { encoding: 'utf8' }).stdout, '', 'a clean stop leaves an empty journal')
})

t.test('InfluxDB paused for 30 s under load: ingest holds acknowledgements, memory stays bounded, nothing is lost', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(DEVICES, 4)
  const stopAt = 2000
  const pipeline = await startTestPipeline(t, services, fleet, 'ubiq_pause', {
    backpressure: { stopAt, resumeAt: stopAt / 2 },
  })
  const metric = async (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await pipeline.metrics.metrics())?.[1] ?? NaN)

  // The influxd itself, not the watchdog shell around it.
  const influxd = spawnSync('pgrep', ['-f', `^[^ ]*influxd -config ${join(services.dataDir, '..')}`], { encoding: 'utf8' }).stdout.trim()
  t.match(influxd, /^\d+$/, 'found the influxd process')
  const PER_DEVICE = 4000
  // 250 messages/s per device: 20 s of simulated traffic, sent in real time against the pause.
  const run = await runFleet({ mqttUrl: services.mqttUrl, fleet, startTs: Date.now() - PER_DEVICE * 1000, speedup: 250, samples: PER_DEVICE })
  t.teardown(() => run.stop())
  await sleep(2000)
  process.kill(Number(influxd), 'SIGSTOP')
  let maxPending = 0
  let sawBackpressure = false
  const heapBefore = process.memoryUsage().heapUsed
  for (let i = 0; i < 60; i++) { // 30 s
    maxPending = Math.max(maxPending, await metric('ubiq_ingest_journal_pending_lines'))
    sawBackpressure ||= (await metric('ubiq_ingest_backpressure')) === 1
    await sleep(500)
  }
  const heapGrowthMb = (process.memoryUsage().heapUsed - heapBefore) / 1e6
  process.kill(Number(influxd), 'SIGCONT')
  t.ok(sawBackpressure, 'backpressure is visible in /metrics while InfluxDB is paused')
  t.ok(maxPending <= stopAt + 100, `unconfirmed lines stay bounded: at most ${maxPending} (stop at ${stopAt})`)
  t.comment(`during the pause: ${maxPending} lines pending at most, heap grew ${heapGrowthMb.toFixed(1)} MB, broker had acknowledged ${run.acknowledged} of ${DEVICES * PER_DEVICE}`)
  await run.done
  await settle(services, 'ubiq_pause', DEVICES * PER_DEVICE)
  const result = await tally(services, 'ubiq_pause', DEVICES * PER_DEVICE)
  t.comment(`InfluxDB pause: ${DEVICES * PER_DEVICE} sent, ${result.stored} stored, ${result.lost} lost, ${result.duplicated} duplicated`)
  t.same(result, { stored: DEVICES * PER_DEVICE, lost: 0, duplicated: 0 })
  t.ok((await metric('ubiq_ingest_backpressure_pauses_total')) > 0, 'the pauses were counted')
})

t.test('a stop in backpressure, with InfluxDB not answering, finishes; what was acknowledged is stored after the restart (#20)', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(DEVICES, 6)
  const backpressure = { stopAt: 500, resumeAt: 250 }
  const pipeline = await startTestPipeline(t, services, fleet, 'ubiq_stop', { backpressure })
  const metric = async (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(await pipeline.metrics.metrics())?.[1] ?? NaN)
  const influxd = Number(spawnSync('pgrep', ['-f', `^[^ ]*influxd -config ${join(services.dataDir, '..')}`], { encoding: 'utf8' }).stdout.trim())
  process.kill(influxd, 'SIGSTOP')
  t.teardown(() => process.kill(influxd, 'SIGCONT'))
  const PER_DEVICE = 1000
  const run = await runFleet({ mqttUrl: services.mqttUrl, fleet, startTs: Date.now() - PER_DEVICE * 1000, speedup: Infinity, samples: PER_DEVICE })
  t.teardown(() => run.stop())
  while ((await metric('ubiq_ingest_backpressure')) !== 1) await sleep(100)
  // Before #20 this never returned: the MQTT connection waited for acknowledgements it had
  // stopped reading, and InfluxDB's client retried for a day (tap's timeout ends a hang).
  await pipeline.stop()
  t.pass('stopped while ingest held acknowledgements and InfluxDB did not answer')
  process.kill(influxd, 'SIGCONT')
  await startTestPipeline(t, services, fleet, 'ubiq_stop', { backpressure })
  await run.done
  await settle(services, 'ubiq_stop', DEVICES * PER_DEVICE)
  t.same(await tally(services, 'ubiq_stop', DEVICES * PER_DEVICE), { stored: DEVICES * PER_DEVICE, lost: 0, duplicated: 0 }, 'nothing lost by stopping')
})
