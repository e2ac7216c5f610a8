import { after, before, test } from 'node:test'
import assert from 'node:assert/strict'
import { copyFile, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { tableFromIPC } from 'apache-arrow'
import { DTYPE_BYTES, encodeArrowTensorBatch } from '../../src/codecs/arrow-batch.js'
import { indexNpy, loadNpyMeta, npySchema, openNpySource, parseNpyHeader, type NpyMeta } from '../../src/sources/npy.js'
import { encodeNpyArrowBatch } from '../../src/codecs/npy-arrow-batch.js'
import { isAppError, scramble, sourceDigest } from './expect.js'

// The fixtures and their expected records come from numpy itself: see
// test/fixtures/formats/make-fixtures.py.
const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'formats')
interface Expected { version: string, descr: string, shape: number[], records: unknown[] | null }
const EXPECTED = JSON.parse(await readFile(path.join(FIXTURES, 'npy-expected.json'), 'utf8')) as Record<string, Expected>
const READABLE = Object.keys(EXPECTED).filter((name) => EXPECTED[name]!.records !== null)

let tmp = ''
before(async function () {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'npy-test-'))
})
after(async function () {
  await rm(tmp, { recursive: true, force: true })
})

function fixture (name: string): string {
  return path.join(FIXTURES, name)
}

async function meta (name: string): Promise<NpyMeta> {
  const result = await indexNpy(fixture(name), path.join(tmp, `${name}.idx`))
  return { dtype: result.dtype, shape: result.shape, dataOffset: result.dataOffset }
}

test('every readable fixture: header, count, digest and the index file', async function () {
  assert.ok(READABLE.length >= 10)
  for (const name of READABLE) {
    const exp = EXPECTED[name]!
    const indexPath = path.join(tmp, `${name}.idx`)
    const bytes = await readFile(fixture(name))
    const progress: Array<[number, number]> = []
    const result = await indexNpy(fixture(name), indexPath, { onProgress: (done, total) => progress.push([done, total]) })
    assert.equal(result.numRecords, exp.shape[0], name)
    assert.deepEqual(result.shape, exp.shape, name)
    assert.equal(result.version, exp.version, name)
    assert.equal(result.descr, exp.descr, name)
    assert.equal(result.bytes, bytes.length, name)
    assert.equal(result.digest, sourceDigest(bytes), name)
    assert.equal(result.dataOffset + result.numRecords * result.rowBytes, bytes.length, name)
    assert.deepEqual(progress.at(-1), [bytes.length, bytes.length], name)
    assert.deepEqual(await loadNpyMeta(indexPath), { dtype: result.dtype, shape: result.shape, dataOffset: result.dataOffset }, name)
  }
})

test('format versions 1.0, 2.0 and 3.0', async function () {
  assert.equal((await indexNpy(fixture('f32-20x4-v1.npy'), path.join(tmp, 'v1.idx'))).version, '1.0')
  assert.equal((await indexNpy(fixture('f64-6x2x3-v2.npy'), path.join(tmp, 'v2.idx'))).version, '2.0')
  assert.equal((await indexNpy(fixture('u1-5x3-v3.npy'), path.join(tmp, 'v3.idx'))).version, '3.0')
})

test('dtypes map to their names, and the schema names the data field', async function () {
  const dtypes: Record<string, string> = {
    'f32-20x4-v1.npy': 'float32',
    'i64-10-v1.npy': 'int64',
    'f64-6x2x3-v2.npy': 'float64',
    'u1-5x3-v3.npy': 'uint8',
    'b1-4x3.npy': 'bool',
    'i1-3x2.npy': 'int8',
    'i2-3x2.npy': 'int16',
    'i4-3x2.npy': 'int32',
    'u2-3x2.npy': 'uint16',
    'u4-3x2.npy': 'uint32',
    'u8-3x2.npy': 'uint64'
  }
  for (const [name, dtype] of Object.entries(dtypes)) assert.equal((await meta(name)).dtype, dtype, name)
  assert.deepEqual(npySchema(await meta('i64-10-v1.npy')), { fields: [{ name: 'data', type: 'int64' }] })
  assert.deepEqual(npySchema(await meta('f32-20x4-v1.npy')), { fields: [{ name: 'data', type: 'fixed_size_list<float32>', shape: [4] }] })
  assert.deepEqual(npySchema(await meta('f64-6x2x3-v2.npy')), { fields: [{ name: 'data', type: 'fixed_size_list<float64>', shape: [2, 3] }] })
})

