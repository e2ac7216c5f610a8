// The `arrow` batch body: one Arrow IPC stream (schema message, one record batch, end marker)
// holding the dataset's fields plus `__index`, the source record numbers (int64, never null).
//
// Columns are laid out directly in typed arrays (Float64Array, offsets + UTF-8 bytes, bit-packed
// validity) and wrapped with `makeData`, rather than pushed value by value through Arrow's
// builders. Type mapping (SchemaField.type -> Arrow):
//   int64 -> Int64, float64 -> Float64, bool -> Bool, string -> Utf8,
//   list<int64> / list<float64> -> List<Int64 / Float64> (elements may be null),
//   json -> Utf8 holding each value's JSON text.
// A field is nullable in Arrow exactly when the schema says so. A value that does not fit its
// field (a string in an int64 column, a null in a field that is never null) is an AppError
// SOURCE_INVALID naming the record, not a silently wrong column. Record keys that are not in
// the schema are left out.
//
// npy sources take a faster path, encodeArrowTensorBatch: their rows are already little-endian
// values of one dtype, so the column is the batch's raw bytes, written into a stream frame
// cut once per shape from apache-arrow's output (arrow-stream-frame.ts).
import { endianness } from 'node:os'
import {
  Bool, type Data, type DataType, Field, FixedSizeList, Float32, Float64, Int16, Int32, Int64, Int8,
  List, makeData, RecordBatch, Schema, Struct, Table, tableToIPC, Uint16, Uint32, Uint64, Uint8, Utf8
} from 'apache-arrow'
import { AppError } from '../errors.js'
import { frameOf, writeFrame, type StreamFrame } from './arrow-stream-frame.js'
import { DTYPE_BYTES, type TensorDtype } from './tensor-dtype.js'
import type { SchemaField } from '../store/registry.js'
import { ownBuffer, type AllocateBody } from './allocate-body.js'

/** The name of the record-number column every Arrow batch carries. */
export const INDEX_COLUMN = '__index'

const TWO_32 = 4294967296
const INT64_MIN = -(2n ** 63n)
const INT64_MAX = 2n ** 63n - 1n
const INTEGER = /^-?\d+$/
// Arrow's JavaScript library and the IPC format written here are little-endian.
const LITTLE_ENDIAN = endianness() === 'LE'

/**
 * Encodes one batch: `records[k]` is source record `indices[k]`. Throws AppError
 * SOURCE_INVALID when a value does not fit the schema, or when the schema has a field named
 * `__index` (it would clash with the record-number column).
 */
export function encodeArrowBatch (schema: { readonly fields: readonly SchemaField[] }, indices: readonly number[], records: readonly unknown[]): Buffer {
  const n = indices.length
  if (records.length !== n) throw new RangeError(`${records.length} records for ${n} indices`)
  for (let k = 0; k < n; k++) {
    const r = records[k]
    if (r === null || typeof r !== 'object' || Array.isArray(r)) {
      throw new AppError('SOURCE_INVALID', `record ${indices[k]}: a record must be an object to be encoded as Arrow`)
    }
  }
  const rows = records as ReadonlyArray<Record<string, unknown>>
  const fields: Field[] = []
  const children: Data[] = []
  for (const f of schema.fields) {
    if (f.name === INDEX_COLUMN) {
      throw new AppError('SOURCE_INVALID', `the source has a field named "${INDEX_COLUMN}", which the Arrow body uses for record numbers; rename that field`)
    }
    const col = new ColumnReader(f, indices, rows)
    const data = buildColumn(col)
    fields.push(new Field(f.name, data.type, f.nullable === true))
    children.push(data)
  }
  fields.push(new Field(INDEX_COLUMN, new Int64(), false))
  children.push(indexData(indices))
  return toIpc(fields, children, n)
}

/** Field metadata key of a tensor column's inner shape (JSON array), when it has 2+ dimensions. */
export const SHAPE_METADATA_KEY = 'shardfeed:shape'

export { DTYPE_BYTES, type TensorDtype } from './tensor-dtype.js'

