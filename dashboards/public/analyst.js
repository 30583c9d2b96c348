/**
 * What the analyst pages share, served at /assets/analyst.js and imported by each page's own
 * module: the analyst's token, requests made with it, CSV downloads, uPlot charts, polling and the
 * formats of numbers and times. uPlot is the global /assets/uplot.js defines before the page runs.
 */
import { when } from '/assets/words.js'
import { subjects as catalogue } from '/assets/catalogue.js'

export const $ = (id) => document.getElementById(id)
export const el = (tag, props = {}, ...children) => { const e = Object.assign(document.createElement(tag), props); e.append(...children); return e }
export const subjects = Object.keys(catalogue)
export const colours = Object.fromEntries(subjects.map((s) => [s, catalogue[s].colour]))
export const palette = ['#1f6fb2', '#b3261e', '#177245', '#b58300', '#7b3fa0', '#00838f', '#c2185b', '#5d4037', '#546e7a', '#9e9d24']

// The token -------------------------------------------------------------------------------------

const TOKEN_KEY = 'ubiq-token'
const token = () => sessionStorage.getItem(TOKEN_KEY)

/**
 * Whether the page has an analyst's token. The token comes in the link's fragment (never sent to
 * the server), leaves the address bar and stays for this tab only, under the key every page reads
 * (the policyholder's too): the links between the pages need no token of their own. Without an
 * analyst's token the page says why; it should then load nothing.
 */
export function signIn() {
  const fromLink = new URLSearchParams(location.hash.slice(1)).get('token')
  if (fromLink) { sessionStorage.setItem(TOKEN_KEY, fromLink); history.replaceState(null, '', location.pathname + location.search) }
  const claims = (() => { try { return JSON.parse(atob(token().split('.')[1].replace(/-/g, '+').replace(/_/g, '/'))) } catch { return undefined } })()
  if (claims?.role === 'analyst') return true
  $('signin').classList.remove('hidden')
  $('status').textContent = claims ? 'not an analyst token' : 'no token'
  return false
}

/** What the server refused, with its status and message. */
export class ApiError extends Error { constructor(status, message) { super(message); this.status = status } }

/** GET with the token; a refusal throws an ApiError. */
export async function call(path) {
  const res = await fetch(path, { headers: { authorization: `Bearer ${token()}` } })
  if (!res.ok) throw new ApiError(res.status, (await res.json().catch(() => ({}))).message || res.statusText)
  return res
}
export const api = async (path) => (await call(path)).json()

// Status and polling ----------------------------------------------------------------------------

/** The status line: its text, and with `state` ('live' or 'down') its colour. */
export function showStatus(text, state) {
  $('status').textContent = text
  if (state) $('status').className = state
}

/** Counts the loads drawn in body[data-loaded], which the browser tests wait for. */
export const markLoaded = () => { document.body.dataset.loaded = String(Number(document.body.dataset.loaded || 0) + 1) }

export const POLL_MS = 5000

/**
 * Loads the page's data with `get`, draws it with `draw`, and does so again every 5 s. Returns
 * the load, for a picker to start one at once: an older load still under way is then dropped. A
 * token the server refuses stops the polling, as asking again would not help.
 */
export function poll(get, draw) {
  let timer, generation = 0
  async function load() {
    clearTimeout(timer)
    const mine = ++generation
    try {
      const data = await get()
      if (mine !== generation) return
      draw(data)
      showStatus(`updated ${when(Date.now(), 'UTC')}, every ${POLL_MS / 1000} s`, 'live')
      markLoaded()
    } catch (err) {
      if (mine !== generation) return
      showStatus(err.message, 'down')
      if (err.status === 401 || err.status === 403) return
    }
    timer = setTimeout(load, POLL_MS)
  }
  return load
}

// CSV -------------------------------------------------------------------------------------------

/** Hands `blob` to the browser as a file named `name`. */
export function save(blob, name) {
  const url = URL.createObjectURL(blob)
  el('a', { href: url, download: name }).click()
  setTimeout(() => URL.revokeObjectURL(url), 1000)
}

