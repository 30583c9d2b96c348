/**
 * What the tests of the analyst's pages and routes share (test/browser.ts has the browser's part):
 * reading CSV, and checking that a route opens to analysts only, names what is wrong with a bad
 * query and is in the OpenAPI document; and axe-core's accessibility checks on a page.
 */
import { createRequire } from 'node:module'
import type { Page } from 'playwright-core'
import type { Test } from 'tap'

/** RFC 4180, quoted cells included (reasons and evidence have commas and quotes); every line ends in CRLF. A byte order mark is left out. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [[]]
  let cell = '', quoted = false
  for (let i = text.startsWith('\ufeff') ? 1 : 0; i < text.length; i++) {
    const c = text[i]!
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') (cell += '"'), i++
      else if (c === '"') quoted = false
      else cell += c
    } else if (c === '"') quoted = true
    else if (c === ',') rows.at(-1)!.push(cell), (cell = '')
    else if (c === '\r' && text[i + 1] === '\n') rows.at(-1)!.push(cell), (cell = ''), rows.push([]), i++
    else cell += c
  }
  rows.pop() // after the last CRLF
  return rows
}

const bearer = (token: string) => ({ headers: { authorization: `Bearer ${token}` } })

/**
 * The CSV the server at `url` answers at `path` to `token`, as rows: 200, text/csv, an attachment
 * named `name`.csv (without `name`: a plain file name).
 */
export async function fetchCsv(t: Test, url: string, token: string, path: string, name?: string): Promise<string[][]> {
  const res = await fetch(`${url}${path}`, bearer(token))
  t.equal(res.status, 200, path)
  t.match(res.headers.get('content-type'), /^text\/csv/)
  if (name === undefined) t.match(res.headers.get('content-disposition'), /^attachment; filename="[a-z0-9-]+\.csv"$/)
  else t.equal(res.headers.get('content-disposition'), `attachment; filename="${name}.csv"`)
  // fetch's text() drops a leading byte order mark: the bytes say whether there is one (Excel needs it for UTF-8).
  const bytes = new Uint8Array(await res.arrayBuffer())
  t.same([...bytes.slice(0, 3)], [0xef, 0xbb, 0xbf], `${path}: starts with a UTF-8 byte order mark`)
  return parseCsv(new TextDecoder().decode(bytes))
}

/** Each of `paths` answers 401 without a token (asking for a bearer token) and 403 to `policyholder`'s. */
export async function analystsOnly(t: Test, url: string, paths: readonly string[], policyholder: string): Promise<void> {
  for (const path of paths) {
    const anonymous = await fetch(`${url}${path}`)
    t.equal(anonymous.status, 401, `${path} without a token: 401`)
    t.match(anonymous.headers.get('www-authenticate'), /^Bearer/)
    const forbidden = await fetch(`${url}${path}`, bearer(policyholder))
    t.equal(forbidden.status, 403, `${path} with a policyholder's token: 403`)
    t.match(await forbidden.json(), { error: 'forbidden', message: /analyst/ })
  }
}

/** Each query of `cases`, asked with `token`, answers `status` with `error` and a message that matches. */
export async function refused(t: Test, url: string, token: string, cases: readonly (readonly [string, RegExp])[], status = 400, error = 'bad_request'): Promise<void> {
  for (const [path, message] of cases) {
    const res = await fetch(`${url}${path}`, bearer(token))
    t.equal(res.status, status, `${path}: ${status}`)
    t.match(await res.json(), { error, message }, path)
  }
}

/** The server's OpenAPI document: for a path, its GET route's description and parameter names. */
export async function openApi(url: string): Promise<(path: string) => { description?: string; parameters: string[] }> {
  const doc = (await (await fetch(`${url}/api/v1/openapi.json`)).json()) as { paths: Record<string, { get?: { description?: string; parameters?: { name: string }[] } }> }
  return (path) => ({ description: doc.paths[path]?.get?.description, parameters: doc.paths[path]?.get?.parameters?.map((p) => p.name) ?? [] })
}

const axeSource = createRequire(import.meta.url).resolve('axe-core/axe.min.js')
/** axe-core's WCAG 2.1 A and AA checks on the page as it is: the serious and critical violations, each with where. */
export async function accessibilityProblems(page: Page): Promise<string[]> {
  await page.addScriptTag({ path: axeSource })
  const { violations } = await page.evaluate(() => (window as unknown as { axe: { run(o: object): Promise<{ violations: { id: string; impact: string; nodes: { target: string[] }[] }[] }> } }).axe.run({ runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] }))
  return violations.filter((v) => v.impact === 'serious' || v.impact === 'critical').map((v) => `${v.id}: ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`)
}