/**
 * Encodes a batch of fixed-size rows (npy): `rows` holds the rows of `indices` back to back as
 * little-endian `dtype` values (one Buffer, or one Buffer a row), each row `innerShape` values.
 * The column, named `name`, is the dtype itself when `innerShape` is [] (one scalar a record),
 * else FixedSizeList<dtype>[product of innerShape]; with two or more inner dimensions the field's
 * metadata holds the shape as JSON under SHAPE_METADATA_KEY (e.g. "[3,32,32]"), for readers to
 * reshape. Arrow's canonical `arrow.fixed_shape_tensor` extension would say the same, but polars
 * (0.25) refuses to read a stream that uses it. Values are not visited: the bytes are copied
 * once into the stream; only bool is repacked into Arrow's bitmaps. The bytes are those of
 * apache-arrow's writer (encodeArrowTensorBatchWithWriter), written into a cached frame.
 */
export function encodeArrowTensorBatch (indices: readonly number[], rows: Buffer | readonly Buffer[], dtype: TensorDtype, innerShape: readonly number[], name = 'data', allocate: AllocateBody = ownBuffer): Buffer {
  const n = indices.length
  const total = n * innerShape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[dtype]
  const rowsLength = Buffer.isBuffer(rows) ? rows.length : (rows as readonly Buffer[]).reduce((a, r) => a + r.length, 0)
  if (rowsLength !== total) throw new RangeError(`expected ${total} bytes of rows, got ${rowsLength}`)
  const { body, values } = allocTensorBatch(indices, dtype, innerShape, name, allocate)
  if (dtype === 'bool') {
    values.fill(0)
    packBitsInto(Buffer.isBuffer(rows) ? rows : Buffer.concat(rows as readonly Buffer[], total), values)
  } else if (Buffer.isBuffer(rows)) {
    values.set(rows)
  } else {
    let at = 0
    for (const row of rows as readonly Buffer[]) {
      values.set(row, at)
      at += row.length
    }
  }
  return body
}

/** A tensor batch's stream with everything written but the values, and where they go. */
export interface TensorBatchBuffer {
  /** The whole stream, where `allocate` put it (by default a Buffer of its own). */
  body: Buffer
  /**
   * The view of `body` that receives the values: the rows' raw little-endian bytes back to
   * back, or for bool the values packed into bits (least significant first).
   */
  values: Buffer
}

/**
 * Allocates the stream of a tensor batch of `indices` (see encodeArrowTensorBatch) and writes
 * all of it but the values, so that a source can read its rows straight into `values`.
 */
export function allocTensorBatch (indices: readonly number[], dtype: TensorDtype, innerShape: readonly number[], name = 'data', allocate: AllocateBody = ownBuffer): TensorBatchBuffer {
  if (!LITTLE_ENDIAN) throw new Error('Arrow tensor batches need a little-endian host')
  if (name === INDEX_COLUMN) throw new RangeError(`the tensor column cannot be named ${INDEX_COLUMN}`)
  checkIndices(indices)
  const frame = tensorFrame(dtype, innerShape, indices.length, name)
  const body = allocate(frame.byteLength)
  writeFrame(frame, body)
  writeInt64sAt(body, frame.indexOffset, indices)
  return { body, values: body.subarray(frame.valuesOffset, frame.valuesOffset + frame.valuesLength) }
}

// Frames by shape. A dataset has one or two batch sizes (the last batch may be short), so a
// few entries serve a server's datasets; the oldest goes first.
const FRAME_CACHE_MAX = 64
const frames = new Map<string, StreamFrame>()

function tensorFrame (dtype: TensorDtype, innerShape: readonly number[], n: number, name: string): StreamFrame {
  const key = `${dtype}|${innerShape.join(',')}|${n}|${name}`
  let frame = frames.get(key)
  if (frame === undefined) {
    const count = n * innerShape.reduce((a, b) => a * b, 1)
    const zeros = Buffer.alloc(count * DTYPE_BYTES[dtype])
    const reference = encodeArrowTensorBatchWithWriter(new Array<number>(n).fill(0), zeros, dtype, innerShape, name)
    frame = frameOf(reference, dtype === 'bool' ? (count + 7) >> 3 : zeros.length, n * 8)
    if (frames.size >= FRAME_CACHE_MAX) frames.delete(frames.keys().next().value as string)
    frames.set(key, frame)
  }
  return frame
}

