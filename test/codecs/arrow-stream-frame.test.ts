import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile, mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { tableFromIPC } from 'apache-arrow'
import {
  allocTensorBatch, DTYPE_BYTES, encodeArrowBatch, encodeArrowTensorBatch, encodeArrowTensorBatchWithWriter, type TensorDtype
} from '../../src/codecs/arrow-batch.js'
import { frameOf, writeFrame } from '../../src/codecs/arrow-stream-frame.js'
import { indexNpy, openNpySource } from '../../src/sources/npy.js'
import { encodeNpyArrowBatch } from '../../src/codecs/npy-arrow-batch.js'
import { placedAt } from './placed-at.js'

const DTYPES = Object.keys(DTYPE_BYTES) as TensorDtype[]
const SHAPES: number[][] = [[], [1], [3], [2, 3], [0], [3, 0], [5, 7], [128]]
const COUNTS = [0, 1, 2, 7, 8, 9, 100, 128]

// A small deterministic byte source, so a failure names a reproducible case.
function bytesFor (dtype: TensorDtype, count: number, seed: number): Buffer {
  const out = Buffer.alloc(count * DTYPE_BYTES[dtype])
  let s = seed >>> 0
  for (let k = 0; k < out.length; k++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0
    out[k] = dtype === 'bool' ? (s >>> 16) & 1 : s >>> 24
  }
  return out
}

function indicesFor (n: number, seed: number): number[] {
  // Large record numbers too: the index column is int64.
  return Array.from({ length: n }, (_, k) => k === 2 ? 2 ** 53 - 1 : ((k * 7919 + seed) % 100003) + (k === 1 ? 2 ** 40 : 0))
}

test('the framed stream is byte for byte what apache-arrow writes, for every dtype, shape, count and name', function () {
  let seed = 1
  for (const dtype of DTYPES) {
    for (const shape of SHAPES) {
      for (const n of COUNTS) {
        for (const name of ['data', 'x']) {
          const width = shape.reduce((a, b) => a * b, 1)
          const rows = bytesFor(dtype, n * width, seed++)
          const indices = indicesFor(n, seed)
          const fast = encodeArrowTensorBatch(indices, rows, dtype, shape, name)
          const reference = encodeArrowTensorBatchWithWriter(indices, rows, dtype, shape, name)
          assert.ok(fast.equals(reference), `${dtype} [${shape.join(',')}] n=${n} ${name}`)
        }
      }
    }
  }
})

test('rows given as one Buffer a row or as an unaligned Buffer give the same bytes', function () {
  for (const dtype of ['float32', 'int64', 'bool', 'uint16'] as const) {
    const n = 9
    const rows = bytesFor(dtype, n * 6, 77)
    const perRow = Array.from({ length: n }, (_, k) => rows.subarray(k * 6 * DTYPE_BYTES[dtype], (k + 1) * 6 * DTYPE_BYTES[dtype]))
    const unaligned = Buffer.alloc(rows.length + 1).subarray(1)
    rows.copy(unaligned)
    const indices = indicesFor(n, 5)
    const reference = encodeArrowTensorBatchWithWriter(indices, rows, dtype, [2, 3])
    for (const input of [rows, perRow, unaligned]) {
      assert.ok(encodeArrowTensorBatch(indices, input, dtype, [2, 3]).equals(reference), dtype)
    }
  }
})

test('allocTensorBatch: an own buffer whose values view takes the rows in place', function () {
  const n = 128
  const rows = bytesFor('float32', n * 128, 3)
  const indices = indicesFor(n, 11)
  const { body, values } = allocTensorBatch(indices, 'float32', [128])
  assert.equal(body.byteOffset, 0)
  assert.equal(body.buffer.byteLength, body.length)
  assert.equal(values.buffer, body.buffer)
  assert.equal(values.length, rows.length)
  assert.equal(values.byteOffset % 8, 0)
  rows.copy(values)
  assert.ok(body.equals(encodeArrowTensorBatchWithWriter(indices, rows, 'float32', [128])))
  const table = tableFromIPC(body)
  assert.equal(table.numRows, n)
  assert.deepEqual([...table.getChild('__index')!], indices.map(BigInt))
})

