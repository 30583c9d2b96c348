/**
 * The RSS of the Mosquitto and InfluxDB processes a benchmark started (not the watchdog shells
 * around them), found by their data directory on the command line: for figures beside ubiq's own.
 */
import { readdirSync, readFileSync } from 'node:fs'

/** Returns `rss(name)`: the current RSS in bytes of the `mosquitto` or `influxd` run from under `dir` (NaN if none). */
export function serverRss(dir: string): (name: 'mosquitto' | 'influxd') => number {
  const pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p)).flatMap((pid) => {
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0')
      const name = argv[0]!.split('/').at(-1)!
      return (name === 'mosquitto' || name === 'influxd') && argv.some((a) => a.startsWith(dir)) ? [[name, pid] as const] : []
    } catch {
      return []
    }
  })
  return (name) => {
    const pid = pids.find(([n]) => n === name)?.[1]
    const kb = pid ? /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] : undefined
    return kb ? Number(kb) * 1024 : NaN
  }
}