/**
 * The same stream as encodeArrowTensorBatch, made by apache-arrow's writer (schema, vectors,
 * table, tableToIPC). It is the reference the frames are cut from, and what tests compare the
 * fast path with.
 */
export function encodeArrowTensorBatchWithWriter (indices: readonly number[], rows: Buffer | readonly Buffer[], dtype: TensorDtype, innerShape: readonly number[], name = 'data'): Buffer {
  if (!LITTLE_ENDIAN) throw new Error('Arrow tensor batches need a little-endian host')
  if (name === INDEX_COLUMN) throw new RangeError(`the tensor column cannot be named ${INDEX_COLUMN}`)
  const n = indices.length
  const width = innerShape.reduce((a, b) => a * b, 1)
  const elemBytes = DTYPE_BYTES[dtype]
  const total = n * width * elemBytes
  const bytes = alignedBytes(rows, total, elemBytes)
  const type = arrowType(dtype)
  const values = valuesData(type, dtype, bytes, n * width)
  let data: Data
  let metadata: Map<string, string> | null = null
  if (innerShape.length === 0) {
    data = values
  } else {
    const listType = new FixedSizeList(width, new Field('item', type, false))
    data = makeData({ type: listType, length: n, nullCount: 0, child: values })
    if (innerShape.length >= 2) metadata = new Map([[SHAPE_METADATA_KEY, JSON.stringify(innerShape)]])
  }
  const fields = [new Field(name, data.type, false, metadata), new Field(INDEX_COLUMN, new Int64(), false)]
  return toIpc(fields, [data, indexData(indices)], n)
}

function toIpc (fields: Field[], children: Data[], length: number): Buffer {
  const schema = new Schema(fields)
  const struct = makeData({ type: new Struct(fields), length, nullCount: 0, children })
  const bytes = tableToIPC(new Table([new RecordBatch(schema, struct)]), 'stream')
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

function indexData (indices: readonly number[]): Data {
  const out = new BigInt64Array(indices.length)
  checkIndices(indices)
  writeInt64s(out, indices)
  return makeData({ type: new Int64(), length: indices.length, nullCount: 0, data: out })
}

function checkIndices (indices: readonly number[]): void {
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!
    if (!Number.isSafeInteger(i) || i < 0) throw new RangeError(`record index ${i} is not a non-negative integer`)
  }
}

// Safe integers into int64 slots without a BigInt per value: two 32-bit words each.
// The stream's offsets are multiples of 8, but a body placed inside a larger buffer (a disk
// value) may start anywhere: an int64 view needs an aligned address, else the words go through
// an aligned copy.
function writeInt64sAt (buf: Buffer, at: number, values: ArrayLike<number>): void {
  if ((buf.byteOffset + at) % 8 === 0) {
    writeInt64s(new BigInt64Array(buf.buffer, buf.byteOffset + at, values.length), values)
    return
  }
  const aligned = new BigInt64Array(values.length)
  writeInt64s(aligned, values)
  buf.set(new Uint8Array(aligned.buffer), at)
}

function writeInt64s (out: BigInt64Array, values: ArrayLike<number>): void {
  if (!LITTLE_ENDIAN) {
    for (let k = 0; k < values.length; k++) out[k] = BigInt(values[k]!)
    return
  }
  const words = new Uint32Array(out.buffer, out.byteOffset, out.length * 2)
  for (let k = 0; k < values.length; k++) {
    const v = values[k]!
    const hi = Math.floor(v / TWO_32)
    words[2 * k] = v - hi * TWO_32
    words[2 * k + 1] = hi
  }
}

// ---------------------------------------------------------------------------------------
// Record columns

// One field's values across the batch, with the checks every column type shares.
class ColumnReader {
  readonly field: SchemaField
  readonly length: number
  readonly #indices: readonly number[]
  readonly #rows: ReadonlyArray<Record<string, unknown>>
  // Validity bits, allocated at the first null.
  #validity: Uint8Array | undefined
  nullCount = 0

