import t, { type Test } from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import mqtt from 'mqtt'
import { fileURLToPath } from 'node:url'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readConfig } from './config.ts'
import { startMosquitto } from './local-services.ts'
import { codes, parseDeviceRegistry } from '../ingest/index.ts'
import { loadRoadMap } from '../scoring/road-map.ts'
import { makeCity, toLatLon } from '../edge-sim/index.ts'
import { from, lastValueFrom, tap, toArray } from 'rxjs'
import { examplePlans, loadPlans, openAuditLog, priceScores } from '../pricing/index.ts'

const registry = (text: string) => {
  const file = join(mkdtempSync(join(tmpdir(), 'ubiq-cli-')), 'devices.json')
  writeFileSync(file, text)
  return file
}

const ubiq = fileURLToPath(new URL('./ubiq.js', import.meta.url))
const run = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [ubiq, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH, ...env } })

t.test('config: defaults, conversion from strings, and every problem named', async (t) => {
  t.match(readConfig({}), { INFLUX_API: 'v1', INFLUX_DATABASE: 'ubiq', PORT: 8080, HOST: '127.0.0.1' })
  t.equal(readConfig({ PORT: '9000' }).PORT, 9000)
  t.throws(() => readConfig({ PORT: '70000', MQTT_URL: 'broker:1883' }), {
    code: 'UBIQ_CONFIG_INVALID',
    message: /MQTT_URL="broker:1883": Expected string to match[\s\S]*PORT="70000": Expected integer to be less or equal to 65535/,
  })
  t.throws(() => readConfig({ INFLUX_API: 'v2', INFLUX_URL: 'http://i:8086' }), /INFLUX_API=v2 is not supported: a v2 bucket has one retention for everything/)
  // Retention per measurement (#21): the one policy of before is gone, and positions' days are bounded.
  t.throws(() => readConfig({ INFLUX_RETENTION_POLICY: 'autogen' }), /INFLUX_RETENTION_POLICY is no longer read/)
  t.equal(readConfig({}).POSITION_RETENTION_DAYS, 14)
  t.equal(readConfig({ POSITION_RETENTION_DAYS: '3' }).POSITION_RETENTION_DAYS, 3)
  for (const bad of ['0', '91', '-1', 'week']) {
    t.throws(() => readConfig({ POSITION_RETENTION_DAYS: bad }), { code: 'UBIQ_CONFIG_INVALID', message: new RegExp(`POSITION_RETENTION_DAYS="${bad}"`) }, `POSITION_RETENTION_DAYS=${bad} is refused`)
  }
  t.throws(() => readConfig({ LOG_LEVEL: 'loud' }), codes.UBIQ_CONFIG_INVALID)
})

t.test('ubiq help lists the commands and the environment', async (t) => {
  const r = run(['--help'])
  t.equal(r.status, 0)
  t.match(r.stdout, /ubiq start[\s\S]*ubiq demo[\s\S]*ubiq sim[\s\S]*MQTT_URL[\s\S]*INFLUX_URL/)
  // A command's help is that command's (#23: `ubiq sim --help` printed the whole text).
  const sub = run(['sim', 'portfolio', '--help'])
  t.equal(sub.status, 0, 'help after a command too')
  t.match(sub.stdout, /^Usage:\n {2}ubiq sim portfolio --out DIR[\s\S]*Options \(sim portfolio\):\n {2}--out DIR[\s\S]*--imu-hz N/)
  t.notMatch(sub.stdout, /ubiq demo|--vehicles|Options \(sim\)/, 'and nothing of the other commands')
  const sim = run(['sim', '--help'])
  t.match(sim.stdout, /^Usage:\n {2}ubiq sim \[options\][\s\S]*Options \(sim\):\n[\s\S]*--faults LIST[\s\S]*'ubiq help' lists every command/)
  t.notMatch(sim.stdout, /ubiq sim replay|ubiq demo|Options \(sim replay\)|--vehicles/, 'sim alone, not its subcommands')
  t.match(run(['models', '--help']).stdout, /^Usage:\n {2}ubiq models list[\s\S]*ubiq models rollback SUBJECT/, 'a command of subcommands: each of them')
  t.equal(run(['help']).stdout, r.stdout, 'ubiq help: the whole text')
})

t.test('sim --write-registry writes a registry that ubiq start accepts', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'ubiq-cli-')), 'devices.json')
  const r = run(['sim', '--devices', '4', '--write-registry', file])
  t.equal(r.status, 0)
  t.match(r.stdout, `wrote the device registry of 4 devices (2 policies) to ${file}`)
  const registry = parseDeviceRegistry(readFileSync(file, 'utf8'))
  t.same([...registry.keys()], ['car-000001', 'wear-000001', 'home-000001', 'car-000002'], 'a car, a wearable and a home a policy')
  t.same(registry.get('home-000001'), { deviceId: 'home-000001', policyId: 'pol-000001', kinds: ['leak', 'smoke', 'climate', 'contact', 'valve'] })
})

