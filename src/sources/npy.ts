// NumPy .npy files (format versions 1.0, 2.0 and 3.0): a header, then the array's values in C
// order. Record i is the sub-array `arr[i]`, so every record is `rowBytes` bytes at
// `dataOffset + i * rowBytes` and no offset index is needed.
//
// Accepted: C order only, little-endian or byte-order-free dtypes (<f4 <f8 <i1 <i2 <i4 <i8 <u1
// <u2 <u4 <u8 |b1 |u1 |i1), shape (N, ...) with at least one dimension.
//
// Records, as readRecords and readJson give them: for shape (N,) a number (bool: true/false),
// for shape (N, d1, ...) nested arrays of those. Values are exact: float32 values are the
// doubles they equal (as numpy's tolist() gives them), int64/uint64 values beyond 2^53 are
// decimal strings; NaN and ±Infinity are null in JSON (JSON has no such numbers).
//
// Schema: one field named `data`. Its type is the dtype's name (`float32`, `int64`, `bool`,
// ... see TensorDtype) for shape (N,), else `fixed_size_list<dtype>` with `shape` the inner
// dimensions: (N, 3, 32, 32) float32 is { name: 'data', type: 'fixed_size_list<float32>',
// shape: [3, 32, 32] }, the Arrow column encodeArrowTensorBatch builds from readRows().
import { open, readFile, writeFile, type FileHandle } from 'node:fs/promises'
import { DTYPE_BYTES, type TensorDtype } from '../codecs/tensor-dtype.js'
import { AppError } from '../errors.js'
import type { SchemaField } from '../store/registry.js'
import type { IndexOptions, IndexResult, RecordSource } from './record-source.js'
import { hashFile, readFull } from './file-io.js'
import { readRuns } from './byte-ranges.js'

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]) // \x93NUMPY
// numpy itself refuses headers above 10 KB unless told otherwise; leave room, stay bounded.
const MAX_HEADER_BYTES = 1 << 20

/** Where an npy file's records are: everything openNpySource needs. */
export interface NpyMeta {
  dtype: TensorDtype
  /** The array's shape; shape[0] is the number of records. */
  shape: number[]
  /** Byte where the values start (after the header). */
  dataOffset: number
}

/** A parsed header, with what follows from it. */
export interface NpyHeader extends NpyMeta {
  version: string
  /** The header's `descr`, as written (e.g. `<f4`). */
  descr: string
  /** Bytes of one record: the product of shape[1..] times the dtype's size. */
  rowBytes: number
}

/** An npy source: a RecordSource plus the raw rows, for the Arrow fast path. */
export interface NpySource extends RecordSource {
  readonly dtype: TensorDtype
  /** shape[1..]: the shape of one record. */
  readonly innerShape: readonly number[]
  readonly rowBytes: number
  /**
   * The raw little-endian bytes of the records of `indices` (any order, repeats allowed), back
   * to back, in a new Buffer whose byteOffset is 0 (so typed arrays can view it), or in the
   * start of `into` when given (it must be large enough). Consecutive record numbers are read
   * with one call.
   */
  readRows: (indices: readonly number[], into?: Buffer) => Buffer
}

const DTYPES: Record<string, TensorDtype> = {
  b1: 'bool',
  i1: 'int8',
  i2: 'int16',
  i4: 'int32',
  i8: 'int64',
  u1: 'uint8',
  u2: 'uint16',
  u4: 'uint32',
  u8: 'uint64',
  f4: 'float32',
  f8: 'float64'
}

/**
 * Parses the header at the start of `buf`, which must hold the whole header (its length is
 * in the first 12 bytes: 10 + len for version 1, 12 + len for versions 2 and 3).
 * Throws AppError SOURCE_INVALID saying what is wrong and how to fix it.
 */