test('a body placed at any offset of a larger buffer has the same bytes (the int64 index needs no aligned address)', function () {
  for (const dtype of ['float32', 'int64', 'bool', 'uint8'] as const) {
    const n = 9
    const rows = bytesFor(dtype, n * 6, 41)
    const indices = indicesFor(n, 3)
    const reference = encodeArrowTensorBatchWithWriter(indices, rows, dtype, [2, 3])
    for (let offset = 0; offset <= 8; offset++) {
      const at = placedAt(offset)
      at.check(encodeArrowTensorBatch(indices, rows, dtype, [2, 3], undefined, at.allocate), reference, `${dtype} at ${offset}`)
    }
  }
})

test('batches of one shape share a frame but never bytes: an earlier body is left as it was', function () {
  const a = encodeArrowTensorBatch([1, 2], bytesFor('int32', 6, 1), 'int32', [3])
  const copy = Buffer.from(a)
  const b = encodeArrowTensorBatch([3, 4], bytesFor('int32', 6, 2), 'int32', [3])
  assert.ok(a.equals(copy))
  assert.ok(!a.equals(b))
  assert.equal(a.length, b.length)
})

test('bad record numbers, byte counts and names are refused as before', function () {
  assert.throws(() => encodeArrowTensorBatch([-1], Buffer.alloc(4), 'float32', []), RangeError)
  assert.throws(() => encodeArrowTensorBatch([0.5], Buffer.alloc(4), 'float32', []), RangeError)
  assert.throws(() => encodeArrowTensorBatch([2 ** 53], Buffer.alloc(4), 'float32', []), RangeError)
  assert.throws(() => allocTensorBatch([-1], 'float32', []), RangeError)
  assert.throws(() => allocTensorBatch([0], 'float32', [], '__index'), RangeError)
  assert.throws(() => encodeArrowTensorBatch([0, 1], Buffer.alloc(12), 'float32', [2]), RangeError)
})

test('frameOf refuses a stream that is not one tensor column and __index', function () {
  const records = encodeArrowBatch({ fields: [{ name: 'name', type: 'string' }] }, [0, 1], [{ name: 'a' }, { name: 'bc' }])
  // A Utf8 column has offsets and data: its last three buffers are not values, validity, data.
  assert.throws(() => frameOf(records, 16, 16), /not laid out as expected/)
  const stream = encodeArrowTensorBatchWithWriter([0, 0], Buffer.alloc(8), 'float32', [])
  assert.throws(() => frameOf(stream.subarray(0, stream.length - 8), 8, 16), /end-of-stream/)
  assert.throws(() => frameOf(stream, 12, 16), /not laid out as expected/)
  const frame = frameOf(stream, 8, 16)
  const out = Buffer.alloc(frame.byteLength, 0xaa)
  writeFrame(frame, out)
  out.fill(0, frame.valuesOffset, frame.valuesOffset + frame.valuesLength)
  out.fill(0, frame.indexOffset, frame.indexOffset + frame.indexLength)
  assert.ok(out.equals(stream))
})

test('npy batches read in place equal the writer\'s stream, bool (packed) included', async function () {
  const fixtures = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'formats')
  const expected = JSON.parse(await readFile(path.join(fixtures, 'npy-expected.json'), 'utf8')) as Record<string, { records: unknown[] | null }>
  const tmp = await mkdtemp(path.join(os.tmpdir(), 'frame-test-'))
  try {
    for (const name of Object.keys(expected).filter((f) => expected[f]!.records !== null && expected[f]!.records!.length > 0)) {
      const meta = await indexNpy(path.join(fixtures, name), path.join(tmp, `${name}.idx`))
      const source = await openNpySource(path.join(fixtures, name), meta)
      const n = source.numRecords
      const indices = Array.from({ length: n * 2 }, (_, k) => (k * 5 + 3) % n)
      const body = encodeNpyArrowBatch(source, indices)
      const reference = encodeArrowTensorBatchWithWriter(indices, source.readRows(indices), source.dtype, source.innerShape)
      assert.ok(body.equals(reference), name)
      assert.equal(body.byteOffset, 0, name)
      assert.equal(body.buffer.byteLength, body.length, name)
      for (const offset of [3, 8]) {
        const at = placedAt(offset)
        at.check(encodeNpyArrowBatch(source, indices, at.allocate), reference, `${name} at ${offset}`)
      }
      await source.close()
    }
  } finally {
    await rm(tmp, { recursive: true, force: true })
  }
})
