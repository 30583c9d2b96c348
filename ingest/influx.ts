/**
 * InfluxDB, the record: writes go through @influxdata/influxdb-client (its batching and retries),
 * reads are InfluxQL over `/query`.
 *
 * The v1 write API (`/write?db=&rp=`: all that InfluxDB 1.6/1.7, and so Debian's package, speak;
 * 1.8+ too) through a transport wrapper, so batching and retry stay the library's. Each
 * measurement is written to the retention policy it is declared in (retention.ts, issue #21),
 * which connectInflux creates, or alters when its duration changed, at start. There is no v2
 * API (`/api/v2/write`, buckets) any more: a 2.x or 3.x bucket has one retention for everything
 * in it, so positions would be kept as long as premiums; bin/config.ts refuses INFLUX_API=v2.
 */
import { HttpError, InfluxDB, setLogger, type Transport, type WriteApi, type WriteOptions } from '@influxdata/influxdb-client'
import { resolveRetention, retentionOf, type RetentionPolicy, type RetentionPolicyName } from './retention.ts'
import { within } from './within.ts'
import { influxFleet } from './partitions.ts'
import { codes } from './errors.ts'

export interface InfluxConfig {
  api: 'v1'
  /** InfluxDB's URL; or several, each holding the points of a partition of the policies (partitions.ts). */
  url: string | readonly string[]
  database: string
  username?: string
  password?: string
  /** Days a retention policy keeps its points, where not as declared (e.g. POSITION_RETENTION_DAYS for raw_positions); 0: for ever. */
  retentionDays?: Partial<Record<RetentionPolicyName, number>>
}

/** One InfluxQL result series. */
export interface Series {
  name: string
  tags?: Record<string, string>
  columns: string[]
  values: unknown[][]
}

/** A line InfluxDB refused for good, and why. */
export interface Refusal {
  line: string
  /** InfluxDB's own message (it may quote the line: keep it where the line is, not in logs). */
  reason: string
  /** The kind of refusal, for counters and logs (refusalKind). */
  kind: RefusalKind
}

/** What kind of line InfluxDB refused: a field of another type than stored, a time outside the retention policy, a line it cannot parse. */
export type RefusalKind = 'field_type_conflict' | 'beyond_retention' | 'unparsable' | 'other'

/** The kind of an InfluxDB write refusal, from its message. */
export function refusalKind(reason: string): RefusalKind {
  if (/field type conflict/i.test(reason)) return 'field_type_conflict'
  if (/beyond retention/i.test(reason)) return 'beyond_retention'
  if (/unable to parse|bad timestamp|invalid/i.test(reason)) return 'unparsable'
  return 'other'
}

/** The store every stage writes through. */
export interface Influx {
  /** Queues line-protocol lines (ms precision), each to its measurement's retention policy; the client flushes in batches. */
  write(lines: string[]): void
  /**
   * Calls `listener` with the lines InfluxDB refused for good. A batch InfluxDB refuses (HTTP
   * 400, 413 or 422), wholly or in part, is split in halves until each refused line stands
   * alone: the other lines are written and confirmed (onWritten), the refused ones reported here
   * and never retried.
   */
  onRefused(listener: (refused: readonly Refusal[]) => void): void
  /**
   * Runs InfluxQL against the configured database (measurements named with `qualified`); POST for
   * statements that change it (DROP SERIES). With several InfluxDBs, against every one, their
   * series one after the other: a series key (a time bucket of an aggregate) may come once from
   * each, and its asker adds them up (partitions.ts). A question about one policy asks `of` it.
   */
  query(q: string, method?: 'GET' | 'POST'): Promise<Series[]>
  /** The InfluxDB that holds `policyId`'s points, and its devices' (this one, when there is one). */
  of(policyId: string): Influx
  /**
   * The oldest time, ms, a point of `measurement` written now is kept from: InfluxDB refuses an
   * older one (points beyond its retention policy). -Infinity for a policy that keeps for ever.
   */
  oldestKept(measurement: string, now?: number): number
  /** Writes everything queued so far. */
  flush(): Promise<void>
  /**
   * Flushes and stops. Waits at most `CLOSE_WAIT_MS` for InfluxDB (it may be down or slow): what it
   * has not confirmed by then stays in the ingest journal for the next start.
   */
  close(): Promise<void>
}

/**
 * `influx`, leaving out of its writes each line older than its measurement's retention, reported
 * to `onExpired`. A late upload's trip, events and score (#21) are computed and published, but
 * InfluxDB would refuse their lines (points beyond retention policy), and ingest would quarantine
 * that refusal as a fault (the fuzz harness sent a reading dated 1970, and its event was).
 */
