/** `npm run docs`: writes the contract's documents (ingest/contract-docs.ts, with what dashboards declares ubiq emits) the data inventory (ingest/data-inventory.ts), the error catalogue (ingest/errors.ts) and the README's configuration table (bin/config.ts). */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { publishedSchemas } from '../dashboards/index.ts'
import { contractDocs, dataInventory, DATA_INVENTORY, ERRORS_DOC, errorsDoc } from '../ingest/index.ts'
import { withConfigTable } from './config.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const readme = withConfigTable(readFileSync(`${root}README.md`, 'utf8'))
for (const [path, text] of [...contractDocs(publishedSchemas), [DATA_INVENTORY, dataInventory()] as const, [ERRORS_DOC, errorsDoc()] as const, ['README.md', readme] as const]) {
  mkdirSync(dirname(`${root}${path}`), { recursive: true })
  writeFileSync(`${root}${path}`, text)
  console.log(`wrote ${path}`)
}
