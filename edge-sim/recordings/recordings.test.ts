import t from 'tap'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createAdapters, decodeMessage, deviceRegistry, isRejection } from '../../ingest/index.ts'
import { drive, fixtureFiles } from './fixtures/make.ts'
import {
  G_MS2, parseMapping, placeTrack, readGpx, readLabels, readRecordingAt, readRecordings, resample, trackEnd, trackMessages,
  type CsvMapping, type Track,
} from './index.ts'

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url))
const dataset = fileURLToPath(new URL('../../../shared/data/driver-behavior-dataset/', import.meta.url))
const tmp = () => mkdtempSync(join(tmpdir(), 'ubiq-rec-'))
const near = (a: number, b: number, tol: number) => Math.abs(a - b) <= tol

/** Every message decoded by ingest as the service would; the rejections. */
function rejections(messages: ReturnType<typeof trackMessages>, deviceId: string) {
  const kinds = [...new Set(messages.map((m) => m.kind))]
  const cfg = { registry: deviceRegistry([{ deviceId, policyId: 'pol-1', kinds }]), maxPayloadBytes: 65_536, maxFutureSkewMs: 0, adapters: createAdapters() }
  return messages.map((m) => decodeMessage(cfg, m.topic, Buffer.from(m.payload), m.sendAt)).filter((r) => r && isRejection(r))
}

t.test('the fixtures are what fixtures/make.ts makes', async (t) => {
  for (const [path, text] of Object.entries(fixtureFiles())) t.equal(readFileSync(join(fixtures, path), 'utf8'), text, path)
})

t.test('a UAH-DriveSet-style folder through its mapping: fixes, a 10 Hz grid, vehicle axes turned to the earth frame by the course', async (t) => {
  const [track] = readRecordings(join(fixtures, 'uah-trip'))
  t.equal(track!.name, 'uah-trip')
  t.equal(track!.epochMs, undefined, 'seconds from the start: a relative clock')
  t.equal(track!.fixes.length, 234)
  t.same(track!.fixes[20], { t: 20_000, lat_deg: 40.4169, lon_deg: -3.701412, accuracy_m: 5, speed_kmh: 57.6, heading_deg: 90, alt_m: 650 }, 'row 21 by value')
  t.match(track!.imu, { rateHz: 10, t0: 0, frame: 'vehicle', gyro: false })
  t.equal(track!.imu!.rows.length, 2339, '233.8 s at 10 Hz')
  t.ok(track!.ignition, 'the mapping asks for ignition')
  const messages = trackMessages(track!, { deviceId: 'uah', startTs: Date.UTC(2026, 10, 2, 8), firstSeq: 100 })
  t.same(rejections(messages, 'uah'), [], 'ingest accepts every message')
  t.same(messages.map((m) => m.seq), messages.map((_, i) => 100 + i), 'seq +1 a message in sending order')
  t.ok(messages.every((m, i) => i === 0 || m.sendAt >= messages[i - 1]!.sendAt), 'in sending order')
  t.same([messages[0]!.kind, messages.at(-1)!.kind], ['status', 'status'])
  t.same([JSON.parse(messages[0]!.payload).ignition_on, JSON.parse(messages.at(-1)!.payload).ignition_on], [true, false])
  // 93–96.6 s: braking at 4.5 m/s² heading south (after the right turn): the earth frame's north is +4.5.
  const braking = messages.find((m) => m.kind === 'imu' && m.ts === Date.UTC(2026, 10, 2, 8) + 95_000)!
  const row = JSON.parse(braking.payload).samples[0] as number[]
  t.ok(near(row[0]!, 0, 0.05) && near(row[1]!, 4.5, 0.05) && near(row[2]!, 0, 0.05), `braking south reads north +4.5 m/s²: ${row.slice(0, 3).join(', ')}`)
  // 53–63 s: a right turn at 9°/s: yaw rate −0.157 rad/s from the course.
  const turning = JSON.parse(messages.find((m) => m.kind === 'imu' && m.ts === Date.UTC(2026, 10, 2, 8) + 58_000)!.payload).samples[0] as number[]
  t.ok(near(turning[5]!, (-9 * Math.PI) / 180, 0.01), `yaw rate of the right turn: ${turning[5]} rad/s`)
})

