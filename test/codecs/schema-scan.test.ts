// The typed scanner against the reference: createSchemaInferrer over JSON.parse of the same
// lines. Lines are written as raw text, so that they hold forms JSON.stringify never writes
// (1.0, 1e3, -0, 1e400, escaped and duplicate keys, ...).
import { describe, test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { createSchemaInferrer } from '../../src/codecs/schema-infer.js'
import { isJsonObject, mergeSummaries, numberValue, SchemaScanner, summarySchema } from '../../src/codecs/schema-scan.js'
import { AppError } from '../../src/errors.js'
import type { SchemaField } from '../../src/store/registry.js'
import { isJsonObjectText } from '../json-object.js'

type Outcome = { fields: SchemaField[] } | 'conflict'

/** The schema today's sequential pass gives for the lines that are JSON objects. */
function reference (lines: readonly string[]): Outcome {
  const inferrer = createSchemaInferrer()
  try {
    lines.forEach((line, i) => { if (isJsonObjectText(line)) inferrer.add(JSON.parse(line), i + 1) })
  } catch (err) {
    assert.ok(err instanceof AppError, String(err))
    return 'conflict'
  }
  return inferrer.result()
}

// Bytes around a line, which the scanner must not read: a number or bracket right after the
// line's end would change its meaning.
const BEFORE = ['', ' \n', '{"z":', '9']
const AFTER = ['', '\n', '0', ']}', '"', ',1}']

/**
 * Feeds line i to `scanner` as the JSONL indexer does: the scanner first, JSON.parse when it
 * refuses. Returns whether the line is a record.
 */
function feed (scanner: SchemaScanner, line: string, i: number): boolean {
  const before = BEFORE[i % BEFORE.length]!
  const buf = Buffer.from(before + line + AFTER[i % AFTER.length]!)
  const start = Buffer.byteLength(before)
  const end = start + Buffer.byteLength(line)
  if (scanner.addLine(buf, start, end, i + 1)) return true
  if (!isJsonObjectText(line)) return false
  scanner.addRecord(JSON.parse(line) as object, i + 1)
  return true
}

/** The fused outcome, each line scanned by the scanner `thread[i]` picks (one per thread). */
function fused (lines: readonly string[], thread: readonly number[] = []): Outcome {
  const scanners = [new SchemaScanner(), new SchemaScanner(), new SchemaScanner()]
  lines.forEach((line, i) => {
    const valid = feed(scanners[thread[i] ?? 0]!, line, i)
    assert.equal(valid, isJsonObjectText(line), `line ${i + 1} ${JSON.stringify(line)}: validity`)
  })
  return summarySchema(mergeSummaries(scanners.map((s) => s.summary()))) ?? 'conflict'
}

function agree (texts: readonly string[], thread: readonly number[] = []): void {
  // The text as the indexer sees it: UTF-8 bytes (a lone surrogate becomes U+FFFD).
  const lines = texts.map((t) => Buffer.from(t).toString('utf8'))
  assert.deepEqual(fused(lines, thread), reference(lines), lines.join('\n'))
}

// --- Raw JSON text -----------------------------------------------------------------------

const trickyNumbers = [
  '0', '-0', '-0.0', '0.0', '1.0', '10.000', '1e3', '1E+2', '2.5e-1', '100e-2', '0e400', '-0e-7',
  '1e400', '-1e400', '1e-400', '4.9e-324', '5e-324', '2.2250738585072014e-308', '1.7976931348623157e308',
  '16777216', '16777217', '-16777217', '9007199254740991', '9007199254740992', '9007199254740993',
  '-9007199254740993', '9007199254740991.0', '9007199254740991.5', '123456789012345678.5',
  '12345678901234567890', '0.30000000000000004', '1.00000000000000000001', '0.1', '0.5', '0.25',
  '3.4028234663852886e+38', '3.4028235677973366e+38', '1e22', '1e23', '1.5e300', '123e-20', '0.000001',
  '1.000000000000000000000000', '4294967295', '1e21', '1e-7'
]

// 1-19 digit integers, with a decimal point placed anywhere and an optional exponent.
const digitNumbers = fc.tuple(
  fc.bigInt({ min: 0n, max: 10n ** 19n }),
  fc.nat(20),
  fc.option(fc.integer({ min: -340, max: 340 }), { nil: undefined }),
  fc.boolean()
).map(([m, point, exp, negative]) => {
  const digits = m.toString()
  let text = digits
  if (point > 0 && point < digits.length && digits[0] !== '0') text = digits.slice(0, point) + '.' + digits.slice(point)
  else if (point >= digits.length && point < 20) text = digits + '.' + '0'.repeat(point - digits.length + 1)
  return (negative ? '-' : '') + text + (exp === undefined ? '' : `e${exp}`)
})

const rawNumber: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(...trickyNumbers),
  fc.integer({ min: -1000, max: 1000 }).map(String),
  fc.integer().map(String),
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => JSON.stringify(x)),
  // float32 values, printed with up to 17 digits: float32 columns.
  fc.float({ noNaN: true, noDefaultInfinity: true }).map((x) => JSON.stringify(Math.fround(x))),
  fc.bigInt({ min: -(10n ** 19n), max: 10n ** 19n }).map(String),
  digitNumbers
)