test('readJson and readRecords give numpy\'s tolist() for every record', async function () {
  for (const name of READABLE) {
    const records = EXPECTED[name]!.records!
    const source = await openNpySource(fixture(name), await meta(name))
    try {
      assert.equal(source.numRecords, records.length, name)
      const all = records.map((_, i) => i)
      const json = await source.readJson(all)
      assert.deepEqual(json.map((b) => b.toString()), records.map((r) => JSON.stringify(r)), name)
      if (name !== 'f32-special-4.npy') assert.deepEqual(await source.readRecords(all), records, name)
    } finally {
      await source.close()
    }
  }
})

test('NaN and infinities are numbers in records and null in JSON', async function () {
  const source = await openNpySource(fixture('f32-special-4.npy'), await meta('f32-special-4.npy'))
  assert.deepEqual(await source.readRecords([0, 1, 2, 3]), [NaN, Infinity, -Infinity, -0])
  assert.deepEqual((await source.readJson([0, 1, 2, 3])).map(String), ['null', 'null', 'null', '0'])
  await source.close()
})

test('shuffled and repeated indices, in readRecords, readJson and readRows', async function () {
  const name = 'f32-20x4-v1.npy'
  const m = await meta(name)
  const file = await readFile(fixture(name))
  const records = EXPECTED[name]!.records!
  const source = await openNpySource(fixture(name), m)
  try {
    assert.equal(source.rowBytes, 16)
    assert.deepEqual(source.innerShape, [4])
    for (const indices of [scramble(20, 64), [19, 0, 19, 0, 5, 5, 5], [3, 4, 5, 6, 7], [7, 6, 5, 4, 3], [0, 1, 2, 10, 11, 12, 13, 19], []]) {
      assert.deepEqual(await source.readRecords(indices), indices.map((i) => records[i]))
      assert.deepEqual((await source.readJson(indices)).map(String), indices.map((i) => JSON.stringify(records[i])))
      const rows = source.readRows(indices)
      assert.equal(rows.byteOffset, 0)
      assert.ok(rows.equals(Buffer.concat(indices.map((i) => file.subarray(m.dataOffset + i * 16, m.dataOffset + (i + 1) * 16)))))
    }
    assert.throws(() => source.readRows([20]), RangeError)
    await assert.rejects(source.readRecords([0, -1]), RangeError)
    await assert.rejects(source.readJson([1.5]), RangeError)
  } finally {
    await source.close()
  }
})

test('readRows feeds the Arrow tensor batch: values equal numpy\'s', async function () {
  for (const name of ['f32-20x4-v1.npy', 'f64-6x2x3-v2.npy', 'i64-10-v1.npy', 'b1-4x3.npy', 'u1-5x3-v3.npy']) {
    const m = await meta(name)
    const records = EXPECTED[name]!.records!
    const source = await openNpySource(fixture(name), m)
    const indices = scramble(records.length, 9, 7)
    const table = tableFromIPC(encodeArrowTensorBatch(indices, source.readRows(indices), source.dtype, source.innerShape))
    await source.close()
    const width = source.innerShape.reduce((a, b) => a * b, 1)
    const got = [...table.getChild('data')!].map((v) => (v !== null && typeof v === 'object') ? [...(v as Iterable<unknown>)] : v)
    const flat = (r: unknown): unknown[] => Array.isArray(r) ? r.flat(Infinity) : [r]
    const want = indices.map((i) => {
      const values = flat(records[i]).map((v) => typeof v === 'string' ? BigInt(v) : m.dtype === 'int64' ? BigInt(v as number) : v)
      return source.innerShape.length === 0 ? values[0] : values
    })
    assert.deepEqual(got, want, name)
    assert.equal(width * DTYPE_BYTES[m.dtype], source.rowBytes)
    assert.deepEqual([...table.getChild('__index')!], indices.map(BigInt))
  }
})

