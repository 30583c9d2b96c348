import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { contractDocs } from './contract-docs.ts'
import { sensors } from './index.ts'

t.test('the committed contract documents are what the validator\'s schemas generate (npm run docs)', async (t) => {
  const docs = contractDocs()
  t.equal(docs.size, sensors.length + 2, 'a JSON Schema per stream, the AsyncAPI document and the markdown')
  for (const [path, text] of docs) {
    const committed = readFileSync(fileURLToPath(new URL(`../${path}`, import.meta.url)), 'utf8')
    t.equal(committed, text, path)
  }
})

t.test('the AsyncAPI document has a channel and a schema for every stream', async (t) => {
  const api = JSON.parse(contractDocs().get('docs/contract/asyncapi.json')!) as { channels: Record<string, { publish?: { message: { payload: { $ref: string } } } }> }
  for (const s of sensors) {
    t.equal(api.channels[`ubiq/v1/dev/{deviceId}/${s.kind}`]?.publish?.message.payload.$ref, `./${s.kind}.schema.json`, s.kind)
  }
})