t.test('GPX: positions and times, speed and course from the positions, accuracy from hdop', async (t) => {
  const track = readGpx(join(fixtures, 'drive.gpx'))
  t.equal(track.epochMs, Date.parse('2026-03-14T17:05:00Z'))
  t.equal(track.fixes.length, 457)
  const truth = drive([[3, 0, 0], [10, 1.8, 0], [50, 0, 0]], { lat_deg: 41.3874, lon_deg: 2.1686, heading_deg: 30 })
  const cruise = track.fixes[40]!
  t.ok(near(cruise.speed_kmh!, truth.at(-1)!.v * 3.6, 0.1), `cruise speed ${cruise.speed_kmh} km/h from positions`)
  t.ok(near(cruise.heading_deg!, 30, 0.2), `course ${cruise.heading_deg}° from positions`)
  t.same([track.fixes[0]!.accuracy_m, track.fixes[1]!.accuracy_m], [10, 4.5], 'no hdop: 10 m; hdop 0.9: 4.5 m')
  t.equal(track.fixes[0]!.heading_deg, undefined, 'standing still has no course')
  t.same(rejections(trackMessages(track, { deviceId: 'g', startTs: placeTrack(track, Date.now()), firstSeq: 0 }), 'g'), [])
  const withSpeed = readGpx('x.gpx', `<gpx><trk><trkseg>
    <trkpt lat="1" lon="2"><time>2026-01-01T00:00:00Z</time><extensions><gpxtpx:TrackPointExtension><gpxtpx:speed>10</gpxtpx:speed><gpxtpx:course>45</gpxtpx:course></gpxtpx:TrackPointExtension></extensions></trkpt>
    <trkpt lat="1.0001" lon="2"><time>2026-01-01T00:00:01Z</time><speed>12.5</speed><course>90</course></trkpt>
    <trkpt lat="1.0002" lon="2"></trkpt></trkseg></trk></gpx>`)
  t.same(withSpeed.fixes.map((f) => [f.speed_kmh, f.heading_deg]), [[36, 45], [45, 90]], 'speed (m/s) and course from extensions and GPX 1.0 elements')
  t.same(withSpeed.skipped, ['gpx: 1 track points without a time'])
  t.throws(() => readGpx('bad.gpx', '<gpx><trk>'), /bad.gpx: not valid XML/)
  t.throws(() => readGpx('none.gpx', '<gpx><trk><trkseg><trkpt lat="1" lon="2"/></trkseg></trk></gpx>'), /none.gpx: no track point has a <time>/)
  t.throws(() => readGpx('far.gpx', '<gpx><trk><trkseg><trkpt lat="91" lon="2"/></trkseg></trk></gpx>'), /far.gpx: track point 1: lat\/lon 91, 2 is not a position/)
})

t.test('the shipped dataset\'s trip folder: its 50 Hz earth-frame IMU as imu batches, with its labels', async (t) => {
  const track = readRecordingAt(join(dataset, 'trip-17'))
  t.match(track, { name: 'trip-17', fixes: [], imu: { rateHz: 50, frame: 'earth', gyro: true } })
  t.equal(track.imu!.rows.length, 20_309)
  t.equal(track.labels.length, 14)
  const messages = trackMessages(track, { deviceId: 'phone', startTs: Date.UTC(2026, 0, 5), firstSeq: 0 })
  t.equal(messages.length, Math.ceil(20_309 / 50))
  t.same(JSON.parse(messages[0]!.payload).samples[0], [-0.0476, 0.00467, 0.045458, 0.030578, -0.035392, -0.033423], 'the samples as read, unchanged')
})

/** Writes files into a new folder; returns its path. */
function folder(files: Record<string, string>): string {
  const dir = tmp()
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  return dir
}

t.test('one phone-logger CSV with a header: named columns, ISO times, m/s, device frame with gravity, gyro in °/s, rows without a fix left out', async (t) => {
  const rows = ['time;lat;lon;acc;speed;ax;ay;az;gx;gy;gz']
  for (let i = 0; i < 40; i++) {
    const at = new Date(Date.UTC(2026, 4, 1, 22, 0, 0, i * 50)).toISOString()
    const fix = i % 20 === 0 ? (i === 0 ? ';;;' : `52.1;4.3;${3 + i / 20};10`) : ';;;'
    rows.push(`${at};${fix};0.1;0.2;${9.81 + i * 0.001};0;0;${i < 20 ? 90 : 0}`)
  }
  const dir = folder({ 'log.csv': rows.join('\n') })
  const mapping: CsvMapping = parseMapping({
    gps: { time: { column: 'time', unit: 'iso' }, lat: 'lat', lon: 'lon', accuracy: 'acc', speed: { column: 'speed', unit: 'm/s' } },
    imu: { time: { column: 'time', unit: 'iso' }, accel: { x: 'ax', y: 'ay', z: 'az', unit: 'm/s2', frame: 'device' }, gyro: { x: 'gx', y: 'gy', z: 'gz', unit: 'deg/s' } },
  })
  const track = readRecordingAt(join(dir, 'log.csv'), { mapping })
  t.equal(track.epochMs, Date.UTC(2026, 4, 1, 22), 'ISO times are wall-clock time')
  t.same(track.fixes.map((f) => [f.t, f.speed_kmh, f.accuracy_m]), [[1000, 36, 4]], 'the one row with a fix; 10 m/s is 36 km/h')
  t.same(track.skipped, ['gps: 39 rows without a fix'])
  t.match(track.imu, { rateHz: 20, frame: 'device', gyro: true })
  const messages = trackMessages(track, { deviceId: 'p', startTs: track.epochMs!, firstSeq: 0 })
  t.same(rejections(messages, 'p'), [], 'ingest accepts them: gps and imu_device')
  const imu = messages.filter((m) => m.kind === 'imu_device').map((m) => JSON.parse(m.payload) as { ts: number; rate_hz: number; samples: number[][] })
  t.same(imu.map((m) => [m.ts - track.epochMs!, m.rate_hz, m.samples.length]), [[0, 20, 20], [1000, 20, 20]], 'two batches of a second at 20 Hz')
  t.same(imu[0]!.samples[0], [0.1, 0.2, 9.81, 0, 0, Math.round((Math.PI / 2) * 1e6) / 1e6], 'gravity kept, 90°/s as rad/s')
  t.equal(placeTrack(track, Date.UTC(2026, 10, 2, 12)) - Date.UTC(2026, 10, 1, 22), 0, 'moved by whole days to the last day it fits before now: the same time of day')
})

