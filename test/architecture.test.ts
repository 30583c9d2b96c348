/**
 * The import graph follows the data flow (DESIGN.md): each product folder is used only through
 * its index.ts, and only by the folders downstream of it. Tests may reach anything.
 */
import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const allowed: Record<string, string[]> = {
  ingest: [],
  scoring: ['ingest'],
  pricing: ['ingest', 'scoring'],
  dashboards: ['ingest', 'scoring', 'pricing'],
  'edge-sim': ['ingest'],
  bin: ['ingest', 'scoring', 'pricing', 'dashboards', 'edge-sim'],
  bench: ['ingest', 'scoring', 'pricing', 'dashboards', 'edge-sim', 'bin', 'test'],
}

/** The folders used only through their index.ts (bin and test are tools, not products). */
const products = ['ingest', 'scoring', 'pricing', 'dashboards', 'edge-sim']
/** ingest's second entry, the device contract and the error catalogue without the service (#22 item 6): what a module needing no more imports, and all edge-sim may (DESIGN.md). */
const DEVICE_CONTRACT = 'ingest/device-contract.ts'

function* sources(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) yield* sources(path)
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts')) yield path
  }
}

t.test('every cross-folder import goes downstream, through the folder\'s index.ts', async (t) => {
  const violations: string[] = []
  let checked = 0
  for (const folder of Object.keys(allowed)) {
    for (const file of sources(join(root, folder))) {
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^'"]*from '(\.[^']+)'/gm)) {
        const target = relative(root, resolve(dirname(file), spec!))
        const targetFolder = target.split('/')[0]!
        if (targetFolder === folder) continue
        checked++
        const where = `${relative(root, file)} → ${target}`
        if (!allowed[folder]!.includes(targetFolder)) violations.push(`${where}: ${folder} may not import ${targetFolder}`)
        else if (folder === 'edge-sim' && target !== DEVICE_CONTRACT) violations.push(`${where}: edge-sim imports only the device contract, ${DEVICE_CONTRACT}`)
        else if (products.includes(targetFolder) && target !== `${targetFolder}/index.ts` && target !== DEVICE_CONTRACT) violations.push(`${where}: import ${targetFolder}/index.ts instead`)
      }
    }
  }
  t.ok(checked > 10, `${checked} cross-folder imports checked`)
  t.same(violations, [])
})

/** What `file` loads when it runs, relative modules resolved: `import type` and `export type` load nothing. */
function runtimeSpecifiers(file: string): string[] {
  const text = readFileSync(file, 'utf8')
  return [...text.matchAll(/^(?:import|export)(?!\s+type\s)[^'"]*from '([^']+)'/gm)].map(([, spec]) => (spec!.startsWith('.') ? resolve(dirname(file), spec!) : spec!))
}

/** The relative modules `file` loads when it runs. */
const runtimeImports = (file: string): string[] => runtimeSpecifiers(file).filter((f) => f.startsWith('/'))

/** Every module `entry` loads, itself included. */
function loaded(entry: string): Set<string> {
  const seen = new Set<string>()
  const visit = (file: string) => {
    if (seen.has(file)) return
    seen.add(file)
    for (const f of runtimeImports(file)) visit(f)
  }
  visit(entry)
  return seen
}

t.test('the service does not load the simulator or test data: what `ubiq start` runs loads no edge-sim or test module (#22)', async (t) => {
  const service = loaded(join(root, 'bin/pipeline.ts'))
  t.ok(service.size > 30, `${service.size} modules loaded by bin/pipeline.ts`)
  t.same([...service].map((f) => relative(root, f)).filter((f) => /^(edge-sim|test)\//.test(f)), [])
})

t.test('no module loads itself through others: the runtime import graph has no cycle (#22)', async (t) => {
  const files = Object.keys(allowed).filter((f) => f !== 'bench').flatMap((folder) => [...sources(join(root, folder))])
  const cycles: string[] = []
  // Depth-first: a module met again while still on the path closes a cycle.
  const state = new Map<string, 'open' | 'done'>()
  const visit = (file: string, path: string[]) => {
    if (state.get(file) === 'done') return
    if (state.get(file) === 'open') {
      cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(root, f)).join(' → '))
      return
    }
    state.set(file, 'open')
    for (const f of runtimeImports(file)) visit(f, [...path, file])
    state.set(file, 'done')
  }
  for (const f of files) visit(f, [])
  t.ok(files.length > 50, `${files.length} modules walked`)
  t.same(cycles, [])
})

t.test('the device contract loads neither the MQTT nor the InfluxDB client, nor silences the latter\'s logger (#22 item 6)', async (t) => {
  for (const entry of [DEVICE_CONTRACT, 'ingest/contract.ts', 'ingest/sensors/index.ts']) {
    const modules = [...loaded(join(root, entry))]
    const packages = new Set(modules.flatMap((f) => runtimeSpecifiers(f).filter((s) => !s.startsWith('/'))))
    t.ok(packages.has('@sinclair/typebox'), `${entry}: ${modules.length} modules, packages ${[...packages].join(', ')}`)
    t.same([...packages].filter((p) => /^(mqtt|@influxdata\/)/.test(p)), [], `${entry} loads no MQTT or InfluxDB client`)
    t.same(modules.filter((f) => /\bsetLogger\(/.test(readFileSync(f, 'utf8'))).map((f) => relative(root, f)), [], `${entry} calls no setLogger`)
  }
})
