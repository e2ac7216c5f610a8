import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { copyFile, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import zlib from 'node:zlib'
import { tableFromIPC } from 'apache-arrow'
import { parquetMetadata } from 'hyparquet'
import { parquetWriteBuffer } from 'hyparquet-writer'
import { encodeArrowBatch } from '../../src/codecs/arrow-batch.js'
import { indexParquet, openParquetSource } from '../../src/sources/parquet.js'
import { isAppError, scramble, sourceDigest } from './expect.js'

// rows-30.parquet (30 rows in row groups of 7, 7, 7, 7, 2) and the records it must read as
// are made by test/fixtures/formats/make-parquet.ts with hyparquet-writer.
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'formats')
const FILE = path.join(FIXTURES, 'rows-30.parquet')
const EXPECTED = JSON.parse(await readFile(path.join(FIXTURES, 'parquet-expected.json'), 'utf8')) as Array<Record<string, unknown>>
const EXPECTED_JSON = EXPECTED.map((r) => JSON.stringify(r))

let tmp = ''
before(async function () {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'parquet-test-'))
})
after(async function () {
  await rm(tmp, { recursive: true, force: true })
})

test('indexing reads the footer: count, row groups, schema, digest, progress', async function () {
  const bytes = await readFile(FILE)
  const progress: Array<[number, number]> = []
  const indexPath = path.join(tmp, 'rows.idx')
  const result = await indexParquet(FILE, indexPath, { onProgress: (done, total) => progress.push([done, total]) })
  assert.equal(result.numRecords, 30)
  assert.deepEqual(result.rowGroups, [7, 7, 7, 7, 2])
  assert.equal(result.bytes, bytes.length)
  assert.equal(result.digest, sourceDigest(bytes))
  assert.deepEqual(progress.at(-1), [bytes.length, bytes.length])
  assert.deepEqual(result.schema.fields, [
    { name: 'id', type: 'int64' },
    { name: 'label', type: 'int64', nullable: true },
    { name: 'score', type: 'float64', nullable: true },
    { name: 'name', type: 'string' },
    { name: 'flag', type: 'bool' },
    { name: 'vec', type: 'list<float64>', nullable: true },
    { name: 'meta', type: 'json', nullable: true },
    { name: 'big', type: 'int64' },
    { name: 'day', type: 'string', nullable: true }
  ])
  assert.deepEqual(JSON.parse(await readFile(indexPath, 'utf8')), { format: 'parquet', bytes: bytes.length, rowGroups: [7, 7, 7, 7, 2] })
})

test('indexing never decodes the data pages: it succeeds on a file whose pages are wiped', async function () {
  const bytes = Buffer.from(await readFile(FILE))
  const footerLength = bytes.readUInt32LE(bytes.length - 8)
  const dataEnd = bytes.length - 8 - footerLength
  bytes.fill(0, 4, dataEnd) // keep the leading magic, the footer and the trailing magic
  const wiped = path.join(tmp, 'wiped.parquet')
  await writeFile(wiped, bytes)
  const result = await indexParquet(wiped, path.join(tmp, 'wiped.idx'))
  assert.equal(result.numRecords, 30)
  // Reading records is where the damage shows, as SOURCE_INVALID naming the row group.
  const source = await openParquetSource(wiped)
  await assert.rejects(source.readRecords([8]), isAppError('SOURCE_INVALID', /^row group 1 of the Parquet file cannot be read/))
  await source.close()
})

test('a full read equals the records written', async function () {
  const source = await openParquetSource(FILE)
  try {
    assert.equal(source.numRecords, 30)
    assert.deepEqual(source.rowGroups, [7, 7, 7, 7, 2])
    const all = EXPECTED.map((_, i) => i)
    assert.deepEqual(await source.readRecords(all), EXPECTED)
    assert.deepEqual((await source.readJson(all)).map(String), EXPECTED_JSON)
  } finally {
    await source.close()
  }
})