  constructor (field: SchemaField, indices: readonly number[], rows: ReadonlyArray<Record<string, unknown>>) {
    this.field = field
    this.length = rows.length
    this.#indices = indices
    this.#rows = rows
  }

  /** The value of row k, or undefined for null (recorded in the validity bitmap). */
  get (k: number): unknown {
    const row = this.#rows[k]!
    const name = this.field.name
    let v = row[name]
    // A key the record lacks must not resolve to Object.prototype's members.
    if ((typeof v === 'function' || name === '__proto__') && !Object.hasOwn(row, name)) v = undefined
    if (v === null || v === undefined) {
      this.#setNull(k)
      return undefined
    }
    return v
  }

  #setNull (k: number): void {
    if (this.field.nullable !== true) {
      throw new AppError('SOURCE_INVALID', `record ${this.#indices[k]}: field ${JSON.stringify(this.field.name)} is null, but the dataset's schema says it is never null`)
    }
    if (this.#validity === undefined) this.#validity = new Uint8Array((this.length + 7) >> 3).fill(0xff)
    this.#validity[k >> 3]! &= ~(1 << (k & 7))
    this.nullCount++
  }

  nulls (): { nullCount: number, nullBitmap?: Uint8Array } {
    return this.#validity === undefined ? { nullCount: 0 } : { nullCount: this.nullCount, nullBitmap: this.#validity }
  }

  mismatch (k: number, value: unknown, expected?: string): AppError {
    return new AppError('SOURCE_INVALID', `record ${this.#indices[k]}: field ${JSON.stringify(this.field.name)} is ${describe(value)}, expected ${expected ?? this.field.type}`)
  }
}

function buildColumn (col: ColumnReader): Data {
  switch (col.field.type) {
    case 'int64':
      return int64Column(col)
    case 'float64':
      return floatColumn(col, false)
    case 'float32':
      return floatColumn(col, true)
    case 'bool':
      return boolColumn(col)
    case 'string':
      return utf8Column(col, false)
    case 'json':
      return utf8Column(col, true)
    case 'list<int64>':
      return listColumn(col, 'int64')
    case 'list<float64>':
      return listColumn(col, 'float64')
    case 'list<float32>':
      return listColumn(col, 'float32')
    default:
      throw new AppError('SOURCE_INVALID', `field ${JSON.stringify(col.field.name)} has type ${col.field.type}, which the Arrow body cannot carry for this source`)
  }
}

function int64Column (col: ColumnReader): Data {
  const n = col.length
  const out = new BigInt64Array(n)
  const words = LITTLE_ENDIAN ? new Uint32Array(out.buffer) : undefined
  for (let k = 0; k < n; k++) {
    const v = col.get(k)
    if (v === undefined) continue
    if (typeof v === 'number' && Number.isSafeInteger(v) && words !== undefined) {
      const hi = Math.floor(v / TWO_32)
      words[2 * k] = v - hi * TWO_32
      words[2 * k + 1] = hi
    } else {
      out[k] = toBigInt64(col, k, v)
    }
  }
  return makeData({ type: new Int64(), length: n, ...col.nulls(), data: out })
}

// Exact integers beyond 2^53 arrive as bigint, or as decimal strings (JSON records from
// sources whose int64 values exceed the safe range).
function toBigInt64 (col: ColumnReader, k: number, v: unknown): bigint {
  let b: bigint | undefined
  if (typeof v === 'number' && Number.isSafeInteger(v)) b = BigInt(v)
  else if (typeof v === 'bigint') b = v
  else if (typeof v === 'string' && INTEGER.test(v)) b = BigInt(v)
  if (b === undefined) throw col.mismatch(k, v)
  if (b < INT64_MIN || b > INT64_MAX) throw col.mismatch(k, v, 'an int64 (-2^63..2^63-1)')
  return b
}