export function withoutExpired(influx: Influx, onExpired: (measurement: string) => void): Influx {
  return {
    ...influx,
    write(lines) {
      const now = Date.now()
      influx.write(lines.filter((line) => {
        const measurement = line.slice(0, line.search(/[, ]/))
        if (Number(line.slice(line.lastIndexOf(' ') + 1)) >= influx.oldestKept(measurement, now)) return true
        onExpired(measurement)
        return false
      }))
    },
  }
}

/** How long a query may wait for InfluxDB's answer, ms; then it fails (code INFLUX_TIMEOUT). */
const QUERY_TIMEOUT_MS = 30_000

/**
 * Queries sent to InfluxDB at once; the rest wait their turn (FIFO). Each device's and policy's
 * first reading makes scoring read its state back (2–3 queries): a fleet arriving at a few hundred
 * devices a second, unbounded, kept 37,844 queries in InfluxDB at once (a goroutine and buffers
 * each), which took it past 8 GB of RSS in the 100k memory phase of bench:ingest (#25 item 4).
 */
export const QUERIES_IN_FLIGHT = 4

/** How long close() waits for InfluxDB to confirm what is queued, ms (README "Durability"). */
const CLOSE_WAIT_MS = 10_000

/**
 * Write batching and retry (DESIGN.md: the client's default of one flush a minute is far too slow;
 * a batch goes at 5,000 lines or after 200 ms, whichever comes first, which bounds store latency).
 * Retries go on for a day: ingest stops acknowledging messages long before the retry buffer
 * fills (see journal.ts), so a long InfluxDB outage stalls ingest instead of dropping data.
 */
const writeOptions: Partial<WriteOptions> = {
  batchSize: 5000,
  flushInterval: 200,
  maxBufferLines: 1_000_000,
  maxRetries: 100_000,
  maxRetryTime: 24 * 3600_000,
  minRetryDelay: 500,
  maxRetryDelay: 5000,
}

/** What the store tells its owner about writes. */
export interface InfluxHooks {
  /** A batch failed; the client retries it. Gets a summary, never the lines or server's message (it quotes them). */
  onWriteError?(summary: string): void
  /** InfluxDB confirmed these lines. */
  onWritten?(lines: string[]): void
  /** A retention policy was created, or altered because its declared duration changed (hours, 0: for ever). */
  onRetentionChange?(change: { policy: RetentionPolicyName; fromHours?: number; toHours: number }): void
  /** With several InfluxDBs: the policy of a device (the registry), whose InfluxDB stores the device's readings. */
  policyOf?(deviceId: string): string | undefined
}

/** The InfluxDB URLs of `cfg`, one or several. */
export const influxUrls = (cfg: InfluxConfig): readonly string[] => (typeof cfg.url === 'string' ? [cfg.url] : cfg.url)

/**
 * Connects to InfluxDB (connectOne), or to each of several, one partition of the policies each:
 * a store that writes each line to its policy's InfluxDB and asks questions across policies of
 * every one (partitions.ts).
 */
export async function connectInflux(cfg: InfluxConfig, hooks: InfluxHooks = {}): Promise<Influx> {
  const urls = influxUrls(cfg)
  if (urls.length === 1) return connectOne({ ...cfg, url: urls[0]! }, hooks)
  return influxFleet(await Promise.all(urls.map((url) => connectOne({ ...cfg, url }, hooks))), (deviceId) => hooks.policyOf?.(deviceId))
}

/**
 * Connects to InfluxDB: creates the database if it is missing, and its retention policies
 * (retention.ts) as declared, altering those whose duration changed. A change of duration applies
 * to the points already stored as well: InfluxDB drops the shard groups a shorter policy no longer
 * covers at its next retention check.
 */
