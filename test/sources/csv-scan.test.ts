// The CSV scan (src/sources/csv-scan.ts) against csv-parse: whatever the scan accepts, csv-parse
// indexes the same way (same record starts, columns, digest); whatever it gives up on, indexCsv
// still reads with csv-parse.
import assert from 'node:assert/strict'
import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import { BAIL, scanCsvRecords } from '../../src/sources/csv-scan.js'
import { indexCsv, indexCsvByScan } from '../../src/sources/csv.js'
import { tempFiles } from './temp-files.js'

const files = tempFiles('csv-scan', 'csv')

const unit = fc.constantFrom('a', '1', '-', '.', ',', '"', '\r', '\n', ' ', 'é')
// Cells the scan reads (no lone CR, no stray quote), quoted or not.
const cellUnit = fc.constantFrom('a', '1', '0', '-', '.', 'e', ',', '"', '\r\n', '\n', ' ', 'é')
const quoted = fc.string({ unit: cellUnit, maxLength: 8 }).map((t) => `"${t.replaceAll('"', '""')}"`)
const plain = fc.string({ unit: cellUnit, maxLength: 8 }).map((t) => t.replace(/["\r\n,]/g, ''))
const eol = fc.constantFrom('\n', '\r\n', '\n\n', '\r\n\r\n', '\n\r\n')

/** A file of `columns` columns: a header of unique names, then rows, each line ended by `eol`. */
function wellFormed (columns: number, maxRows: number): fc.Arbitrary<string> {
  const header = fc.uniqueArray(fc.string({ unit: fc.constantFrom('a', 'b', 'é', ' ', ','), minLength: 1, maxLength: 4 }).filter((s) => s.trim() !== ''), { minLength: columns, maxLength: columns })
    .map((names) => names.map((n) => n.includes(',') ? `"${n}"` : n).join(','))
  const row = fc.array(fc.oneof(quoted, plain), { minLength: columns, maxLength: columns })
    // A one-column row that is an empty unquoted cell would be an empty line.
    .map((cells) => cells.length === 1 && cells[0] === '' ? '""' : cells.join(','))
  return fc.tuple(fc.boolean(), header, eol, fc.array(fc.tuple(row, eol), { maxLength: maxRows }), fc.boolean())
    .map(([bom, h, e, rows, trim]) => {
      const text = (bom ? '\ufeff' : '') + h + e + rows.map(([r, x]) => r + x).join('')
      return trim ? text.replace(/(\r?\n)+$/, '') : text
    })
}

/** Scans `b` in pieces cut at `cuts`, carrying incomplete records over, as indexCsv does. */
function scanInPieces (b: Buffer, cuts: number[]): number[] | typeof BAIL {
  const out: number[] = []
  let carryStart = 0
  const ends = [...new Set(cuts.map((c) => c % (b.length + 1)))].sort((x, y) => x - y).concat(b.length)
  for (const end of ends) {
    if (end < carryStart) continue
    const piece = b.subarray(carryStart, end)
    const triples: number[] = []
    const next = scanCsvRecords(piece, 0, end === b.length, triples)
    if (next === BAIL) return BAIL
    for (let k = 0; k < triples.length; k++) out.push(k % 3 === 2 ? triples[k]! : triples[k]! + carryStart)
    carryStart += next
  }
  return out
}

async function bothWays (content: string | Buffer): Promise<{ scanned: Awaited<ReturnType<typeof indexCsvByScan>>, parsed: unknown, same: () => Promise<void> }> {
  const { file, idx } = await files.put(content)
  const scanIdx = `${idx}.scan`
  const scanned = await indexCsvByScan(file, scanIdx)
  const parsed = await indexCsv(file, idx, { reader: 'csv-parse' }).catch((err: unknown) => err)
  return {
    scanned,
    parsed,
    async same () {
      assert.ok(scanned !== undefined)
      assert.deepEqual(scanned, parsed, JSON.stringify(content.toString()))
      assert.ok((await readFile(scanIdx)).equals(await readFile(idx)), `same index: ${JSON.stringify(content.toString())}`)
    }
  }
}

describe('scanCsvRecords', () => {
  test('hand-picked records: starts, ends and field counts, or BAIL', () => {
    const cases: Array<[string, number[] | typeof BAIL]> = [
      ['a,b\n1,2', [0, 4, 2, 4, 7, 2]],
      ['a,b\r\n\r\n\n"x\ny",\n', [0, 5, 2, 8, 15, 2]],
      ['"a""b",c', [0, 8, 2]],
      ['a,', [0, 2, 2]],
      ['""', [0, 2, 1]],
      ['a\rb', BAIL],
      ['a"b', BAIL],
      ['"a"b', BAIL],
      ['"a', BAIL],
      ['a\r', BAIL],
      ['\r', BAIL]
    ]
    for (const [text, expected] of cases) {
      const out: number[] = []
      const next = scanCsvRecords(Buffer.from(text), 0, true, out)
      assert.deepEqual(next === BAIL ? BAIL : out, expected, JSON.stringify(text))
    }
  })

  test('without the end of the file, a record cut anywhere is left for the next bytes', () => {
    for (const text of ['a,b\n"x', 'a,b\n"x""', 'a,b\n"x"', 'a,b\nx,', 'a,b\nx\r', 'a,b\r', 'a,b\n\r']) {
      const out: number[] = []
      const next = scanCsvRecords(Buffer.from(text), 0, false, out)
      assert.ok(next !== BAIL && next <= text.length, JSON.stringify(text))
      assert.deepEqual(out.slice(0, 3), text.startsWith('a,b\n') ? [0, 4, 2] : [], JSON.stringify(text))
    }
  })

  test('scanned in pieces cut anywhere, the same records as in one piece', () => {
    fc.assert(fc.property(fc.oneof(fc.string({ unit, maxLength: 80 }), wellFormed(3, 6)), fc.array(fc.nat(), { maxLength: 6 }), (text, cuts) => {
      const b = Buffer.from(text)
      const whole: number[] = []
      const next = scanCsvRecords(b, 0, true, whole)
      assert.deepEqual(scanInPieces(b, cuts), next === BAIL ? BAIL : whole, JSON.stringify(text))
    }), { numRuns: 5000 })
  })
})

describe('indexCsv: the scan and csv-parse agree', () => {
  test('random text: what the scan accepts, csv-parse indexes the same way', async () => {
    await fc.assert(fc.asyncProperty(fc.string({ unit, maxLength: 60 }), async (text) => {
      const r = await bothWays(text)
      if (r.scanned !== undefined) await r.same()
    }), { numRuns: 800 })
  })

  test('random well-formed files (quotes, CRLF, empty lines, a byte order mark) are scanned, as csv-parse indexes them', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 4 }).chain((n) => wellFormed(n, 8)), async (text) => {
      const r = await bothWays(text)
      await r.same()
    }), { numRuns: 800 })
  })

  test('a file of several chunks (records cut by the reads) is scanned as csv-parse indexes it', async () => {
    const rows = ['id,"na,me",note']
    for (let i = 0, length = 0; length < 3.5 * 2 ** 20; i++) {
      length += rows[rows.length - 1]!.length + 1
      rows.push(`${i},"${'x'.repeat(i % 97)}""q""\r\n${'é'.repeat(i % 5)}",${i % 3 === 0 ? '' : 'n' + String(i)}${i % 11 === 0 ? '\n' : ''}`)
    }
    const r = await bothWays(rows.join('\n') + '\n')
    await r.same()
    assert.equal((r.scanned as { numRecords: number }).numRecords, rows.length - 1)
  })
})

