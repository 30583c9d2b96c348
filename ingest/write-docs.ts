/** `npm run docs`: writes the device contract's documents (see contract-docs.ts) and the data inventory (data-inventory.ts). */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { contractDocs } from './contract-docs.ts'
import { dataInventory, DATA_INVENTORY } from './data-inventory.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
for (const [path, text] of [...contractDocs(), [DATA_INVENTORY, dataInventory()] as const]) {
  mkdirSync(dirname(`${root}${path}`), { recursive: true })
  writeFileSync(`${root}${path}`, text)
  console.log(`wrote ${path}`)
}
