/**
 * Erasure, end to end (#21 item 5): `ubiq erase policy ID` and the analyst's
 * `POST /api/v1/policies/{policy}/erasure` remove everything that identifies a policy, while the
 * pipeline runs. Here because it reaches every stage: the only place besides pipeline.ts that does.
 *
 * The order matters. First the policy leaves the running registry, so ingest refuses its devices'
 * next messages (`unknown_device`) and scoring drops its state and whatever of it is still in
 * flight; only then is what was written removed, so nothing writes it back. A step that fails
 * (InfluxDB down) puts the devices back in the running registry, and the erasure can be asked
 * again; the registry file is rewritten once everything else is gone (its being writable is checked
 * first). The audit chain keeps the policy's records, pseudonymous (pricing/pseudonyms.ts): the
 * erasure is recorded there, then the policy's key is destroyed.
 */
import { accessSync, constants, existsSync, readFileSync, rmSync } from 'node:fs'
import { dirname, join } from 'node:path'
import type { MqttClient } from 'mqtt'
import type { Logger } from 'pino'
import type { Erase, Erasure } from '../dashboards/index.ts'
import { quoteIdent, quoteString, sensors, topics, writePrivate, type CommandStore, type ConsentStore, type PrivacyStore, type Influx, type Journal, type RegisteredDevice } from '../ingest/index.ts'
import type { AuditLog, ClaimsStage, ErasureRecord, PolicyKeys, WebhookSender } from '../pricing/index.ts'

export interface ErasureDeps {
  /** The running device registry: erasure takes the policy's devices out of it. */
  registry: Map<string, RegisteredDevice>
  /** The registry's file (DEVICE_REGISTRY), rewritten without them; none for a registry made in memory (the demo). */
  registryFile?: string
  dataDir: string
  influx: Influx
  journal: Journal
  /** ubiq's publisher: it clears the retained messages it published about the policy. */
  mqtt: MqttClient
  audit: AuditLog
  keys: PolicyKeys
  consents: ConsentStore
  privacy: PrivacyStore
  commands: CommandStore
  /** Its claims leave the list, and its webhook deliveries (pending or dead) their files: they hold its readings. */
  claims: Pick<ClaimsStage, 'forget'>
  webhooks: Pick<WebhookSender, 'forget'>
  /** Drops the policy's and its devices' state in the running stages (ingest, scoring), and the policy from their registry. */
  forget(policyId: string, deviceIds: readonly string[]): void
  /** Puts the policy back in the stages' registry: its erasure failed part way, and can be asked again. */
  restore(policyId: string, deviceIds: readonly string[]): void
  logger: Logger
}

/** The Home Assistant discovery configs ubiq keeps of a device (ingest/adapters/home-assistant.ts). */
export const discoveryFile = (dataDir: string, deviceId: string) => join(dataDir, 'home-assistant-discovery', `${deviceId}.json`)

/** What erasure cannot remove, and why: said in every answer, and in the README. */
const KEPT = [
  'the audit chain keeps the policy\'s premium, household, consent, privacy mode, command, claim and erasure records, pseudonymous: its key is destroyed, so nothing in them leads back to the policy or its devices, and the chain still verifies',
  'InfluxDB marks the dropped series deleted at once; the bytes stay in its data files until it compacts their shards',
  'the broker\'s credentials and ACL entries of the devices, where the operator made them (ubiq broker-config): take the devices out of the registry they were made from and make them again',
  'logs, as the operator keeps them: they hold ids, never readings',
  'claims already delivered to the insurer\'s claims system: they are the insurer\'s record there',
  'backups of UBIQ_DATA_DIR and InfluxDB taken before the erasure',
]

