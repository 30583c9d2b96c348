/**
 * What grew in the heap between two V8 heap snapshots (bench:soak, BENCH_SOAK_HEAP_SNAPSHOTS=1):
 * the Maps and Sets that grew, named by the variable or property that holds them (a closure's
 * `feeds`, say), and the kinds of object whose number grew, by constructor and property names.
 * Each of the Maps and Sets that grew most is given its retained size: what the heap would lose
 * without the Maps and Sets of that name (everything reachable from the roots only through them).
 * Enough to say which structure keeps what per device or policy, without a profiler's UI.
 */
import { readFileSync } from 'node:fs'

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]]; edge_fields: string[]; edge_types: [string[]] } }
  nodes: number[]
  edges: number[]
  strings: string[]
}

interface Summary {
  /** Per holder of a Map or Set ("Map feeds"): its entries (edges out of its table), summed over those so held. */
  collections: Map<string, { count: number; entries: number; bytes: number; nodes: number[] }>
  /** Per name of a closure's variable ("days"): the objects so held (each policy's in a per-key closure, say). */
  variables: Map<string, { count: number; nodes: number[] }>
  /** Per object kind ("Object{horizon,last,messages,standing}"): how many, and their own bytes. */
  shapes: Map<string, { count: number; bytes: number }>
  /** Bytes reachable from the roots only through `nodes`. */
  retained(nodes: readonly number[]): number
}

function summarise(file: string): Summary {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
  const { node_fields: nf, node_types: [types], edge_fields: ef, edge_types: [edgeTypes] } = s.snapshot.meta
  const [N, E] = [nf.length, ef.length]
  const [TYPE, NAME, SIZE, EDGES] = ['type', 'name', 'self_size', 'edge_count'].map((f) => nf.indexOf(f)) as [number, number, number, number]
  const [ETYPE, ENAME, ETO] = ['type', 'name_or_index', 'to_node'].map((f) => ef.indexOf(f)) as [number, number, number]
  const nodeCount = s.nodes.length / N
  const firstEdge = new Uint32Array(nodeCount + 1)
  for (let i = 0; i < nodeCount; i++) firstEdge[i + 1] = firstEdge[i]! + s.nodes[i * N + EDGES]!
  const typeOf = (i: number) => types[s.nodes[i * N + TYPE]!]!
  const nameOf = (i: number) => s.strings[s.nodes[i * N + NAME]!]!
  const edgeName = (e: number) => (['element', 'hidden'].includes(edgeTypes[s.edges[e + ETYPE]!]!) ? String(s.edges[e + ENAME]) : s.strings[s.edges[e + ENAME]!]!)
  const isCollection = (i: number) => typeOf(i) === 'object' && (nameOf(i) === 'Map' || nameOf(i) === 'Set')

  const shapes: Summary['shapes'] = new Map()
  const collections: Summary['collections'] = new Map()
  const variables: Summary['variables'] = new Map()
  const holders = new Map<number, string>() // collection node → the name it is held by
  for (let i = 0; i < nodeCount; i++) {
    for (let e = firstEdge[i]! * E; e < firstEdge[i + 1]! * E; e += E) {
      const to = s.edges[e + ETO]! / N
      const kind = edgeTypes[s.edges[e + ETYPE]!]
      if ((kind === 'context' || kind === 'property') && isCollection(to) && !holders.has(to)) holders.set(to, edgeName(e))
      else if (kind === 'context' && ['object', 'array', 'closure'].includes(typeOf(to))) {
        const row = variables.get(edgeName(e)) ?? { count: 0, nodes: [] }
        row.count++
        row.nodes.push(to)
        variables.set(edgeName(e), row)
      }
    }
    if (typeOf(i) !== 'object') continue
    const props: string[] = []
    for (let e = firstEdge[i]! * E; e < firstEdge[i + 1]! * E && props.length < 8; e += E) {
      if (edgeTypes[s.edges[e + ETYPE]!] === 'property') props.push(edgeName(e))
    }
    const shape = `${nameOf(i)}{${props.sort().join(',')}}`
    const row = shapes.get(shape) ?? { count: 0, bytes: 0 }
    row.count++
    row.bytes += s.nodes[i * N + SIZE]!
    shapes.set(shape, row)
  }
  for (const [i, holder] of holders) {
    // A Map's or Set's entries live in its internal table: count the table's references.
    let entries = 0
    let bytes = 0
    for (let e = firstEdge[i]! * E; e < firstEdge[i + 1]! * E; e += E) {
      if (edgeName(e) !== 'table') continue
      const t = s.edges[e + ETO]! / N
      entries += firstEdge[t + 1]! - firstEdge[t]!
      bytes += s.nodes[t * N + SIZE]!
    }
    const key = `${nameOf(i)} ${holder}`
    const row = collections.get(key) ?? { count: 0, entries: 0, bytes: 0, nodes: [] }
    row.count++
    row.entries += entries
    row.bytes += bytes
    row.nodes.push(i)
    collections.set(key, row)
  }
  /** Own bytes of all reachable from the root (node 0) along strong edges, not entering `excluded`. */
  const reachable = (excluded: ReadonlySet<number>) => {
    const seen = new Uint8Array(nodeCount)
    const stack = new Uint32Array(nodeCount)
    let [top, bytes] = [1, 0]
    seen[0] = 1
    while (top > 0) {
      const i = stack[--top]!
      bytes += s.nodes[i * N + SIZE]!
      for (let e = firstEdge[i]! * E; e < firstEdge[i + 1]! * E; e += E) {
        const to = s.edges[e + ETO]! / N
        if (seen[to] || excluded.has(to) || edgeTypes[s.edges[e + ETYPE]!] === 'weak') continue
        seen[to] = 1
        stack[top++] = to
      }
    }
    return bytes
  }
  const all = reachable(new Set())
  return { collections, variables, shapes, retained: (nodes) => all - reachable(new Set(nodes)) }
}