describe('indexCsv: what the scan leaves to csv-parse', () => {
  test('a lone CR in a field (text to csv-parse) is indexed by csv-parse; the scan leaves no index behind', async () => {
    const content = 'a,b\n1,x\ry\n2,z\n'
    const { file, idx } = await files.put(content)
    assert.equal(await indexCsvByScan(file, `${idx}.scan`), undefined)
    assert.equal(existsSync(`${idx}.scan`), false)
    const result = await indexCsv(file, idx)
    assert.equal(result.numRecords, 2)
    assert.deepEqual(result, await indexCsv(file, `${idx}.2`, { reader: 'csv-parse' }))
  })

  test('a stray quote deep in a large file: SOURCE_INVALID names its line; progress never goes back', async () => {
    const lines = ['a,b']
    for (let i = 0; i < 200_000; i++) lines.push(`${i},v${i}`)
    lines.push('oops,a"b')
    const { file, idx } = await files.put(lines.join('\n') + '\n')
    const seen: number[] = []
    await assert.rejects(indexCsv(file, idx, { onProgress: (done) => { seen.push(done) } }), (err: { code?: string, message: string }) => {
      assert.equal(err.code, 'SOURCE_INVALID')
      assert.match(err.message, new RegExp(`^line ${lines.length}: a quote`))
      return true
    })
    assert.deepEqual(seen, [...seen].sort((x, y) => x - y))
    assert.equal(existsSync(idx), false)
  })

  test('a record longer than the scan carries across reads is left to csv-parse', async () => {
    const long = 'x'.repeat(1.5 * 2 ** 20)
    const { file, idx } = await files.put(`a,b\n1,"${long}\n${long}"\n2,y\n`)
    assert.equal(await indexCsvByScan(file, `${idx}.scan`, {}, 2 ** 20), undefined)
    assert.equal(existsSync(`${idx}.scan`), false)
    const scanned = await indexCsvByScan(file, `${idx}.scan`)
    assert.equal(scanned?.numRecords, 2)
    assert.deepEqual(await indexCsv(file, idx, { reader: 'csv-parse' }), scanned)
  })

  test('a row with a field too many is refused by csv-parse\'s pass, naming its line', async () => {
    const { file, idx } = await files.put('a,b\n1,2\n3,4,5\n')
    await assert.rejects(indexCsv(file, idx), { code: 'SOURCE_INVALID', message: /^line 3: the record has 3 fields but the header has 2/ })
  })
})