test('encodeNpyArrowBatch: bodies stay intact when later batches reuse the row buffer; readRows into a buffer', async function () {
  const name = 'f32-20x4-v1.npy'
  const records = EXPECTED[name]!.records! as number[][]
  const source = await openNpySource(fixture(name), await meta(name))
  const first = encodeNpyArrowBatch(source, [5, 1, 19])
  const copy = Buffer.from(first)
  const second = encodeNpyArrowBatch(source, [0, 2, 3, 4, 6, 7, 8])
  assert.ok(first.equals(copy))
  assert.deepEqual([...tableFromIPC(first).getChild('data')!].map((v) => [...v!]), [records[5], records[1], records[19]])
  assert.deepEqual([...tableFromIPC(second).getChild('__index')!], [0n, 2n, 3n, 4n, 6n, 7n, 8n])
  assert.ok(first.equals(encodeArrowTensorBatch([5, 1, 19], source.readRows([5, 1, 19]), 'float32', [4])))

  const into = Buffer.alloc(100, 0xee)
  const rows = source.readRows([2, 3], into)
  assert.equal(rows.buffer, into.buffer)
  assert.ok(rows.equals(source.readRows([2, 3])))
  assert.equal(into[32], 0xee)
  assert.throws(() => source.readRows([0, 1, 2, 3, 4, 5, 6], into), RangeError)
  await source.close()
})

test('an empty array (shape (0, 4)) has no records', async function () {
  const source = await openNpySource(fixture('f32-0x4.npy'), await meta('f32-0x4.npy'))
  assert.equal(source.numRecords, 0)
  assert.equal(source.readRows([]).length, 0)
  await source.close()
})

test('files the server refuses, each with a reason a user can act on', async function () {
  const reasons: Record<string, RegExp> = {
    'f4-big-endian.npy': /big-endian \(>f4\); save it little-endian, e\.g\. numpy\.save\(f, arr\.astype\('<f4'\)\)/,
    'f8-fortran.npy': /Fortran order; save it in C order/,
    'f2-3.npy': /dtype "<f2" is not supported \(save float16 data as float32\)/,
    'scalar.npy': /scalar \(shape \(\)\)/,
    'structured-2.npy': /structured dtypes/,
    'unicode-2.npy': /dtype "<U2" is not supported/
  }
  assert.deepEqual(Object.keys(reasons).sort(), Object.keys(EXPECTED).filter((n) => EXPECTED[n]!.records === null).sort())
  for (const [name, reason] of Object.entries(reasons)) {
    await assert.rejects(indexNpy(fixture(name), path.join(tmp, 'bad.idx')), isAppError('SOURCE_INVALID', reason), name)
  }
})

test('a truncated or padded file, and a file that is not npy', async function () {
  const cut = path.join(tmp, 'cut.npy')
  await copyFile(fixture('f32-20x4-v1.npy'), cut)
  await truncate(cut, (await stat(cut)).size - 4)
  await assert.rejects(indexNpy(cut, path.join(tmp, 'x.idx')), isAppError('SOURCE_INVALID', /is 444 bytes but its header \(shape \(20, 4\), dtype <f4\) needs 448; the file is truncated/))

  const long = path.join(tmp, 'long.npy')
  await writeFile(long, Buffer.concat([await readFile(fixture('f32-20x4-v1.npy')), Buffer.alloc(3)]))
  await assert.rejects(indexNpy(long, path.join(tmp, 'x.idx')), isAppError('SOURCE_INVALID', /longer than the array/))

  const text = path.join(tmp, 'text.npy')
  await writeFile(text, 'id,x\n1,2\n')
  await assert.rejects(indexNpy(text, path.join(tmp, 'x.idx')), isAppError('SOURCE_INVALID', /magic string/))
  await writeFile(text, '')
  await assert.rejects(indexNpy(text, path.join(tmp, 'x.idx')), isAppError('SOURCE_INVALID', /magic string/))

  const header = await readFile(fixture('f32-20x4-v1.npy'))
  const v9 = Buffer.from(header)
  v9[6] = 9
  await writeFile(text, v9)
  await assert.rejects(indexNpy(text, path.join(tmp, 'x.idx')), isAppError('SOURCE_INVALID', /format version 9\.0 is not supported/))
  await writeFile(text, header.subarray(0, 40))
  await assert.rejects(indexNpy(text, path.join(tmp, 'x.idx')), isAppError('SOURCE_INVALID', /ends inside its header/))

  await assert.rejects(indexNpy(path.join(tmp, 'missing.npy'), path.join(tmp, 'x.idx')), { code: 'ENOENT' })
})

function header (dict: string, version = 1): Buffer {
  const body = Buffer.from(dict, version === 3 ? 'utf8' : 'latin1')
  const prefix = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0])
  const len = Buffer.alloc(version === 1 ? 2 : 4)
  if (version === 1) len.writeUInt16LE(body.length)
  else len.writeUInt32LE(body.length)
  return Buffer.concat([prefix, len, body])
}

