import t from 'tap'
import { fileURLToPath } from 'node:url'
import { createAdapters, decodeMessage, deviceRegistry, isRejection, qualified, topics } from '../ingest/index.ts'
import { startServices, startTestPipeline, untilStored } from '../test/harness.ts'
import { imuMessages, readRecording, replayStarts, runReplay } from './index.ts'

const dataset = fileURLToPath(new URL('../../shared/data/driver-behavior-dataset/', import.meta.url))
const trip17 = readRecording(`${dataset}trip-17`)
const trip20 = readRecording(`${dataset}trip-20`)
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.floor(q * (xs.length - 1))]!

t.test('a recording is resampled to 50 Hz over the whole trip, with its labels', async (t) => {
  // viagem.json: 406.17 s from the first to the last collection → 20,309 rows at 50 Hz.
  t.equal(trip17.samples.length, 20_309)
  t.ok(trip17.samples.every((row) => row.length === 6 && row.every(Number.isFinite)), 'six finite columns a row')
  t.same(trip17.events.map((e) => e.label).reduce((n, l) => ({ ...n, [l]: (n[l] ?? 0) + 1 }), {} as Record<string, number>),
    { troca_faixa_direita_agressiva: 2, freada_agressiva: 6, aceleracao_agressiva: 6 }, 'the README\'s 14 labels of trip 17')
  t.same(trip17.events[0], { label: 'troca_faixa_direita_agressiva', startS: 16.1, endS: 18.5 })
  t.same(trip17.samples[0], [-0.0476, 0.00467, 0.045458, 0.030578, -0.035392, -0.033423], 'row 0 holds the sensors\' first values')
})

t.test('the labelled manoeuvres stand out in the resampled signal, where the labels put them', async (t) => {
  const labelled = (rec: typeof trip17, i: number) => rec.events.some((e) => e.label !== 'evento_nao_agressivo' && i / rec.rateHz >= e.startS && i / rec.rateHz <= e.endS)
  const split = (rec: typeof trip17, f: (row: number[]) => number) => {
    const inside: number[] = []
    const outside: number[] = []
    rec.samples.forEach((row, i) => (labelled(rec, i) ? inside : outside).push(f(row)))
    return [quantile(inside, 0.9), quantile(outside, 0.9)] as const
  }
  const horizontal = (row: number[]) => Math.hypot(row[0]!, row[1]!)
  const [brakingIn, brakingOut] = split(trip17, horizontal)
  t.ok(brakingIn > 2 * brakingOut, `trip 17 (braking, accelerating): p90 horizontal acceleration ${brakingIn.toFixed(2)} m/s² in labelled intervals vs ${brakingOut.toFixed(2)} outside`)
  const [yawIn, yawOut] = split(trip20, (row) => Math.abs(row[5]!))
  t.ok(yawIn > 3 * yawOut, `trip 20 (turns): p90 yaw rate ${yawIn.toFixed(2)} rad/s in labelled intervals vs ${yawOut.toFixed(2)} outside`)
})

t.test('every replay message is a valid imu message of the contract, one a second, seq +1', async (t) => {
  const cfg = { registry: deviceRegistry([{ deviceId: 'phone-1', policyId: 'pol-1', kinds: ['imu'] }]), maxPayloadBytes: 65_536, maxFutureSkewMs: 0, adapters: createAdapters() }
  const start = Date.UTC(2026, 10, 1)
  const messages = [...imuMessages(trip20, start, 5)]
  t.equal(messages.length, Math.ceil(trip20.samples.length / 50))
  const rejected = messages.map((m) => decodeMessage(cfg, topics.device('phone-1', 'imu'), Buffer.from(JSON.stringify(m)), m.ts + 1000)!).filter(isRejection)
  t.same(rejected, [], 'all accepted')
  t.ok(messages.every((m, i) => m.seq === 5 + i && m.ts === start + i * 1000), 'seq +1 and ts +1 s a message')
  t.same(messages.flatMap((m) => m.samples), trip20.samples, 'together they carry every row, in order')
})

t.test('ubiq sim replay\'s publisher: both trips through a real broker and ingest, every sample stored at its time', async (t) => {
  const services = await startServices(t)
  const devices = deviceRegistry([{ deviceId: 'phone-replay', policyId: 'pol-r', kinds: ['imu'] }])
  const pipeline = await startTestPipeline(t, services, [], 'ubiq_replay', { devices })
  const startTs = Date.now() - 3600_000 // an hour of backlog: sent as fast as it is acknowledged
  const run = await runReplay({ mqttUrl: services.mqttUrl, deviceId: 'phone-replay', recordings: [trip17, trip20], startTs, speedup: Infinity })
  await run.done
  const messages = Math.ceil(trip17.samples.length / 50) + Math.ceil(trip20.samples.length / 50)
  t.equal(run.acknowledged, messages)
  await untilStored(pipeline, messages)
  await pipeline.stop()
  const [count] = await services.influxql('ubiq_replay', `SELECT count(ax_ms2) FROM ${qualified('imu')}`)
  t.equal(count?.values[0]?.[1], trip17.samples.length + trip20.samples.length, 'one point per sample')
  const [second] = replayStarts([trip17, trip20], startTs).slice(1)
  const [row] = await services.influxql('ubiq_replay', `SELECT ax_ms2, gz_rads FROM ${qualified('imu')} WHERE time = ${second! + 1000}ms`)
  t.same(row?.values[0]?.slice(1), [trip20.samples[50]![0], trip20.samples[50]![5]], 'trip 20\'s second 1 is stored at its replay time, by value')
})
