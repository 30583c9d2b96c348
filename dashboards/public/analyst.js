/**
 * What the analyst pages share, served at /assets/analyst.js and imported by each page's own
 * module: the analyst's token, requests made with it, CSV downloads, uPlot charts, polling, the
 * time controls (period, zoom, zone) and the formats of numbers and times. uPlot is the global /assets/uplot.js defines before the page runs.
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
 * Loads the page's data with `get`, draws it with `draw`, and does so again every 5 s: every page
 * is live (#23). `describe(data)`, when given, says what the page shows, before the time of the
 * update in the status line. Returns the load, for a picker to start one at once: an older load
 * still under way is then dropped. A token the server refuses stops the polling, as asking again
 * would not help.
 */
export function poll(get, draw, describe = () => '') {
  let timer, generation = 0
  async function load() {
    clearTimeout(timer)
    const mine = ++generation
    try {
      const data = await get()
      if (mine !== generation) return
      draw(data)
      showStatus(`${describe(data)}updated ${when(Date.now(), zone())}, every ${POLL_MS / 1000} s`, 'live')
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

// Time: the period looked at, and the zone every time is written in ----------------------------

const MIN = 60_000, HOUR = 3600_000, DAY = 86400_000
/** The periods the picker offers, up to the longest a page reads: value, words, length. */
const PERIODS = [['15m', 'last 15 min', 15 * MIN], ['1h', 'last hour', HOUR], ['6h', 'last 6 h', 6 * HOUR], ['1d', 'last 24 h', DAY], ['7d', 'last 7 days', 7 * DAY], ['30d', 'last 30 days', 30 * DAY], ['1y', 'last year', 365 * DAY]]
const DEFAULT_PERIOD = '1d'

/**
 * The analyst's choices live in the page's address (?period=1h&zone=local, or ?from=…&to=… after
 * a zoom): a copied link shows what its sender saw, and the links between the pages carry them.
 */
const settings = new URLSearchParams(location.search)
function keepSettings() {
  const search = settings.size ? `?${settings}` : ''
  history.replaceState(null, '', location.pathname + search + location.hash)
  document.querySelectorAll('nav a').forEach((a) => a.setAttribute('href', a.getAttribute('href').split('?')[0] + search))
}

/** The zone times are written in: 'UTC', or undefined for the browser's own (words.js' `when`). */
export const zone = () => (settings.get('zone') === 'local' ? undefined : 'UTC')
/** The zone's short name, as every time names it ("UTC", "CET", "GMT+5:30"). */
export const zoneName = () => when(Date.now(), zone()).split(' ')[2]
/** A time (ms or ISO 8601) to the minute in the chosen zone, without its name: table cells, under a header that names it. */
export const minute = (t) => when(typeof t === 'string' ? Date.parse(t) : t, zone()).slice(0, 16)

let changed = () => {}
let longest = 366 * DAY

/**
 * The period the page shows, ms: the zoomed one, else the picked length until now (`live`: its end
 * moves with every load). With "fit to the data", the longest the page reads, `fit` set: the page
 * then narrows it to its data.
 */
export function period() {
  const from = Date.parse(settings.get('from')), to = Date.parse(settings.get('to'))
  if (from < to) return { from, to, live: false }
  const now = Date.now(), value = picked()
  return { from: now - (value === 'fit' ? longest : PERIODS.find(([v]) => v === value)[2]), to: now, live: true, fit: value === 'fit' }
}
/** The period picked (?period) if the page offers it; else the default, or the page's longest for a longer one (a year's link on the drill-down). */
function picked() {
  const value = settings.get('period') || DEFAULT_PERIOD, known = PERIODS.find(([v]) => v === value)
  if (value === 'fit') return value
  if (!known) return DEFAULT_PERIOD
  return known[2] <= longest ? value : PERIODS.filter(([, , ms]) => ms <= longest).at(-1)[0]
}
/** The period as a query's from and to (ISO 8601). */
export const periodQuery = (p = period()) => ({ from: new Date(p.from).toISOString(), to: new Date(p.to).toISOString() })

/** Bucket lengths the server offers, shortest first. */
const INTERVALS = [['1m', MIN], ['10m', 10 * MIN], ['1h', HOUR], ['1d', DAY]]
/** The bucket length picked in #interval, or with 'auto' the shortest that cuts the period into at most 300 buckets. */
export function interval(p = period()) {
  const picked = $('interval').value
  return picked !== 'auto' ? picked : (INTERVALS.find(([, ms]) => (p.to - p.from) / ms <= 300) ?? INTERVALS.at(-1))[0]
}

/** Zooms every time chart to [from, to) ms, as a drag across one does: the page loads that period. */
export function zoomTo(from, to) {
  settings.set('from', new Date(from).toISOString())
  settings.set('to', new Date(to).toISOString())
  showSettings()
  changed()
}

/** The pickers show what the address says; a zoom is one more choice of period. */
function showSettings() {
  keepSettings()
  const select = $('period')
  if (select) {
    select.querySelector('option[value="zoom"]')?.remove()
    const p = period()
    if (!p.live) select.add(new Option(`${minute(p.from)} – ${minute(p.to)}`, 'zoom'))
    select.value = p.live ? picked() : 'zoom'
  }
  $('zone').value = zone() ? 'UTC' : 'local'
  document.querySelectorAll('.zone').forEach((e) => (e.textContent = zoneName()))
}

/**
 * Puts the time controls in the header's #time: a period from 15 minutes to `maxMs` (a year by
 * default) and "fit to the data" (unless `periods` is false), and UTC or local time; `onChange`
 * runs after each change, a zoom included. Elements of class `zone` show the zone's name.
 */
export function timeControls(onChange, { maxMs = 366 * DAY, periods = true } = {}) {
  longest = maxMs
  changed = () => { Object.values(charts).forEach((c) => (c.key = '')); onChange() } // times and zone: every chart anew
  const local = Intl.DateTimeFormat().resolvedOptions().timeZone
  const zoneSelect = el('select', { id: 'zone' }, new Option('UTC', 'UTC'), new Option(`local (${local})`, 'local'))
  zoneSelect.onchange = () => {
    if (zoneSelect.value === 'local') settings.set('zone', 'local')
    else settings.delete('zone')
    showSettings()
    changed()
  }
  const controls = [el('label', {}, 'Times ', zoneSelect)]
  if (periods) {
    const select = el('select', { id: 'period' }, ...PERIODS.filter(([, , ms]) => ms <= maxMs).map(([v, words]) => new Option(words, v)), new Option('fit to the data', 'fit'))
    select.onchange = () => {
      if (select.value === 'zoom') return
      settings.delete('from')
      settings.delete('to')
      settings.set('period', select.value)
      showSettings()
      changed()
    }
    controls.unshift(el('label', { title: 'Drag across a time chart to zoom in' }, 'Period ', select), ' ')
  }
  $('time').replaceChildren(...controls)
  showSettings()
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
 * `key` changes (by default its series' labels: a new event type, a new model) or the zone does. A
 * chart keeps the option functions it was made with, so what they read lives outside the options.
 * With `time: true`, x is time (s) in the pages' one format, and a drag across the chart zooms.
 * The x range drawn is in the box's data-x ("from,to", s), for the browser tests.
 */
export function chart(id, opts, data, key = opts.series.map((s) => s.label).join('|')) {
  const box = $(id), old = charts[id]
  if (old && old.key === key) return old.plot.setData(data)
  old?.plot.destroy()
  const shown = { hooks: { draw: [(u) => (box.dataset.x = `${u.scales.x.min},${u.scales.x.max}`)] } }
  const all = { ...opts, plugins: [...(opts.plugins ?? []), shown] }
  const plot = new uPlot({ width: box.clientWidth, ...(opts.time ? timeChart(all) : all) }, data, box)
  // A series with `legend: false` (a band's edge) is drawn but not listed.
  const rows = plot.root.querySelectorAll('.u-legend .u-series')
  opts.series.forEach((s, i) => { if (s.legend === false) rows[i].style.display = 'none' })
  charts[id] = { key, plot }
}

export function unchart(id) { charts[id]?.plot.destroy(); delete charts[id] }

addEventListener('resize', () => Object.entries(charts).forEach(([id, c]) => c.plot.setSize({ width: $(id).clientWidth, height: c.plot.height })))

/**
 * A time chart's options in the pages' one format (#23: uPlot's own axes were 12-hour beside
 * 24-hour tables, and said no zone): the x axis 24-hour in the chosen zone and labelled with it,
 * the date under the first tick and each midnight; the cursor's time as "2026-12-02 06:09 UTC".
 * A drag across the chart zooms every chart of the page to it (the page loads that period); the
 * period picker goes back.
 */
function timeChart(opts) {
  const [x = {}, ...ys] = opts.axes ?? [{}, {}]
  const values = (_u, splits, _i, _space, incr) => splits.map((ts, i) => {
    const [day, hm] = when(ts * 1000, zone()).split(' ')
    if (incr >= 86400) return day
    return i === 0 || hm === '00:00' ? `${hm}\n${day}` : hm
  })
  const [t = {}, ...series] = opts.series
  const zoom = { hooks: { setSelect: [(u) => {
    if (u.select.width < 5) return // a click, not a drag
    const [from, to] = [u.select.left, u.select.left + u.select.width].map((px) => u.posToVal(px, 'x') * 1000)
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false)
    zoomTo(from, to)
  }] } }
  return {
    ...opts,
    tzDate: zone() ? (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC') : (ts) => new Date(ts * 1e3),
    // A page without a period to pick (ingest: the last 15 minutes) has nothing to zoom.
    ...($('period') ? { cursor: { ...opts.cursor, drag: { x: true, y: false, setScale: false } }, plugins: [...opts.plugins, zoom] } : {}),
    // Ticks at least 80 px apart: a date under a tick needs the room, on a phone too.
    axes: [{ label: `time (${zoneName()})`, values, space: 80, ...x }, ...ys],
    series: [{ value: (_u, ts) => (ts === null ? '–' : when(ts * 1000, zone())), ...t }, ...series],
  }
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