export function parseNpyHeader (buf: Buffer): NpyHeader {
  if (buf.length < 10 || !buf.subarray(0, 6).equals(MAGIC)) {
    throw invalid('the file does not start with the .npy magic string (\\x93NUMPY); save arrays with numpy.save')
  }
  const major = buf[6]!
  const minor = buf[7]!
  let headerLen: number
  let start: number
  if (major === 1) {
    headerLen = buf.readUInt16LE(8)
    start = 10
  } else if (major === 2 || major === 3) {
    if (buf.length < 12) throw invalid('the header is cut short')
    headerLen = buf.readUInt32LE(8)
    start = 12
  } else {
    throw invalid(`format version ${major}.${minor} is not supported (only 1.0, 2.0 and 3.0)`)
  }
  if (headerLen > MAX_HEADER_BYTES) throw invalid(`the header claims ${headerLen} bytes, more than the ${MAX_HEADER_BYTES} allowed`)
  if (buf.length < start + headerLen) throw invalid(`the file ends inside its header (${start + headerLen} bytes expected)`)
  // Versions 1 and 2 write the header in latin1, version 3 in UTF-8.
  const text = buf.toString(major === 3 ? 'utf8' : 'latin1', start, start + headerLen)
  let dict: unknown
  try {
    dict = new PyLiteral(text).parse()
  } catch (err) {
    throw invalid(`the header is not a Python dict literal (${(err as Error).message})`)
  }
  if (dict === null || typeof dict !== 'object' || Array.isArray(dict)) throw invalid('the header is not a dict')
  const { descr, fortran_order: fortranOrder, shape } = dict as Record<string, unknown>

  if (typeof descr !== 'string') {
    throw invalid(Array.isArray(descr)
      ? 'structured dtypes (record arrays) are not supported; save one plain numeric array a file'
      : 'the header has no dtype (descr)')
  }
  const dtype = parseDescr(descr)
  if (fortranOrder === true) {
    throw invalid('the array is in Fortran order; save it in C order (numpy.save(f, numpy.ascontiguousarray(arr)))')
  }
  if (fortranOrder !== false) throw invalid('the header has no fortran_order')
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
    throw invalid('the header has no valid shape')
  }
  const dims = shape as number[]
  if (dims.length === 0) throw invalid('the array is a scalar (shape ()); records need at least one dimension, shape (N, ...)')
  let rowBytes = DTYPE_BYTES[dtype]
  for (let d = 1; d < dims.length; d++) rowBytes *= dims[d]!
  if (!Number.isSafeInteger(rowBytes * dims[0]!)) throw invalid('the shape is too large')
  return { version: `${major}.${minor}`, descr, dtype, shape: dims, dataOffset: start + headerLen, rowBytes }
}

function parseDescr (descr: string): TensorDtype {
  const order = descr[0]
  const code = descr.slice(1)
  const dtype = DTYPES[code]
  if (dtype === undefined || (order !== '<' && order !== '>' && order !== '|' && order !== '=')) {
    const hint = code === 'f2' ? ' (save float16 data as float32)' : ''
    throw invalid(`dtype ${JSON.stringify(descr)} is not supported${hint}; use one of float32, float64, int8..int64, uint8..uint64 or bool`)
  }
  const size = DTYPE_BYTES[dtype]
  if (size > 1 && order === '>') {
    throw invalid(`the array is big-endian (${descr}); save it little-endian, e.g. numpy.save(f, arr.astype('<${code}'))`)
  }
  if (size > 1 && order !== '<') {
    throw invalid(`dtype ${JSON.stringify(descr)} does not say its byte order; save it little-endian ('<${code}')`)
  }
  return dtype
}

/** The schema of an npy source (see the top of this file). */
export function npySchema (meta: Pick<NpyMeta, 'dtype' | 'shape'>): { fields: SchemaField[] } {
  const inner = meta.shape.slice(1)
  if (inner.length === 0) return { fields: [{ name: 'data', type: meta.dtype }] }
  return { fields: [{ name: 'data', type: `fixed_size_list<${meta.dtype}>`, shape: inner }] }
}

/**
 * Checks an npy file and hashes it in one streaming pass. No offset index is needed (records
 * have a fixed size): `indexPath` receives a small JSON file with the NpyMeta, which the
 * caller renames into place like any index (loadNpyMeta reads it back). Throws AppError
 * SOURCE_INVALID for a file that is not a supported .npy array or whose size does not match
 * its header, and the signal's AbortError when `opts.signal` aborts.
 */