function floatColumn (col: ColumnReader, single: boolean): Data {
  const n = col.length
  const out = single ? new Float32Array(n) : new Float64Array(n)
  for (let k = 0; k < n; k++) {
    const v = col.get(k)
    if (v === undefined) continue
    if (typeof v === 'number') out[k] = v
    else if (typeof v === 'bigint') out[k] = Number(v)
    else throw col.mismatch(k, v)
  }
  if (single) return makeData({ type: new Float32(), length: n, ...col.nulls(), data: out as Float32Array })
  return makeData({ type: new Float64(), length: n, ...col.nulls(), data: out as Float64Array })
}

function boolColumn (col: ColumnReader): Data {
  const n = col.length
  const bits = new Uint8Array((n + 7) >> 3)
  for (let k = 0; k < n; k++) {
    const v = col.get(k)
    if (v === undefined) continue
    if (typeof v !== 'boolean') throw col.mismatch(k, v)
    if (v) bits[k >> 3]! |= 1 << (k & 7)
  }
  return makeData({ type: new Bool(), length: n, ...col.nulls(), data: bits })
}

// Offsets first (byte lengths), then one buffer written string by string.
function utf8Column (col: ColumnReader, json: boolean): Data {
  const n = col.length
  const texts = new Array<string>(n)
  const offsets = new Int32Array(n + 1)
  let total = 0
  for (let k = 0; k < n; k++) {
    const v = col.get(k)
    let s = ''
    if (v !== undefined) {
      if (json) {
        s = JSON.stringify(v)
      } else if (typeof v === 'string') {
        s = v
      } else {
        throw col.mismatch(k, v)
      }
    }
    texts[k] = s
    total += s.length === 0 ? 0 : Buffer.byteLength(s, 'utf8')
    if (total > 0x7fffffff) throw new AppError('SOURCE_INVALID', `field ${JSON.stringify(col.field.name)} holds more than 2 GiB of text in one batch; use smaller batches`)
    offsets[k + 1] = total
  }
  const data = Buffer.allocUnsafe(total)
  for (let k = 0; k < n; k++) {
    const s = texts[k]!
    if (s.length > 0) data.write(s, offsets[k]!, 'utf8')
  }
  return makeData({ type: new Utf8(), length: n, ...col.nulls(), valueOffsets: offsets, data })
}

function listColumn (col: ColumnReader, item: 'int64' | 'float64' | 'float32'): Data {
  const float = item !== 'int64'
  const n = col.length
  const offsets = new Int32Array(n + 1)
  const lists = new Array<readonly unknown[] | undefined>(n)
  let total = 0
  for (let k = 0; k < n; k++) {
    const v = col.get(k)
    if (v === undefined) {
      offsets[k + 1] = total
      continue
    }
    if (!Array.isArray(v)) throw col.mismatch(k, v)
    lists[k] = v
    total += v.length
    offsets[k + 1] = total
  }
  const values = item === 'float32' ? new Float32Array(total) : item === 'float64' ? new Float64Array(total) : new BigInt64Array(total)
  const words = !float && LITTLE_ENDIAN ? new Uint32Array(values.buffer) : undefined
  let validity: Uint8Array | undefined
  let childNulls = 0
  let p = 0
  for (let k = 0; k < n; k++) {
    const list = lists[k]
    if (list === undefined) continue
    for (let j = 0; j < list.length; j++, p++) {
      const x = list[j]
      if (x === null || x === undefined) {
        if (validity === undefined) validity = new Uint8Array((total + 7) >> 3).fill(0xff)
        validity[p >> 3]! &= ~(1 << (p & 7))
        childNulls++
      } else if (float) {
        if (typeof x !== 'number') throw col.mismatch(k, list)
        values[p] = x
      } else if (typeof x === 'number' && Number.isSafeInteger(x) && words !== undefined) {
        const hi = Math.floor(x / TWO_32)
        words[2 * p] = x - hi * TWO_32
        words[2 * p + 1] = hi
      } else {
        (values as BigInt64Array)[p] = toBigInt64(col, k, x)
      }
    }
  }
  const itemType: DataType = item === 'float32' ? new Float32() : item === 'float64' ? new Float64() : new Int64()
  const child = primitiveData(itemType, total, values, childNulls, validity) as Data<Float64>
  const type = new List<Float64>(new Field('item', itemType as Float64, true))
  return makeData({ type, length: n, ...col.nulls(), valueOffsets: offsets, child })
}

