import { test } from 'node:test'
import assert from 'node:assert/strict'
import { tableFromIPC, type Table } from 'apache-arrow'
import { DTYPE_BYTES, encodeArrowBatch, encodeArrowTensorBatch, SHAPE_METADATA_KEY, type TensorDtype } from '../../src/codecs/arrow-batch.js'
import { createSchemaInferrer } from '../../src/codecs/schema-infer.js'
import { AppError } from '../../src/errors.js'
import type { SchemaField } from '../../src/store/registry.js'

// nodejs-polars reads the same bytes with an independent Arrow implementation (Rust). Its
// native binary comes from an optional dependency that npm installs only on Node >= 22;
// scripts/install-test-deps.sh (run by `npm test`) unpacks it on Node 20. Where it still cannot
// load, these checks fail, saying why.
interface PolarsFrame {
  toRecords: () => Array<Record<string, unknown>>
  columns: string[]
  dtypes: Array<{ toString: () => string }>
}
let polars: { readIPCStream: (body: Buffer) => PolarsFrame } | undefined
let polarsMissing = ''
try {
  const mod = await import('nodejs-polars')
  polars = (mod.default ?? mod) as unknown as typeof polars
} catch (err) {
  polarsMissing = `nodejs-polars cannot load (${(err as Error).message.split('\n')[0]}); run scripts/install-test-deps.sh`
}

const RECORDS = [
  { id: 1, score: 0.5, ok: true, name: 'plain', vec: [1.5, 2], ids: [1, 2, 3], meta: { a: [1, { b: null }] }, opt: 7 },
  { id: -2, score: 3, ok: false, name: 'héllo ✓ "quoted"\n', vec: [], ids: [], meta: [1, 'two'], opt: null },
  { id: 2 ** 53 - 1, score: -1e-300, ok: true, name: '', vec: [null, 0.25], ids: [-(2 ** 53 - 1), null], meta: { s: 'text' }, tail: 'only here' },
  { id: 0, score: 1.7976931348623157e308, ok: false, name: 'x'.repeat(300), vec: [Number.MIN_VALUE], ids: [0], meta: null, opt: 0 }
]
const INDICES = [40, 3, 3, 2 ** 40]

function schemaOf (records: unknown[]): { fields: SchemaField[] } {
  const inferrer = createSchemaInferrer()
  records.forEach((r, k) => inferrer.add(r, k + 1))
  return inferrer.result()
}

function column (table: Table, name: string): unknown[] {
  const vector = table.getChild(name)
  assert.ok(vector !== null, `no column ${name}`)
  // List cells are Vectors: iterating one yields null for null elements (toArray() would not).
  return [...vector].map((v) => (v !== null && typeof v === 'object' && Symbol.iterator in v) ? [...(v as Iterable<unknown>)] : v)
}

function isInvalid (pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof AppError, `expected an AppError, got ${String(err)}`)
    assert.equal(err.code, 'SOURCE_INVALID')
    assert.match(err.message, pattern)
    return true
  }
}

test('round trip through apache-arrow: types, values, nulls, json text and __index', function () {
  const schema = schemaOf(RECORDS)
  assert.deepEqual(schema.fields, [
    { name: 'id', type: 'int64' },
    { name: 'score', type: 'float64' },
    { name: 'ok', type: 'bool' },
    { name: 'name', type: 'string' },
    { name: 'vec', type: 'list<float64>' },
    { name: 'ids', type: 'list<int64>' },
    { name: 'meta', type: 'json', nullable: true },
    { name: 'opt', type: 'int64', nullable: true },
    { name: 'tail', type: 'string', nullable: true }
  ])
  const table = tableFromIPC(encodeArrowBatch(schema, INDICES, RECORDS))
  assert.equal(table.numRows, 4)
  assert.deepEqual(table.schema.fields.map((f) => [f.name, String(f.type), f.nullable]), [
    ['id', 'Int64', false],
    ['score', 'Float64', false],
    ['ok', 'Bool', false],
    ['name', 'Utf8', false],
    ['vec', 'List<Float64>', false],
    ['ids', 'List<Int64>', false],
    ['meta', 'Utf8', true],
    ['opt', 'Int64', true],
    ['tail', 'Utf8', true],
    ['__index', 'Int64', false]
  ])
  assert.deepEqual(column(table, 'id'), [1n, -2n, 2n ** 53n - 1n, 0n])
  assert.deepEqual(column(table, 'score'), RECORDS.map((r) => r.score))
  assert.deepEqual(column(table, 'ok'), [true, false, true, false])
  assert.deepEqual(column(table, 'name'), RECORDS.map((r) => r.name))
  assert.deepEqual(column(table, 'vec'), [[1.5, 2], [], [null, 0.25], [Number.MIN_VALUE]])
  assert.deepEqual(column(table, 'ids'), [[1n, 2n, 3n], [], [-(2n ** 53n - 1n), null], [0n]])
  assert.deepEqual(column(table, 'meta'), ['{"a":[1,{"b":null}]}', '[1,"two"]', '{"s":"text"}', null])
  assert.deepEqual(column(table, 'opt'), [7n, null, null, 0n])
  assert.deepEqual(column(table, 'tail'), [null, null, 'only here', null])
  assert.deepEqual(column(table, '__index'), [40n, 3n, 3n, 2n ** 40n])
})

