/**
 * `ubiq import` end to end: the CSV and the GPX fixture published by the CLI through a real
 * Mosquitto into the pipeline (ingest, InfluxDB, scoring), as live phones; each comes out as a trip
 * and a driving score, the same by value as `ubiq evaluate`'s in-process scoring of the recording.
 */
import t from 'tap'
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseDeviceRegistry, qualified } from '../../ingest/index.ts'
import type { Score, Trip } from '../../scoring/index.ts'
import { scoreRecording } from '../../scoring/offline.ts'
import { vehicleDetectors } from '../../scoring/index.ts'
import { startServices, startTestPipeline, untilStored } from '../../test/harness.ts'
import { drive } from './fixtures/make.ts'
import { readRecordings, trackMessages } from './index.ts'

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url))
const ubiq = fileURLToPath(new URL('../../bin/ubiq.js', import.meta.url))

/** Runs the CLI without blocking this process's event loop (the pipeline runs in it). */
function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [ubiq, ...args], { env: { PATH: process.env.PATH, ...env } })
    let [stdout, stderr] = ['', '']
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

t.test('ubiq import: a CSV and a GPX recording through MQTT, ingest and scoring, each a trip and a driving score', async (t) => {
  const services = await startServices(t)
  const registryFile = join(mkdtempSync(join(tmpdir(), 'ubiq-import-')), 'devices.json')
  const written = await cli(['import', fixtures, '--write-registry', registryFile])
  t.equal(written.code, 0, written.stderr)
  const devices = parseDeviceRegistry(readFileSync(registryFile, 'utf8'))
  t.same([...devices.values()], [
    { deviceId: 'drive', policyId: 'pol-drive', kinds: ['gps'] },
    { deviceId: 'uah-trip', policyId: 'pol-uah-trip', kinds: ['status', 'gps', 'imu'] },
  ], 'a device per recording, named after it, with the streams it sends')

  const pipeline = await startTestPipeline(t, services, [], 'ubiq_import', { devices })
  const trips: Trip[] = []
  const scores: Score[] = []
  pipeline.trips$.subscribe((x) => trips.push(x))
  pipeline.scores$.subscribe((x) => scores.push(x))
  const run = await cli(['import', fixtures, '--speedup', '1000000'], { MQTT_URL: services.mqttUrl })
  t.equal(run.code, 0, run.stderr)
  const tracks = readRecordings(fixtures)
  const total = tracks.reduce((n, track) => n + trackMessages(track, { deviceId: 'x', startTs: 0, firstSeq: 0 }).length, 0)
  t.match(run.stderr, `import: ${total} of ${total} messages acknowledged`)
  await untilStored(pipeline, total)
  while (scores.length < 2) await new Promise((r) => setTimeout(r, 20))

  const model = pipeline.models().champions.driving!
  for (const track of tracks) {
    const deviceId = track.name
    const trip = trips.filter((x) => x.deviceId === deviceId)
    const score = scores.find((s) => s.policyId === `pol-${deviceId}`)
    t.equal(trip.length, 1, `${deviceId}: one trip`)
    t.ok(score && score.value > 0 && score.value < 100, `${deviceId}: a driving score, ${score?.value}`)
    // The same recording scored in-process, from where its first fix was stored.
    const [first] = await services.influxql('ubiq_import', `SELECT first(lat_deg) FROM ${qualified('gps')} WHERE device_id = '${deviceId}'`)
    const startTs = first!.values[0]![0] as number
    const offline = await scoreRecording(trackMessages(track, { deviceId, startTs, firstSeq: 0 }), { deviceId, policyId: `pol-${deviceId}` }, { detectors: vehicleDetectors(), model })
    t.same(trip, offline.trips, `${deviceId}: the live trip is the one ubiq evaluate makes`)
    t.same([score?.value, score?.model], [offline.score?.value, offline.score?.model], `${deviceId}: and so is its score`)
  }
  // By value against the fixtures' own kinematics: distance driven (speed × time), how each trip ended, the harsh braking.
  const km = (phases: Parameters<typeof drive>[0]) => drive(phases, { lat_deg: 0, lon_deg: 0, heading_deg: 0 }).reduce((a, r) => a + r.v * 0.1, 0) / 1000
  const uah = trips.find((x) => x.deviceId === 'uah-trip')!
  const uahKm = km([[5, 0, 0], [8, 2, 0], [40, 0, 0], [10, 0, -9], [30, 0, 0], [4, -4.5, 0], [5, 0, 0], [10, 1.5, 0], [60, 0, 0], [12, 0, 7.5], [30, 0, 0], [10, -1.5, 0], [10, 0, 0]])
  t.ok(Math.abs(uah.distance_km - uahKm) / uahKm < 0.02, `CSV trip: ${uah.distance_km} km of ${uahKm.toFixed(3)} driven`)
  t.equal(uah.ended, 'ignition', 'the mapping\'s ignition ends it')
  t.ok((uah.events.harsh_braking ?? 0) + (uah.events.harsh_longitudinal ?? 0) >= 1, `the 4.5 m/s² braking is an event: ${JSON.stringify(uah.events)}`)
  const gpx = trips.find((x) => x.deviceId === 'drive')!
  const gpxKm = km([[3, 0, 0], [10, 1.8, 0], [50, 0, 0], [8, 0, 10], [40, 0, 0], [12, -1.5, 0], [5, 0, 0], [8, 2, 0], [70, 0, 0], [10, 0, -8], [20, 0, 0], [11, -1.5, 0]])
  t.ok(Math.abs(gpx.distance_km - gpxKm) / gpxKm < 0.02, `GPX trip: ${gpx.distance_km} km of ${gpxKm.toFixed(3)} driven`)
  t.equal(gpx.ended, 'stop', 'a phone without ignition: parked three minutes ends it')
  t.equal(gpx.source, 'gps')
})
