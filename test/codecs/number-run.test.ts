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
