/**
 * bench:feed's dashboards process (`ubiq start --dashboards`, bin/dashboards.ts): following the
 * scores on the broker and feeding the clients, in a process of its own, its CPU measured here.
 *
 * Argument: a JSON { mqttUrl, influxUrl, dataDir, tokenSecret }. Protocol (process messages):
 * → {type:'listening', url}; {type:'start'} → {type:'started'}; {type:'stop'} → {type:'stopped', cpuMicros}.
 */
import pino from 'pino'
import { startDashboardsProcess } from '../bin/dashboards.ts'
import { CLIENTS } from './feed-scores.ts'

const cfg = JSON.parse(process.argv[2]!) as { mqttUrl: string; influxUrl: string; dataDir: string; tokenSecret: string }
const dashboards = await startDashboardsProcess({
  mqttUrl: cfg.mqttUrl, influx: { api: 'v1', url: cfg.influxUrl, database: 'bench_feed' }, dataDir: cfg.dataDir, tokenSecret: cfg.tokenSecret,
  host: '127.0.0.1', port: 0,
  // The clients all come from one address here; in the field each has its own.
  rateLimitPerMinute: 100 * CLIENTS,
}, pino({ level: 'warn' }))
let cpu0 = process.cpuUsage()
// Ends with the benchmark, however that ends; a clean stop otherwise (its broker session too).
process.on('disconnect', () => process.exit(0))
process.on('message', (cmd: { type: 'start' | 'stop' | 'close' }) => {
  if (cmd.type === 'start') {
    cpu0 = process.cpuUsage()
    process.send!({ type: 'started' })
  } else if (cmd.type === 'stop') {
    const cpu = process.cpuUsage(cpu0)
    process.send!({ type: 'stopped', cpuMicros: cpu.user + cpu.system })
  } else void dashboards.stop().then(() => process.exit(0))
})
process.send!({ type: 'listening', url: dashboards.url })
