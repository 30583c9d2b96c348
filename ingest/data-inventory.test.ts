import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { dataInventory, DATA_INVENTORY } from './data-inventory.ts'
import { storedMeasurements } from './index.ts'

t.test('the committed data inventory is what the declarations generate (npm run docs)', async (t) => {
  const committed = readFileSync(fileURLToPath(new URL(`../${DATA_INVENTORY}`, import.meta.url)), 'utf8')
  t.equal(committed, dataInventory(), DATA_INVENTORY)
})

t.test('it names every field of every measurement, with how long it is kept and who reads it', async (t) => {
  const text = dataInventory()
  for (const m of storedMeasurements) {
    const section = text.slice(text.indexOf(`### ${m.name}\n`), text.indexOf('\n### ', text.indexOf(`### ${m.name}\n`) + 1))
    t.ok(section.startsWith(`### ${m.name}\n`), `${m.name} has a section`)
    for (const f of m.fields) t.match(section, new RegExp(`\\| \`${f.name.replace(/[<>]/g, '.')}\` \\| .+ \\| .+ \\(\`${m.retention}\`\\) \\| .+ \\|`), `${m.name}.${f.name}: meaning, kept, read by`)
  }
  // Positions: the policyholder reads their own trip's route (latitude and longitude); no analyst reads any.
  for (const f of ['lat_deg', 'lon_deg']) t.match(text, new RegExp(`\\| \`${f}\` \\| [^|]+ \\| 14 days \\(\`raw_positions\`\\) \\| ubiq; the policyholder \\(their own[^|]*\\) \\|`), `${f}: ubiq and the policyholder (their own)`)
  t.match(text, /\| `alt_m` \| [^|]+ \| 14 days \(`raw_positions`\) \| ubiq \|/, 'altitude: ubiq alone')
})
