#!/usr/bin/env node
// The `ubiq` command. ubiq runs its TypeScript directly through tsx: one way, no build step.
import { register } from 'tsx/esm/api'

register()
await import('./cli.ts')
