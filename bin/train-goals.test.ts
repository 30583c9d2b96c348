/**
 * The quality goals of issue #6, held by a test: `ubiq train` on the reference portfolio
 * (scoring/models/portfolio, see its README) must meet them for every subject, and fails when a model does
 * not. The portfolio is checked to be what today's simulator and scoring code make, so a change
 * to either cannot pass against stale data.
 */
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeCity, makePolicies } from '../edge-sim/index.ts'
import { simulatePortfolio } from './portfolio.ts'
import { portfolioCsv, referencePortfolio } from '../scoring/index.ts'

const ubiq = fileURLToPath(new URL('./ubiq.js', import.meta.url))
const reference = referencePortfolio
const subjects = ['driving', 'health', 'home'] as const
const run = (args: string[]) => spawnSync(process.execPath, [ubiq, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH } })
const dir = mkdtempSync(join(tmpdir(), 'ubiq-goals-'))

t.test('the reference portfolio is what the simulator and scoring make today', async (t) => {
  // As `ubiq sim portfolio --policies 600 --driving-days 28` with its defaults.
  const spec = { startTs: Date.UTC(2026, 0, 5), days: { driving: 28, health: 90, home: 90 }, years: 100, seed: 1, imuHz: 10 }
  const city = makeCity({ seed: 1 })
  const rows = [...simulatePortfolio(city, makePolicies(city, 2, { seed: 1 }), spec)]
  for (const subject of subjects) {
    const mine = portfolioCsv(rows, subject).trim().split('\n')
    const stored = readFileSync(join(reference, `${subject}.csv`), 'utf8').split('\n')
    const cells = (lines: string[], i: number) => Object.fromEntries(lines[0]!.split(',').map((c, j) => [c, lines[i]!.split(',')[j]]).filter(([, v]) => v !== ''))
    for (const i of [1, 2]) t.same(cells(mine, i), cells(stored, i), `${subject} row ${i}: regenerate scoring/models/portfolio if the simulator or scoring changed on purpose`)
  }
})

t.test('ubiq train meets the goals on it for every subject', async (t) => {
  const r = run(['train', '--portfolio', reference, '--out', join(dir, 'models'), '--version', 'goals'])
  t.equal(r.status, 0, `exit 0: every model meets the goals\n${r.stdout}${r.stderr}`)
  for (const subject of subjects) {
    const block = r.stdout.split(/\n(?=\S)/).find((b) => b.startsWith(`${subject}-frequency@goals`)) ?? ''
    const ratio = Number(/ratio (-?[\d.]+)/.exec(block)?.[1])
    const deciles = /per decile: ([\d. ]+)/.exec(block)?.[1]?.trim().split(' ').map(Number) ?? []
    t.ok(ratio >= 0.9, `${subject}: Gini ratio ${ratio} ≥ 0.9`)
    t.equal(deciles.length, 10, `${subject}: ten deciles`)
    t.ok(deciles.every((d) => Math.abs(d - 1) <= 0.1), `${subject}: every decile within 1 ± 0.1: ${deciles.join(' ')}`)
    t.match(block, /meets the goals/)
  }
})

t.test('and fails when a model misses them', async (t) => {
  // The same policies with their true frequencies shuffled: the fit (from the claims) is
  // unchanged, but it no longer ranks the truth.
  const shuffled = join(dir, 'shuffled')
  mkdirSync(shuffled)
  const lines = readFileSync(join(reference, 'home.csv'), 'utf8').trim().split('\n')
  const truth = lines[0]!.split(',').indexOf('expected_claims_per_year')
  const cells = lines.slice(1).map((l) => l.split(','))
  const values = cells.map((c) => c[truth]!)
  cells.forEach((c, i) => (c[truth] = values[(i * 7919) % values.length]!))
  writeFileSync(join(shuffled, 'home.csv'), [lines[0], ...cells.map((c) => c.join(','))].join('\n') + '\n')
  const r = run(['train', '--portfolio', shuffled, '--out', join(dir, 'shuffled-models'), '--version', 'bad'])
  t.equal(r.status, 1, 'exit 1')
  t.match(r.stdout, /home-frequency@bad[\s\S]*BELOW GOAL: Gini ratio -?[\d.]+ < 0\.9/)
})