/** The Maps/Sets and object kinds that grew most from snapshot `a` to `b`, as printable lines. */
export function heapGrowth(a: string, b: string, top = 12): string[] {
  const [before, after] = [summarise(a), summarise(b)]
  const grown = <T extends { count: number }>(x: Map<string, T>, y: Map<string, T>, by: (r: T) => number, most = top) =>
    [...y].map(([k, r]) => [k, r, x.get(k)] as const).map(([k, r, o]) => ({ k, r, o, d: by(r) - (o ? by(o) : 0) })).sort((p, q) => q.d - p.d).slice(0, most)
  const kib = (bytes: number) => `${(bytes / 1024).toFixed(0)} KiB`
  return [
    'Maps and Sets, by the name that holds them (how many): references in their tables, and retained size, before → after',
    ...grown(before.collections, after.collections, (r) => r.entries).map(({ k, r, o }) =>
      `  ${k} (${r.count}): ${o?.entries ?? 0} → ${r.entries}; retained ${kib(o ? before.retained(o.nodes) : 0)} → ${kib(after.retained(r.nodes))}`),
    'closures\' variables, by name: objects so held, and their retained size, before → after',
    // The 30 names whose number grew most, the 10 of those whose retained size grew most.
    ...grown(before.variables, after.variables, (r) => r.count, 30)
      .map(({ k, r, o }) => ({ k, r, o, was: o ? before.retained(o.nodes) : 0, now: after.retained(r.nodes) }))
      .sort((p, q) => q.now - q.was - (p.now - p.was)).slice(0, 10)
      .map(({ k, r, o, was, now }) => `  ${k}: ${o?.count ?? 0} → ${r.count}; retained ${kib(was)} → ${kib(now)}`),
    'objects by constructor and properties: count (own bytes), before → after',
    ...grown(before.shapes, after.shapes, (r) => r.bytes).map(({ k, r, o }) => `  ${k.slice(0, 100)}: ${o?.count ?? 0} → ${r.count} (${((o?.bytes ?? 0) / 1024).toFixed(0)} → ${(r.bytes / 1024).toFixed(0)} KiB)`),
  ]
}
