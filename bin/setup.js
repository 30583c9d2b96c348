#!/usr/bin/env node
// Installs what `npm run demo` and `npm test` need and a fresh machine lacks: the npm dependencies,
// and Mosquitto / InfluxDB from Debian's packages. Plain Node with no dependencies, because it runs
// before any are installed. Says what it installs; says what to do where it cannot.
import { execFileSync, spawnSync } from 'node:child_process'
import { existsSync, statSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const purpose = process.argv[2] ?? 'demo'
if (!['demo', 'test'].includes(purpose)) fail(`usage: node bin/setup.js demo|test (got "${purpose}")`)

ensureNodeModules()
ensureDebianTools(wantedTools())

/** The Debian packages this run needs, by the command each provides. */
function wantedTools() {
  if (purpose === 'test') {
    // The test harness starts its own real Mosquitto and InfluxDB, and pages are tested in Chromium.
    return [
      { command: 'mosquitto', pkg: 'mosquitto', why: 'the MQTT broker the tests run against' },
      { command: 'influxd', pkg: 'influxdb', why: 'the InfluxDB the tests run against' },
      { command: 'chromium', pkg: 'chromium', why: 'the headless browser the page tests drive' },
      { command: 'nats-server', pkg: 'nats-server', why: 'the JetStream engine of the scale-out tests and bench:engine (#25)' },
    ]
  }
  const tools = []
  if (!process.env.MQTT_URL) tools.push({ command: 'mosquitto', pkg: 'mosquitto', why: 'the local MQTT broker', optional: 'ubiq falls back to its embedded aedes broker' })
  if (!process.env.INFLUX_URL) tools.push({ command: 'influxd', pkg: 'influxdb', why: 'the local InfluxDB' })
  return tools
}

function ensureNodeModules() {
  const stamp = join(root, 'node_modules', '.package-lock.json')
  const lock = join(root, 'package-lock.json')
  if (existsSync(stamp) && statSync(stamp).mtimeMs >= statSync(lock).mtimeMs) return
  say('installing npm dependencies (npm ci)')
  const r = spawnSync('npm', ['ci', '--no-fund', '--no-audit'], { cwd: root, stdio: 'inherit' })
  if (r.status !== 0) fail('npm ci failed (see above); check that the npm registry is reachable')
}

function ensureDebianTools(tools) {
  const missing = tools.filter((t) => !onPath(t.command))
  if (missing.length === 0) return
  const canInstall = process.getuid?.() === 0 && existsSync('/etc/debian_version') && onPath('apt-get')
  if (!canInstall) {
    const required = missing.filter((t) => !t.optional)
    for (const t of missing.filter((t) => t.optional)) say(`${t.command} not found; ${t.optional}`)
    if (required.length === 0) return
    const pkgs = required.map((t) => t.pkg).join(' ')
    fail(`${required.map((t) => t.command).join(' and ')} not found, and this is not a Debian machine where I am root, so I cannot install it.\n` +
      `  Install it yourself (Debian/Ubuntu: sudo apt-get install ${pkgs}), or point ubiq at existing servers with MQTT_URL and INFLUX_URL.`)
  }
  const pkgs = missing.map((t) => t.pkg)
  for (const t of missing) say(`installing Debian package ${t.pkg} (${t.why})`)
  // Package post-install scripts must not start system services that would take 1883/8086: ubiq and
  // its tests start their own servers on free ports.
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive', RUNLEVEL: '1' }
  run('apt-get', ['update', '-qq'], env)
  run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...pkgs], env)
  for (const t of missing) if (!onPath(t.command)) fail(`installed ${t.pkg} but ${t.command} is still not on the PATH`)
}

function run(cmd, args, env) {
  try {
    execFileSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], env })
  } catch {
    fail(`${cmd} ${args.join(' ')} failed (see above)`)
  }
}

function onPath(command) {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0
}

function say(msg) {
  console.error(`ubiq setup: ${msg}`)
}

function fail(msg) {
  console.error(`ubiq setup: ${msg}`)
  process.exit(1)
}
