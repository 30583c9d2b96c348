/**
 * The model registry (#6): which model scores each subject (its champion), and which models score
 * the same stream beside it without moving a price (its shadows, whose scores are stored for
 * comparison).
 *
 * Models are .onnx files in the model folders (the shipped one, and MODELS_DIR where `ubiq train`
 * writes). Each is described by the definition ubiq writes into its metadata or, for a model from
 * elsewhere (scikit-learn, LightGBM, R), by a `name@version.json` definition beside it. The choice
 * is a small JSON file in the data folder that `ubiq models promote|shadow|unshadow|rollback`
 * rewrite and the running service watches: the new models are loaded and checked first, then take
 * over from the next micro-batch. The stream never stops, so no message is lost, and a model that
 * does not load leaves the running ones in place.
 */
import { existsSync, readdirSync, readFileSync, renameSync, unwatchFile, watchFile, writeFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Type } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import onnxProto from 'onnx-proto'
import { codes, Subject, subjectNames } from '../ingest/device-contract.ts'
import { loadModel, type LoadedModel } from './model.ts'
import { builtInModels, modelId, type ModelDefinition } from './models/index.ts'
import type { ActiveModels } from './score.ts'

/** The folder of the models ubiq ships. */
export const shippedModels = fileURLToPath(new URL('./models/', import.meta.url))

const subjects = subjectNames

/** A model file and what it is. */
export interface ModelFile {
  id: string
  definition: ModelDefinition
  path: string
}

/** Per subject: the champion's id, the shadows' ids, and the champions before it (for rollback), latest last. */
export type Choice = Record<Subject, { champion: string; shadows: string[]; previous: string[] }>

const DefinitionSchema = Type.Object({
  name: Type.String({ pattern: '^[a-z0-9][a-z0-9-]*$' }),
  version: Type.String({ pattern: '^[A-Za-z0-9._-]+$' }),
  subject: Subject,
  input: Type.String({ minLength: 1 }),
  output: Type.String({ minLength: 1 }),
  features: Type.Array(Type.Object({
    name: Type.String({ minLength: 1 }), unit: Type.String(), baseline: Type.Number(), label: Type.String({ minLength: 1 }),
    log1pScale: Type.Optional(Type.Number({ exclusiveMinimum: 0 })),
  }), { minItems: 1 }),
  exposure: Type.Optional(Type.Object({ feature: Type.String(), perYear: Type.Number({ exclusiveMinimum: 0 }) })),
  file: Type.String(),
  card: Type.String(),
})

/**
 * The definition of the model in `path`: a `.json` beside it, else the one in its metadata. A
 * definition names the file's input and output and maps its input columns to ubiq's features.
 */
export function readDefinition(path: string): ModelDefinition {
  const sidecar = path.replace(/\.onnx$/, '.json')
  let value: unknown
  if (existsSync(sidecar)) {
    try {
      value = JSON.parse(readFileSync(sidecar, 'utf8'))
    } catch (err) {
      throw new codes.UBIQ_MODEL_INVALID(`${sidecar}: not JSON: ${(err as Error).message}`)
    }
  } else {
    let text: string | null | undefined
    try {
      text = onnxProto.onnx.ModelProto.decode(readFileSync(path)).metadataProps.find((p) => p.key === 'ubiq.definition')?.value
    } catch (err) {
      throw new codes.UBIQ_MODEL_INVALID(`${path}: not an ONNX model: ${(err as Error).message}`)
    }
    if (!text) throw new codes.UBIQ_MODEL_INVALID(`${path}: no definition: write ${basename(sidecar)} beside it (see README, "Models from elsewhere")`)
    value = JSON.parse(text)
  }
  const problems = [...Value.Errors(DefinitionSchema, value)].map((e) => `${e.path || '/'}: ${e.message}`)
  if (problems.length) throw new codes.UBIQ_MODEL_INVALID(`${existsSync(sidecar) ? sidecar : path}: the definition is not valid:\n  ${problems.join('\n  ')}`)
  const def = value as ModelDefinition
  if (def.file !== basename(path)) throw new codes.UBIQ_MODEL_INVALID(`${path}: its definition is for ${def.file}`)
  return def
}

/** Every model in `dirs` by id, and the files that are not usable, with why. The first folder wins a clash. */
export function findModels(dirs: readonly string[]): { models: Map<string, ModelFile>; problems: string[] } {
  const models = new Map<string, ModelFile>()
  const problems: string[] = []
  for (const dir of dirs) {
    if (!existsSync(dir)) continue
    for (const f of readdirSync(dir).filter((x) => x.endsWith('.onnx')).sort()) {
      const path = join(dir, f)
      try {
        const definition = readDefinition(path)
        const id = modelId(definition)
        if (!models.has(id)) models.set(id, { id, definition, path })
      } catch (err) {
        problems.push((err as Error).message)
      }
    }
  }
  return { models, problems }
}

/** The choice before anyone has chosen: the shipped models as champions. */
export function defaultChoice(): Choice {
  const shipped = (s: Subject): Choice[Subject] => ({ champion: modelId(builtInModels.find((m) => m.definition.subject === s)!.definition), shadows: [], previous: [] })
  return Object.fromEntries(subjects.map((s) => [s, shipped(s)])) as Choice
}