test('the row-group cache stops at its byte bound, keeping the group being read', async function () {
  const tight = await openParquetSource(FILE, { cacheRowGroups: 10, cacheBytes: 0 })
  const loose = await openParquetSource(FILE, { cacheRowGroups: 10, cacheBytes: Number.MAX_SAFE_INTEGER })
  try {
    for (const source of [tight, loose]) {
      for (const i of [0, 7, 14, 21, 28]) assert.deepEqual(await source.readRecords([i]), [EXPECTED[i]])
    }
    assert.deepEqual(tight.cachedRowGroups, [4])
    assert.deepEqual(loose.cachedRowGroups, [0, 1, 2, 3, 4])
    // Records stay right when every read decodes its group again.
    const indices = scramble(30, 30, 5)
    assert.deepEqual(await tight.readRecords(indices), indices.map((i) => EXPECTED[i]))
  } finally {
    await tight.close()
    await loose.close()
  }
})

test('random, repeated and boundary indices equal the full read, with any cache size', async function () {
  const batches = [
    scramble(30, 50, 3),
    [6, 7, 13, 14, 20, 21, 27, 28, 29, 0],
    [29, 28, 0, 0, 29, 7, 7],
    [14],
    []
  ]
  for (const cacheRowGroups of [1, 2, 4, 10]) {
    const source = await openParquetSource(FILE, { cacheRowGroups })
    for (const indices of batches) {
      assert.deepEqual(await source.readRecords(indices), indices.map((i) => EXPECTED[i]), `cache ${cacheRowGroups}: ${indices.join(',')}`)
      assert.deepEqual((await source.readJson(indices)).map(String), indices.map((i) => EXPECTED_JSON[i]))
    }
    // Concurrent batches share row groups.
    const results = await Promise.all(batches.map((indices) => source.readRecords(indices)))
    results.forEach((records, b) => assert.deepEqual(records, batches[b]!.map((i) => EXPECTED[i])))
    await assert.rejects(source.readRecords([30]), RangeError)
    await assert.rejects(source.readRecords([-1]), RangeError)
    await source.close()
  }
})

test('parquet records encode to Arrow with the indexed schema', async function () {
  const { schema } = await indexParquet(FILE, path.join(tmp, 'arrow.idx'))
  const source = await openParquetSource(FILE)
  const indices = [9, 19, 3]
  const table = tableFromIPC(encodeArrowBatch(schema, indices, await source.readRecords(indices)))
  await source.close()
  assert.deepEqual([...table.getChild('big')!], [2n ** 60n + 9n, 2n ** 60n + 19n, 3000n])
  assert.deepEqual([...table.getChild('label')!], [0n, null, null])
  assert.deepEqual([...table.getChild('day')!], ['2024-01-10T00:00:00.000Z', '2024-01-20T00:00:00.000Z', '2024-01-04T00:00:00.000Z'])
  assert.deepEqual([...table.getChild('vec')!].map((v) => v === null ? null : [...v]), [[2.25, -9, null], [4.75, -19, 1.5], [0.75, -3, null]])
  assert.deepEqual([...table.getChild('__index')!], [9n, 19n, 3n])
})

// Small files written in the test, for codecs and layouts the fixture does not cover.
async function write (name: string, options: Parameters<typeof parquetWriteBuffer>[0]): Promise<string> {
  const file = path.join(tmp, name)
  await writeFile(file, new Uint8Array(parquetWriteBuffer(options)))
  return file
}

test('GZIP pages are read with node:zlib', async function () {
  const file = await write('gzip.parquet', {
    columnData: [{ name: 'x', data: Array.from({ length: 50 }, (_, i) => i * 1.5), type: 'DOUBLE' }],
    codec: 'GZIP',
    compressors: { GZIP: (input: Uint8Array) => zlib.gzipSync(input) },
    rowGroupSize: 20
  })
  const result = await indexParquet(file, path.join(tmp, 'gzip.idx'))
  assert.deepEqual(result.rowGroups, [20, 20, 10])
  const source = await openParquetSource(file)
  assert.deepEqual(await source.readRecords([49, 0, 21]), [{ x: 73.5 }, { x: 0 }, { x: 31.5 }])
  await source.close()
})

test('a codec the server cannot decode is refused at indexing, naming the column', async function () {
  const file = await write('lz4.parquet', {
    columnData: [{ name: 'x', data: [1, 2, 3], type: 'INT32' }],
    codec: 'LZ4_RAW',
    compressors: { LZ4_RAW: (input: Uint8Array) => input }
  })
  await assert.rejects(indexParquet(file, path.join(tmp, 'lz4.idx')), isAppError('SOURCE_INVALID', /column "x" is compressed with LZ4_RAW; write the file with SNAPPY, GZIP, BROTLI.* compression, or none/))
})