function describe (value: unknown): string {
  if (Array.isArray(value)) return 'a list'
  switch (typeof value) {
    case 'number':
      return Number.isSafeInteger(value) ? `int64 (${value})` : `float64 (${value})`
    case 'bigint':
      return `an integer (${value})`
    case 'boolean':
      return 'bool'
    case 'string':
      return 'string'
    case 'object':
      return 'json (an object)'
    default:
      return `a ${typeof value}`
  }
}

// ---------------------------------------------------------------------------------------
// Tensor columns

function arrowType (dtype: TensorDtype): DataType {
  switch (dtype) {
    case 'bool': return new Bool()
    case 'int8': return new Int8()
    case 'int16': return new Int16()
    case 'int32': return new Int32()
    case 'int64': return new Int64()
    case 'uint8': return new Uint8()
    case 'uint16': return new Uint16()
    case 'uint32': return new Uint32()
    case 'uint64': return new Uint64()
    case 'float32': return new Float32()
    case 'float64': return new Float64()
  }
}

// The rows as one Uint8Array whose offset is a multiple of the element size, so typed arrays
// can view it: the input itself when it already is, else one copy into a fresh ArrayBuffer.
function alignedBytes (rows: Buffer | readonly Buffer[], total: number, elemBytes: number): Uint8Array {
  if (Buffer.isBuffer(rows)) {
    if (rows.length !== total) throw new RangeError(`expected ${total} bytes of rows, got ${rows.length}`)
    if (rows.byteOffset % elemBytes === 0) return rows
    const copy = new Uint8Array(total)
    copy.set(rows)
    return copy
  }
  const list = rows as readonly Buffer[]
  const copy = new Uint8Array(total)
  let at = 0
  for (const row of list) {
    if (at + row.length > total) throw new RangeError(`expected ${total} bytes of rows, got more`)
    copy.set(row, at)
    at += row.length
  }
  if (at !== total) throw new RangeError(`expected ${total} bytes of rows, got ${at}`)
  return copy
}

function valuesData (type: DataType, dtype: TensorDtype, bytes: Uint8Array, count: number): Data {
  const { buffer, byteOffset } = bytes
  let data: ArrayBufferView
  switch (dtype) {
    case 'bool': data = packBits(bytes, count); break
    case 'int8': data = new Int8Array(buffer, byteOffset, count); break
    case 'uint8': data = new Uint8Array(buffer, byteOffset, count); break
    case 'int16': data = new Int16Array(buffer, byteOffset, count); break
    case 'uint16': data = new Uint16Array(buffer, byteOffset, count); break
    case 'int32': data = new Int32Array(buffer, byteOffset, count); break
    case 'uint32': data = new Uint32Array(buffer, byteOffset, count); break
    case 'float32': data = new Float32Array(buffer, byteOffset, count); break
    case 'int64': data = new BigInt64Array(buffer, byteOffset, count); break
    case 'uint64': data = new BigUint64Array(buffer, byteOffset, count); break
    case 'float64': data = new Float64Array(buffer, byteOffset, count); break
  }
  return primitiveData(type, count, data)
}

// makeData's overloads want one concrete type; these columns choose theirs at run time.
function primitiveData (type: DataType, length: number, data: ArrayBufferView, nullCount = 0, nullBitmap?: Uint8Array): Data {
  return makeData({ type: type as Float64, length, nullCount, nullBitmap, data: data as Float64Array })
}

// numpy's bools are one byte each (0 or 1); Arrow's are bits.
function packBits (bytes: Uint8Array, count: number): Uint8Array {
  const bits = new Uint8Array((count + 7) >> 3)
  packBitsInto(bytes.subarray(0, count), bits)
  return bits
}

/** Sets bit i of `bits` (zeroed by the caller) for each non-zero byte i of `bytes`. */
function packBitsInto (bytes: Uint8Array, bits: Uint8Array): void {
  for (let i = 0; i < bytes.length; i++) {
    if (bytes[i] !== 0) bits[i >> 3]! |= 1 << (i & 7)
  }
}
