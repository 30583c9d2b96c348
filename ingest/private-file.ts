/** Files ubiq keeps for itself in UBIQ_DATA_DIR: private to its user (#20 item 10), replaced whole. */
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'

/**
 * Writes `text` to `file` whole or not at all (a new file, flushed, renamed over the old, and the
 * rename flushed with its folder), readable by its owner only.
 */
export function writePrivate(file: string, text: string): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 })
  const next = `${file}.next`
  writeFileSync(next, text, { mode: 0o600, flush: true })
  renameSync(next, file)
  // The rename is on disk only once the folder is: a key destroyed must stay destroyed after a power cut.
  const dir = openSync(dirname(file), 'r')
  try {
    fsyncSync(dir)
  } finally {
    closeSync(dir)
  }
}
