/**
 * Progress of a long run on stderr: what is done so far, its rate, and the ETA from the fraction
 * done. One line rewritten in place at a terminal; a line every 10 s otherwise (logs, CI).
 */
export interface Progress {
  /** Stops reporting and prints the summary line. */
  done(summary: string): void
}

export interface Counts {
  /** Units done so far (the rate is of these), and what they are ("msg", "policies"). */
  done: number
  unit: string
  /** Of the whole run, 0–1. */
  fraction: number
  /** More to show, e.g. "1200 sent, 1180 acknowledged". */
  detail?: string
}

export function showProgress(what: string, counts: () => Counts): Progress {
  const tty = process.stderr.isTTY
  const started = Date.now()
  let last = { at: started, n: 0 }
  const line = () => {
    const now = Date.now()
    const { done: n, unit, fraction, detail } = counts()
    const rate = ((n - last.n) * 1000) / Math.max(1, now - last.at)
    last = { at: now, n }
    const eta = fraction > 0 ? `, ETA ${formatSeconds(((now - started) / 1000) * ((1 - fraction) / fraction))}` : ''
    return `${what}: ${(100 * fraction).toFixed(1)}%, ${detail ?? `${n} ${unit}`}, ${rate.toFixed(rate < 10 ? 1 : 0)} ${unit}/s${eta}`
  }
  const timer = setInterval(() => process.stderr.write(tty ? `\r${line()}\u001b[K` : `${line()}\n`), tty ? 1000 : 10_000)
  return {
    done(summary) {
      clearInterval(timer)
      process.stderr.write(`${tty ? '\r\u001b[K' : ''}${summary} in ${formatSeconds((Date.now() - started) / 1000)}\n`)
    },
  }
}

const formatSeconds = (s: number) => (s < 90 ? `${s.toFixed(0)} s` : s < 5400 ? `${(s / 60).toFixed(1)} min` : `${(s / 3600).toFixed(1)} h`)
