// The smallest reproduction of losing a nats-server node (docs/scale-out.md "Losing a nats-server
// node"): 3 nodes (no users), an R3 stream on ubiq.part.>, one mqtt.js QoS 1 publisher per node
// with all three as its servers, kill -9 one node; prints acknowledged / sent, /jsz's stream
// leaders, and at the end what the stream holds per device. Not a test: run it by hand.
//   KILL=UBIQ_DEV | '$MQTT_sess' (the leader of that stream) | nonleader (of UBIQ_DEV) | n1..n3
//   MQTT_EXTRA='stream_replicas: 3' (inside the mqtt block)  BASE=24000 (ports)  WATCH=40 (3 s steps)
//   node bench/nats-node-kill.mjs
import { spawn } from 'node:child_process'
import { mkdirSync, writeFileSync, rmSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import mqtt from 'mqtt'
import { connect } from '@nats-io/transport-node'
import { jetstreamManager } from '@nats-io/jetstream'
const DIR = '/tmp/nk/c', base = Number(process.env.BASE ?? 24000)
const extra = process.env.MQTT_EXTRA ?? ''
const killWhich = process.env.KILL ?? 'UBIQ_DEV' // stream whose leader to kill, or n1/n2/n3
rmSync(DIR, { recursive: true, force: true })
const nodes = [1, 2, 3].map((i) => ({ name: `n${i}`, port: base + i, mqtt: base + 10 + i, cport: base + 20 + i, http: base + 30 + i }))
const procs = {}
for (const n of nodes) {
  mkdirSync(`${DIR}/${n.name}`, { recursive: true })
  writeFileSync(`${DIR}/${n.name}/nats.conf`, `server_name: ${n.name}\nlisten: 127.0.0.1:${n.port}\nhttp: 127.0.0.1:${n.http}\njetstream { store_dir: "${DIR}/${n.name}/js" }\ncluster { name: ubiq\n listen: 127.0.0.1:${n.cport}\n routes: [${nodes.filter((o) => o !== n).map((o) => `"nats-route://127.0.0.1:${o.cport}"`).join(',')}] }\nmqtt { listen: 127.0.0.1:${n.mqtt}\n ${extra} }\n`)
  procs[n.name] = spawn('nats-server', ['-c', `${DIR}/${n.name}/nats.conf`, '-l', `${DIR}/${n.name}/log`], { stdio: 'ignore' })
}
process.on('exit', () => Object.values(procs).forEach((p) => { try { p.kill('SIGKILL') } catch {} }))
const t0 = Date.now(); const ts = () => ((Date.now() - t0) / 1000).toFixed(1)
await sleep(1500)
const nc = await connect({ servers: nodes.map((n) => `127.0.0.1:${n.port}`), maxReconnectAttempts: -1 })
let jsm
for (;;) { try { jsm = await jetstreamManager(nc); await jsm.getAccountInfo(); break } catch { await sleep(300) } }
await jsm.streams.add({ name: 'UBIQ_DEV', subjects: ['ubiq.part.>'], num_replicas: 3 })
const jsz = async (n) => { try { const j = await (await fetch(`http://127.0.0.1:${n.http}/jsz?streams=true&consumers=true`)).json(); return j.account_details?.flatMap((a) => a.stream_detail ?? []) ?? [] } catch { return [] } }
const report = async () => {
  for (const n of nodes) { if (procs[n.name].exitCode !== null || procs[n.name].signalCode) continue
    const s = await jsz(n); console.log(ts(), n.name, 'sees', s.map((x) => `${x.name}[R${x.config?.num_replicas} L=${x.cluster?.leader} msgs=${x.state?.messages} cons=${x.state?.consumer_count}]`).join(' ')) ; break }
}
// publishers: one per node, each with the others as fallback
const pubs = nodes.map((n, i) => {
  const order = [n, ...nodes.filter((o) => o !== n)]
  const c = mqtt.connect({ servers: order.map((o) => ({ host: '127.0.0.1', port: o.mqtt })), clientId: `dev${i}`, clean: false, protocolVersion: 4, reconnectPeriod: 500, connectTimeout: 5000 })
  const st = { sent: 0, acked: 0, c, lastAck: Date.now(), events: [] }
  c.on('connect', () => { st.events.push(`connect@${ts()}`); console.log(ts(), `dev${i} connected`) })
  c.on('close', () => st.events.push(`close@${ts()}`))
  c.on('error', (e) => console.log(ts(), `dev${i} error`, e.message))
  const tick = setInterval(() => { if (st.sent - st.acked > 50) return; st.sent++; c.publish(`ubiq/part/${i}/dev${i}/x`, String(st.sent), { qos: 1 }, (err) => { if (!err) { st.acked++; st.lastAck = Date.now() } }) }, 20)
  st.tick = tick
  return st
})
await sleep(4000)
await report()
const pr = () => console.log(ts(), 'acked/sent', pubs.map((p) => `${p.acked}/${p.sent}`).join(' '))
pr()
let victim = killWhich
if (killWhich === 'nonleader') { const l = (await jsm.streams.info('UBIQ_DEV')).cluster.leader; victim = nodes.map((n) => n.name).find((n) => n !== l) }
else if (!/^n\d$/.test(killWhich)) victim = (await jsm.streams.info(killWhich)).cluster.leader
console.log(ts(), 'killing', victim, `(KILL=${killWhich})`)
procs[victim].kill('SIGKILL')
const acksAtKill = pubs.map((p) => p.acked)
for (let i = 0; i < Number(process.env.WATCH ?? 40); i++) {
  await sleep(3000); pr(); if (i % 3 === 0) await report()
}
console.log('events', pubs.map((p) => p.events.join(',')))
for (const p of pubs) clearInterval(p.tick)
await sleep(3000)
const subj = (await jsm.streams.info('UBIQ_DEV', { subjects_filter: '>' })).state.subjects
console.log('stored per device', subj, 'acked', pubs.map((p) => p.acked), 'sent', pubs.map((p) => p.sent))
console.log('acked after kill', pubs.map((p, i) => p.acked - acksAtKill[i]))
process.exit(0)