test('a list of strings and a struct are json columns', async function () {
  const file = await write('nested.parquet', {
    columnData: [
      { name: 'words', data: [['a'], [], ['b', 'c']] },
      { name: 'point', data: [{ x: 1, y: 0.5 }, null, { x: -2, y: 3 }] }
    ],
    schema: [
      { name: 'root', num_children: 2 },
      { name: 'words', repetition_type: 'OPTIONAL', converted_type: 'LIST', num_children: 1 },
      { name: 'list', repetition_type: 'REPEATED', num_children: 1 },
      { name: 'element', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'REQUIRED' },
      { name: 'point', repetition_type: 'OPTIONAL', num_children: 2 },
      { name: 'x', type: 'INT32', repetition_type: 'REQUIRED' },
      { name: 'y', type: 'DOUBLE', repetition_type: 'REQUIRED' }
    ]
  })
  const result = await indexParquet(file, path.join(tmp, 'nested.idx'))
  assert.deepEqual(result.schema.fields, [
    { name: 'words', type: 'json', nullable: true },
    { name: 'point', type: 'json', nullable: true }
  ])
  const source = await openParquetSource(file)
  const records = await source.readRecords([0, 1, 2])
  assert.deepEqual(records, [{ words: ['a'], point: { x: 1, y: 0.5 } }, { words: [], point: null }, { words: ['b', 'c'], point: { x: -2, y: 3 } }])
  const table = tableFromIPC(encodeArrowBatch(result.schema, [0, 1, 2], records))
  assert.deepEqual([...table.getChild('words')!], ['["a"]', '[]', '["b","c"]'])
  assert.deepEqual([...table.getChild('point')!], ['{"x":1,"y":0.5}', null, '{"x":-2,"y":3}'])
  await source.close()
})

test('a file that is not Parquet, or is cut short, is SOURCE_INVALID', async function () {
  const text = path.join(tmp, 'text.parquet')
  await writeFile(text, 'id,x\n1,2\n')
  await assert.rejects(indexParquet(text, path.join(tmp, 'x.idx')), isAppError('SOURCE_INVALID', /^not a usable Parquet file: its footer cannot be read/))
  await writeFile(text, '')
  await assert.rejects(indexParquet(text, path.join(tmp, 'x.idx')), isAppError('SOURCE_INVALID', /footer cannot be read/))
  const cut = path.join(tmp, 'cut.parquet')
  await copyFile(FILE, cut)
  await truncate(cut, (await stat(cut)).size - 10)
  await assert.rejects(indexParquet(cut, path.join(tmp, 'x.idx')), isAppError('SOURCE_INVALID', /footer cannot be read/))
})

test('a file that changed since indexing is SOURCE_CHANGED', async function () {
  const file = path.join(tmp, 'changing.parquet')
  await copyFile(FILE, file)
  const { bytes, numRecords } = await indexParquet(file, path.join(tmp, 'changing.idx'))
  await writeFile(file, new Uint8Array(parquetWriteBuffer({ columnData: [{ name: 'x', data: [1, 2], type: 'INT32' }] })))
  await assert.rejects(openParquetSource(file, { bytes, numRecords }), isAppError('SOURCE_CHANGED', /changed on disk/))
  await assert.rejects(openParquetSource(file, { numRecords }), isAppError('SOURCE_CHANGED', /changed on disk/))
  await copyFile(FILE, file)
  const source = await openParquetSource(file, { bytes, numRecords })
  await truncate(file, 100)
  await assert.rejects(source.readRecords([0]), isAppError('SOURCE_CHANGED', /shorter than when it was indexed/))
  await source.close()
  await source.close()
  await assert.rejects(source.readRecords([0]), /closed/)
})

test('the footer agrees with an independent parse of the whole file', async function () {
  const bytes = await readFile(FILE)
  const metadata = parquetMetadata(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length))
  assert.equal(metadata.num_rows, 30n)
  assert.deepEqual(metadata.row_groups.map((g) => Number(g.num_rows)), [7, 7, 7, 7, 2])
  const { numRecords, rowGroups } = await indexParquet(FILE, path.join(tmp, 'footer.idx'))
  assert.equal(BigInt(numRecords), metadata.num_rows)
  assert.deepEqual(rowGroups, metadata.row_groups.map((g) => Number(g.num_rows)))
})
