/** `npm run models`: writes every built-in model's .onnx file beside its definition. */
import { writeFileSync } from 'node:fs'
import { builtInModels } from './index.ts'

for (const { definition, build } of builtInModels) {
  const path = new URL(definition.file, import.meta.url)
  writeFileSync(path, build())
  console.log(`wrote ${path.pathname}`)
}
