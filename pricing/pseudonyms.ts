/**
 * Per-policy keys for the audit chain (#21 item 5: erasure, and the chain survives it). A record's
 * personal fields are written pseudonymised: the policy id as an HMAC of it under the policy's own
 * key (the same pseudonym in every record of the policy, so its premiums still form a history),
 * device and policyholder token ids sealed with that key (AES-256-GCM: read back while the key is
 * kept). The keys are kept in one file private to ubiq's user. Erasing a policy destroys its key
 * (crypto-shredding): its records stay, their hashes and the chain unchanged, and nothing in them
 * leads back to the policy or its devices any more.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { writePrivate } from '../ingest/index.ts'
import type { AuditRecord } from './audit.ts'

/** A pseudonym's prefix: `:` is in no id (ID_PATTERN), so a pseudonym is never taken for a policy id. */
const PSEUDONYM = 'hmac:'
const SEALED = 'sealed:'

export interface PolicyKeys {
  /** The policy's pseudonym; its key is made (and kept on disk) at its first use. */
  pseudonym(policyId: string): string
  /**
   * The policy a record names: the policy of a pseudonym whose key is kept; a plain id (a record
   * written before pseudonyms) as it is; undefined for the pseudonym of an erased policy.
   */
  policyOf(named: string): string | undefined
  /** `text` sealed with the policy's key. */
  seal(policyId: string, text: string): string
  /** A sealed text back (undefined once the key is gone); a text that is not sealed as it is. */
  unseal(policyId: string, text: string): string | undefined
  /** Destroys the policy's key, on disk before this returns; false when it had none. */
  shred(policyId: string): boolean
}

/** Opens the keys kept in `file` (none yet: empty). */
export function openPolicyKeys(file: string): PolicyKeys {
  const keys = new Map<string, Buffer>(existsSync(file) ? Object.entries(JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>).map(([p, k]) => [p, Buffer.from(k, 'base64')]) : [])
  // Two keys from one: the same key should not both hash and encrypt.
  const sub = (key: Buffer, use: string) => createHmac('sha256', key).update(use).digest()
  const hmac = (key: Buffer, policyId: string) => `${PSEUDONYM}${createHmac('sha256', sub(key, 'pseudonym')).update(policyId).digest('hex')}`
  const byPseudonym = new Map([...keys].map(([p, k]) => [hmac(k, p), p]))
  const save = () => writePrivate(file, JSON.stringify(Object.fromEntries([...keys].map(([p, k]) => [p, k.toString('base64')]))))
  const keyOf = (policyId: string) => {
    let key = keys.get(policyId)
    if (!key) {
      key = randomBytes(32)
      keys.set(policyId, key)
      byPseudonym.set(hmac(key, policyId), policyId)
      // On disk before any record uses it: a record whose key was lost could never be read back.
      save()
    }
    return key
  }
  return {
    pseudonym: (policyId) => hmac(keyOf(policyId), policyId),
    policyOf: (named) => (named.startsWith(PSEUDONYM) ? byPseudonym.get(named) : named),
    seal(policyId, text) {
      const iv = randomBytes(12)
      const cipher = createCipheriv('aes-256-gcm', sub(keyOf(policyId), 'seal'), iv)
      const sealed = Buffer.concat([cipher.update(text, 'utf8'), cipher.final()])
      return `${SEALED}${Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString('base64url')}`
    },
    unseal(policyId, text) {
      if (!text.startsWith(SEALED)) return text
      const key = keys.get(policyId)
      if (!key) return undefined
      const raw = Buffer.from(text.slice(SEALED.length), 'base64url')
      const decipher = createDecipheriv('aes-256-gcm', sub(key, 'seal'), raw.subarray(0, 12))
      decipher.setAuthTag(raw.subarray(12, 28))
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8')
    },
    shred(policyId) {
      const key = keys.get(policyId)
      if (!key) return false
      keys.delete(policyId)
      byPseudonym.delete(hmac(key, policyId))
      save()
      return true
    },
  }
}

/** A record as the chain keeps it: its policy pseudonymous, a device's or policyholder token's id (who changed consent or privacy mode, the device a command went to or a claim came from) sealed. */
export function pseudonymise<R extends AuditRecord>(r: R, keys: PolicyKeys): R {
  if (r.record === 'erasure') return r // written pseudonymous: its policy's key is gone as it is written
  const policyId = keys.pseudonym(r.policyId)
  // A command's reason names the device whose event set it off.
  if (r.record === 'command') return { ...r, policyId, deviceId: keys.seal(r.policyId, r.deviceId), ...(r.reason === undefined ? {} : { reason: keys.seal(r.policyId, r.reason) }) }
  if (r.record === 'claim') return { ...r, policyId, deviceId: keys.seal(r.policyId, r.deviceId) }
  if (r.record !== 'consent' && r.record !== 'privacy') return { ...r, policyId }
  const by = r.by.role === 'device' ? { ...r.by, deviceId: keys.seal(r.policyId, r.by.deviceId) }
    : r.by.role === 'policyholder' && r.by.tokenId ? { ...r.by, tokenId: keys.seal(r.policyId, r.by.tokenId) } : r.by
  return { ...r, policyId, by }
}

/** A record read back with its policy and ids, for pricing's and consent's state at start; undefined for an erased policy's (and an erasure's). */
export function reveal<R extends AuditRecord>(r: R, keys: PolicyKeys): R | undefined {
  if (r.record === 'erasure') return undefined
  const policyId = keys.policyOf(r.policyId)
  if (policyId === undefined) return undefined
  const unseal = (text: string) => keys.unseal(policyId, text) ?? text
  if (r.record === 'command') return { ...r, policyId, deviceId: unseal(r.deviceId), ...(r.reason === undefined ? {} : { reason: unseal(r.reason) }) }
  if (r.record === 'claim') return { ...r, policyId, deviceId: unseal(r.deviceId) }
  if (r.record !== 'consent' && r.record !== 'privacy') return { ...r, policyId }
  const by = r.by.role === 'device' ? { ...r.by, deviceId: unseal(r.by.deviceId) }
    : r.by.tokenId ? { ...r.by, tokenId: unseal(r.by.tokenId) } : r.by
  return { ...r, policyId, by }
}
