/** The error catalogue (#22 item 4): its classes, and docs/errors.md is its page. */
import t from 'tap'
import { readFileSync } from 'node:fs'
import { codes, errorsDoc, ERRORS_DOC, UbiqError } from './index.ts'

t.test('each code is a class: its message from the template, its code, and how REST answers it', async (t) => {
  const err = new codes.UBIQ_REGISTRY_DUPLICATE('car-1')
  t.ok(err instanceof codes.UBIQ_REGISTRY_DUPLICATE && err instanceof UbiqError && err instanceof Error)
  t.notOk(err instanceof codes.UBIQ_REGISTRY_INVALID, 'and no other code')
  t.match(err, { code: 'UBIQ_REGISTRY_DUPLICATE', message: 'device car-1 is listed twice in the device registry', rest: undefined })
  t.match(new codes.UBIQ_AUTH_FORBIDDEN('an analyst token is needed'), { code: 'UBIQ_AUTH_FORBIDDEN', message: 'an analyst token is needed', rest: { status: 403, error: 'forbidden' } })
  t.match(err.stack, /^UbiqError: device car-1 is listed twice[^\n]*\n\s+at .*errors\.test\.ts/, 'with the stack of where it was made')
})

t.test(`${ERRORS_DOC} is the catalogue's (npm run docs)`, async (t) => {
  const doc = readFileSync(new URL(`../${ERRORS_DOC}`, import.meta.url), 'utf8')
  t.equal(doc, errorsDoc(), 'run npm run docs')
  for (const code of Object.keys(codes)) t.match(doc, `| \`${code}\` |`, `${code} has its row`)
})