/** Erases one policy at a time (a second waits for the first): two would race on the files they rewrite. */
export function eraser(deps: ErasureDeps): Erase {
  const log = deps.logger.child({ stage: 'erasure' })
  let last: Promise<unknown> = Promise.resolve()
  const erase: Erase = async (policyId, by) => {
    const entries = [...deps.registry.values()].filter((d) => d.policyId === policyId)
    const devices = entries.map((d) => d.deviceId)
    if (devices.length === 0) return undefined
    // A registry file ubiq could not rewrite would bring the policy back at the next start.
    if (deps.registryFile) for (const path of [deps.registryFile, dirname(deps.registryFile)]) accessSync(path, constants.W_OK)
    for (const d of devices) deps.registry.delete(d)
    deps.forget(policyId, devices)
    try {
      return await remove(policyId, devices, by)
    } catch (err) {
      for (const e of entries) deps.registry.set(e.deviceId, e)
      deps.restore(policyId, devices)
      log.error({ err, devices: devices.length }, 'erasure failed part way: the policy is back in the running registry; ask again')
      throw err
    }
  }
  /** Everything the policy left behind, now that nothing adds to it. */
  const remove = async (policyId: string, devices: string[], by: Parameters<Erase>[1]): Promise<Erasure> => {
    const removed: Erasure['removed'] = { registryDevices: devices.length }

    // Retained messages ubiq published about the policy: an empty retained message removes one.
    const retained = [...new Set(sensors.map((s) => s.subject))].map((subject) => topics.premiums(policyId, subject)).concat(devices.flatMap((d) => [topics.consent(d), topics.privacy(d)]))
    await Promise.all(retained.map((topic) => deps.mqtt.publishAsync(topic, '', { qos: 1, retain: true })))
    removed.retainedTopicsCleared = retained.length

    let discovery = 0
    for (const d of devices) {
      if (existsSync(discoveryFile(deps.dataDir, d))) discovery++
      rmSync(discoveryFile(deps.dataDir, d), { force: true })
    }
    removed.discoveryFiles = discovery

    // What is queued for InfluxDB goes first, then the series: readings are tagged by device,
    // everything derived by policy (and device). DROP SERIES names no measurement, so it reaches
    // every measurement in every retention policy: there is no `qualified()` name to give.
    // With several InfluxDBs, of every one: a device's readings from before it was this policy's are in its former policy's.
    await deps.influx.flush()
    const where = [`${quoteIdent('policy_id')} = ${quoteString(policyId)}`, ...devices.map((d) => `${quoteIdent('device_id')} = ${quoteString(d)}`)].join(' OR ')
    const series = await deps.influx.query(`SHOW SERIES WHERE ${where}`)
    removed.influxSeries = series.reduce((n, s) => n + s.values.length, 0)
    await deps.influx.query(`DROP SERIES WHERE ${where}`, 'POST')

    removed.journalLines = deps.journal.erase(policyId, devices)

    if (deps.registryFile) {
      const file = JSON.parse(readFileSync(deps.registryFile, 'utf8')) as { devices: { policyId: string }[] }
      writePrivate(deps.registryFile, `${JSON.stringify({ ...file, devices: file.devices.filter((d) => d.policyId !== policyId) }, null, 2)}\n`)
    }
    deps.consents.forget(policyId, devices)
    deps.privacy.forget(policyId, devices)
    deps.commands.forget(devices)
    deps.claims.forget(policyId)
    removed.webhookDeliveries = deps.webhooks.forget(policyId)

    const at = new Date().toISOString()
    const record = deps.audit.link<ErasureRecord>({ record: 'erasure', policyId: deps.keys.pseudonym(policyId), devices: devices.length, by, at })
    deps.keys.shred(policyId)
    log.info({ pseudonym: record.policyId, devices: devices.length, auditHash: record.hash }, 'policy erased')
    return { policyId, pseudonym: record.policyId, auditHash: record.hash, at, devices: devices.length, removed, kept: KEPT }
  }
  return (policyId, by) => {
    const run = last.then(() => erase(policyId, by))
    last = run.catch(() => {})
    return run
  }
}