/** A morning of `ubiq sim` (6 devices, as fast as it goes, with `flags`) through a real broker: every payload it published, by stream. */
async function simMorning(t: Test, flags: string[]): Promise<Map<string, Buffer[]>> {
  const broker = await startMosquitto(mkdtempSync(join(tmpdir(), 'ubiq-sim-')))
  t.teardown(() => broker.stop())
  const listener = await mqtt.connectAsync(broker.url)
  t.teardown(() => listener.endAsync())
  const byKind = new Map<string, Buffer[]>()
  listener.on('message', (topic, payload) => {
    const kind = topic.split('/').at(-1)!
    byKind.set(kind, [...(byKind.get(kind) ?? []), payload])
  })
  await listener.subscribeAsync('ubiq/v1/dev/+/+', { qos: 1 })
  const child = spawn(process.execPath, [ubiq, 'sim', '--devices', '6', '--start', '2026-11-16T07:00:00Z', '--days', '0.1', '--speedup', '1000000', ...flags],
    { env: { PATH: process.env.PATH, MQTT_URL: broker.url }, stdio: 'ignore' })
  t.equal(await new Promise((resolve) => child.on('exit', resolve)), 0, 'ubiq sim exits 0')
  return byKind
}
const counts = (byKind: Map<string, Buffer[]>) => JSON.stringify(Object.fromEntries([...byKind].map(([k, v]) => [k, v.length])))

t.test('sim --imu-hz 0 drives without IMU: GPS and OBD only, through a real broker', async (t) => {
  const byKind = await simMorning(t, ['--imu-hz', '0'])
  t.ok((byKind.get('obd')?.length ?? 0) > 100 && (byKind.get('gps')?.length ?? 0) > 100, `a morning's driving: ${counts(byKind)}`)
  t.notOk(byKind.has('imu'), 'and no IMU stream')
})

t.test('sim --phone-mount drives phones: GNSS and the phone-frame IMU, no OBD or ignition, through a real broker', async (t) => {
  const byKind = await simMorning(t, ['--imu-hz', '10', '--phone-mount', '110,60,25'])
  t.ok((byKind.get('gps')?.length ?? 0) > 100 && (byKind.get('imu_device')?.length ?? 0) > 100, `a morning's driving: ${counts(byKind)}`)
  t.notOk(byKind.has('obd') || byKind.has('status') || byKind.has('imu'), 'no OBD, no ignition, no earth-frame IMU')
  const rows = (byKind.get('imu_device') ?? []).flatMap((p) => (JSON.parse(String(p)) as { samples: number[][] }).samples)
  const gravity = rows.reduce((a, row) => a + Math.hypot(row[0]!, row[1]!, row[2]!), 0) / rows.length
  t.ok(Math.abs(gravity - 9.81) < 0.3, `the accelerometer reads gravity: ${gravity.toFixed(2)} m/s² on average`)
})

t.test('sim map writes the simulated city as a GeoJSON road map that scoring loads', async (t) => {
  const file = join(mkdtempSync(join(tmpdir(), 'ubiq-cli-')), 'city.geojson')
  const r = run(['sim', 'map', '--out', file, '--seed', '3'])
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, `wrote the 597 roads of the city of seed 3 to ${file}`)
  const map = await loadRoadMap(file)
  t.same([map.roads, map.skipped], [597, {}])
  // The middle of every road of that seed's city has that road's limit.
  const city = makeCity({ seed: 3 })
  const wrong = city.roads.filter(({ a, b, limit_kmh }) => {
    const { lat_deg, lon_deg } = toLatLon(city, (city.x[a]! + city.x[b]!) / 2, (city.y[a]! + city.y[b]!) / 2)
    return map.limitAt(lat_deg, lon_deg)?.limit_kmh !== limit_kmh
  })
  t.same(wrong, [], 'each road at its limit')
})

t.test('broker-config writes a Mosquitto config whose ACL and hashed passwords cover the registry', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-broker-'))
  const devices = registry('{"devices":[{"deviceId":"car-1","policyId":"p1","kinds":["obd"]},{"deviceId":"car-2","policyId":"p2","kinds":["gps"]}]}')
  const r = run(['broker-config', '--out', dir, '--port', '1884'], { DEVICE_REGISTRY: devices })
  t.equal(r.status, 0, r.stderr)
  t.match(readFileSync(join(dir, 'mosquitto.conf'), 'utf8'), /listener 1884\nallow_anonymous false\npassword_file .*passwd\nacl_file .*acl/)
  t.match(readFileSync(join(dir, 'acl'), 'utf8'), /pattern write ubiq\/v1\/dev\/%u\/#/)
  const csv = readFileSync(join(dir, 'credentials.csv'), 'utf8').trim().split('\n').map((l) => l.split(','))
  t.same(csv.map((r) => r[0]), ['username', 'ubiq', 'car-1', 'car-2'])
  const passwd = readFileSync(join(dir, 'passwd'), 'utf8')
  t.match(passwd, /^car-1:\$7\$/m, 'passwords are stored hashed (PBKDF2-SHA512)')
  t.notMatch(passwd, csv[2]![1]!, 'never in plain text')
})

