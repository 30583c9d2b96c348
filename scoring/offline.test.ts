import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { qualityTable, type DrivingEvent, type Quality } from './index.ts'
import { detections, eventLabel, evaluateTrips, gridConfigs, leaveOneTripOut, manoeuvreGrid, type EvaluatedTrip } from './offline.ts'
import { defaultManoeuvreConfig } from './manoeuvres.ts'

const ubiq = fileURLToPath(new URL('../bin/ubiq.js', import.meta.url))
const dataset = fileURLToPath(new URL('../../shared/data/driver-behavior-dataset/', import.meta.url))
const fixtures = fileURLToPath(new URL('../edge-sim/recordings/fixtures/', import.meta.url))
const run = (args: string[]) => spawnSync(process.execPath, [ubiq, ...args], {
  encoding: 'utf8', env: { PATH: process.env.PATH, UBIQ_DATA_DIR: mkdtempSync(join(tmpdir(), 'ubiq-eval-data-')) },
})

t.test('pairs: aggressive and drowsy trips against normal ones of the same driver and road, lower is right', async (t) => {
  const trip = (name: string, driver: string, road: string, label: EvaluatedTrip['label'], score?: number): EvaluatedTrip =>
    ({ trip: name, driver, road, ...(label ? { label } : {}), ...(score === undefined ? {} : { score }), detections: [], labels: [] })
  const result = evaluateTrips([
    trip('n1', 'd1', 'motorway', 'normal', 60), trip('a1', 'd1', 'motorway', 'aggressive', 40), trip('z1', 'd1', 'motorway', 'drowsy', 65),
    trip('n2', 'd2', 'motorway', 'normal', 50), trip('a2', 'd2', 'motorway', 'aggressive', 55), trip('a3', 'd2', 'secondary', 'aggressive', 10),
    trip('n3', 'd3', 'motorway', 'normal'), trip('a4', 'd3', 'motorway', 'aggressive', 20),
  ])
  t.same(result.aggressive, { correct: 1, pairs: 2, unscored: 1 }, 'd1 right, d2 wrong, a3 has no normal trip on its road, d3\'s normal trip has no score')
  t.same(result.drowsy, { correct: 0, pairs: 1, unscored: 0 })
})

t.test('detections on two axes, labels in plain words or the dataset\'s', async (t) => {
  const event = (type: DrivingEvent['type'], from: number, to: number) => ({ type, from, to }) as DrivingEvent
  t.same(detections([event('harsh_braking', 11_000, 12_000), event('harsh_lateral', 20_000, 22_500), event('night_driving', 0, 9e6), event('harsh_longitudinal', 30_000, 31_000)], 10_000), [
    { type: 'harsh_longitudinal', startS: 1, endS: 2 }, { type: 'harsh_lateral', startS: 10, endS: 12.5 }, { type: 'harsh_longitudinal', startS: 20, endS: 21 },
  ])
  t.same(['braking', 'turn_left', 'lane_change', 'normal', 'freada_agressiva'].map(eventLabel),
    ['freada_agressiva', 'curva_esquerda_agressiva', 'troca_faixa_direita_agressiva', 'evento_nao_agressivo', 'freada_agressiva'])
  t.throws(() => eventLabel('swerve'), /unknown event label "swerve" \(accepted: braking, acceleration, turn/)
})

t.test('ubiq evaluate on the two shipped trips: the precision and recall scoring/replay-detection.test.ts expects of the live pipeline', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-eval-'))
  symlinkSync(join(dataset, 'trip-17'), join(dir, 'trip-17'))
  symlinkSync(join(dataset, 'trip-20'), join(dir, 'trip-20'))
  writeFileSync(join(dir, 'labels.csv'), 'trip,driver,road,label\ntrip-17,,,\ntrip-20,,,\n')
  const json = run(['evaluate', dir, '--json'])
  t.equal(json.status, 0, json.stderr)
  const out = JSON.parse(json.stdout) as { model: string; trips: { trip: string; labelledEvents: number; rejected: object }[]; events: Quality }
  t.same(out.trips.map((r) => [r.trip, r.labelledEvents, r.rejected]), [['trip-17', 14], ['trip-20', 17]].map(([n, l]) => [n, l, {}]), 'both trips, their labels, nothing refused by ingest')
  // The same expectations as replay-detection.test.ts, which replays these trips through MQTT, ingest and scoring.
  t.same(out.events.rows.map((r) => r.type), ['harsh_longitudinal', 'harsh_lateral'])
  for (const row of out.events.rows) {
    t.ok(row.labels > 0 && row.detections > 0, `${row.type}: ${row.labels} labels, ${row.detections} detections`)
    t.ok(row.precision >= 0.9, `${row.type}: precision ${row.precision.toFixed(2)} (${row.correct} of ${row.detections})`)
    t.ok(row.recall >= 0.9, `${row.type}: recall ${row.recall.toFixed(2)} (${row.found} of ${row.labels})`)
  }
  t.equal(out.events.normalFired, 0, 'the labelled normal manoeuvres do not fire')
  const text = run(['evaluate', dir])
  t.equal(text.status, 0)
  t.ok(text.stdout.includes(qualityTable(out.events)), 'the text output prints the same table')
  t.match(text.stdout, /aggressive below normal: 0 of 0 pairs/)
  t.comment(`\n${text.stdout}`)
  const loo = run(['evaluate', dir, '--json', '--loo'])
  t.equal(loo.status, 0, loo.stderr)
  const cv = (JSON.parse(loo.stdout) as { leaveOneTripOut: { heldOut: { trip: string }[]; pooled: Quality } }).leaveOneTripOut
  t.same(cv.heldOut.map((h) => h.trip), ['trip-17', 'trip-20'], 'each trip held out once')
  t.comment(`leave one trip out:\n${qualityTable(cv.pooled)}`)
  for (const row of cv.pooled.rows) t.ok(row.detections > 0 && row.precision >= 0.9 && row.recall >= 0.9, `${row.type}, settings never chosen on the trip judged: precision ${row.precision.toFixed(2)}, recall ${row.recall.toFixed(2)}`)
})

