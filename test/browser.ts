/** Debian's Chromium, headless, driven by playwright-core: never a downloaded browser. */
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { chromium, type Browser, type Page } from 'playwright-core'

/** Launches Chromium; it closes at the test's teardown. */
export async function launchBrowser(t: { teardown(fn: () => unknown): void }): Promise<Browser> {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    // This machine has no network beyond loopback: without these, Chromium keeps trying.
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
  t.teardown(() => browser.close())
  return browser
}

/**
 * Chromium and a first page; `newPage` opens more. Every page is as large as the screenshots, and
 * the script errors of all of them go to `errors`, which a test expects to stay empty.
 */
export async function openBrowser(t: { teardown(fn: () => unknown): void }): Promise<{ browser: Browser; page: Page; newPage(): Promise<Page>; errors: string[] }> {
  const browser = await launchBrowser(t)
  const errors: string[] = []
  const newPage = async () => {
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } })
    page.on('pageerror', (err) => errors.push(err.message))
    return page
  }
  return { browser, page: await newPage(), newPage, errors }
}

/** The pixels painted on the uPlot chart in element #id: none, and the chart was not drawn. */
export const painted = (page: Page, id: string) => page.locator(`#${id} .uplot canvas`).evaluate((c: HTMLCanvasElement) => {
  const { data } = c.getContext('2d')!.getImageData(0, 0, c.width, c.height)
  let n = 0
  for (let i = 3; i < data.length; i += 4) if (data[i]! > 0) n++
  return n
})

/** The text of each cell of each row in the body of table #id. */
export const cells = (page: Page, id: string) => page.locator(`#${id} tbody tr`).evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((c) => c.textContent)))

/** Waits until table #id shows `rows`: a picker changed, and the page loads again. */
export const untilCells = (page: Page, id: string, rows: readonly (readonly (string | null)[])[]) =>
  page.waitForFunction(([id, rows]) => JSON.stringify([...document.querySelectorAll(`#${id} tbody tr`)].map((r) => [...r.querySelectorAll('td')].map((c) => c.textContent))) === rows, [id, JSON.stringify(rows)] as const)

/** Clicks the page's CSV button for `what` (button[data-csv]): the name and text (after its byte order mark) of the file it saves. */
export async function downloadCsv(page: Page, what: string): Promise<{ name: string; text: string }> {
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator(`button[data-csv="${what}"]`).click()])
  const text = readFileSync(await download.path(), 'utf8')
  // Every CSV starts with a byte order mark (Excel reads UTF-8 by it); fetch's text(), which tests compare with, drops it.
  if (!text.startsWith('\ufeff')) throw new Error(`${download.suggestedFilename()}: no byte order mark`)
  return { name: download.suggestedFilename(), text: text.slice(1) }
}

let shots: string | undefined
/** A picture of the whole page, `name`.png: UBIQ_SCREENSHOTS=docs/img refreshes the README's; otherwise they go to a temp folder. */
export async function screenshot(page: Page, name: string): Promise<void> {
  shots ??= process.env.UBIQ_SCREENSHOTS ?? mkdtempSync(join(tmpdir(), 'ubiq-shots-'))
  mkdirSync(shots, { recursive: true })
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true })
}
