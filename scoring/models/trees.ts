/**
 * Gradient-boosted Poisson regression trees, the kind of model analysts bring from LightGBM or
 * scikit-learn, fitted with the project's own code so the ONNX path for tree ensembles can be
 * proved end to end (ai.onnx.ml TreeEnsembleRegressor, run by onnxruntime):
 *
 *   claims ~ Poisson(exposure · exp(base + Σ tree(x)))
 *
 * Each round grows one tree on the Poisson gradient (μ − y) and hessian (μ), splitting where the
 * gain G_L²/H_L + G_R²/H_R − G²/H is largest, and sets each leaf to the Poisson optimum log(Σy / Σμ),
 * smoothed to log((Σy + 1) / (Σμ + 1)) (one claim of credibility towards "no change") so a leaf
 * without claims stays finite, times the learning rate.
 *
 * The trees see the values the ONNX graph feeds its core: rows as float32 (thresholds and leaves are
 * float32 values, so JavaScript and onnxruntime send every row down the same branches), and, for a
 * definition that gives features a `log1pScale`, transformed values: fit on `applyTransforms(def, row)`.
 * (The graph computes log1p in float32, so a transformed value within a few float32 steps of a
 * threshold may take the other branch there.)
 */
import onnxProto from 'onnx-proto'
import { checkFrequencyData, type GlmData } from './glm.ts'
import { transformed, type ModelDefinition } from './definition.ts'
import type { Core } from './onnx.ts'

/** A split (float32(x[feature]) ≤ threshold → `left`, else `right`; node indices) or a leaf (a log-rate contribution). */
export type TreeNode = { feature: number; threshold: number; left: number; right: number } | { leaf: number }
/** Nodes of one tree; node 0 is its root. */
export type Tree = TreeNode[]
/** log rate = base + Σ tree(x). */
export interface TreeEnsemble {
  base: number
  trees: Tree[]
}

/** The features as the core of a definition's graph sees them: log1p(max(x, 0)) where marked. */
export const applyTransforms = (def: ModelDefinition, row: readonly number[]) =>
  row.map((v, j) => transformed(def.features[j]!, v))

/**
 * Fits the ensemble (deterministic). Rows hold the definition's features in its order, as the core
 * sees them (`applyTransforms`); `exposure` is the offset, in the unit the rate is per (years, or
 * km when the definition has an exposure feature). Defaults: 50 trees of depth 2 (pairwise interactions),
 * learning rate 0.1, leaves of at least 1% of the total exposure; deeper or more trees start to
 * fit noise on a few thousand claims.
 */
export function fitPoissonTrees(data: GlmData, opts: { trees?: number; depth?: number; learningRate?: number; minLeafExposure?: number } = {}): TreeEnsemble {
  checkFrequencyData(data)
  const { x, claims, exposure } = data
  const n = x.length
  const p = x[0]!.length
  const totalClaims = sum(claims), totalExposure = sum(exposure)
  const { trees = 50, depth = 2, learningRate = 0.1, minLeafExposure = 0.01 * totalExposure } = opts
  const xs = x.map((r) => r.map(Math.fround)) // what onnxruntime compares
  const columns = Array.from({ length: p }, (_, j) => Float64Array.from(xs, (r) => r[j]!))
  const weights = Float64Array.from(exposure)
  const base = Math.fround(Math.log(totalClaims / totalExposure))
  const eta = new Float64Array(n).fill(base) // log rate per unit of exposure
  // Rows sorted by each feature, once; children keep their parent's order.
  const all = columns.map((c) => Array.from({ length: n }, (_, i) => i).sort((a, b) => c[a]! - c[b]! || a - b))
  const ensemble: TreeEnsemble = { base, trees: [] }
  for (let m = 0; m < trees; m++) {
    const mu = eta.map((e, i) => exposure[i]! * Math.exp(e)) // the hessian
    const gradient = mu.map((v, i) => v - claims[i]!)
    const tree: Tree = []
    const grow = (sorted: number[][], level: number): number => {
      const id = tree.length
      const rows = sorted[0] ?? Array.from({ length: n }, (_, i) => i)
      const split = level < depth ? bestSplit(sorted, columns, gradient, mu, weights, minLeafExposure) : undefined
      if (!split) {
        const y = sum(rows.map((i) => claims[i]!)), h = sum(rows.map((i) => mu[i]!))
        tree.push({ leaf: Math.fround(learningRate * Math.log((y + 1) / (h + 1))) })
        return id
      }
      tree.push({ leaf: 0 }) // replaced below, once the children have their indices
      const goesLeft = (i: number) => columns[split.feature]![i]! <= split.threshold
      const left = grow(sorted.map((s) => s.filter(goesLeft)), level + 1)
      const right = grow(sorted.map((s) => s.filter((i) => !goesLeft(i))), level + 1)
      tree[id] = { feature: split.feature, threshold: split.threshold, left, right }
      return id
    }
    grow(all, 0)
    ensemble.trees.push(tree)
    for (let i = 0; i < n; i++) eta[i]! += walk(tree, xs[i]!)
  }
  return ensemble
}