test('independent check: nodejs-polars reads the same stream to the same values', function () {
  assert.ok(polars !== undefined, polarsMissing)
  const schema = schemaOf(RECORDS)
  const df = polars!.readIPCStream(encodeArrowBatch(schema, INDICES, RECORDS))
  assert.deepEqual(df.columns, ['id', 'score', 'ok', 'name', 'vec', 'ids', 'meta', 'opt', 'tail', '__index'])
  assert.deepEqual(df.dtypes.map(String), [
    'Int64', 'Float64', 'Bool', 'String', 'List(DataType(Float64))', 'List(DataType(Int64))', 'String', 'Int64', 'String', 'Int64'
  ].map((t) => `DataType(${t})`))
  const rows = df.toRecords()
  assert.deepEqual(rows, RECORDS.map((r, k) => ({
    id: r.id,
    score: r.score,
    ok: r.ok,
    name: r.name,
    vec: r.vec,
    ids: r.ids,
    meta: r.meta === null ? null : JSON.stringify(r.meta),
    opt: r.opt ?? null,
    tail: r.tail ?? null,
    __index: INDICES[k]
  })))
})

test('64-bit integers beyond 2^53 arrive as bigint or decimal strings and stay exact', function () {
  const schema = { fields: [{ name: 'big', type: 'int64' }, { name: 'list', type: 'list<int64>' }] }
  const records = [
    { big: 2n ** 63n - 1n, list: ['9007199254740993', -(2n ** 63n)] },
    { big: '-9223372036854775808', list: [] }
  ]
  const table = tableFromIPC(encodeArrowBatch(schema, [0, 1], records))
  assert.deepEqual(column(table, 'big'), [2n ** 63n - 1n, -(2n ** 63n)])
  assert.deepEqual(column(table, 'list'), [[2n ** 53n + 1n, -(2n ** 63n)], []])
  assert.throws(() => encodeArrowBatch(schema, [5], [{ big: 2n ** 63n, list: [] }]), isInvalid(/^record 5: field "big" is an integer \(9223372036854775808\), expected an int64/))
})

test('the same input gives the same bytes', function () {
  const schema = schemaOf(RECORDS)
  assert.ok(encodeArrowBatch(schema, INDICES, RECORDS).equals(encodeArrowBatch(schema, INDICES, structuredClone(RECORDS))))
})

test('an empty batch is a valid stream with the schema and no rows', function () {
  const table = tableFromIPC(encodeArrowBatch(schemaOf(RECORDS), [], []))
  assert.equal(table.numRows, 0)
  assert.equal(table.schema.fields.length, 10)
})

test('record keys outside the schema are left out; a key the record lacks is null, not a prototype member', function () {
  const schema = { fields: [{ name: 'constructor', type: 'string', nullable: true }, { name: '__proto__', type: 'json', nullable: true }] }
  const records = [{ extra: 1 }, JSON.parse('{"constructor": "c", "__proto__": {"p": 1}}')]
  const table = tableFromIPC(encodeArrowBatch(schema, [0, 1], records))
  assert.deepEqual(table.schema.fields.map((f) => f.name), ['constructor', '__proto__', '__index'])
  assert.deepEqual(column(table, 'constructor'), [null, 'c'])
  assert.deepEqual(column(table, '__proto__'), [null, '{"p":1}'])
})

