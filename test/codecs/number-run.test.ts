// The syntax check of a run of JSON numbers: the addon's C loop must accept, and stop at,
// exactly the bytes the JavaScript loop does, and both must agree with JSON.parse.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { nativeSkipNumberRun, skipNumberRun, skipNumberRunJs } from '../../src/codecs/number-run.js'

const native = nativeSkipNumberRun()

test('the addon\'s loop is built, loaded and in use from the first call on', () => {
  assert.ok(native !== undefined, 'src/native was not built (npm install builds it with node-gyp)')
  const bytes = Buffer.from('1,2')
  assert.equal(skipNumberRun(bytes, 0, 3), 3)
  assert.equal(skipNumberRun, native)
})

// Text made of number-ish bytes, so that runs are long and malformed numbers common.
const numberish = fc.array(fc.constantFrom(...'0123456789012345678901234567890123456789.-+eE,, ]x\t'.split('')), { maxLength: 300 }).map((cs) => cs.join(''))

test('the C loop and the JavaScript loop agree on arbitrary bytes, starts and ends', () => {
  fc.assert(fc.property(numberish, fc.nat(), fc.nat(), (text, a, b) => {
    const bytes = Buffer.from(text, 'latin1')
    const p = bytes.length === 0 ? 0 : a % bytes.length
    const end = p + (bytes.length === p ? 0 : b % (bytes.length - p + 1))
    return native!(bytes, p, end) === skipNumberRunJs(bytes, p, end)
  }), { numRuns: 20000 })
})

// Long, mostly valid runs, as feature vectors are written (compact or with `, `), with a few
// bytes changed, added or removed: the addon checks such runs 64 bytes at a time and hands
// anything unusual back to its byte loop, and both must still agree with the JavaScript loop.
const vectorText = fc.tuple(
  fc.array(fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.float({ noNaN: true, noDefaultInfinity: true }), fc.integer({ min: -1e6, max: 1e6 })), { minLength: 1, maxLength: 120 }),
  fc.constantFrom(',', ', ', ',  ', ' ,', ',\t')
).map(([xs, sep]) => xs.map((x) => JSON.stringify(x)).join(sep))
const edit = fc.tuple(fc.nat(), fc.constantFrom(...'0123456789.-+eE, ]\t'.split('')), fc.constantFrom('replace', 'insert', 'delete'))
const editedVector = fc.tuple(vectorText, fc.array(edit, { maxLength: 3 }), fc.constantFrom('', ']', '],"y":1}', ' ]')).map(([text, edits, tail]) => {
  const cs = text.split('')
  for (const [at, c, how] of edits) {
    const i = at % (cs.length + 1)
    if (how === 'insert') cs.splice(i, 0, c)
    else if (how === 'delete') cs.splice(i, 1)
    else cs[Math.min(i, cs.length - 1)] = c
  }
  return cs.join('') + tail
})

test('the C loop and the JavaScript loop agree on long vectors, valid or slightly broken', () => {
  fc.assert(fc.property(editedVector, fc.nat(), (text, cut) => {
    const bytes = Buffer.from(text, 'latin1')
    // The whole text, and the text cut short (a run may end anywhere within a 64-byte block).
    const end = bytes.length - (cut % Math.max(1, Math.min(bytes.length, 80)))
    return native!(bytes, 0, bytes.length) === skipNumberRunJs(bytes, 0, bytes.length) &&
      native!(bytes, 0, end) === skipNumberRunJs(bytes, 0, end)
  }), { numRuns: 20000 })
  // Each rule the blocks check, broken once in the middle of a long valid run.
  const valid = Array.from({ length: 40 }, (_, i) => ((i % 7) - 3) * 0.123456789 + i).map((x) => JSON.stringify(x)).join(',')
  // Each snippet at every offset from 60 to 200, so at every place within a block and across
  // the first boundaries between blocks (rules that look at the byte before carry it over).
  for (const bad of ['1.2.3', '1e5e3', '1e5.3', '01', '-01', '1,,2', '1 2', '1-2', '+1', '1.', '.5', '1e', '1e+', '-', '1 ,2', '1, ,2', '0x1', '1e-05', '-0.5E+7', '0', '-0', ',', '.', 'e', ' ', '00', ',-', '-.']) {
    for (let at = 60; at <= 200; at++) {
      const bytes = Buffer.from(`${valid.slice(0, at)}${bad}${valid.slice(at)}]`, 'latin1')
      assert.equal(native!(bytes, 0, bytes.length), skipNumberRunJs(bytes, 0, bytes.length), `${bad} at ${at}`)
    }
  }
  const whole = Buffer.from(`${valid}]`)
  assert.equal(native!(whole, 0, whole.length), whole.length - 1)
})

test('a run ends where JSON.parse says the list stops being numbers', () => {
  // Valid lists of numbers: the run ends at the closing bracket.
  fc.assert(fc.property(fc.array(fc.double({ noNaN: true, noDefaultInfinity: true }), { minLength: 1, maxLength: 40 }), fc.constantFrom(',', ', ', ' ,\t'), (xs, sep) => {
    const text = `[${xs.map((x) => JSON.stringify(x)).join(sep)}]`
    const bytes = Buffer.from(text)
    return native!(bytes, 1, bytes.length) === bytes.length - 1 && skipNumberRunJs(bytes, 1, bytes.length) === bytes.length - 1
  }))
  const cases: Array<[string, number]> = [
    ['1', 1], ['-0', 2], ['0.5e-3', 6], ['1E+9,2', 6], ['12,null', 2], ['1 , 2 ,x', 5], ['1,', 1],
    ['01', 1], ['1.', -1], ['.5', -1], ['-', -1], ['1e', -1], ['1e+', -1], ['+1', -1], ['1,-', -1], ['1,2.', -1], ['', -1]
  ]
  for (const [text, expected] of cases) {
    const bytes = Buffer.from(text)
    assert.equal(native!(bytes, 0, bytes.length), expected, text)
    assert.equal(skipNumberRunJs(bytes, 0, bytes.length), expected, text)
  }
})

test('bytes from end on are never read, and bad arguments throw', () => {
  const bytes = Buffer.from('123456')
  assert.equal(native!(bytes, 0, 3), 3)
  assert.equal(native!(bytes.subarray(2), 0, 2), 2)
  assert.throws(() => native!(bytes, 0, 7), TypeError)
  assert.throws(() => native!(bytes, 4, 3), TypeError)
})
