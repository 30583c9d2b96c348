/** `npm run docs`: writes the device contract's documents (see contract-docs.ts). */
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { contractDocs } from './contract-docs.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
for (const [path, text] of contractDocs()) {
  mkdirSync(dirname(`${root}${path}`), { recursive: true })
  writeFileSync(`${root}${path}`, text)
  console.log(`wrote ${path}`)
}
