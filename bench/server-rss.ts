/**
 * The Mosquitto and InfluxDB processes a benchmark started (not the watchdog shells around them),
 * found by their data directory on the command line: their RSS and CPU beside ubiq's own.
 */
import { readdirSync, readFileSync } from 'node:fs'

type ServerName = 'mosquitto' | 'influxd' | 'nats-server'

/** The pid of the `mosquitto`, `influxd` or `nats-server` run from under `dir` (undefined if none). */
export function serverPid(dir: string, name: ServerName): number | undefined {
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      if (argv[0]!.split('/').at(-1) === name && argv.some((a) => a.startsWith(dir))) return Number(pid)
    } catch {
      // gone meanwhile
    }
  }
  return undefined
}

/** Returns `rss(name)`: the current RSS in bytes of the `mosquitto` or `influxd` run from under `dir` (NaN if none). */
export function serverRss(dir: string): (name: 'mosquitto' | 'influxd') => number {
  const pids = new Map((['mosquitto', 'influxd'] as const).map((name) => [name, serverPid(dir, name)]))
  return (name) => {
    const pid = pids.get(name)
    const kb = pid ? /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] : undefined
    return kb ? Number(kb) * 1024 : NaN
  }
}

/** CPU-seconds process `pid` has used so far (user + system), from /proc. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime, in clock ticks (USER_HZ = 100)
}
