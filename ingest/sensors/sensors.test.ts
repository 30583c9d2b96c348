/**
 * The shared contract suite, run over every sensor kind in the catalogue: a new kind gets its
 * validation, range checks, naming rules and storage tested by adding its catalogue line.
 */
import t from 'tap'
import mqtt from 'mqtt'
import type { TSchema } from '@sinclair/typebox'
import { createAdapters, decodeMessage, deviceRegistry, isRejection, qualified, readingsFromSeries, sensors, topics, units, type Reading, type Unit } from '../index.ts'
import { startServices, startTestPipeline, untilStored } from '../../test/harness.ts'

const now = Date.UTC(2026, 11, 1)
const registry = deviceRegistry([{ deviceId: 'dev-1', policyId: 'pol-1', kinds: sensors.map((s) => s.kind) }])
const cfg = { registry, maxPayloadBytes: 64 * 1024, maxFutureSkewMs: 60_000, adapters: createAdapters() }
const decode = (kind: string, body: unknown) => decodeMessage(cfg, topics.device('dev-1', kind), Buffer.from(JSON.stringify(body)), now)!

for (const sensor of sensors) {
  t.test(`${sensor.kind}: the contract holds`, async (t) => {
    const props = sensor.schema.properties as Record<string, TSchema>
    const example = sensor.example as Record<string, unknown>
    t.equal(sensor.schema.additionalProperties, false, 'no undeclared fields')

    const r = decode(sensor.kind, example)
    t.notOk(isRejection(r), `the example is valid: ${JSON.stringify(r)}`)
    const { seq, ts, samples, ...fields } = example
    t.match(r, { deviceId: 'dev-1', policyId: 'pol-1', kind: sensor.kind, subject: sensor.subject, seq, ts, fields })
    if (sensor.batch) t.same((r as Reading).samples, samples, 'the samples pass through unchanged')

    for (const [name, schema] of Object.entries(props)) {
      if (name === 'seq' || name === 'ts' || name === 'samples') continue
      t.ok(schema.description, `${name} is described`)
      if (schema.type === 'number' || schema.type === 'integer') {
        // The kind declares the unit (DESIGN.md: units in names), and the name ends in it.
        const unit = (sensor.units as Record<string, Unit>)[name]
        t.ok(unit && unit in units && name.endsWith(`_${unit}`), `${name} is in ${unit}, as its name says`)
        t.ok(schema.maximum !== undefined && (schema.minimum ?? schema.exclusiveMinimum) !== undefined, `${name} has a documented range`)
        const base = { ...example, [name]: schema.maximum }
        t.notOk(isRejection(decode(sensor.kind, { ...base, [name]: schema.maximum })), `${name} = its maximum is accepted`)
        t.equal((decode(sensor.kind, { ...base, [name]: schema.maximum + 1 }) as { reason?: string }).reason, 'invalid_payload', `${name} above its maximum is rejected`)
        const low = (schema.minimum ?? schema.exclusiveMinimum) - 1
        t.equal((decode(sensor.kind, { ...base, [name]: low }) as { reason?: string }).reason, 'invalid_payload', `${name} below its minimum is rejected`)
      } else {
        t.equal(schema.type, 'boolean', `${name} is a number or a boolean`)
      }
    }
    for (const name of sensor.schema.required ?? []) {
      const { [name]: _, ...without } = example
      t.equal((decode(sensor.kind, without) as { reason?: string }).reason, 'invalid_payload', `without ${name} it is rejected`)
    }
    t.equal((decode(sensor.kind, { ...example, extra_field: 1 }) as { reason?: string }).reason, 'invalid_payload', 'an extra field is rejected')
    if (sensor.batch) {
      for (const c of sensor.batch.columns) t.ok(c.name.endsWith(`_${c.unit}`), `column ${c.name} is in ${c.unit}, as its name says`)
      const row = (samples as number[][])[0]!
      t.equal((decode(sensor.kind, { ...example, samples: [row.slice(1)] }) as { reason?: string }).reason, 'invalid_payload', 'a short sample row is rejected')
      t.equal((decode(sensor.kind, { ...example, samples: [row.map(() => 1e6)] }) as { reason?: string }).reason, 'invalid_payload', 'an out-of-range sample is rejected')
      t.equal((decode(sensor.kind, { ...example, samples: [] }) as { reason?: string }).reason, 'invalid_payload', 'an empty batch is rejected')
    }
    if (sensor.alternative) {
      const alt = decode(sensor.kind, sensor.alternative.example)
      t.notOk(isRejection(alt), `the ${sensor.alternative.description} example is valid: ${JSON.stringify(alt)}`)
    }
  })
}

t.test('raw OBD-II PIDs are decoded with the J1979 formulas', async (t) => {
  const r = decode('obd', { seq: 1, ts: now, pids: { '0D': '40', '0C': '20D0', '05': '80', '04': 'FF', '2F': '80', 'A6': '0001E240', '01': '83076100' } })
  t.same((r as Reading).fields, {
    speed_kmh: 64, engine_rpm: 2100, coolant_temp_c: 88, engine_load_pct: 100, fuel_level_pct: 128 * 100 / 255,
    odometer_km: 12345.6, dtc_count: 3, mil_on: true,
  })
  const reason = (pids: unknown) => (decode('obd', { seq: 1, ts: now, pids }) as { detail?: string }).detail
  t.match(reason({ '0D': '40', '99': '00' }), /pids\/99: PID not supported/)
  t.match(reason({ '0D': 'G0' }), /pids\/0D: expected hex bytes/)
  t.match(reason({ '0C': '20' }), /pids\/0C: expected 2 data bytes, got 1/)
  t.match(reason({ '0C': '20D0' }), /speed_kmh/, 'without speed (PID 0D) the message is incomplete')
})

t.test('every kind\'s example is stored in InfluxDB by the real ingest, field by field', async (t) => {
  const services = await startServices(t)
  const pipeline = await startTestPipeline(t, services, [], 'ubiq_contract', { devices: registry })
  const device = await mqtt.connectAsync(services.mqttUrl, { clientId: 'dev-1' })
  for (const s of sensors) await device.publishAsync(topics.device('dev-1', s.kind), JSON.stringify(s.example), { qos: 1 })
  await device.endAsync()
  await untilStored(pipeline, sensors.length)
  await pipeline.stop() // flushes InfluxDB
  for (const s of sensors) {
    const { seq, ts, samples, ...fields } = s.example as Record<string, unknown>
    const [rows] = await services.influxql('ubiq_contract', `SELECT * FROM ${qualified(s.kind)}`)
    const got = (rows?.values ?? []).map((v) => Object.fromEntries(rows!.columns.map((c, j) => [c, v[j]]).filter(([, x]) => x !== null)))
    const want = s.batch
      ? (samples as number[][]).map((row, i) => ({ time: (ts as number) + i * 1000 / Number(fields.rate_hz), device_id: 'dev-1', hz: String(fields.rate_hz), seq, i, ...(i === 0 ? fields : {}), ...Object.fromEntries(s.batch!.columns.map((c, j) => [c.name, row[j]])) }))
      : [{ time: ts, device_id: 'dev-1', seq, ...fields }]
    t.same(got, want, `${s.kind}: stored as sent`)
    t.same(readingsFromSeries([{ ...rows!, name: s.kind }], 'pol-1'), [{ ...(decode(s.kind, s.example) as Reading), receivedAt: ts }], `${s.kind}: read back as the reading it was`)
  }
})
