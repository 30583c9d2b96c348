/**
 * `ubiq sim portfolio` and `ubiq train` (issue #6): a simulated training portfolio, written as CSV,
 * and claim-frequency models fitted on it, written as ONNX files with their model cards.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { subjectNames, type Subject } from '../ingest/index.ts'
import { meetsGoals, portfolioCsv, readPortfolio, trainingSpecs, trainModel, type PortfolioRow, type TrainedModel } from '../scoring/index.ts'
import { runPortfolio, type PortfolioSpec } from './portfolio.ts'
import { showProgress } from './progress.ts'

const subjects = subjectNames
/** Where the shipped models are: a trained version never reuses one of their versions. */
const shippedModels = fileURLToPath(new URL('../scoring/models/', import.meta.url))

/** Simulates the portfolio and writes driving.csv, health.csv and home.csv to `dir`. */
export async function writePortfolio(spec: PortfolioSpec, dir: string): Promise<PortfolioRow[]> {
  const progress = showProgress('portfolio', () => ({ done, unit: 'policies', fraction: done / spec.policies }))
  let done = 0
  const rows = await runPortfolio(spec, (n) => (done = n))
  progress.done(`portfolio: ${spec.policies} policies simulated`)
  mkdirSync(dir, { recursive: true })
  for (const subject of subjects) writeFileSync(join(dir, `${subject}.csv`), portfolioCsv(rows, subject))
  return rows
}

/** Trains each subject's model on the portfolio in `from`, writes it to `out`; returns what it trained. */
export function train(from: string, out: string, version?: string): TrainedModel[] {
  const portfolio = readPortfolio(from)
  mkdirSync(out, { recursive: true })
  const trained: TrainedModel[] = []
  for (const [subject, rows] of Object.entries(portfolio) as [Subject, PortfolioRow[]][]) {
    const spec = trainingSpecs[subject]
    // A policy that never drove has no driving exposure: it can carry no driving claim.
    const usable = rows.filter((r) => r.exposure > 0).map((r) => ({ ...r, expectedPerYear: Number.isFinite(r.expectedPerYear) ? r.expectedPerYear : undefined }))
    const model = trainModel(spec, version ?? nextVersion(spec.name, [out, shippedModels]), usable, `${usable.length} policies of ${resolve(from, `${subject}.csv`)}${usable.length < rows.length ? ` (${rows.length - usable.length} without exposure left out)` : ''}`)
    writeFileSync(join(out, model.definition.file), model.onnx)
    writeFileSync(join(out, model.definition.card), model.card)
    trained.push(model)
  }
  return trained
}

/** What `ubiq train` prints: per model, its files, ranking and calibration against the goals. */
export function trainingReport(models: readonly TrainedModel[], out: string): { text: string; ok: boolean } {
  let ok = true
  const lines = models.flatMap((m) => {
    const q = m.quality
    const head = `${m.definition.name}@${m.definition.version}: ${m.trained} policies fitted, ${m.heldOut} held out → ${join(out, m.definition.file)} (card ${m.definition.card})`
    if (!q) return [head, '  no true frequencies in the portfolio: ranking and calibration not checked']
    const misses = meetsGoals(q)
    if (misses.length) ok = false
    return [
      head,
      `  Gini ${q.gini.toFixed(3)} of the truth's ${q.giniTruth.toFixed(3)}: ratio ${q.giniRatio.toFixed(3)} (goal ≥ 0.9)`,
      `  true / predicted claims per decile: ${q.deciles.map((d) => d.ratio.toFixed(2)).join(' ')} (goal 0.90–1.10)`,
      misses.length ? `  BELOW GOAL: ${misses.join('; ')}` : '  meets the goals',
    ]
  })
  return { text: lines.join('\n') + '\n', ok }
}

/** One above the highest integer version of `name` among the .onnx files in `dirs`. */
function nextVersion(name: string, dirs: readonly string[]): string {
  const versions = dirs.flatMap((d) => (existsSync(d) ? readdirSync(d) : []))
    .map((f) => f.match(new RegExp(`^${name}@(\\d+)\\.onnx$`))?.[1])
    .filter((v): v is string => v !== undefined)
    .map(Number)
  return String(Math.max(0, ...versions) + 1)
}
