/**
 * The JetStream pieces of the benchmarks (bench:engine, bench:ingest's BENCH_PATH=jetstream):
 * the minimal reference consumer, and the CPU each process spends a message, from /proc.
 */
import { writeFileSync } from 'node:fs'
import { AckPolicy, DeliverPolicy, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream'
import type { NatsConnection } from '@nats-io/transport-node'
import { cpuSeconds } from './server-rss.ts'

/** Messages the reference takes per fetch, writes in one batch and acknowledges with one ack (AckPolicy.All). */
export const BATCH = 1000

/**
 * A fresh durable pull consumer drains `count` messages of `stream`, BATCH at a time: `handle`
 * each batch, then one ack for it. Up to `inFlight` batches are handled at once while the next is
 * fetched; AckPolicy.All acknowledges every earlier delivery too, so a batch is acknowledged once
 * it is handled and the batches before it are acknowledged.
 */
export async function drainStream(nc: NatsConnection, stream: string, name: string, count: number, handle: (batch: JsMsg[]) => Promise<void>, inFlight = 1): Promise<void> {
  const jsm = await jetstreamManager(nc)
  await jsm.consumers.add(stream, { durable_name: name, ack_policy: AckPolicy.All, deliver_policy: DeliverPolicy.All, max_ack_pending: (inFlight + 1) * BATCH })
  const consumer = await jetstream(nc).consumers.get(stream, name)
  const handling = new Set<Promise<void>>()
  let acked = Promise.resolve()
  for (let taken = 0; taken < count;) {
    const batch: JsMsg[] = []
    for await (const m of await consumer.fetch({ max_messages: BATCH, expires: 2000 })) batch.push(m)
    if (batch.length === 0) continue
    taken += batch.length
    // ackAck waits for the server's word.
    const done = acked = Promise.all([handle(batch), acked]).then(() => batch.at(-1)!.ackAck()).then(() => {})
    handling.add(done)
    void done.then(() => handling.delete(done))
    if (handling.size >= inFlight) await Promise.race(handling)
  }
  await acked
  await jsm.consumers.delete(stream, name)
}

/** CPU-seconds a message of each part while `work` runs (this process as `consumer`, the others by pid), and its rate. */
export async function measured(messages: number, pids: Record<string, number>, work: () => Promise<void>) {
  const cpu = () => Object.fromEntries(Object.entries(pids).map(([part, pid]) => [part, cpuSeconds(pid)]))
  const me = process.cpuUsage()
  const before = cpu()
  const t0 = performance.now()
  await work()
  const s = (performance.now() - t0) / 1000
  const after = cpu()
  const mine = process.cpuUsage(me)
  return {
    rate: messages / s,
    perMessage: { consumer: (mine.user + mine.system) / 1e6 / messages, ...Object.fromEntries(Object.keys(after).map((k) => [k, (after[k]! - before[k]!) / messages])) } as Record<string, number>,
  }
}
export type Measured = Awaited<ReturnType<typeof measured>>

/**
 * Gives the benchmark's processes the machine's first claim on the CPU: each autogroup (a
 * session: the servers run in their own) at nice -20, since nice alone does not reach across
 * autogroups. Needs root or CAP_SYS_NICE; without it, the figures are taken as the scheduler gives.
 */
export function prioritise(pids: number[]): boolean {
  try {
    for (const pid of pids) writeFileSync(`/proc/${pid}/autogroup`, '-20')
    return true
  } catch {
    return false
  }
}

export const us = (s: number) => `${(s * 1e6).toFixed(1)} µs`