t.test('vehicle-frame axes without any course go as a level-mounted phone: gravity added on z', async (t) => {
  const dir = folder({ 'acc.txt': Array.from({ length: 30 }, (_, i) => `${i * 100} 0.5 0 0`).join('\n') })
  const track = readRecordingAt(join(dir, 'acc.txt'), { mapping: parseMapping({ imu: { time: { column: 0, unit: 'ms' }, accel: { x: 1, y: 2, z: 3, unit: 'g', frame: 'vehicle' } } }) })
  const [m] = trackMessages(track, { deviceId: 'v', startTs: 1_000_000, firstSeq: 0 })
  t.equal(m!.kind, 'imu_device')
  t.same(rejections([m!], 'v'), [])
  t.same(JSON.parse(m!.payload).samples[0], [Math.round(0.5 * G_MS2 * 1e6) / 1e6, 0, G_MS2, 0, 0, 0])
  t.equal(placeTrack(track, 5_000_000) + trackEnd(track), 5_000_000, 'a relative recording ends now')
})

t.test('resampling interpolates between samples and leaves gaps empty', async (t) => {
  const grid = resample([0, 100, 200, 2500, 2600], [[0], [10], [20], [0], [10]], 20)
  t.same(grid.rows.slice(0, 5), [[0], [5], [10], [15], [20]])
  t.same(grid.rows.slice(5, 50).filter((r) => r !== undefined), [], 'no sample within the 2.3 s gap')
  t.same(grid.rows.slice(50), [[0], [5], [10]])
})

t.test('bad mappings are refused, naming the key and what is wrong', async (t) => {
  const imu = { time: { column: 0, unit: 's' }, accel: { x: 1, y: 2, z: 3, unit: 'g', frame: 'earth' } }
  const cases: [string, unknown, RegExp][] = [
    ['not an object', [], /^m\.json: : must be an object/],
    ['neither source', { ignition: true }, /gps: a mapping needs "gps", "imu" or both/],
    ['a typo', { imu, igniton: true }, /m\.json: igniton: unknown key \(allowed here: gps, imu, ignition\)/],
    ['a nested typo', { imu: { ...imu, acel: {} } }, /imu\.acel: unknown key/],
    ['a unit', { imu: { ...imu, accel: { ...imu.accel, unit: 'G' } } }, /imu\.accel\.unit: must be one of "m\/s2", "m\/s²", "g", got "G"/],
    ['a frame', { imu: { ...imu, accel: { ...imu.accel, frame: 'car' } } }, /imu\.accel\.frame: must be one of "earth", "device", "vehicle", got "car"/],
    ['a time unit', { imu: { ...imu, time: { column: 0, unit: 'min' } } }, /imu\.time\.unit: must be one of "s", "ms", "ns", "iso"/],
    ['a column', { imu: { ...imu, accel: { ...imu.accel, x: -1 } } }, /imu\.accel\.x: must be a column: a 0-based index or a header name, got -1/],
    ['negate', { imu: { ...imu, accel: { ...imu.accel, y: { column: 2, negate: 'yes' } } } }, /imu\.accel\.y\.negate: must be true or false/],
    ['missing lat', { gps: { time: { column: 0, unit: 's' }, lon: 2 } }, /gps\.lat: must be a column/],
    ['a speed unit', { gps: { time: { column: 0, unit: 's' }, lat: 1, lon: 2, speed: { column: 3, unit: 'kph' } } }, /gps\.speed\.unit: must be one of "km\/h", "m\/s", "mph", got "kph"/],
    ['a rate', { imu: { ...imu, rate_hz: 500 } }, /imu\.rate_hz: must be a whole number of Hz from 1 to 200/],
    ['a separator', { imu: { ...imu, separator: ', ' } }, /imu\.separator: must be one character/],
    ['a gyro unit', { imu: { ...imu, gyro: { x: 4, y: 5, z: 6, unit: 'rpm' } } }, /imu\.gyro\.unit: must be one of "rad\/s", "deg\/s"/],
  ]
  for (const [what, data, error] of cases) t.throws(() => parseMapping(data, 'm.json'), { message: error, code: 'UBIQ_RECORDING_INVALID' }, what)
})