test('header dicts as other writers spell them', function () {
  // Python 2 numpy wrote long integers with an L suffix; key order and quotes may vary.
  const dict = "{'descr': '<i8', 'fortran_order': False, 'shape': (10L, 3L), }    \n"
  const py2 = parseNpyHeader(header(dict))
  assert.deepEqual([py2.dtype, py2.shape, py2.rowBytes, py2.dataOffset], ['int64', [10, 3], 24, 10 + dict.length])
  const dq = parseNpyHeader(header('{"shape": [4], "fortran_order": False, "descr": "<u2"}\n', 2))
  assert.deepEqual([dq.dtype, dq.shape, dq.version], ['uint16', [4], '2.0'])
  const one = parseNpyHeader(header("{'descr': '|b1', 'fortran_order': False, 'shape': (7,)}"))
  assert.deepEqual([one.dtype, one.shape, one.rowBytes], ['bool', [7], 1])
  const big1 = parseNpyHeader(header("{'descr': '>u1', 'fortran_order': False, 'shape': (2,)}"))
  assert.equal(big1.dtype, 'uint8') // one byte has no byte order
  assert.throws(() => parseNpyHeader(header("{'descr': '<f4', 'fortran_order': False, 'shape': (2,) ")), isAppError('SOURCE_INVALID', /not a Python dict literal/))
  assert.throws(() => parseNpyHeader(header("{'descr': '<f4', 'fortran_order': False, 'shape': __import__('os')}")), isAppError('SOURCE_INVALID', /not a Python dict literal/))
  assert.throws(() => parseNpyHeader(header("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}")), isAppError('SOURCE_INVALID', /no valid shape/))
  assert.throws(() => parseNpyHeader(header("{'descr': '=f4', 'fortran_order': False, 'shape': (1,)}")), isAppError('SOURCE_INVALID', /does not say its byte order/))
  assert.throws(() => parseNpyHeader(header("{'descr': '<f4', 'shape': (1,)}")), isAppError('SOURCE_INVALID', /no fortran_order/))
})

test('abort stops indexing', async function () {
  const controller = new AbortController()
  controller.abort()
  await assert.rejects(indexNpy(fixture('f32-20x4-v1.npy'), path.join(tmp, 'a.idx'), { signal: controller.signal }), { name: 'AbortError' })
})

test('a large file is hashed in chunks with progress', async function () {
  const rows = 300_000
  const file = path.join(tmp, 'large.npy')
  const head = header(`{'descr': '<f8', 'fortran_order': False, 'shape': (${rows}, 4), }`.padEnd(118) + '\n')
  const data = Buffer.alloc(rows * 32)
  for (let p = 0; p < data.length; p += 8) data.writeDoubleLE(p, p)
  const whole = Buffer.concat([head, data])
  await writeFile(file, whole)
  const progress: number[] = []
  const result = await indexNpy(file, path.join(tmp, 'large.idx'), { onProgress: (done) => progress.push(done) })
  assert.equal(result.digest, sourceDigest(whole))
  assert.equal(result.numRecords, rows)
  assert.ok(progress.length >= 2, `progress ${progress.join(',')}`)
  assert.equal(progress.at(-1), whole.length)
  const source = await openNpySource(file, result)
  assert.deepEqual(await source.readRecords([rows - 1, 0]), [[(rows - 1) * 32, (rows - 1) * 32 + 8, (rows - 1) * 32 + 16, (rows - 1) * 32 + 24], [0, 8, 16, 24]])
  await source.close()
})

test('a file that changed after indexing is SOURCE_CHANGED', async function () {
  const file = path.join(tmp, 'changing.npy')
  await copyFile(fixture('f32-20x4-v1.npy'), file)
  const m = await meta('f32-20x4-v1.npy')
  await copyFile(fixture('i4-3x2.npy'), file)
  await assert.rejects(openNpySource(file, m), isAppError('SOURCE_CHANGED', /changed on disk/))
  await copyFile(fixture('f32-20x4-v1.npy'), file)
  const source = await openNpySource(file, m)
  await truncate(file, 100)
  assert.throws(() => source.readRows([19]), isAppError('SOURCE_CHANGED', /shorter than when it was indexed/))
  await source.close()
  await source.close() // twice is fine
  assert.throws(() => source.readRows([0]), /closed/)
})
