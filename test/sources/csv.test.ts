import assert from 'node:assert/strict'
import { copyFile, readFile, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { describe, test } from 'node:test'
import { parse } from 'csv-parse/sync'
import fc from 'fast-check'
import { indexCsv, openCsvSource, splitRecords, typeCell } from '../../src/sources/csv.js'
import { OffsetIndex } from '../../src/sources/offset-index.js'
import { tempFiles } from './temp-files.js'
import { indexFailure, sourceDigest } from './expect.js'

const fixture = new URL('../fixtures/sources/quoted.csv', import.meta.url)
const files = tempFiles('csv', 'csv')
const put = files.put

async function invalid (content: string): Promise<string> {
  return await indexFailure(put, indexCsv, content)
}

// The whole file parsed at once with the same typing: what random reads must agree with.
function fullParse (content: Buffer | string): Array<Record<string, unknown>> {
  const rows = parse(content, {
    bom: true,
    record_delimiter: ['\r\n', '\n'],
    skip_empty_lines: true,
    cast: (value, context) => [value, context.quoting]
  }) as unknown as Array<Array<[string, boolean]>>
  const header = rows[0]!.map(([name]) => name)
  return rows.slice(1).map((row) => Object.fromEntries(header.map((name, c) => [name, typeCell(...row[c]!)])))
}

describe('indexCsv and openCsvSource', () => {
  test('the fixture: quoted commas, doubled quotes, a quoted CRLF, a blank line, no final newline', async () => {
    const file = path.join(files.dir(), 'quoted.csv')
    await copyFile(fixture, file)
    const idx = path.join(files.dir(), 'quoted.idx')
    const bytes = await readFile(file)
    const result = await indexCsv(file, idx)
    assert.deepEqual(result.columns, ['id', 'name', 'score', 'note'])
    assert.equal(result.numRecords, 4)
    assert.equal(result.bytes, bytes.length)
    assert.equal(result.digest, sourceDigest(bytes))

    const index = await OffsetIndex.load(idx)
    const text = bytes.toString('latin1')
    assert.deepEqual([0, 1, 2, 3].map((i) => index.start(i)), ['1,', '2,', '3,', '4,'].map((s) => text.indexOf('\r\n' + s) + 2))
    assert.equal(index.endOffset, bytes.length)

    const source = await openCsvSource(file, idx, result.columns!)
    const expected = [
      { id: 1, name: 'Smith, Jane', score: 9.5, note: null },
      { id: 2, name: 'He said "hi"', score: -3, note: 'multi\r\nline' },
      { id: 3, name: 'plain text', score: 1000, note: '' },
      { id: 4, name: '007', score: '007', note: '  spaced  ' }
    ]
    assert.deepEqual(await source.readRecords([0, 1, 2, 3]), expected)
    assert.deepEqual(await source.readRecords([3, 1, 3, 0]), [expected[3], expected[1], expected[3], expected[0]])
    const json = await source.readJson([1, 2])
    assert.deepEqual(json.map(String), [JSON.stringify(expected[1]), JSON.stringify(expected[2])])
    assert.deepEqual(Object.keys((await source.readRecords([2]))[0] as object), ['id', 'name', 'score', 'note'])
    await assert.rejects(source.readRecords([4]), RangeError)
    await source.close()
  })

  test('cell typing', () => {
    const numbers: Array<[string, number]> = [['0', 0], ['-0.5', -0.5], ['1e3', 1000], ['12.25E-2', 0.1225], ['-7', -7], ['1E+2', 100]]
    for (const [text, value] of numbers) assert.equal(typeCell(text, false), value, text)
    for (const text of ['01', '1.', '.5', '+1', ' 1', '1 ', '0x10', 'NaN', 'Infinity', '1e400', '1,5', 'true', 'null', '-', '']) {
      if (text === '') continue
      assert.equal(typeCell(text, false), text, text)
    }
    assert.equal(typeCell('', false), null)
    assert.equal(typeCell('', true), '')
    assert.equal(typeCell('42', true), '42')
  })

  test('typing is the same through a file', async () => {
    const { file, idx } = await put('a,b,c,d\n42,"42",,""\n-1.5e2,x y,"",01\n')
    const result = await indexCsv(file, idx)
    const source = await openCsvSource(file, idx, result.columns!)
    assert.deepEqual(await source.readRecords([0, 1]), [
      { a: 42, b: '42', c: null, d: '' },
      { a: -150, b: 'x y', c: '', d: '01' }
    ])
    await source.close()
  })

  test('LF and CRLF files, blank lines and quoted line breaks give the same records as a full parse', async () => {
    const rows = [
      'id,text,v',
      '1,"a\nb",2',
      '',
      '2,"x,y",',
      '3,"q ""r""\r\nz",-4.25',
      '',
      '',
      '4,plain,7'
    ]
    for (const eol of ['\n', '\r\n']) {
      for (const tail of ['', eol, eol + eol]) {
        const content = rows.join(eol) + tail
        const { file, idx } = await put(content)
        const result = await indexCsv(file, idx)
        const expected = fullParse(content)
        assert.equal(result.numRecords, expected.length)
        const source = await openCsvSource(file, idx, result.columns!)
        const indices = [3, 0, 2, 2, 1, 3]
        assert.deepEqual(await source.readRecords(indices), indices.map((i) => expected[i]))
        await source.close()
      }
    }
  })

  test('many empty lines between records', async () => {
    const content = 'a,b\n1,2\n' + '\r\n'.repeat(40_000) + '3,4\n' + '\n'.repeat(70_000) + '5,6'
    const { file, idx } = await put(content)
    const result = await indexCsv(file, idx)
    assert.equal(result.numRecords, 3)
    const index = await OffsetIndex.load(idx)
    assert.equal(index.start(1), content.indexOf('3,4'))
    assert.equal(index.start(2), content.indexOf('5,6'))
    const source = await openCsvSource(file, idx, result.columns!)
    assert.deepEqual(await source.readRecords([2, 1, 0]), [{ a: 5, b: 6 }, { a: 3, b: 4 }, { a: 1, b: 2 }])
    await source.close()
    assert.match(await invalid('a,b\n1,2\n' + '\r\n'.repeat(40_000) + '3\n'), /^line 40003: the record has 1 fields/)
  })

  test('a lone CR at the end of the last cell survives', async () => {
    const content = 'a\nx\nabc\r'
    const { file, idx } = await put(content)
    const result = await indexCsv(file, idx)
    const source = await openCsvSource(file, idx, result.columns!)
    assert.deepEqual(await source.readRecords([1, 0]), [{ a: 'abc\r' }, { a: 'x' }])
    assert.deepEqual(await source.readRecords([1]), fullParse(content).slice(1))
    await source.close()
  })

  test('a byte order mark and a column named __proto__', async () => {
    const { file, idx } = await put('\ufeff__proto__,b\n1,2\n')
    const result = await indexCsv(file, idx)
    assert.deepEqual(result.columns, ['__proto__', 'b'])
    const source = await openCsvSource(file, idx, result.columns!)
    const [record] = await source.readRecords([0]) as Array<Record<string, unknown>>
    assert.equal(Object.getPrototypeOf(record), Object.prototype)
    assert.deepEqual(Object.entries(record!), [['__proto__', 1], ['b', 2]])
    assert.equal(String((await source.readJson([0]))[0]), '{"__proto__":1,"b":2}')
    await source.close()
  })

  test('a header without records', async () => {
    const { file, idx } = await put('a,b\r\n')
    const result = await indexCsv(file, idx)
    assert.equal(result.numRecords, 0)
    assert.deepEqual(result.columns, ['a', 'b'])
  })
})

describe('indexCsv errors', () => {
  test('header problems', async () => {
    assert.match(await invalid(''), /empty; a CSV source needs a header row/)
    assert.match(await invalid('\n\r\n'), /empty/)
    assert.equal(await invalid('a,b,a\n1,2,3\n'), 'line 1: the header row names column "a" twice; column names must be unique')
    assert.match(await invalid('a,,c\n1,2,3\n'), /^line 1: column 2 of the header row has no name/)
    assert.match(await invalid('\n\n a ,  \n1,2\n'), /^line 3: column 2 /)
    assert.match(await invalid('\ufeff\r\nx,x\r\n'), /^line 2: .*"x" twice/)
  })

  test('a ragged row names the line where it starts', async () => {
    assert.equal(await invalid('a,b\n1,2\n\n3\n'), 'line 4: the record has 1 fields but the header has 2; quote fields that contain commas, or fix the row')
    assert.match(await invalid('a,b\n1,2,3\n'), /^line 2: the record has 3 fields/)
    // Line breaks inside quotes count as lines, LF or CRLF.
    assert.match(await invalid('a,b\r\n1,"x\r\ny\r\nz"\r\n\r\n2,"p\nq",extra\r\n'), /^line 6: the record has 3 fields/)
    assert.match(await invalid('a,b\n1,2\n   \n'), /^line 3: the record has 1 fields/)
  })

  test('quote errors name the line of their record', async () => {
    assert.match(await invalid('a,b\n1,2\n3,"open\n4,5\n'), /^line 3: a quoted field is never closed/)
    assert.match(await invalid('a,b\n1,x"y\n'), /^line 2: a quote \(".*inside an unquoted field/)
    assert.match(await invalid('a,b\n\n1,"x"y\n'), /^line 3: a closing quote is followed/)
  })

  test('abort', async () => {
    const { file, idx } = await put('a\n1\n')
    await assert.rejects(indexCsv(file, idx, { signal: AbortSignal.abort() }), { name: 'AbortError' })
    const big = await put('a,b\n' + '1,"two"\n'.repeat(2_000_000)) // 16 MiB
    const controller = new AbortController()
    await assert.rejects(indexCsv(big.file, big.idx, { signal: controller.signal, onProgress: () => controller.abort() }), { name: 'AbortError' })
    await assert.rejects(stat(big.idx), { code: 'ENOENT' })
  })

  test('progress reaches the file size', async () => {
    const content = 'a,b\n' + '1,"two"\n'.repeat(1_500_000) // 12 MiB
    const { file, idx } = await put(content)
    const seen: number[] = []
    const result = await indexCsv(file, idx, { onProgress: (done) => seen.push(done) })
    assert.equal(result.numRecords, 1_500_000)
    assert.ok(seen.length >= 2)
    assert.equal(seen.at(-1), content.length)
  })

  test('a source that changed since indexing is SOURCE_CHANGED', async () => {
    const { file, idx } = await put('a,b\n1,2\n3,4\n')
    const result = await indexCsv(file, idx)
    await writeFile(file, 'a,b\n1,2,9\n3,4\n')
    const source = await openCsvSource(file, idx, result.columns!)
    await assert.rejects(source.readRecords([0]), { code: 'SOURCE_CHANGED' })
    await source.close()
  })
})

describe('splitRecords reads what csv-parse reads', () => {
  // csv-parse with the indexer's options and the typing rules: the reference.
  function reference (buf: Buffer): unknown[][] | undefined {
    try {
      return parse(buf, {
        record_delimiter: ['\r\n', '\n'],
        skip_empty_lines: true,
        relax_column_count: true,
        cast: (value, context) => typeCell(value, context.quoting)
      }) as unknown[][]
    } catch {
      return undefined
    }
  }

  function check (buf: Buffer): void {
    const expected = reference(buf)
    // Input csv-parse refuses never reaches splitRecords (the indexer refused the file).
    if (expected !== undefined) assert.deepEqual(splitRecords(buf), expected, JSON.stringify(buf.toString()))
  }

  test('hand-picked cases', () => {
    for (const text of ['', '\n', '\r\n\r\n', 'a', 'a,', ',', ',,\n', '""', '"",""', '"a""b",c\r\n', '"x\r\ny"\n1',
      'a\r', 'a\rb,c', '\r', '\r\r\n', '1,-2.5,1e3,01,\n\n"3"', 'é,"é""é"\r\n', 'a,"b\n\n",\n\nc']) {
      check(Buffer.from(text))
    }
  })

  test('random text, including bytes that are not UTF-8', () => {
    const unit = fc.constantFrom('a', '1', '-', '.', 'e', ',', '"', '\r', '\n', ' ', 'é', 'X')
    fc.assert(fc.property(fc.string({ unit, maxLength: 60 }), (text) => {
      // X stands for a lone 0xC3, the start of a two-byte sequence that never ends.
      const buf = Buffer.from(text)
      for (let i = 0; i < buf.length; i++) if (buf[i] === 0x58) buf[i] = 0xc3
      check(buf)
    }), { numRuns: 5000 })
  })

  test('random well-formed files', () => {
    const unit = fc.constantFrom('a', '1', '0', '-', '.', 'e', ',', '"', '\r', '\n', ' ', 'é')
    const quoted = fc.string({ unit }).map((t) => `"${t.replaceAll('"', '""')}"`)
    const plain = fc.string({ unit }).map((t) => t.replace(/["\n,]/g, '').replace(/\r$/, ''))
    const row = fc.array(fc.oneof(quoted, plain), { minLength: 1, maxLength: 5 }).map((cells) => cells.join(','))
    const file = fc.array(fc.tuple(row, fc.constantFrom('\n', '\r\n', '\n\n', '\r\n\r\n')), { maxLength: 8 })
      .map((rows) => rows.map(([r, eol]) => r + eol).join(''))
    fc.assert(fc.property(file, fc.boolean(), (text, trim) => {
      const buf = Buffer.from(trim ? text.replace(/\r?\n$/, '') : text)
      assert.ok(reference(buf) !== undefined, JSON.stringify(text))
      check(buf)
    }), { numRuns: 3000 })
  })
})
