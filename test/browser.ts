/** Debian's Chromium, headless, driven by playwright-core: never a downloaded browser. */
import { chromium, type Browser } from 'playwright-core'

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
