import t from 'tap'
import { csvLine, toCsv } from './tables.ts'

t.test('CSV: a byte order mark for Excel, numbers without the digits binary arithmetic adds', async (t) => {
  t.equal(csvLine([57.487500000000004, 0.1 + 0.2, 48.1234567, 1e-9, 12, -3.5, null, 'a, "b"']), '57.4875,0.3,48.1234567,1e-9,12,-3.5,,"a, ""b"""\r\n')
  t.equal(toCsv({ columns: ['reason'], rows: [['speeding: −2%']] }), '\ufeffreason\r\nspeeding: −2%\r\n', 'starts with a byte order mark, so Excel reads "−" as UTF-8')
})
