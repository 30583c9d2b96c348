import t from 'tap'
import { appendFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { openJournal } from './index.ts'

const fresh = () => mkdtempSync(join(tmpdir(), 'ubiq-journal-'))
const lines = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `obd,device_id=d seq=${from + i}i ${from + i}`)

t.test('confirmed lines are forgotten and their segments deleted', async (t) => {
  const dir = fresh()
  const j = openJournal(dir, 3)
  for (const l of lines(7)) j.append([l])
  t.equal(j.pending, 7)
  t.equal(readdirSync(dir).length, 3, 'segments of 3, 3 and 1 lines')
  j.confirm(lines(3))
  t.equal(readdirSync(dir).length, 2, 'the first segment is gone once all its lines are confirmed')
  j.confirm(lines(4, 3))
  t.equal(j.pending, 0)
  t.same(readdirSync(dir), ['segment-3.lp'], 'the current segment stays open while in use')
  j.close()
  t.same(readdirSync(dir), [], 'and goes at a clean close')
})

t.test('after a crash, the segments not fully confirmed are recovered in order, a torn last line dropped', async (t) => {
  const dir = fresh()
  const j = openJournal(dir, 4)
  for (const l of lines(10)) j.append([l])
  j.confirm([...lines(4), ...lines(1, 6)]) // segment 1 done; 6 confirmed out of order
  // The process dies here: no close. A torn write leaves half a line.
  appendFileSync(join(dir, 'segment-3.lp'), 'obd,device_id=d seq=')
  const again = openJournal(dir, 4)
  // Line 6 was confirmed, but its segment was not done: it is written again, which InfluxDB stores
  // once (same measurement, tags and time). Segment 1 (lines 0–3) was deleted and is not.
  t.same(again.recovered, lines(6, 4), 'lines 4–9, and no torn line')
  t.equal(again.pending, 6)
  again.confirm(again.recovered)
  t.equal(again.pending, 0)
  t.same(readdirSync(dir), [], 'recovered segments are deleted once written')
})

t.test('a line appended twice must be confirmed twice', async (t) => {
  const j = openJournal(fresh())
  const [a] = lines(1)
  j.append([a!])
  j.append([a!])
  j.confirm([a!])
  t.equal(j.pending, 1)
  j.confirm([a!, 'a line it never had'])
  t.equal(j.pending, 0)
})

t.test('whenPendingAtMost waits for confirmations (backpressure)', async (t) => {
  const j = openJournal(fresh())
  for (const l of lines(10)) j.append([l])
  let resumed = false
  j.whenPendingAtMost(5, () => (resumed = true))
  j.confirm(lines(4))
  t.equal(resumed, false, 'six pending')
  j.confirm(lines(1, 4))
  t.equal(resumed, true, 'five pending')
  const waited = j.confirm(lines(5, 5))
  t.equal(waited.length, 5, 'each confirmation reports how long the line waited')
  t.ok(waited.every((ms) => ms >= 0 && ms < 60_000))
})

