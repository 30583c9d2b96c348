/**
 * What ubiq writes under its data directory is its user's only (#20 item 10): positions, heart
 * rates, premiums and secrets are in there. Folders 0700, files 0600, after a pipeline has run.
 */
import t from 'tap'
import { readdirSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { makeFleet, runFleet } from '../edge-sim/index.ts'
import { choiceFile, defaultChoice, writeChoice } from '../scoring/index.ts'
import { firstMatch, startServices, startTestPipeline } from './harness.ts'

/** Every folder and file under `dir`, with its permission bits. */
function modes(dir: string): [string, number, boolean][] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).map((f) => {
    const st = statSync(join(dir, f))
    return [f, st.mode & 0o777, st.isDirectory()]
  })
}

t.test('the data directory and everything a pipeline run writes in it are private to ubiq\'s user', async (t) => {
  const services = await startServices(t)
  const fleet = makeFleet(1, 3)
  const pipeline = await startTestPipeline(t, services, fleet, 'ubiq_modes')
  // A trip ends, is scored and priced: the journal, the audit log and the token secret are written.
  const priced = firstMatch(pipeline.premiums$, () => true)
  const run = await runFleet({ mqttUrl: services.mqttUrl, fleet, startTs: Date.now() - 3600_000, speedup: Infinity, samples: 300 })
  await run.done
  await priced
  writeChoice(choiceFile(services.dataDir), defaultChoice()) // as `ubiq models promote` does
  await pipeline.stop()

  t.equal(statSync(services.dataDir).mode & 0o777, 0o700, 'the data directory is 0700')
  const written = modes(services.dataDir)
  t.ok(['audit.jsonl', 'token-secret', 'models.json'].every((name) => written.some(([f]) => f === name)) && written.some(([f, , isDir]) => f === 'journal' && isDir), 'the run wrote its files and the journal\'s folder (its segments go once InfluxDB confirms them)')
  const open = written.filter(([, mode, isDir]) => mode !== (isDir ? 0o700 : 0o600))
  t.same(open.map(([f, mode]) => `${relative('.', f)} ${mode.toString(8)}`), [], 'every folder is 0700 and every file 0600')
})
