/**
 * A claims portfolio, as models are trained on it (`ubiq train`) and rating plans backtested on it
 * (`ubiq backtest`): per subject a CSV of policies with their features, exposure and claims, and,
 * for a simulated one, the truth (persona, expected claims per year). `ubiq sim portfolio` writes one.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { subjectNames, type Subject } from '../../ingest/index.ts'

const subjects = subjectNames

/** The reference portfolio shipped with ubiq (its README): the shipped models' training data, and what a running ubiq backtests. */
export const referencePortfolio = fileURLToPath(new URL('./portfolio/', import.meta.url))

/** One policy's subject, as a model is trained and checked on it. */
export interface PortfolioRow {
  policyId: string
  subject: Subject
  /** Where the policyholder lives (inner or outer city): not a rating attribute, kept to check fairness. */
  region: string
  /** The simulator's persona: the truth, for checking models, never a model input. */
  persona: string
  /** Features at the end of the observed span, as scoring computes them. */
  features: Record<string, number>
  /** Years of claims history. */
  years: number
  /** Exposure of that history: km driven (driving, from the observed km per day) or policy-years. */
  exposure: number
  /** The truth: expected claims per policy-year. */
  expectedPerYear: number
  /** Claims drawn over the history. */
  claims: number
}

/** Reads the portfolio's CSV files that are there. */
export function readPortfolio(dir: string): Partial<Record<Subject, PortfolioRow[]>> {
  const out: Partial<Record<Subject, PortfolioRow[]>> = {}
  for (const subject of subjects) {
    const file = join(dir, `${subject}.csv`)
    if (existsSync(file)) out[subject] = readPortfolioCsv(readFileSync(file, 'utf8'), subject, file)
  }
  if (Object.keys(out).length === 0) throw new Error(`no driving.csv, health.csv or home.csv in ${dir} (ubiq sim portfolio --out ${dir} writes them)`)
  return out
}

/** The rows of one subject as CSV: identity, truth and claims, then that subject's features. */
export function portfolioCsv(rows: readonly PortfolioRow[], subject: Subject): string {
  const mine = rows.filter((r) => r.subject === subject)
  const features = [...new Set(mine.flatMap((r) => Object.keys(r.features)))].sort()
  const head = ['policy_id', 'region', 'persona', 'years', 'exposure', 'expected_claims_per_year', 'claims', ...features]
  // Ids, regions and persona names are [A-Za-z0-9_-]: nothing to quote. A missing feature is empty.
  const lines = mine.map((r) => [r.policyId, r.region, r.persona, r.years, round(r.exposure), round(r.expectedPerYear), r.claims, ...features.map((f) => r.features[f] ?? '')].join(','))
  return [head.join(','), ...lines].join('\n') + '\n'
}

/** Rows back from `portfolioCsv`; throws with the line and column of anything malformed. */
export function readPortfolioCsv(text: string, subject: Subject, file: string): PortfolioRow[] {
  const [head, ...lines] = text.split(/\r?\n/).filter((l) => l.trim() !== '')
  if (!head) throw new Error(`${file}: empty`)
  const cols = head.split(',')
  const need = ['policy_id', 'years', 'exposure', 'claims']
  const missing = need.filter((c) => !cols.includes(c))
  if (missing.length) throw new Error(`${file}: no column ${missing.join(', ')}`)
  const fixed = new Set(['policy_id', 'region', 'persona', 'years', 'exposure', 'expected_claims_per_year', 'claims'])
  return lines.map((line, i) => {
    const cells = line.split(',')
    if (cells.length !== cols.length) throw new Error(`${file}:${i + 2}: ${cells.length} cells, the header has ${cols.length}`)
    const at = (c: string) => cells[cols.indexOf(c)]
    const num = (c: string, ok: (n: number) => boolean) => {
      const n = Number(at(c))
      if (at(c) === '' || !ok(n)) throw new Error(`${file}:${i + 2}: ${c} "${at(c)}" is not a valid number`)
      return n
    }
    const features: Record<string, number> = {}
    for (const [j, c] of cols.entries()) if (!fixed.has(c) && cells[j] !== '') features[c] = num(c, Number.isFinite)
    return {
      policyId: at('policy_id')!,
      subject,
      region: at('region') ?? '',
      persona: at('persona') ?? '',
      features,
      years: num('years', (n) => n > 0),
      exposure: num('exposure', (n) => n >= 0),
      expectedPerYear: cols.includes('expected_claims_per_year') ? num('expected_claims_per_year', (n) => n >= 0) : NaN,
      claims: num('claims', (n) => Number.isInteger(n) && n >= 0),
    }
  })
}

const round = (x: number) => Math.round(x * 1e6) / 1e6
