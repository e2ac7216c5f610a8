// Round trips: whatever records are written, in whatever layout (LF or CRLF, blank lines, a
// missing final newline), reading any list of indices returns exactly those records.
import assert from 'node:assert/strict'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import fc from 'fast-check'
import { indexCsv, openCsvSource } from '../../src/sources/csv.js'
import { indexJsonl, openJsonlSource } from '../../src/sources/jsonl.js'

let tmp: string
let counter = 0
before(async () => { tmp = await mkdtemp(path.join(os.tmpdir(), 'sources-props-')) })
after(async () => { await rm(tmp, { recursive: true, force: true }) })

// Line endings and blank lines to put between records.
const separator = fc.constantFrom('\n', '\r\n', '\n\n', '\r\n\r\n', '\n \t\n')

// Index lists into n records: any order, repeats allowed.
function indexLists (n: number): fc.Arbitrary<number[][]> {
  return fc.array(fc.array(fc.nat(n - 1), { maxLength: 40 }), { minLength: 1, maxLength: 5 })
}

test('JSONL: random records read back by random index lists', async () => {
  const record = fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 })
  const layout = fc.array(fc.tuple(record, separator), { minLength: 1, maxLength: 60 })
    .chain((rows) => fc.tuple(fc.constant(rows), fc.boolean(), indexLists(rows.length)))

  await fc.assert(fc.asyncProperty(layout, async ([rows, finalNewline, lists]) => {
    const lines = rows.map(([r]) => JSON.stringify(r))
    let content = ''
    rows.forEach(([, sep], i) => { content += lines[i] + (i < rows.length - 1 || finalNewline ? sep : '') })
    const file = path.join(tmp, `p${counter}.jsonl`)
    const idx = path.join(tmp, `p${counter++}.idx`)
    await writeFile(file, content)
    const result = await indexJsonl(file, idx)
    assert.equal(result.numRecords, rows.length)
    const source = await openJsonlSource(file, idx)
    try {
      for (const indices of lists) {
        assert.deepEqual((await source.readJson(indices)).map(String), indices.map((i) => lines[i]))
        assert.deepEqual(await source.readRecords(indices), indices.map((i) => JSON.parse(lines[i]!)))
      }
    } finally {
      await source.close()
    }
  }), { numRuns: 150 })
})

test('CSV: random string, number and null cells read back by random index lists', async () => {
  const columns = ['id', 'text', 'num', 'maybe']
  const number = fc.oneof(fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }))
    .map((n) => Object.is(n, -0) ? 0 : n)
  const cell = fc.oneof(fc.string({ unit: fc.constantFrom('a', 'b', ',', '"', '\n', '\r', ' ', 'é', '1', '-') }), fc.string(), number, fc.constant(null))
  const row = fc.tuple(fc.integer(), fc.string(), number, cell)
  const layout = fc.array(fc.tuple(row, separator), { minLength: 1, maxLength: 60 })
    .chain((rows) => fc.tuple(fc.constant(rows), fc.boolean(), indexLists(rows.length)))

  // Numbers unquoted (String(n) is in the JSON number grammar), text always quoted, null empty.
  function encode (value: unknown): string {
    if (value === null) return ''
    if (typeof value === 'number') return String(value)
    return `"${String(value).replaceAll('"', '""')}"`
  }

  await fc.assert(fc.asyncProperty(layout, async ([rows, finalNewline, lists]) => {
    let content = columns.join(',') + '\r\n'
    rows.forEach(([cells, sep], i) => {
      // Separators with spaces are not empty lines in CSV: keep those to line breaks only.
      const eol = sep.includes(' ') ? '\n' : sep
      content += cells.map(encode).join(',') + (i < rows.length - 1 || finalNewline ? eol : '')
    })
    const expected = rows.map(([cells]) => Object.fromEntries(columns.map((name, c) => [name, cells[c]])))
    const file = path.join(tmp, `p${counter}.csv`)
    const idx = path.join(tmp, `p${counter++}.idx`)
    await writeFile(file, content)
    const result = await indexCsv(file, idx)
    assert.equal(result.numRecords, rows.length)
    assert.deepEqual(result.columns, columns)
    const source = await openCsvSource(file, idx, columns)
    try {
      for (const indices of lists) {
        assert.deepEqual(await source.readRecords(indices), indices.map((i) => expected[i]))
        assert.deepEqual((await source.readJson(indices)).map(String), indices.map((i) => JSON.stringify(expected[i])))
      }
    } finally {
      await source.close()
    }
  }), { numRuns: 150 })
})