t.test('leave one trip out: each trip is judged with the settings that did best on the others, never on itself', async (t) => {
  const configs = gridConfigs(defaultManoeuvreConfig)
  t.equal(configs.length, Object.values(manoeuvreGrid).reduce((n, v) => n * v!.length, 1), 'every combination of the grid once')
  t.same(configs[0], defaultManoeuvreConfig, 'the defaults first (they win ties)')
  const braking = { label: 'freada_agressiva', startS: 10, endS: 12 }
  const trips = [...['a', 'b', 'c', 'd'].map((trip) => ({ trip, labels: [braking] })), { trip: 'unlabelled', labels: [] }]
  // Setting 1 finds the braking on a, b and c; setting 0 (the defaults) only on d.
  const hit = [{ type: 'harsh_longitudinal' as const, startS: 10.5, endS: 11.5 }]
  const finds = (c: number, i: number) => (c === 1 ? i !== 3 : i === 3)
  const asked: string[] = []
  const { heldOut, pooled } = await leaveOneTripOut(trips, configs.slice(0, 2), async (c, i) => {
    asked.push(trips[i]!.trip)
    return finds(configs.indexOf(c), i) ? hit : []
  })
  t.notOk(asked.includes('unlabelled'), 'a trip without labelled events is not judged')
  t.same(heldOut.map((h) => [h.trip, h.quality.rows[0]!.found]), [['a', 1], ['b', 1], ['c', 1], ['d', 0]], 'd is judged with setting 1, best on a, b and c, which misses it; its own best is never used')
  const setting1 = Object.fromEntries(Object.keys(manoeuvreGrid).map((k) => [k, configs[1]![k as keyof typeof defaultManoeuvreConfig]]))
  t.same(heldOut.map((h) => h.chosen), [setting1, setting1, setting1, setting1])
  t.same([pooled.rows[0]!.found, pooled.rows[0]!.labels, pooled.rows[0]!.correct, pooled.rows[0]!.detections], [3, 4, 3, 3], 'pooled over the held-out trips: 3 of 4 found (choosing on each trip itself would claim 4)')
})

t.test('ubiq evaluate and import refuse what they cannot read, with the reason, exit 2', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-eval-'))
  t.match(run(['evaluate', dir]), { status: 2, stderr: /no labels\.csv/ })
  writeFileSync(join(dir, 'labels.csv'), 'trip,driver,road,label\nmissing,,,\n')
  t.match(run(['evaluate', dir]), { status: 2, stderr: /labels\.csv: trip "missing" has no recording/ })
  t.match(run(['evaluate']), { status: 2, stderr: /ubiq evaluate needs a folder/ })
  const mapping = join(dir, 'bad.json')
  writeFileSync(mapping, '{"gps": {"time": {"column": 0, "unit": "s"}, "lat": 1, "lon": 2, "speed": {"column": 3, "unit": "knots"}}}')
  t.match(run(['import', join(fixtures, 'uah-trip', 'RAW_GPS.txt'), '--mapping', mapping]), { status: 2, stderr: /bad\.json: gps\.speed\.unit: must be one of "km\/h", "m\/s", "mph", got "knots"/ })
  t.match(run(['import', fixtures, '--device', 'one']), { status: 2, stderr: /--device names one device; .* holds 2 recordings/ })
  t.match(run(['import', join(fixtures, 'drive.gpx'), '--format', 'kml']), { status: 2, stderr: /--format must be csv, gpx, dataset, got "kml"/ })
  t.match(run(['import', join(fixtures, 'drive.gpx')]), { status: 2, stderr: /ubiq import needs MQTT_URL/ })
})
