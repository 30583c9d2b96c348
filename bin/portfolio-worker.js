// A portfolio worker thread (bin/portfolio.ts runPortfolio): the TypeScript loader, then the module.
import { register } from 'tsx/esm/api'

register()
await import('./portfolio.ts')