const rawString = fc.oneof(
  fc.string().map((s) => JSON.stringify(s)),
  fc.constantFrom('"\\u00e9\\n\\/"', '"\\ud83d\\ude00"', '"\\ud800"', '"café"', '""')
)

const rawKey = fc.oneof(
  fc.constantFrom('a', 'b', 'c', 'id', 'x', 'ab', '__proto__', 'constructor', 'toString', 'é', '日本', '😀', '').map((k) => JSON.stringify(k)),
  // Array indices (listed first by Object.keys) and keys that only look like them.
  fc.constantFrom('0', '1', '7', '10', '01', '00', '-0', '-1', '1.0', '1e3', ' 1', '4294967294', '4294967295', '42949672950').map((k) => JSON.stringify(k)),
  // Escaped forms, some of which name the same key as a plain one ("a", "0", "ab").
  fc.constantFrom('"\\u0061"', '"\\u0030"', '"a\\u0062"', '"\\/"', '"\\u00e9"', '"\\ud83d\\ude00"', '"\\"q"', '"\\ud800"', '"\\n"', '"\\u0031\\u0030"'),
  fc.string({ maxLength: 3 }).map((k) => JSON.stringify(k))
)

const numericList = fc.array(fc.oneof({ weight: 6, arbitrary: rawNumber }, { weight: 1, arbitrary: fc.constant('null') }), { maxLength: 6 })
  .chain((items) => fc.constantFrom(',', ' , ', ',\n').map((sep) => `[${items.join(sep)}]`))

const { anyValue } = fc.letrec<{ anyValue: string, array: string, object: string }>((tie) => ({
  anyValue: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    rawNumber, rawString, fc.constantFrom('true', 'false', 'null'), numericList, tie('array'), tie('object')
  ),
  array: fc.array(tie('anyValue'), { maxLength: 4 }).map((items) => `[${items.join(',')}]`),
  object: fc.array(fc.tuple(rawKey, tie('anyValue')), { maxLength: 4 }).map((members) => `{${members.map(([k, v]) => `${k}:${v}`).join(',')}}`)
}))

// What a column mostly holds, so that most generated files have a schema (and not a conflict).
const families = {
  number: rawNumber,
  list: numericList,
  string: rawString,
  bool: fc.constantFrom('true', 'false'),
  json: fc.oneof(
    fc.jsonValue({ maxDepth: 2 }).filter((v) => v !== null && typeof v === 'object').map((v) => JSON.stringify(v)),
    numericList,
    anyValue.map((v) => `[${v}]`)
  ),
  any: anyValue
}
type Family = keyof typeof families

const family = fc.oneof(
  { weight: 3, arbitrary: fc.constant<Family>('number') },
  { weight: 3, arbitrary: fc.constant<Family>('list') },
  { weight: 2, arbitrary: fc.constant<Family>('string') },
  { weight: 1, arbitrary: fc.constant<Family>('bool') },
  { weight: 2, arbitrary: fc.constant<Family>('json') },
  { weight: 1, arbitrary: fc.constant<Family>('any') } // mostly a conflict
)

