/** `npm run docs`: writes the contract's documents (ingest/contract-docs.ts, with what dashboards declares ubiq emits) and the data inventory (ingest/data-inventory.ts). */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { publishedSchemas } from '../dashboards/index.ts'
import { contractDocs, dataInventory, DATA_INVENTORY } from '../ingest/index.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
for (const [path, text] of [...contractDocs(publishedSchemas), [DATA_INVENTORY, dataInventory()] as const]) {
  mkdirSync(dirname(`${root}${path}`), { recursive: true })
  writeFileSync(`${root}${path}`, text)
  console.log(`wrote ${path}`)
}
