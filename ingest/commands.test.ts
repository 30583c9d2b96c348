/** The command store (#24): on the record before it acts, rebuilt from it, answered once, confirmed only while a command stands. */
import t from 'tap'
import { createHash } from 'node:crypto'
import { commandMessages, codes, commandStore, createAdapters, deviceRegistry, type CommandChange, type Reading, type RecordedCommandChange } from './index.ts'

const registry = deviceRegistry([{ deviceId: 'hub-1', policyId: 'pol-1', kinds: ['leak', 'valve'] }])
const T = Date.UTC(2026, 0, 1)
const valve = (receivedAt: number, valve_open: boolean): Reading => ({ deviceId: 'hub-1', policyId: 'pol-1', kind: 'valve', subject: 'home', seq: receivedAt, ts: receivedAt, receivedAt, fields: { valve_open } })

function store(history: RecordedCommandChange[] = [], fail = false) {
  let now = T
  const log: RecordedCommandChange[] = [...history]
  const sent: string[] = []
  const s = commandStore({
    registry, history,
    record(change: CommandChange) {
      if (fail) throw new Error('disk full')
      const hash = createHash('sha256').update(JSON.stringify([log.length, change])).digest('hex')
      log.push({ ...change, hash })
      return hash
    },
    onSent: (c) => sent.push(c.id),
    now: () => now,
  })
  return { s, log, sent, at: (ms: number) => (now = T + ms) }
}

t.test('a command is recorded, then sent; acknowledged once; confirmed by a report while it stands, not before nor after', async (t) => {
  const { s, log, sent, at } = store()
  const c = s.send('hub-1', 'close_valve', 'leak at hub-1')
  t.same([log.map((r) => r.action), sent], [['sent'], [c.id]], 'on the record, then sent, its id the record\'s hash')
  t.equal(Date.parse(c.expiresAt) - Date.parse(c.issuedAt), 15 * 60_000)
  t.same(commandMessages(createAdapters(), c).map((m) => m.topic), ['ubiq/v1/cmd/hub-1/close_valve'], 'a hub of no foreign format: its v1 topic only')
  t.throws(() => s.ack('hub-2', { id: c.id, status: 'done' }, { seq: 1, ts: T }), codes.UBIQ_ACK_INVALID, 'another device cannot answer it')
  t.throws(() => s.ack('hub-1', { id: c.id, status: 'maybe' as 'done' }, { seq: 1, ts: T }), /\/status/, 'nor with a status of no meaning')
  at(1000)
  t.ok(s.ack('hub-1', { id: c.id, status: 'done' }, { seq: 2, ts: T + 1000 }))
  t.equal(s.ack('hub-1', { id: c.id, status: 'refused' }, { seq: 3, ts: T + 1500 }), undefined, 'the first answer stands')
  t.same(s.observe(valve(T - 1, false)), [], 'a report from before the command is no answer to it')
  t.same(s.observe(valve(T + 2000, true)), [], 'nor one of an open valve')
  t.same(s.observe(valve(T + 20 * 60_000, false)), [], 'nor one after it expired')
  t.same(s.observe(valve(T + 3000, false)).map((x) => x.id), [c.id], 'the valve closed while it stood confirms it')
  t.same(s.observe(valve(T + 4000, false)), [], 'once')
  t.same(log.map((r) => [r.action, r.status ?? '']), [['sent', ''], ['ack', 'done'], ['confirmed', '']])

  const restarted = store(log).s
  t.match(restarted.of('hub-1'), [{ id: c.id, ack: { status: 'done' }, confirmedAt: String }], 'rebuilt from the record')
})

t.test('a command that cannot be recorded is not sent', async (t) => {
  const { s, sent } = store([], true)
  t.throws(() => s.send('hub-1', 'close_valve', 'leak'), /disk full/)
  t.same([sent, s.of('hub-1')], [[], []])
})