t.test('recordings that do not fit their mapping are refused, naming the file and the key', async (t) => {
  const dir = folder({ 'a.csv': 'time,x\n1,2\n', 'mapping.json': '{"imu": {"time": {"column": "t", "unit": "s"}, "accel": {"x": 1, "y": 1, "z": 1, "unit": "g", "frame": "earth"}}}' })
  t.throws(() => readRecordings(dir), /imu\.file: needed when importing a folder/)
  t.throws(() => readRecordingAt(join(dir, 'a.csv')), /imu\.time\.column: no column "t"/, 'a file reads the mapping.json beside it')
  t.throws(() => readRecordingAt(join(folder({ 'b.csv': '1,2\n' }), 'b.csv')), /b\.csv: a CSV recording needs a column mapping/)
  const mapping = (m: unknown) => ({ mapping: parseMapping(m) })
  t.throws(() => readRecordingAt(join(dir, 'a.csv'), mapping({ imu: { time: { column: 't', unit: 's' }, accel: { x: 1, y: 1, z: 1, unit: 'g', frame: 'earth' } } })),
    /a\.csv: imu\.time\.column: no column "t" \(the header has time, x\)/)
  t.throws(() => readRecordingAt(join(dir, 'a.csv'), mapping({ imu: { time: { column: 0, unit: 's' }, accel: { x: 1, y: 1, z: 7, unit: 'g', frame: 'earth' } } })),
    /a\.csv: imu\.accel\.z: column 7 does not exist \(rows have 2 columns, counted from 0\)/)
  t.throws(() => readRecordingAt(join(dir, 'a.csv'), mapping({ imu: { time: { column: 0, unit: 's' }, accel: { x: 1, y: 1, z: 1, unit: 'g', frame: 'earth' } } })),
    /cannot tell the sampling rate from 1 rows; set imu\.rate_hz/)
  t.throws(() => readRecordings(join(dir, 'missing')), /missing: no such file or folder/)
  const sub = tmp()
  mkdirSync(join(sub, 'trip-1'))
  t.throws(() => readRecordings(sub, { format: 'dataset' }), /trip-1: not a trip folder of the dataset \(no viagem\.json\)/)
})

t.test('a folder of recordings: every subfolder and .gpx file, each its own track', async (t) => {
  const tracks: Track[] = readRecordings(fixtures)
  t.same(tracks.map((r) => r.name), ['drive', 'uah-trip'])
})

t.test('labels.csv and events.csv: trip classes and event intervals, with the line of a mistake', async (t) => {
  const dir = folder({ 'labels.csv': 'trip,driver,road,label\na,d1,r1,aggressive\nb,d1,r1,normal\nc,,,\n', 'events.csv': 'trip,label,start_s,end_s\na,braking,10,12\n' })
  const { trips, events } = readLabels(dir)
  t.same(trips, [{ trip: 'a', driver: 'd1', road: 'r1', label: 'aggressive' }, { trip: 'b', driver: 'd1', road: 'r1', label: 'normal' }, { trip: 'c' }])
  t.same(events.get('a'), [{ label: 'braking', startS: 10, endS: 12 }])
  t.throws(() => readLabels(folder({ 'labels.csv': 'trip,driver,road,label\na,d,r,sleepy\n' })), /labels\.csv:2: label must be normal, aggressive, drowsy or empty, got "sleepy"/)
  t.throws(() => readLabels(folder({ 'labels.csv': 'trip,label\na,normal\n' })), /labels\.csv: the header needs the columns trip,driver,road,label; missing driver, road/)
  t.throws(() => readLabels(folder({ 'labels.csv': 'trip,driver,road,label\na,,,\na,,,\n' })), /labels\.csv:3: trip "a" is listed twice/)
  t.throws(() => readLabels(folder({ 'labels.csv': 'trip,driver,road,label\na,,,\n', 'events.csv': 'trip,label,start_s,end_s\nz,turn,1,2\n' })), /events\.csv:2: trip "z" is not in labels\.csv/)
  t.throws(() => readLabels(tmp()), /no labels\.csv/)
})
