/** `npm run docs`: writes the contract's documents (ingest/contract-docs.ts, with what dashboards declares ubiq emits) the data inventory (ingest/data-inventory.ts), the error catalogue (ingest/errors.ts), the README's configuration table (bin/config.ts), the Prometheus alerting rules and the example nats-server configs (docs/nats/). */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { PROMETHEUS_RULES, prometheusRules, publishedSchemas } from '../dashboards/index.ts'
import { contractDocs, dataInventory, DATA_INVENTORY, ERRORS_DOC, errorsDoc, natsServerConfig, natsUsers } from '../ingest/index.ts'
import { ConfigSchema, withConfigTable } from './config.ts'

const root = fileURLToPath(new URL('..', import.meta.url))
const readme = withConfigTable(readFileSync(`${root}README.md`, 'utf8'))
// Operators' examples for a three-node cluster on hosts n1, n2, n3 (docs/scale-out.md), from the config the cluster test runs.
const nodes = [1, 2, 3]
// Each includes users.conf, which `ubiq broker-config --nats` writes from the registry; users.example.conf shows one for two cars.
const partitions = ConfigSchema.properties.WORKER_PARTITIONS.default
const natsExamples = [...nodes.map((i) => [`docs/nats/n${i}.conf`, natsServerConfig({
  name: `n${i}`, host: '0.0.0.0', port: 4222, mqttPort: 1883, clusterPort: 6222,
  routes: nodes.filter((j) => j !== i).map((j) => `nats-route://n${j}:6222`), storeDir: '/var/lib/nats',
}, partitions, 'users.conf')] as const), ['docs/nats/users.example.conf', natsUsers({
  service: '<service password>', devices: new Map(['car-1', 'car-2'].map((id) => [id, `<${id} password>`])),
}, partitions)] as const]
for (const [path, text] of [...contractDocs(publishedSchemas), [DATA_INVENTORY, dataInventory()] as const, [ERRORS_DOC, errorsDoc()] as const, [PROMETHEUS_RULES, prometheusRules()] as const, ['README.md', readme] as const, ...natsExamples]) {
  mkdirSync(dirname(`${root}${path}`), { recursive: true })
  writeFileSync(`${root}${path}`, text)
  console.log(`wrote ${path}`)
}