async function connectOne(cfg: InfluxConfig & { url: string }, hooks: InfluxHooks): Promise<Influx> {
  // The client also logs on its own, to the console, error bodies included: silenced, because every
  // failure reaches onWriteError, and every unconfirmed line stays in the ingest journal. Its logger
  // is the process's, so only a process that connects silences it, not one that imports ingest.
  setLogger({ error: () => {}, warn: () => {} })
  const policies = resolveRetention(cfg.retentionDays)
  const hoursOf = new Map(policies.map((p) => [p.name, p.hours]))
  const direct = new InfluxDB({ url: cfg.url })
  const auth = authHeader(cfg)
  const refusedListeners: ((refused: readonly Refusal[]) => void)[] = []
  const sends = trackSends(v1WriteTransport(direct.transport, auth))
  const client = new InfluxDB({ url: cfg.url, transport: sends.transport })
  let closed = false

  /** One write API per retention policy: the client's batching, retries and refusal split, each with its own `rp=`. */
  function policyWriter(rp: RetentionPolicyName) {
    // The 1.8 compatibility convention: bucket "database/retention-policy", rewritten to /write.
    const bucket = `${cfg.database}/${rp}`
    const writePath = `/api/v2/write?${new URLSearchParams({ org: '', bucket, precision: 'ms' })}`
    const writer: WriteApi = client.getWriteApi('', bucket, 'ms', {
      ...writeOptions,
      writeFailed: (err: Error, lines: string[]) => {
        hooks.onWriteError?.(describeWriteError(err))
        // The client retries a 429, a 5xx or a lost connection, but drops a 4xx: InfluxDB refused
        // what the batch holds, and one bad line refuses (or partly writes) a whole batch of other
        // devices' lines. Returning a promise tells the client that the batch is handled (issue #20).
        return isRefusal(err) ? split(lines, err) : undefined
      },
      writeSuccess: (lines: string[]) => hooks.onWritten?.(lines),
    })

    /** Posts lines once, outside the client's batching and retries; undefined when InfluxDB took them. */
    const post = (lines: readonly string[]) => new Promise<Error | undefined>((resolve) => {
      let status: number | undefined
      sends.transport.send(writePath, lines.join('\n'), { method: 'POST', headers: { 'content-type': 'text/plain; charset=utf-8' } }, {
        responseStarted: (_headers, code) => void (status = code),
        error: resolve,
        complete: () => resolve(status === undefined || status < 300 ? undefined : new Error(`HTTP ${status}`)),
      })
    })

    /**
     * A refused batch, split in halves until each refused line stands alone (about 2·log2(n)
     * requests for one bad line in n): InfluxDB writes the others (again, for those a partial write
     * kept: a point written twice is stored once), and the refused ones are reported with the reason
     * InfluxDB gave for that line alone. A half that fails otherwise (InfluxDB went away meanwhile)
     * goes back to the client, whose retries take it from there.
     */
    async function split(lines: readonly string[], err: HttpError): Promise<void> {
      if (lines.length === 1) {
        const reason = refusalReason(err)
        const refused = [{ line: lines[0]!, reason, kind: refusalKind(reason) }]
        for (const listener of refusedListeners) listener(refused)
        return
      }
      const mid = Math.ceil(lines.length / 2)
      for (const half of [lines.slice(0, mid), lines.slice(mid)]) {
        const error = await post(half)
        if (error === undefined) hooks.onWritten?.(half)
        else if (isRefusal(error)) await split(half, error)
        // Closed: what is unconfirmed stays in the ingest journal for the next start.
        else if (!closed) writer.writeRecords(half)
      }
    }
    return writer
  }
  const writers = new Map<RetentionPolicyName, WriteApi>()
  const writerOf = (rp: RetentionPolicyName) => writers.get(rp) ?? writers.set(rp, policyWriter(rp)).get(rp)!
  /** The policy of a line's measurement; the last one is remembered, as a call's lines are mostly of one measurement. */
  let last = { prefix: '', rp: undefined as RetentionPolicyName | undefined }
  const policyOfLine = (line: string): RetentionPolicyName => {
    if (last.rp !== undefined && line.startsWith(last.prefix)) return last.rp
    const end = line.search(/[, ]/)
    if (end < 0) return retentionOf(line) // no line protocol: no declared measurement either
    last = { prefix: line.slice(0, end + 1), rp: retentionOf(line.slice(0, end)) }
    return last.rp!
  }

  // The client's flush() sends only the lines still buffered; a full batch it already sent on its
  // own may still be on the wire. Flushing means both are answered.
  const flush = async () => {
    await Promise.all([...writers.values()].map((w) => w.flush(true)))
    await sends.settled()
  }

  let queries = 0
  const queued: (() => void)[] = []
  /** `send` once fewer than QUERIES_IN_FLIGHT queries are in InfluxDB; its time-out starts then. */
  async function query(q: string, method: 'GET' | 'POST' = 'GET'): Promise<Series[]> {
    if (queries < QUERIES_IN_FLIGHT) queries++
    else await new Promise<void>((turn) => queued.push(turn)) // a finishing query hands over its place
    try {
      return await send(q, method)
    } finally {
      const next = queued.shift()
      if (next) next()
      else queries--
    }
  }

  async function send(q: string, method: 'GET' | 'POST'): Promise<Series[]> {
    const params = new URLSearchParams({ db: cfg.database, q, epoch: 'ms' })
    const res = await fetch(`${cfg.url}/query${method === 'GET' ? `?${params}` : ''}`, {
      // An InfluxDB that stops answering (paused, swapping, a network split) would otherwise hold a
      // query, and the scoring stage waiting on it, for ever: a shutdown waited for it (issue #20).
      signal: AbortSignal.timeout(QUERY_TIMEOUT_MS),
      method,
      headers: { ...auth, ...(method === 'POST' ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
      body: method === 'POST' ? params : undefined,
    }).catch((err: Error & { cause?: { code?: string; message?: string } }) => {
      if (err.name === 'TimeoutError') throw new codes.UBIQ_INFLUX_TIMEOUT(cfg.url, QUERY_TIMEOUT_MS / 1000)
      const why = err.cause?.code ?? err.cause?.message ?? err.message
      throw new codes.UBIQ_INFLUX_UNREACHABLE(`cannot reach InfluxDB at ${cfg.url}: ${why}`)
    })
    const body = (await res.json().catch(() => ({}))) as { error?: string; results?: { error?: string; series?: Series[] }[] }
    const error = body.error ?? body.results?.find((r) => r.error)?.error
    if (!res.ok || error) throw new Error(`InfluxDB query failed (${res.status}): ${error ?? res.statusText}`)
    return body.results?.flatMap((r) => r.series ?? []) ?? []
  }

  await query(`CREATE DATABASE ${quoteIdent(cfg.database)}`, 'POST')
  await migrateRetention(cfg.database, policies, query, hooks.onRetentionChange)
  const influx: Influx = {
    write(lines) {
      if (lines.length === 0) return
      const rp = policyOfLine(lines[0]!)
      if (lines.every((l) => policyOfLine(l) === rp)) return writerOf(rp).writeRecords(lines)
      const byPolicy = new Map<RetentionPolicyName, string[]>()
      for (const line of lines) {
        const p = policyOfLine(line)
        const of = byPolicy.get(p)
        if (of) of.push(line)
        else byPolicy.set(p, [line])
      }
      for (const [p, ls] of byPolicy) writerOf(p).writeRecords(ls)
    },
    onRefused: (listener) => void refusedListeners.push(listener),
    query: (q, method) => query(q, method),
    of: () => influx,
    oldestKept(measurement, now = Date.now()) {
      const hours = hoursOf.get(retentionOf(measurement))!
      return hours === 0 ? -Infinity : now - hours * 3600_000
    },
    flush,
    async close() {
      // While InfluxDB is down, flush() retries for as long as the retry options allow (a day):
      // a shutdown must not wait for that (issue #20: a SIGTERM in backpressure took minutes).
      try {
        if (await within(CLOSE_WAIT_MS, flush()) === 'timeout') {
          closed = true
          for (const w of writers.values()) w.dispose()
        }
      } finally {
        if (!closed) {
          closed = true
          await Promise.all([...writers.values()].map((w) => w.close()))
        }
      }
    },
  }
  return influx
}

/** InfluxDB's durations as SHOW RETENTION POLICIES gives them (`336h0m0s`, `0s` for ever), in hours. */
export function durationHours(d: string): number {
  const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(d)
  if (!m) throw new Error(`unexpected InfluxDB duration "${d}"`)
  return Number(m[1] ?? 0) + Number(m[2] ?? 0) / 60 + Number(m[3] ?? 0) / 3600
}

/**
 * Creates each policy missing from `database`, and alters each whose duration, shard-group
 * duration or default flag differs from `policies`. Policies ubiq does not declare are left as
 * they are (`autogen` with what an older ubiq wrote in it: README "Privacy").
 */
async function migrateRetention(
  database: string,
  policies: readonly RetentionPolicy[],
  query: (q: string, method: 'POST') => Promise<Series[]>,
  onChange?: InfluxHooks['onRetentionChange'],
): Promise<void> {
  const [shown] = await query(`SHOW RETENTION POLICIES ON ${quoteIdent(database)}`, 'POST')
  const col = (name: string) => shown?.columns.indexOf(name) ?? -1
  const existing = new Map((shown?.values ?? []).map((v) => [String(v[col('name')]), {
    hours: durationHours(String(v[col('duration')])), shardHours: durationHours(String(v[col('shardGroupDuration')])), isDefault: v[col('default')] === true,
  }]))
  for (const p of policies) {
    const now = existing.get(p.name)
    const spec = `DURATION ${p.hours === 0 ? 'INF' : `${p.hours}h`} REPLICATION 1 SHARD DURATION ${p.shardHours}h${p.isDefault ? ' DEFAULT' : ''}`
    if (!now) await query(`CREATE RETENTION POLICY ${quoteIdent(p.name)} ON ${quoteIdent(database)} ${spec}`, 'POST')
    else if (now.hours !== p.hours || now.shardHours !== p.shardHours || (p.isDefault && !now.isDefault)) {
      await query(`ALTER RETENTION POLICY ${quoteIdent(p.name)} ON ${quoteIdent(database)} ${spec}`, 'POST')
    } else continue
    onChange?.({ policy: p.name, ...(now ? { fromHours: now.hours } : {}), toHours: p.hours })
  }
}

/**
 * True for an error that says InfluxDB refused the lines themselves, not that it could not take
 * them now: 400 (InfluxDB 1.x: unparsable, a partial write), 413 (a batch too large: halves fit),
 * 422 (InfluxDB 2.x: points beyond retention, a field type conflict).
 */
const isRefusal = (err: Error): err is HttpError => err instanceof HttpError && [400, 413, 422].includes(err.statusCode)

/** InfluxDB's reason for a refusal: its JSON `error`, or the body as it came. */
function refusalReason(err: HttpError): string {
  const json = err.json as { error?: unknown } | undefined
  return typeof json?.error === 'string' ? json.error : err.body ?? err.message
}

/** An InfluxDB error without its body: a 400 "unable to parse" quotes the line, values and all. */
function describeWriteError(err: Error): string {
  // The owner logs write errors as retried by the client: a refusal is not, so it says so.
  if (isRefusal(err)) return `HTTP ${err.statusCode}: refused lines are split out and quarantined, not retried`
  if (err instanceof HttpError) return `HTTP ${err.statusCode}`
  return (err as Error & { code?: string }).code ?? err.name
}

function authHeader(cfg: InfluxConfig): Record<string, string> {
  if (cfg.username === undefined) return {}
  return { authorization: `Basic ${Buffer.from(`${cfg.username}:${cfg.password ?? ''}`).toString('base64')}` }
}

/** Wraps a transport so that its owner can wait until every request sent so far has been answered. */
function trackSends(inner: Transport): { transport: Transport; settled(): Promise<void> } {
  let inFlight = 0
  let waiters: (() => void)[] = []
  const done = () => {
    if (--inFlight > 0) return
    for (const wake of waiters) wake()
    waiters = []
  }
  return {
    transport: {
      send(path, body, options, callbacks) {
        inFlight++
        inner.send(path, body, options, {
          ...callbacks,
          error: (err) => (callbacks?.error?.(err), done()),
          complete: () => (callbacks?.complete?.(), done()),
        })
      },
      request: (path, body, options, started) => inner.request(path, body, options, started),
      iterate: (path, body, options) => inner.iterate(path, body, options),
      get chunkCombiner() {
        return inner.chunkCombiner
      },
    },
    settled: () => (inFlight === 0 ? Promise.resolve() : new Promise<void>((wake) => waiters.push(wake))),
  }
}

/** Sends the client's v2 write requests to the v1 `/write` endpoint; everything else passes through. */
function v1WriteTransport(inner: Transport, auth: Record<string, string>): Transport {
  const precisions: Record<string, string> = { ns: 'n', us: 'u', ms: 'ms', s: 's' }
  const rewrite = (path: string): string => {
    const url = new URL(path, 'http://influx')
    if (url.pathname !== '/api/v2/write') return path
    const [db = '', rp = ''] = (url.searchParams.get('bucket') ?? '').split('/')
    const precision = precisions[url.searchParams.get('precision') ?? 'ns'] ?? 'n'
    return `/write?${new URLSearchParams({ db, rp, precision })}`
  }
  return {
    send: (path, body, options, callbacks) =>
      inner.send(rewrite(path), body, { ...options, headers: { ...options.headers, ...auth } }, callbacks),
    request: (path, body, options, started) => inner.request(path, body, options, started),
    iterate: (path, body, options) => inner.iterate(path, body, options),
    get chunkCombiner() {
      return inner.chunkCombiner
    },
  }
}

/**
 * Query rows as objects, a column's value by its name, the series' tags (what the query groups
 * by) beside them; null columns (a field the point lacks) are left out. `time` is ms (queries ask
 * for epoch=ms).
 */
export const seriesRows = (series: readonly Series[]): Record<string, unknown>[] =>
  series.flatMap((s) => s.values.map((v) => ({ ...s.tags, ...Object.fromEntries(s.columns.map((c, i) => [c, v[i]]).filter(([, x]) => x !== null)) })))

/** Quotes an InfluxQL identifier. */
export function quoteIdent(name: string): string {
  return `"${name.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`
}

/** Quotes an InfluxQL string literal. */
export function quoteString(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`
}

/** One line of line protocol. Numbers are written as floats, except the keys listed in `ints`. */
export function toLine(
  measurement: string,
  tags: Record<string, string>,
  fields: Record<string, number | boolean | string>,
  tsMs: number,
  ints: readonly string[] = [],
): string {
  const fieldPart = Object.entries(fields)
    .map(([k, v]) => `${escapeKey(k)}=${fieldValue(k, v, ints)}`)
    .join(',')
  return `${linePrefix(measurement, tags)}${fieldPart} ${Math.round(tsMs)}`
}

/** Measurement and tags of a line, up to and including the space before the fields. */
export function linePrefix(measurement: string, tags: Record<string, string>): string {
  const tagPart = Object.keys(tags).sort().map((k) => `,${escapeKey(k)}=${escapeKey(tags[k]!)}`).join('')
  return `${measurement.replace(/[, ]/g, '\\$&')}${tagPart} `
}

/**
 * What a line of line protocol is, without its values: its measurement, device (`device_id` tag),
 * time, size and field names. What an operator diagnoses a refused line by, and all the
 * dead-letter folder keeps of it (#21): a line's values may be positions or heart rates. InfluxDB's
 * reason may quote the line (`unable to parse '…'`): `reason` is the reason with the line left out.
 * Read leniently, as a refused line may be malformed: a name that is not one, or a time that is not
 * a number, is left out rather than risk keeping a value.
 */
export function lineShape(line: string, reason = ''): LineShape {
  const [key = '', fieldPart = '', time = ''] = splitLine(line, ' ', 1)
  const [measurement = '', ...tags] = splitLine(key, ',', 0).map(unescape)
  const device = tags.map((t) => splitLine(t, '=', 0)).find(([k]) => k === 'device_id')?.[1]
  const fields = splitLine(fieldPart, ',', 2).map((f) => unescape(splitLine(f, '=', 0)[0]!)).filter((f) => NAME.test(f))
  const ms = /^-?\d{1,16}$/.test(time) ? Number(time) : NaN
  return {
    reason: reason.split(line).join('…').replace(/'.*'/s, "'…'"),
    measurement: NAME.test(measurement) ? measurement : '',
    ...(device !== undefined ? { device } : {}),
    ...(Number.isFinite(new Date(ms).getTime()) ? { time: new Date(ms).toISOString() } : {}),
    bytes: Buffer.byteLength(line),
    fields,
  }
}

/** A line as `lineShape` tells it. */
export interface LineShape { reason: string; measurement: string; device?: string; time?: string; bytes: number; fields: string[] }

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/
const unescape = (s: string) => s.replace(/\\(.)/g, '$1')

/**
 * `s` split at each `sep` not escaped by a backslash. `quoted`: from which piece on (1: after the
 * first, 2: all of them, 0: none) a double-quoted string (a string field's value) is one piece.
 */
function splitLine(s: string, sep: string, quoted: 0 | 1 | 2): string[] {
  const pieces: string[] = []
  let start = 0, inQuotes = false
  for (let i = 0; i < s.length; i++) {
    const c = s[i]
    if (c === '\\') i++
    else if (c === '"' && (quoted === 2 || (quoted === 1 && pieces.length > 0))) inQuotes = !inQuotes
    else if (c === sep && !inQuotes) {
      pieces.push(s.slice(start, i))
      start = i + 1
    }
  }
  return [...pieces, s.slice(start)]
}

/** Escapes a tag key, tag value or field key. */
export const escapeKey = (s: string) => s.replace(/[,= ]/g, '\\$&')

function fieldValue(key: string, v: number | boolean | string, ints: readonly string[]): string {
  if (typeof v === 'boolean') return v ? 'true' : 'false'
  if (typeof v === 'string') return `"${v.replace(/[\\"]/g, '\\$&')}"`
  return ints.includes(key) ? `${Math.trunc(v)}i` : String(v)
}