/** The choice in `file`, or the default when there is none yet. */
export function readChoice(file: string): Choice {
  if (!existsSync(file)) return defaultChoice()
  try {
    return { ...defaultChoice(), ...(JSON.parse(readFileSync(file, 'utf8')) as Partial<Choice>) }
  } catch (err) {
    throw new codes.UBIQ_MODEL_INVALID(`${file}: not JSON: ${(err as Error).message}`)
  }
}

/** Writes the choice whole (rename is atomic: the watcher never reads half a file). */
export function writeChoice(file: string, choice: Choice): void {
  // Private to ubiq's user, as everything in its data directory (#20 item 10).
  writeFileSync(`${file}.tmp`, `${JSON.stringify(choice, null, 2)}\n`, { mode: 0o600 })
  renameSync(`${file}.tmp`, file)
}

/** A change to the choice, as the `ubiq models` commands make it; throws with the reason when it cannot be made. */
export type ChoiceChange = { kind: 'promote' | 'shadow' | 'unshadow'; id: string } | { kind: 'rollback'; subject: Subject }

/** The choice after `change`, checked against the models there are. */
export function changeChoice(choice: Choice, change: ChoiceChange, models: ReadonlyMap<string, ModelFile>): Choice {
  const next = structuredClone(choice)
  if (change.kind === 'rollback') {
    const s = next[change.subject]
    const back = s.previous.pop()
    if (!back) throw new codes.UBIQ_MODEL_INVALID(`${change.subject}: no earlier champion to roll back to (champion ${s.champion})`)
    s.shadows = s.shadows.filter((x) => x !== back)
    s.champion = back
    return next
  }
  const model = models.get(change.id)
  if (!model) throw new codes.UBIQ_MODEL_INVALID(`no model ${change.id} in the model folders (ubiq models list shows them)`)
  const s = next[model.definition.subject]
  if (change.kind === 'promote') {
    if (s.champion === change.id) throw new codes.UBIQ_MODEL_INVALID(`${change.id} is already the ${model.definition.subject} champion`)
    s.previous.push(s.champion)
    s.champion = change.id
    s.shadows = s.shadows.filter((x) => x !== change.id)
  } else if (change.kind === 'shadow') {
    if (s.champion === change.id || s.shadows.includes(change.id)) throw new codes.UBIQ_MODEL_INVALID(`${change.id} already scores ${model.definition.subject}`)
    s.shadows.push(change.id)
  } else {
    if (!s.shadows.includes(change.id)) throw new codes.UBIQ_MODEL_INVALID(`${change.id} is not a ${model.definition.subject} shadow`)
    s.shadows = s.shadows.filter((x) => x !== change.id)
  }
  return next
}

/** Loads every model the choice names, checked against its definition; throws if one cannot be used. */
export async function loadChoice(choice: Choice, models: ReadonlyMap<string, ModelFile>): Promise<ActiveModels> {
  const cache = new Map<string, Promise<LoadedModel>>()
  const load = (id: string, subject: Subject) => {
    const m = models.get(id)
    if (!m) throw new codes.UBIQ_MODEL_INVALID(`${subject}: no model ${id} in the model folders`)
    if (m.definition.subject !== subject) throw new codes.UBIQ_MODEL_INVALID(`${id} scores ${m.definition.subject}, not ${subject}`)
    if (!cache.has(id)) cache.set(id, loadModel(m.definition, m.path))
    return cache.get(id)!
  }
  const active: ActiveModels = { champions: {}, shadows: {} }
  for (const s of subjects) {
    active.champions[s] = await load(choice[s].champion, s)
    active.shadows[s] = await Promise.all(choice[s].shadows.map((id) => load(id, s)))
  }
  return active
}

/** The running registry: the models in use now, following the choice file. */
export interface ModelRegistry {
  current(): ActiveModels
  close(): void
}

/**
 * Loads the chosen models and follows `file`: when it changes, the new choice is loaded and checked,
 * then swapped in whole; `onChange` hears of each swap or refusal. Polled (every `pollMs`), as
 * fs.watch misses renames on some file systems.
 */
export async function openModelRegistry(opts: {
  dirs: readonly string[]
  file: string
  pollMs?: number
  onChange(event: { ok: true; choice: Choice } | { ok: false; error: Error }): void
}): Promise<ModelRegistry> {
  let active = await loadChoice(readChoice(opts.file), findModels(opts.dirs).models)
  let loading = Promise.resolve()
  const reload = () => {
    loading = loading.then(async () => {
      try {
        const choice = readChoice(opts.file)
        active = await loadChoice(choice, findModels(opts.dirs).models)
        opts.onChange({ ok: true, choice })
      } catch (err) {
        opts.onChange({ ok: false, error: err as Error })
      }
    })
  }
  watchFile(opts.file, { interval: opts.pollMs ?? 500 }, reload)
  return {
    current: () => active,
    close: () => unwatchFile(opts.file, reload),
  }
}

/** The choice file in a data folder. */
export const choiceFile = (dataDir: string) => join(dataDir, 'models.json')

/** The model folders: the shipped one, then `extra` (MODELS_DIR) when given. */
export const modelDirs = (extra?: string) => [shippedModels, ...(extra ? [extra] : [])]