export async function indexNpy (filePath: string, indexPath: string, opts: IndexOptions = {}): Promise<IndexResult & NpyHeader> {
  opts.signal?.throwIfAborted()
  const fh = await open(filePath, 'r')
  try {
    const { size } = await fh.stat()
    const header = await readHeader(fh, size)
    const expected = header.dataOffset + header.shape[0]! * header.rowBytes
    if (size !== expected) {
      throw invalid(`the file is ${size} bytes but its header (shape (${header.shape.join(', ')}), dtype ${header.descr}) needs ${expected}; the file is ${size < expected ? 'truncated' : 'longer than the array'}`)
    }
    const { digest, bytes } = await hashFile(fh, size, opts)
    if (bytes !== size) throw invalid('the file changed size while it was being read; register it again once it is complete')
    const meta: NpyMeta = { dtype: header.dtype, shape: header.shape, dataOffset: header.dataOffset }
    await writeFile(indexPath, JSON.stringify({ format: 'npy', ...meta }) + '\n')
    return { numRecords: header.shape[0]!, digest, bytes, ...header }
  } finally {
    await fh.close()
  }
}

/** Reads back the NpyMeta that indexNpy wrote to its index file. */
export async function loadNpyMeta (indexPath: string): Promise<NpyMeta> {
  const value = JSON.parse(await readFile(indexPath, 'utf8')) as NpyMeta & { format?: string }
  if (value.format !== 'npy' || !Array.isArray(value.shape) || typeof value.dtype !== 'string' || !Number.isSafeInteger(value.dataOffset)) {
    throw new Error(`${indexPath} is not an npy index file; delete it so the source is indexed again`)
  }
  return { dtype: value.dtype, shape: value.shape, dataOffset: value.dataOffset }
}

async function readHeader (fh: FileHandle, size: number): Promise<NpyHeader> {
  const head = Buffer.alloc(Math.min(size, 12))
  await readFull(fh, head, 0)
  let end: number | undefined
  if (head.length >= 10 && head.subarray(0, 6).equals(MAGIC)) {
    if (head[6] === 1) end = 10 + head.readUInt16LE(8)
    else if (head.length === 12) end = 12 + head.readUInt32LE(8)
  }
  // Whatever keeps the header from being read whole, parseNpyHeader names it.
  if (end === undefined || end > size || end > 12 + MAX_HEADER_BYTES) return parseNpyHeader(head)
  const buf = Buffer.alloc(end)
  await readFull(fh, buf, 0)
  return parseNpyHeader(buf)
}

/**
 * Opens an npy file for random access, with the meta indexNpy returned. Throws AppError
 * SOURCE_CHANGED when the file's header or size no longer match.
 */
export async function openNpySource (filePath: string, meta: NpyMeta): Promise<NpySource> {
  const fh = await open(filePath, 'r')
  try {
    const { size } = await fh.stat()
    let header: NpyHeader
    try {
      header = await readHeader(fh, size)
    } catch (err) {
      if (err instanceof AppError) throw changed()
      throw err
    }
    const same = header.dtype === meta.dtype && header.dataOffset === meta.dataOffset &&
      header.shape.length === meta.shape.length && header.shape.every((d, k) => d === meta.shape[k])
    if (!same || size !== header.dataOffset + header.shape[0]! * header.rowBytes) throw changed()
    return new NpyFileSource(fh, header)
  } catch (err) {
    await fh.close()
    throw err
  }
}

function changed (): AppError {
  return new AppError('SOURCE_CHANGED', 'the .npy file no longer matches the array it held when indexed; it changed on disk, so register the dataset again')
}

class NpyFileSource implements NpySource {
  readonly numRecords: number
  readonly dtype: TensorDtype
  readonly innerShape: readonly number[]
  readonly rowBytes: number
  #fh: FileHandle
  #dataOffset: number
  #closed = false

