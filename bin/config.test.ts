import t from 'tap'
import { readFileSync } from 'node:fs'
import { codes } from '../ingest/index.ts'
import { ConfigSchema, detectorsOf, readConfig, withConfigTable } from './config.ts'
import { defaultDetectorConfigs, detectors, vehicleDetectors } from '../scoring/index.ts'

t.test("the README's configuration table is the schema's (npm run docs)", async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  t.equal(readme, withConfigTable(readme))
  for (const name of Object.keys(ConfigSchema.properties)) t.match(readme, `| \`${name}\` |`, name)
})

t.test('the limits ingest and scoring work within are configuration, with defaults (#22 item 5)', async (t) => {
  t.match(readConfig({}), { MAX_PAYLOAD_BYTES: 65536, MAX_FUTURE_SKEW_S: 300, BACKPRESSURE_STOP_LINES: 100_000, BACKPRESSURE_RESUME_LINES: 50_000, SCORE_BATCH_MAX: 64, SCORE_BATCH_WAIT_MS: 20, POLICY_IDLE_H: 0.5 })
  t.match(readConfig({ MAX_PAYLOAD_BYTES: '131072', MAX_FUTURE_SKEW_S: '60' }), { MAX_PAYLOAD_BYTES: 131072, MAX_FUTURE_SKEW_S: 60 })
  t.throws(() => readConfig({ BACKPRESSURE_STOP_LINES: '10', BACKPRESSURE_RESUME_LINES: '10' }), codes.UBIQ_CONFIG_INVALID)
  t.throws(() => readConfig({ MAX_PAYLOAD_BYTES: '12' }), /MAX_PAYLOAD_BYTES/)
})

t.test('every vehicle detector threshold is configuration, defaulting to what the detector declares (#22 item 5)', async (t) => {
  t.same(detectorsOf(readConfig({})), defaultDetectorConfigs(), 'unset: the detectors\' own defaults')
  const fields = Object.values(detectors).flatMap((d) => Object.keys(d.config.properties))
  t.ok(fields.length >= 40, `${fields.length} thresholds`)
  t.match(detectorsOf(readConfig({ CRASH_IMPULSE_MS2: '25', MANOEUVRE_LATERAL_YAW_RADS: '0.3', SPEEDING_TOLERANCE_PCT: '8' })), { crash: { impulse_ms2: 25, edge_ms2: 14.7 }, manoeuvres: { lateralYaw_rads: 0.3 }, speeding: { tolerance_pct: 8 } })
  t.throws(() => readConfig({ PHONE_HANDLING_RATE_RADS: 'fast' }), /PHONE_HANDLING_RATE_RADS/)

  // A 3 g pulse of 0.1 s (Δv 11 km/h): under the crash detector's 4 g by default, a crash at 2.5 g.
  const ts = Date.UTC(2026, 0, 1)
  const pulse = [...Array(20).fill([0.1, 0, 0, 0, 0, 0]), ...Array(10).fill([-30, 0, 0, 0, 0, 0]), ...Array(20).fill([0.1, 0, 0, 0, 0, 0])]
  const reading = { deviceId: 'car-1', policyId: 'pol-1', kind: 'imu', subject: 'driving' as const, seq: 1, ts, receivedAt: ts, fields: { rate_hz: 100 }, samples: pulse }
  const crashes = (env: Record<string, string>) => vehicleDetectors(undefined, detectorsOf(readConfig(env)))('car-1', 'pol-1').flatMap((d) => d.push(reading)).filter((e) => e.type === 'crash')
  t.equal(crashes({}).length, 0, 'default: no crash')
  t.equal(crashes({ CRASH_IMPULSE_MS2: '25' }).length, 1, 'CRASH_IMPULSE_MS2=25: a crash')
})

t.test("map tiles under a trip's route: unset by default, an http(s) XYZ template with {z}, {x} and {y} in any order (#23)", async (t) => {
  t.equal(readConfig({}).MAP_TILES_URL, undefined, 'unset: the route alone, no tile server asked')
  for (const url of ['https://tile.example.org/{z}/{x}/{y}.png', 'https://tiles.example.org/arcgis/tile/{z}/{y}/{x}']) t.equal(readConfig({ MAP_TILES_URL: url }).MAP_TILES_URL, url)
  for (const url of ['https://tile.example.org/tile.png', 'ftp://tile.example.org/{z}/{x}/{y}.png']) t.throws(() => readConfig({ MAP_TILES_URL: url }), /MAP_TILES_URL/, url)
})

t.test('INFLUX_URL: one InfluxDB, or several comma-separated, each once (#25 item 4)', async (t) => {
  t.equal(readConfig({ INFLUX_URL: 'http://influx:8086' }).INFLUX_URL, 'http://influx:8086')
  t.equal(readConfig({ INFLUX_URL: 'http://influx-a:8086,https://influx-b:8086' }).INFLUX_URL, 'http://influx-a:8086,https://influx-b:8086')
  for (const url of ['http://influx-a:8086,', 'influx:8086', 'mqtt://influx:8086']) t.throws(() => readConfig({ INFLUX_URL: url }), /INFLUX_URL/, url)
  t.throws(() => readConfig({ INFLUX_URL: 'http://influx-a:8086,http://influx-b:8086,http://influx-a:8086/' }), /influx-a:8086 more than once/, 'the same InfluxDB twice would count its points twice')
})