/** A record over `columns`: some keys missing, any order, nulls, now and then a stray value or a key given twice. */
function record (columns: ReadonlyArray<[string, Family]>): fc.Arbitrary<string> {
  const value = (fam: Family): fc.Arbitrary<string> => fc.oneof(
    { weight: 20, arbitrary: fc.constant('null') },
    { weight: 400, arbitrary: families[fam] },
    { weight: 1, arbitrary: anyValue }
  )
  const members = columns.map(([key, fam]) => value(fam).map((v): [string, string] => [key, v]))
  return fc.tuple(
    fc.tuple(...members),
    fc.shuffledSubarray(columns.map((_, i) => i)),
    // A key given twice: JSON.parse keeps its first position and its last value.
    fc.option(fc.nat(columns.length - 1).chain((i) => value(columns[i]![1]).map((v): [string, string] => [columns[i]![0], v])), { freq: 20 }),
    fc.constantFrom(['', ':', ','], [' ', ' : ', ' ,\t'], ['\t', ':  ', ',\r\n'])
  ).map(([values, order, duplicate, [pad, colon, comma]]) => {
    const picked = order.map((i) => values[i]!)
    if (duplicate !== null) picked.push(duplicate)
    return `${pad}{${pad}${picked.map(([k, v]) => `${k}${colon}${v}`).join(comma)}${pad}}${pad}`
  })
}

/** Lines over one set of columns, and which of three threads scans each. */
const file = fc.array(fc.tuple(rawKey, family), { minLength: 1, maxLength: 6 })
  .chain((columns) => fc.array(record(columns), { maxLength: 25 }))
  .chain((lines) => fc.tuple(fc.constant(lines), fc.array(fc.nat(2), { minLength: lines.length, maxLength: lines.length })))

// --- Properties --------------------------------------------------------------------------

describe('the typed scanner agrees with the inferrer over JSON.parse', () => {
  test('number texts give the double JSON.parse gives', () => {
    fc.assert(fc.property(rawNumber, (text) => {
      const buf = Buffer.from(text + '5') // a digit after the end must not be read
      assert.ok(Object.is(numberValue(buf, 0, text.length), JSON.parse(text)), text)
    }), { numRuns: 20_000 })
  })

  test('files with a schema, in one scan and split over threads', () => {
    let withSchema = 0
    fc.assert(fc.property(file, ([lines, thread]) => {
      if (reference(lines) !== 'conflict') withSchema++
      agree(lines)
      agree(lines, thread)
    }), { numRuns: 3000 })
    // The generator must mostly produce files that have a schema, or the property says little.
    assert.ok(withSchema > 1500, `${withSchema} of 3000 files had a schema`)
  })

  test('fc.object and fc.jsonValue records', () => {
    const records = fc.array(fc.oneof(
      fc.object({ maxDepth: 2 }),
      fc.dictionary(fc.constantFrom('a', 'b', '1', '0', '__proto__'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }),
      fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.oneof(fc.integer(), fc.double({ noNaN: true }), fc.constant(null)), { maxKeys: 3 })
    ), { maxLength: 15 })
    fc.assert(fc.property(records, fc.array(fc.nat(2), { minLength: 15, maxLength: 15 }), (objects, thread) => {
      agree(objects.map((o) => JSON.stringify(o)), thread)
    }), { numRuns: 2000 })
  })

  test('lines that are not JSON objects are refused, and the rest still agree', () => {
    const alphabet = fc.constantFrom(...'{}[]:,"\\ \t\r0123456789-+.eEtrufalsn/abcé')
    const mutated = fc.tuple(file, fc.array(fc.tuple(fc.nat(), fc.nat(), fc.nat(2), alphabet), { maxLength: 4 }))
      .map(([[lines, thread], edits]) => {
        const out = [...lines]
        for (const [which, at, kind, ch] of edits) {
          if (out.length === 0) break
          const i = which % out.length
          const s = out[i]!
          const p = at % (s.length + 1)
          out[i] = kind === 0 ? s.slice(0, p) + ch + s.slice(p) : kind === 1 ? s.slice(0, p) + s.slice(p + 1) : s.slice(0, p) + ch + s.slice(p + 1)
        }
        return [out, thread] as const
      })
    fc.assert(fc.property(mutated, ([lines, thread]) => { agree(lines, thread) }), { numRuns: 3000 })
  })
})

