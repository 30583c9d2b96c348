import t from 'tap'
import { readFileSync } from 'node:fs'
import { codes } from '../ingest/index.ts'
import { ConfigSchema, readConfig, withConfigTable } from './config.ts'

t.test("the README's configuration table is the schema's (npm run docs)", async (t) => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
  t.equal(readme, withConfigTable(readme))
  for (const name of Object.keys(ConfigSchema.properties)) t.match(readme, `| \`${name}\` |`, name)
})

t.test('the limits ingest and scoring work within are configuration, with defaults (#22 item 5)', async (t) => {
  t.match(readConfig({}), { MAX_PAYLOAD_BYTES: 65536, MAX_FUTURE_SKEW_S: 300, BACKPRESSURE_STOP_LINES: 100_000, BACKPRESSURE_RESUME_LINES: 50_000, SCORE_BATCH_MAX: 64, SCORE_BATCH_WAIT_MS: 20, POLICY_IDLE_H: 0.5 })
  t.match(readConfig({ MAX_PAYLOAD_BYTES: '131072', MAX_FUTURE_SKEW_S: '60' }), { MAX_PAYLOAD_BYTES: 131072, MAX_FUTURE_SKEW_S: 60 })
  t.throws(() => readConfig({ BACKPRESSURE_STOP_LINES: '10', BACKPRESSURE_RESUME_LINES: '10' }), codes.UBIQ_CONFIG_INVALID)
  t.throws(() => readConfig({ MAX_PAYLOAD_BYTES: '12' }), /MAX_PAYLOAD_BYTES/)
})