t.test('a quarantined line leaves the journal for the dead-letter folder, with its reason, and is not recovered again (#20)', async (t) => {
  const root = fresh()
  const dir = join(root, 'journal')
  const j = openJournal(dir, 4)
  for (const l of lines(6)) j.append([l])
  let resumed = false
  j.whenPendingAtMost(4, () => (resumed = true))
  const [poisoned, other] = [lines(1, 1)[0]!, lines(1, 5)[0]!]
  j.quarantine([{ line: poisoned, reason: 'partial write: field type conflict' }, { line: other, reason: `unable to parse '${other}': invalid number` }])
  t.equal(j.pending, 4, 'no longer pending')
  t.ok(resumed, 'so backpressure lets go')
  const [file, ...more] = readdirSync(join(root, 'dead-letter'))
  t.same(more, [], 'one dead-letter file')
  t.equal(statSync(join(root, 'dead-letter', file!)).mode & 0o777, 0o600, 'private to its user')
  const records = readFileSync(join(root, 'dead-letter', file!), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  t.match(records, [
    { at: String, reason: 'partial write: field type conflict', measurement: 'obd', device: 'd', time: '1970-01-01T00:00:00.001Z', bytes: poisoned.length, fields: ['seq'] },
    { reason: "unable to parse '…': invalid number", measurement: 'obd', time: '1970-01-01T00:00:00.005Z' },
  ], 'each refused line with its reason: what it was, without its values (the reason\'s quote of it too)')
  t.notOk(records.some((r) => 'line' in r), 'not the line')
  // The process dies with both segments still holding unconfirmed lines: the next start writes
  // them again, but not the quarantined ones.
  const again = openJournal(dir, 4)
  t.same(again.recovered, [...lines(1), ...lines(4, 2).filter((l) => l !== other)], 'recovered without the quarantined lines')
  again.confirm(again.recovered)
  t.same(readdirSync(dir), [], 'and the segments go once the rest is confirmed')
})

t.test('the journal is private to ubiq\'s user: its folder 0700, its segments 0600, older ones closed at open (#20 item 10)', async (t) => {
  const dir = join(fresh(), 'journal')
  mkdirSync(dir, { mode: 0o755 })
  writeFileSync(join(dir, 'segment-1.lp'), `${lines(1)[0]}\n`, { mode: 0o644 })
  const j = openJournal(dir, 2)
  j.append(lines(3, 1))
  const mode = (f: string) => statSync(f).mode & 0o777
  t.equal(mode(dir), 0o700)
  t.same(readdirSync(dir).map((f) => mode(join(dir, f))), [0o600, 0o600], 'the earlier run\'s segment and the new one')
})

t.test('a line refused as beyond its retention policy leaves the journal, and its values are kept nowhere (#21)', async (t) => {
  const root = fresh()
  const dir = join(root, 'journal')
  const j = openJournal(dir, 4)
  const old = 'gps,device_id=car-1 lat_deg=52.3731,lon_deg=4.8922,accuracy_m=4.5,seq=44i 1767225600000'
  j.append([old, ...lines(2)])
  j.quarantine([{ line: old, reason: 'partial write: points beyond retention policy dropped=1', kind: 'beyond_retention' }])
  t.equal(j.pending, 2, 'no longer pending')
  const [file] = readdirSync(join(root, 'dead-letter'))
  const records = readFileSync(join(root, 'dead-letter', file!), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  t.same(records.map((r) => [r.measurement, r.reason, r.line]), [['gps', 'partial write: points beyond retention policy dropped=1', undefined]], 'recorded by measurement and reason, without the line')
  t.notMatch(readFileSync(join(root, 'dead-letter', file!), 'utf8'), /52\.37|4\.89/, 'no position in the dead-letter folder')
  t.same(openJournal(dir, 4).recovered, lines(2), 'and not written again after a restart')
})

t.test("an erasure takes a policy's lines out of the journal, confirmed or not, and out of the dead-letter folder (#21 item 5)", async (t) => {
  const root = fresh()
  const dir = join(root, 'journal')
  const j = openJournal(dir, 4)
  const car = (seq: number) => `obd,device_id=car-9 speed_kmh=50,seq=${seq}i ${seq}`
  const trip = 'trip,device_id=car-9,policy_id=pol-9 distance_km=3 5'
  j.append([car(1), ...lines(2)])
  j.append([car(2), trip, car(3)])
  j.confirm([car(1)]) // confirmed, still in its segment beside unconfirmed lines
  j.quarantine([{ line: car(4), reason: 'field type conflict', kind: 'field_type_conflict' }])
  t.equal(j.erase('pol-9', ['car-9']), 3, 'the three unconfirmed lines of the policy')
  t.equal(j.pending, 2, 'the others wait as before')
  const everything = () => readdirSync(root, { recursive: true, withFileTypes: true }).filter((e) => e.isFile()).map((e) => readFileSync(join(e.parentPath, e.name), 'utf8')).join('')
  t.notMatch(everything(), /car-9|pol-9/, 'no file names the device or the policy')
  j.append(lines(1, 7))
  j.close()
  t.same(openJournal(dir, 4).recovered, [...lines(2), ...lines(1, 7)], 'a restart writes the other lines, and goes on appending where it was')
})