t.test('audit verify: exit 0 and a summary while the chain holds, 1 and the first bad line once it is broken', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'ubiq-audit-'))
  const file = join(dir, 'audit.jsonl')
  const log = openAuditLog(file)
  const scores = [40, 60, 45].map((value, i) => ({
    policyId: `p${i}`, subject: 'driving' as const, value, model: 'driving-frequency@1', reasons: [], window: { from: 0, to: Date.parse('2026-06-01T00:00:00Z') }, exposure: { days: 30, distance_km: 1000 }, features: {},
  }))
  const out = await lastValueFrom(from(scores).pipe(priceScores(loadPlans(examplePlans)), tap((p) => log.append(p)), toArray()))
  log.close()
  const ok = run(['audit', 'verify'], { UBIQ_DATA_DIR: dir })
  t.equal(ok.status, 0, ok.stderr)
  t.equal(ok.stdout, `audit log ${file}: 3 records (premium adjustments and consent changes), chain intact, last hash ${out[2]!.hash}\n`, 'the data dir\'s log by default')
  const lines = readFileSync(file, 'utf8').split('\n')
  writeFileSync(file, [lines[0], lines[2], lines[1], lines[3]].join('\n'))
  const bad = run(['audit', 'verify', '--file', file])
  t.equal(bad.status, 1)
  t.equal(bad.stderr, `audit log ${file}: line 2: removed or reordered: its prevHash is not the hash of line 1\n`)
})

t.test('usage errors exit 2 with the reason; configuration errors exit 1 with their code', async (t) => {
  const cases: [string[], Record<string, string>, number, RegExp][] = [
    [['fly'], {}, 2, /unknown command "fly"/],
    [['demo', '--vehicles', '0'], {}, 2, /--vehicles must be a whole number from 1 to 10000, got "0"/],
    [['demo', '--colour', 'red'], {}, 2, /Unknown option '--colour'/],
    [['start', '--vehicles', '3'], {}, 2, /Unknown option '--vehicles'/],
    [['sim'], {}, 2, /ubiq sim needs MQTT_URL/],
    [['sim', '--faults', 'wobble=0.1'], {}, 2, /--faults: unknown fault "wobble"/],
    [['sim', '--phone-mount', '110,60'], {}, 2, /--phone-mount: expected three angles in degrees, YAW,PITCH,ROLL/],
    [['sim', '--faults', 'duplicate=2'], {}, 2, /--faults: duplicate=2 needs a rate from 0 to 1/],
    [['sim', '--start', 'yesterday'], {}, 2, /--start must be an ISO 8601 time/],
    [['sim', '--imu-hz', '5'], {}, 2, /--imu-hz must be 0 or a whole number from 10 to 100, got "5"/],
    [['sim', 'replay', '--device', 'a/b'], {}, 2, /--device must be a device id/],
    [['sim', 'replay', '--trip', '/nonexistent'], {}, 2, /--trip \/nonexistent: ENOENT/],
    [['broker-config'], {}, 2, /ubiq broker-config needs --out DIR/],
    [['sim', 'map'], {}, 2, /ubiq sim map needs --out FILE/],
    [['sim', 'map', '--out', '/tmp/x.geojson', '--days', '2'], {}, 2, /Unknown option '--days'/],
    [['sim', 'map', '--out', '/tmp/x.geojson', '--seed', '1.5'], {}, 2, /--seed must be a whole number ≥ 0/],
    [['broker-config', '--out', '/tmp/x', '--port', '0'], {}, 2, /--port must be a port from 1 to 65535/],
    [['audit'], {}, 2, /ubiq audit needs a command: ubiq audit verify/],
    [['audit', 'check'], {}, 2, /unknown audit command "check"/],
    [['audit', 'verify', '--out', '/tmp/x'], {}, 2, /Unknown option '--out'/],
    [['audit', 'verify', '--file', '/nonexistent.jsonl'], {}, 1, /\[UBIQ_AUDIT_MISSING\] no audit log at \/nonexistent.jsonl/],
    [['start'], { PORT: 'eighty' }, 1, /\[UBIQ_CONFIG_INVALID\] invalid configuration:\n {2}PORT="eighty"/],
    [['start'], {}, 1, /\[UBIQ_CONFIG_INVALID\] DEVICE_REGISTRY is not set/],
    [['start'], { DEVICE_REGISTRY: '/nonexistent.json' }, 1, /\[UBIQ_CONFIG_INVALID\] cannot read DEVICE_REGISTRY \/nonexistent.json/],
    [['start'], { DEVICE_REGISTRY: registry('{"devices":[{"deviceId":"c","policyId":"p","kinds":["odb"]}]}') }, 1, /\[UBIQ_REGISTRY_UNKNOWN_STREAM\] device c: no stream "odb"/],
  ]
  for (const [args, env, status, message] of cases) {
    const r = run(args, env)
    t.equal(r.status, status, `ubiq ${args.join(' ')} exits ${status}`)
    t.match(r.stderr, message)
  }
})