describe('the typed scanner, by hand', () => {
  test('number kinds follow the parsed double', () => {
    agree(['{"a":1.0,"b":1e3,"c":-0,"d":10.000,"e":9007199254740992,"f":1e400,"g":123456789012345678.5,"h":1e-400}'])
    agree(['{"a":1}', '{"a":1.5}', '{"a":16777217}'])
    agree(['{"a":0.5}', '{"a":1e400}'])
    agree(['{"v":[1,2.0,3e0]}', '{"v":[]}', '{"v":[null,0.25]}'])
    assert.deepEqual(fused(['{"a":1e400}', '{"a":0.5}']), { fields: [{ name: 'a', type: 'float32' }] })
    assert.deepEqual(fused(['{"a":1.0}', '{"a":1e3}']), { fields: [{ name: 'a', type: 'int64' }] })
  })

  test('array-index keys, duplicate keys and escaped keys', () => {
    agree(['{"b":1,"10":2,"a":3,"2":4}', '{"x":1}'])
    agree(['{"a":1,"b":2,"a":"s"}'])
    agree(['{"a":"s","b":2,"a":1}', '{"a":2}'])
    agree(['{"\\u0061":1,"a":2.5}'])
    agree(['{"a\\u0062":[1],"ab":[0.5]}', '{"ab":[1],"\\u0061\\u0062":null}'])
    agree(['{"4294967295":1,"4294967294":2,"01":3,"0":4}'])
    assert.deepEqual(fused(['{"b":1,"1":true,"a":"x"}']).valueOf(), {
      fields: [{ name: '1', type: 'bool' }, { name: 'b', type: 'int64' }, { name: 'a', type: 'string' }]
    })
  })

  test('first-seen order across threads: the earliest line wins, then key order', () => {
    const lines = ['{"a":1}', '{"c":1,"b":2}', '{"d":1,"b":1}', '{"e":1,"c":2}']
    for (const thread of [[0, 0, 0, 0], [0, 1, 0, 1], [1, 0, 1, 0], [2, 1, 0, 2], [1, 1, 0, 0]]) {
      assert.deepEqual((fused(lines, thread) as { fields: SchemaField[] }).fields.map((f) => f.name), ['a', 'c', 'b', 'd', 'e'])
      agree(lines, thread)
    }
  })

  test('a conflict in one thread, or only between threads, is a conflict', () => {
    assert.equal(fused(['{"x":1}', '{"x":"s"}']), 'conflict')
    assert.equal(fused(['{"x":1}', '{"x":"s"}'], [0, 1]), 'conflict')
    assert.equal(fused(['{"x":[1]}', '{"y":1}', '{"x":2}'], [0, 1, 1]), 'conflict')
    assert.equal(fused(['{"x":[1]}', '{"x":{}}', '{"x":"s"}'], [0, 1, 2]), 'conflict')
  })

  test('the validator agrees with JSON.parse on hand-picked lines', () => {
    const cases = [
      '{}', ' {} ', '{"a":1}', '{"a":[]}', '{"a":{}}', '{"a":[1,2,{"b":null}]}', '{"":""}', '{"a":[1,"x",[2]]}',
      '{"a":01}', '{"a":1.}', '{"a":.5}', '{"a":+1}', '{"a":1e}', '{"a":-}', '{"a":[1,]}', '{"a":[,1]}',
      '{"a":[1 2]}', '{"a":[1}', '{"a":1}}', '{"a":1,}', '{"a" 1}', '{"a":tru}', '{"a":nul}', '{"a":[nul]}',
      '{"a":[1,nul]}', '{"a":[1,"x"}', '{"a":[1,[2]}', '{"a":"\\x"}', '{"a\\x":1}', '{"a":1} x', '[1]', '1', '',
      '{"a":[-]}', '{"a":[1,-]}', '{"a":[0,01]}', '{"a":[1e5,2E-3,-0.5e+2]}'
    ]
    for (const c of cases) {
      const buf = Buffer.from(c)
      assert.equal(new SchemaScanner().addLine(buf, 0, buf.length, 1), isJsonObjectText(c), c)
      assert.equal(isJsonObject(buf, 0, buf.length), isJsonObjectText(c), c)
    }
  })
})