/** The server's CSV at `path`, fetched with the token, saved under the file name the server gives (else `name`). */
export async function downloadCsv(path, name) {
  const res = await call(path)
  save(await res.blob(), /filename="([^"]+)"/.exec(res.headers.get('content-disposition') || '')?.[1] || name)
}

/** Each CSV button (button.csv) runs `download(its data-csv, the button)`; what fails shows in the status line. */
export function csvButtons(download) {
  document.querySelectorAll('button.csv').forEach((b) => (b.onclick = () => download(b.dataset.csv, b).catch((err) => showStatus(err.message))))
}

// Charts ----------------------------------------------------------------------------------------

/** The page's uPlot charts by the id of the element each is drawn in. */
export const charts = {}

/**
 * Draws `data` in the chart of element `id`: made once, then given new data, and made anew when
 * `key` changes (by default its series' labels: a new event type, a new model). A chart keeps the
 * option functions it was made with, so what they read lives outside the options.
 */
export function chart(id, opts, data, key = opts.series.map((s) => s.label).join('|')) {
  const box = $(id), old = charts[id]
  if (old && old.key === key) return old.plot.setData(data)
  old?.plot.destroy()
  const plot = new uPlot({ width: box.clientWidth, ...(opts.tzDate ? inUtc(opts) : opts) }, data, box)
  // A series with `legend: false` (a band's edge) is drawn but not listed.
  const rows = plot.root.querySelectorAll('.u-legend .u-series')
  opts.series.forEach((s, i) => { if (s.legend === false) rows[i].style.display = 'none' })
  charts[id] = { key, plot }
}

export function unchart(id) { charts[id]?.plot.destroy(); delete charts[id] }

addEventListener('resize', () => Object.entries(charts).forEach(([id, c]) => c.plot.setSize({ width: $(id).clientWidth, height: c.plot.height })))

/** Time axes in UTC, as the tables. */
export const utc = (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC')

/**
 * A time chart's options in the pages' one format (#23: uPlot's own axes were 12-hour beside
 * 24-hour tables, and said no zone): the x axis 24-hour and labelled UTC, the date under the first
 * tick and each midnight; the cursor's time as "2026-12-02 06:09 UTC".
 */
function inUtc(opts) {
  const [x = {}, ...ys] = opts.axes ?? [{}, {}]
  const values = (_u, splits, _i, _space, incr) => splits.map((ts, i) => {
    const iso = new Date(ts * 1000).toISOString(), day = iso.slice(0, 10), hm = iso.slice(11, 16)
    if (incr >= 86400) return day
    return i === 0 || hm === '00:00' ? `${hm}\n${day}` : hm
  })
  const [t = {}, ...series] = opts.series
  return { ...opts, axes: [{ label: 'time (UTC)', values, ...x }, ...ys], series: [{ value: (_u, ts) => (ts === null ? '–' : when(ts * 1000, 'UTC')), ...t }, ...series] }
}

// Tables and formats ----------------------------------------------------------------------------

/** A table row: a Node as it is, an object as a cell's properties, anything else as a cell's text. */
export const row = (cells, props = {}) => el('tr', props, ...cells.map((c) => (c instanceof Node ? c : el('td', typeof c === 'object' ? c : { textContent: String(c) }))))
/** A table's only row when it has nothing to show, saying why. */
export const empty = (cols, text) => el('tr', {}, el('td', { className: 'muted', colSpan: cols, textContent: text }))

/** A number with `digits` decimals, '–' for none (JSON carries NaN and missing values as null). */
export const num = (x, digits) => (x === null ? '–' : x.toFixed(digits))
/** The same as a uPlot series' legend value. */
export const legendValue = (digits) => (_u, x) => num(x, digits)
/** An ISO 8601 time (UTC) to the minute. */
export const minute = (s) => `${s.slice(0, 10)} ${s.slice(11, 16)}`
/** The start of the period picked in #period (days back from now). */
export const since = () => new Date(Date.now() - Number($('period').value) * 86400_000).toISOString()