/** The split of a node's rows with the largest gradient-hessian gain, if any gains and leaves both sides enough exposure. */
function bestSplit(sorted: number[][], columns: Float64Array[], g: Float64Array, h: Float64Array, w: Float64Array, minLeafExposure: number) {
  let best: { feature: number; threshold: number; gain: number } | undefined
  const rows = sorted[0] ?? []
  const [gt, ht, wt] = [g, h, w].map((v) => rows.reduce((s, i) => s + v[i]!, 0)) as [number, number, number]
  sorted.forEach((rows, feature) => {
    const c = columns[feature]!
    let gl = 0, hl = 0, wl = 0
    for (let k = 0; k < rows.length - 1; k++) {
      const i = rows[k]!
      gl += g[i]!
      hl += h[i]!
      wl += w[i]!
      const a = c[i]!, b = c[rows[k + 1]!]!
      if (a === b || wl < minLeafExposure || wt - wl < minLeafExposure) continue
      const gain = gl ** 2 / hl + (gt - gl) ** 2 / (ht - hl) - gt ** 2 / ht
      if (gain > (best?.gain ?? 1e-9)) {
        const mid = Math.fround((a + b) / 2) // a float32 in [a, b]: keep it below b
        best = { feature, threshold: mid < b ? mid : a, gain }
      }
    }
  })
  return best
}

/** One tree's log-rate contribution for a row of float32 values. */
function walk(tree: Tree, row: readonly number[]): number {
  let node = tree[0]!
  while (!('leaf' in node)) node = tree[Math.fround(row[node.feature]!) <= node.threshold ? node.left : node.right]!
  return node.leaf
}

/** The ensemble's log rate per unit of exposure for one row (compared as float32, as onnxruntime does). */
export const predictTrees = (e: TreeEnsemble, row: readonly number[]): number => e.trees.reduce((s, tree) => s + walk(tree, row), e.base)

/** The ensemble as an ONNX core: one ai.onnx.ml TreeEnsembleRegressor (opset 3), output [N,1]. */
export function treeCore(def: ModelDefinition, e: TreeEnsemble): Core {
  const { AttributeType } = onnxProto.onnx.AttributeProto
  const a = { treeids: [] as number[], nodeids: [] as number[], featureids: [] as number[], values: [] as number[], modes: [] as string[], truenodeids: [] as number[], falsenodeids: [] as number[] }
  const t = { treeids: [] as number[], nodeids: [] as number[], ids: [] as number[], weights: [] as number[] }
  e.trees.forEach((tree, treeId) =>
    tree.forEach((node, nodeId) => {
      a.treeids.push(treeId)
      a.nodeids.push(nodeId)
      if ('leaf' in node) {
        a.featureids.push(0), a.values.push(0), a.modes.push('LEAF'), a.truenodeids.push(0), a.falsenodeids.push(0)
        t.treeids.push(treeId), t.nodeids.push(nodeId), t.ids.push(0), t.weights.push(node.leaf)
      } else {
        if (!(node.feature >= 0 && node.feature < def.features.length)) throw new Error(`${def.name}: a tree splits on feature ${node.feature}, the definition lists ${def.features.length}`)
        a.featureids.push(node.feature), a.values.push(node.threshold), a.modes.push('BRANCH_LEQ'), a.truenodeids.push(node.left), a.falsenodeids.push(node.right)
      }
    }),
  )
  const ints = (name: string, v: number[]) => ({ name, type: AttributeType.INTS, ints: v })
  const floats = (name: string, v: number[]) => ({ name, type: AttributeType.FLOATS, floats: v })
  const string = (name: string, v: string) => ({ name, type: AttributeType.STRING, s: Buffer.from(v) })
  return {
    form: 'gradient-boosted Poisson trees',
    opsets: [{ domain: 'ai.onnx.ml', version: 3 }],
    initializers: [],
    nodes: (input, output) => [{
      opType: 'TreeEnsembleRegressor',
      domain: 'ai.onnx.ml',
      input: [input],
      output: [output],
      name: 'trees',
      attribute: [
        ints('nodes_treeids', a.treeids), ints('nodes_nodeids', a.nodeids), ints('nodes_featureids', a.featureids),
        floats('nodes_values', a.values), { name: 'nodes_modes', type: AttributeType.STRINGS, strings: a.modes.map((m) => Buffer.from(m)) },
        ints('nodes_truenodeids', a.truenodeids), ints('nodes_falsenodeids', a.falsenodeids),
        ints('target_treeids', t.treeids), ints('target_nodeids', t.nodeids), ints('target_ids', t.ids), floats('target_weights', t.weights),
        { name: 'n_targets', type: AttributeType.INT, i: 1 }, floats('base_values', [e.base]),
        string('aggregate_function', 'SUM'), string('post_transform', 'NONE'),
      ],
    }],
  }
}

const sum = (v: readonly number[]) => v.reduce((s, x) => s + x, 0)