  constructor (fh: FileHandle, header: NpyHeader) {
    this.#fh = fh
    this.numRecords = header.shape[0]!
    this.dtype = header.dtype
    this.innerShape = header.shape.slice(1)
    this.rowBytes = header.rowBytes
    this.#dataOffset = header.dataOffset
  }

  // Synchronous preads, as the other file sources (see byte-ranges.ts for the measurements):
  // one per run of consecutive record numbers, straight into the batch buffer.
  readRows (indices: readonly number[], into?: Buffer): Buffer {
    if (this.#closed) throw new Error('the npy source is closed')
    const n = this.numRecords
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!
      if (!Number.isInteger(i) || i < 0 || i >= n) {
        throw new RangeError(`record index ${i} is out of range (the source has ${n} records)`)
      }
    }
    const rowBytes = this.rowBytes
    const size = indices.length * rowBytes
    if (into !== undefined && into.length < size) throw new RangeError(`readRows needs ${size} bytes, the buffer given has ${into.length}`)
    // Unpooled, so byteOffset is 0 and any typed array can view it.
    const out = into === undefined ? Buffer.allocUnsafeSlow(size) : into.subarray(0, size)
    if (rowBytes === 0) return out
    // One read per run of consecutive rows, all in one call (byte-ranges.ts).
    const runs = new Float64Array(indices.length * 3)
    let numRuns = 0
    let k = 0
    while (k < indices.length) {
      let end = k + 1
      while (end < indices.length && indices[end] === indices[end - 1]! + 1) end++
      const filePos = this.#dataOffset + indices[k]! * rowBytes
      runs[numRuns * 3] = filePos
      runs[numRuns * 3 + 1] = filePos + (end - k) * rowBytes
      runs[numRuns * 3 + 2] = k * rowBytes
      numRuns++
      k = end
    }
    if (!readRuns(this.#fh.fd, out, runs, numRuns)) throw new AppError('SOURCE_CHANGED', 'the .npy file is shorter than when it was indexed; it changed on disk, so register the dataset again')
    return out
  }

  async readRecords (indices: readonly number[]): Promise<unknown[]> {
    const flat = this.#values(this.readRows(indices))
    const width = this.rowBytes / DTYPE_BYTES[this.dtype]
    const out = new Array<unknown>(indices.length)
    if (this.innerShape.length === 0) {
      for (let k = 0; k < out.length; k++) out[k] = flat(k)
    } else {
      for (let k = 0; k < out.length; k++) out[k] = nest(flat, this.innerShape, 0, k * width)
    }
    return out
  }

  async readJson (indices: readonly number[]): Promise<Buffer[]> {
    const records = await this.readRecords(indices)
    const out = new Array<Buffer>(records.length)
    for (let k = 0; k < records.length; k++) out[k] = Buffer.from(JSON.stringify(records[k]))
    return out
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#fh.close()
  }

  // The p-th value of `rows` as its JSON value (number, boolean, or decimal string for an
  // integer beyond 2^53).
  #values (rows: Buffer): (p: number) => unknown {
    const { buffer, byteOffset } = rows
    const count = rows.length / DTYPE_BYTES[this.dtype]
    switch (this.dtype) {
      case 'bool': return (p) => rows[p] !== 0
      case 'int8': return view(new Int8Array(buffer, byteOffset, count))
      case 'uint8': return view(new Uint8Array(buffer, byteOffset, count))
      case 'int16': return view(new Int16Array(buffer, byteOffset, count))
      case 'uint16': return view(new Uint16Array(buffer, byteOffset, count))
      case 'int32': return view(new Int32Array(buffer, byteOffset, count))
      case 'uint32': return view(new Uint32Array(buffer, byteOffset, count))
      case 'float32': return view(new Float32Array(buffer, byteOffset, count))
      case 'float64': return view(new Float64Array(buffer, byteOffset, count))
      case 'int64': return bigView(new BigInt64Array(buffer, byteOffset, count))
      case 'uint64': return bigView(new BigUint64Array(buffer, byteOffset, count))
    }
  }
}

function view (a: ArrayLike<number>): (p: number) => number {
  return (p) => a[p]!
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

function bigView (a: BigInt64Array | BigUint64Array): (p: number) => number | string {
  return (p) => {
    const v = a[p]!
    return v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v.toString()
  }
}

// The sub-array of shape `shape[dim..]` whose first value is flat value `at`.
function nest (flat: (p: number) => unknown, shape: readonly number[], dim: number, at: number): unknown[] {
  const len = shape[dim]!
  const out = new Array<unknown>(len)
  if (dim === shape.length - 1) {
    for (let j = 0; j < len; j++) out[j] = flat(at + j)
    return out
  }
  let stride = 1
  for (let d = dim + 1; d < shape.length; d++) stride *= shape[d]!
  for (let j = 0; j < len; j++) out[j] = nest(flat, shape, dim + 1, at + j * stride)
  return out
}

function invalid (reason: string): AppError {
  return new AppError('SOURCE_INVALID', `not a usable .npy file: ${reason}`)
}

// ---------------------------------------------------------------------------------------
// The Python literal of an npy header: a dict of strings, booleans, None, integers (Python 2
// wrote `10L`) and tuples or lists of those. Nothing is evaluated.

class PyLiteral {
  #s: string
  #p = 0

  constructor (s: string) {
    this.#s = s
  }

  parse (): unknown {
    const value = this.#value()
    this.#blanks()
    if (this.#p !== this.#s.length) throw new Error(`unexpected ${JSON.stringify(this.#s[this.#p])} at ${this.#p}`)
    return value
  }

  #blanks (): void {
    while (this.#p < this.#s.length && /\s/.test(this.#s[this.#p]!)) this.#p++
  }

  #value (): unknown {
    this.#blanks()
    const c = this.#s[this.#p]
    if (c === '{') return this.#dict()
    if (c === '(') return this.#sequence(')')
    if (c === '[') return this.#sequence(']')
    if (c === '\'' || c === '"') return this.#string(c)
    const m = /^(-?\d+)L?|^(True|False|None)\b/.exec(this.#s.slice(this.#p, this.#p + 32))
    if (m === null) throw new Error(`unexpected ${c === undefined ? 'end' : JSON.stringify(c)} at ${this.#p}`)
    this.#p += m[0].length
    if (m[1] !== undefined) return Number(m[1])
    return m[2] === 'True' ? true : m[2] === 'False' ? false : null
  }

  #dict (): Record<string, unknown> {
    this.#p++
    const out: Record<string, unknown> = Object.create(null)
    for (;;) {
      this.#blanks()
      if (this.#s[this.#p] === '}') {
        this.#p++
        return out
      }
      const key = this.#value()
      if (typeof key !== 'string') throw new Error('dict keys must be strings')
      this.#blanks()
      this.#expect(':')
      out[key] = this.#value()
      this.#blanks()
      if (this.#s[this.#p] === ',') this.#p++
      else if (this.#s[this.#p] !== '}') throw new Error(`expected , or } at ${this.#p}`)
    }
  }

  #sequence (close: string): unknown[] {
    this.#p++
    const out: unknown[] = []
    for (;;) {
      this.#blanks()
      if (this.#s[this.#p] === close) {
        this.#p++
        return out
      }
      out.push(this.#value())
      this.#blanks()
      if (this.#s[this.#p] === ',') this.#p++
      else if (this.#s[this.#p] !== close) throw new Error(`expected , or ${close} at ${this.#p}`)
    }
  }

  #string (quote: string): string {
    let out = ''
    let p = this.#p + 1
    const s = this.#s
    while (p < s.length && s[p] !== quote) {
      if (s[p] === '\\') {
        const e = s[p + 1]
        out += e === 'n' ? '\n' : e === 't' ? '\t' : (e ?? '')
        p += 2
      } else {
        out += s[p]
        p++
      }
    }
    if (p >= s.length) throw new Error('unterminated string')
    this.#p = p + 1
    return out
  }

  #expect (c: string): void {
    if (this.#s[this.#p] !== c) throw new Error(`expected ${c} at ${this.#p}`)
    this.#p++
  }
}