test('values that do not fit the schema are SOURCE_INVALID naming the record', function () {
  const schema = {
    fields: [
      { name: 'i', type: 'int64' }, { name: 'f', type: 'float64', nullable: true }, { name: 's', type: 'string', nullable: true },
      { name: 'b', type: 'bool', nullable: true }, { name: 'l', type: 'list<float64>', nullable: true }
    ]
  }
  const ok = { i: 1, f: 1, s: 'a', b: true, l: [1] }
  assert.throws(() => encodeArrowBatch(schema, [7, 8], [ok, { ...ok, i: 'x' }]), isInvalid(/^record 8: field "i" is string, expected int64$/))
  assert.throws(() => encodeArrowBatch(schema, [7, 8], [ok, { ...ok, i: 1.5 }]), isInvalid(/^record 8: field "i" is float64 \(1.5\), expected int64$/))
  assert.throws(() => encodeArrowBatch(schema, [7], [{ ...ok, i: null }]), isInvalid(/^record 7: field "i" is null, but the dataset's schema says it is never null$/))
  assert.throws(() => encodeArrowBatch(schema, [7], [{ ...ok, f: '1' }]), isInvalid(/^record 7: field "f" is string, expected float64$/))
  assert.throws(() => encodeArrowBatch(schema, [7], [{ ...ok, s: 1 }]), isInvalid(/^record 7: field "s" is int64 \(1\), expected string$/))
  assert.throws(() => encodeArrowBatch(schema, [7], [{ ...ok, b: 1 }]), isInvalid(/^record 7: field "b" is int64 \(1\), expected bool$/))
  assert.throws(() => encodeArrowBatch(schema, [7], [{ ...ok, l: 1 }]), isInvalid(/^record 7: field "l" is int64 \(1\), expected list<float64>$/))
  assert.throws(() => encodeArrowBatch(schema, [7], [{ ...ok, l: ['a'] }]), isInvalid(/^record 7: field "l" is a list, expected list<float64>$/))
  assert.throws(() => encodeArrowBatch(schema, [7], [[1, 2]]), isInvalid(/^record 7: a record must be an object/))
  assert.throws(() => encodeArrowBatch({ fields: [{ name: '__index', type: 'int64' }] }, [0], [{ __index: 1 }]), isInvalid(/named "__index"/))
  assert.throws(() => encodeArrowBatch({ fields: [{ name: 'x', type: 'float16' }] }, [0], [{ x: 1 }]), isInvalid(/type float16, which the Arrow body cannot carry/))
  assert.throws(() => encodeArrowBatch(schema, [0, 1], [ok]), RangeError)
})

// ---------------------------------------------------------------------------------------
// Tensor batches (npy)

function rowsOf<T extends ArrayLike<number | bigint>> (values: T, bytesPerValue: number): Buffer {
  const view = values as unknown as ArrayBufferView
  return Buffer.from(view.buffer, view.byteOffset, values.length * bytesPerValue)
}

test('tensor batch: float32 rows as FixedSizeList, from one Buffer, an unaligned Buffer or one Buffer a row', function () {
  const n = 5
  const width = 6
  const values = Float32Array.from({ length: n * width }, (_, p) => p * 0.1 - 1)
  const rows = rowsOf(values, 4)
  const unaligned = Buffer.alloc(rows.length + 1).subarray(1)
  rows.copy(unaligned)
  const perRow = Array.from({ length: n }, (_, k) => rows.subarray(k * width * 4, (k + 1) * width * 4))
  const indices = [9, 0, 4, 4, 1]
  const expected = Array.from({ length: n }, (_, k) => [...values.subarray(k * width, (k + 1) * width)])
  for (const input of [rows, unaligned, perRow]) {
    const bytes = encodeArrowTensorBatch(indices, input, 'float32', [width])
    const table = tableFromIPC(bytes)
    assert.deepEqual(table.schema.fields.map((f) => [f.name, String(f.type), f.nullable]), [
      ['data', 'FixedSizeList[6]<Float32>', false], ['__index', 'Int64', false]
    ])
    assert.equal(table.schema.fields[0]!.metadata.size, 0)
    assert.deepEqual(column(table, 'data'), expected)
    assert.deepEqual(column(table, '__index'), indices.map(BigInt))
    assert.ok(bytes.equals(encodeArrowTensorBatch(indices, rows, 'float32', [width])))
  }
})

test('tensor batch: every dtype, scalar rows and multi-dimensional rows', function () {
  const samples: Record<TensorDtype, ArrayLike<number | bigint>> = {
    bool: Uint8Array.from([1, 0, 0, 1, 1, 1, 0, 0, 1, 0, 1, 1]),
    int8: Int8Array.from([-128, 127, 0, 1, -1, 5, 6, 7, 8, 9, 10, 11]),
    uint8: Uint8Array.from([255, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    int16: Int16Array.from([-32768, 32767, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    uint16: Uint16Array.from([65535, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    int32: Int32Array.from([-(2 ** 31), 2 ** 31 - 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]),
    uint32: Uint32Array.from([2 ** 32 - 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    int64: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n]),
    uint64: BigUint64Array.from([2n ** 64n - 1n, 0n, 1n, 2n, 3n, 4n, 5n, 6n, 7n, 8n, 9n, 10n]),
    float32: Float32Array.from([0.5, -0, NaN, Infinity, 1, 2, 3, 4, 5, 6, 7, 8]),
    float64: Float64Array.from([Math.PI, -Infinity, 5e-324, 0, 1, 2, 3, 4, 5, 6, 7, 8])
  }
  for (const [dtype, values] of Object.entries(samples) as Array<[TensorDtype, ArrayLike<number | bigint>]>) {
    const rows = rowsOf(values, DTYPE_BYTES[dtype])
    const plain = (v: unknown): unknown => dtype === 'bool' ? v !== 0 : v
    // 12 scalar records.
    const scalars = tableFromIPC(encodeArrowTensorBatch(Array.from({ length: 12 }, (_, k) => k), rows, dtype, []))
    assert.deepEqual(column(scalars, 'data'), Array.from(values, plain), dtype)
    // 2 records of shape [2, 3].
    const tensors = tableFromIPC(encodeArrowTensorBatch([1, 0], rows, dtype, [2, 3]))
    const field = tensors.schema.fields[0]!
    assert.equal(String(field.type).replace(/<.*>/, ''), 'FixedSizeList[6]', dtype)
    assert.equal(field.metadata.get(SHAPE_METADATA_KEY), '[2,3]')
    assert.deepEqual(column(tensors, 'data'), [Array.from(values, plain).slice(0, 6), Array.from(values, plain).slice(6)], dtype)
  }
})

test('tensor batch: a wrong byte count or name is refused', function () {
  const rows = Buffer.alloc(16)
  assert.throws(() => encodeArrowTensorBatch([0, 1], rows, 'float32', [3]), RangeError)
  assert.throws(() => encodeArrowTensorBatch([0], [rows, rows], 'float32', [4]), RangeError)
  assert.throws(() => encodeArrowTensorBatch([0, 1], rows, 'float32', [2], '__index'), RangeError)
})

test('independent check: nodejs-polars reads tensor batches to the same values', function () {
  assert.ok(polars !== undefined, polarsMissing)
  const values = Float32Array.from({ length: 24 }, (_, p) => p / 4)
  const df = polars!.readIPCStream(encodeArrowTensorBatch([3, 1, 2, 0], rowsOf(values, 4), 'float32', [2, 3]))
  assert.deepEqual(df.dtypes.map(String), ['DataType(FixedSizeList(DataType(Float32),6))', 'DataType(Int64)'])
  assert.deepEqual(df.toRecords(), [0, 1, 2, 3].map((k) => ({ data: [...values.subarray(k * 6, k * 6 + 6)], __index: [3, 1, 2, 0][k] })))
  const ints = BigInt64Array.from([5n, -(2n ** 62n), 7n])
  const df2 = polars!.readIPCStream(encodeArrowTensorBatch([0, 1, 2], rowsOf(ints, 8), 'int64', []))
  assert.deepEqual(df2.dtypes.map(String), ['DataType(Int64)', 'DataType(Int64)'])
  assert.deepEqual(df2.toRecords().map((r) => r.__index), [0, 1, 2])
  assert.deepEqual(df2.toRecords().map((r) => BigInt(r.data as number)), [5n, -(2n ** 62n), 7n])
})
