/**
 * Detection quality on real data, through the real pipeline: the two labelled trips of the driver
 * behaviour dataset replayed as a phone's IMU stream (MQTT in), events read back off the events
 * topic (MQTT out) and from InfluxDB, scored against the labels by the dataset's rule.
 */
import t from 'tap'
import mqtt from 'mqtt'
import { fileURLToPath } from 'node:url'
import { deviceRegistry } from '../ingest/index.ts'
import { readRecording, replayStarts, runReplay } from '../edge-sim/index.ts'
import { startServices, startTestPipeline, untilStored } from '../test/harness.ts'
import { detectionQuality, qualityTable, type DrivingEvent } from './index.ts'

const dataset = fileURLToPath(new URL('../../shared/data/driver-behavior-dataset/', import.meta.url))
const trips = [readRecording(`${dataset}trip-17`), readRecording(`${dataset}trip-20`)]

t.test('the labelled trips replayed through MQTT, ingest and scoring: harsh events with precision and recall ≥ 0.9', async (t) => {
  const services = await startServices(t)
  const devices = deviceRegistry([{ deviceId: 'phone-labelled', policyId: 'pol-labelled', kinds: ['imu'] }])
  const pipeline = await startTestPipeline(t, services, [], 'ubiq_detection', { devices })
  const listener = await mqtt.connectAsync(services.mqttUrl, { clientId: 'events-listener' })
  t.teardown(() => listener.endAsync())
  const received: DrivingEvent[] = []
  listener.on('message', (_topic, payload) => received.push(JSON.parse(payload.toString()) as DrivingEvent))
  await listener.subscribeAsync('ubiq/v1/events/pol-labelled', { qos: 1 })

  const startTs = Date.now() - 3600_000 // an hour of backlog: sent as fast as it is acknowledged
  const run = await runReplay({ mqttUrl: services.mqttUrl, deviceId: 'phone-labelled', recordings: trips, startTs, speedup: Infinity })
  await run.done
  await untilStored(pipeline, run.acknowledged)
  await pipeline.stop() // ends the streams: the detector flushes what it still holds
  const stored = await services.influxql('ubiq_detection', 'SELECT count(peak) FROM event')
  while (received.length < Number(stored[0]?.values[0]?.[1] ?? 0)) await new Promise((r) => setTimeout(r, 20))

  const starts = replayStarts(trips, startTs)
  const quality = detectionQuality(trips.map((trip, i) => {
    const from = starts[i]!
    const to = from + (trip.samples.length / trip.rateHz) * 1000
    return {
      labels: trip.events,
      detections: received.filter((e) => e.from >= from && e.from < to).map((e) => ({ type: e.type, startS: (e.from - from) / 1000, endS: (e.to - from) / 1000 })),
    }
  }))
  const table = qualityTable(quality)
  t.comment(`\n${table}`)
  t.same(quality.rows.map((r) => r.type), ['harsh_longitudinal', 'harsh_lateral'], 'a row for each labelled type')
  for (const row of quality.rows) {
    t.ok(row.labels > 0 && row.detections > 0, `${row.type}: ${row.labels} labels, ${row.detections} detections (precision and recall of nothing would read 1)`)
    t.ok(row.precision >= 0.9, `${row.type}: precision ${row.precision.toFixed(2)} (${row.correct} of ${row.detections} detections correct)`)
    t.ok(row.recall >= 0.9, `${row.type}: recall ${row.recall.toFixed(2)} (${row.found} of ${row.labels} labels found)`)
  }
  t.equal(quality.normalFired, 0, 'the labelled normal manoeuvres do not fire')
  t.equal(stored[0]?.values[0]?.[1], received.length, 'every event published is also stored')
  t.ok(received.every((e) => e.policyId === 'pol-labelled' && e.deviceId === 'phone-labelled' && e.evidence.source === 'imu' && e.evidence.peak >= e.evidence.threshold),
    'each event names its policy and device, and its evidence crosses its threshold')
})
