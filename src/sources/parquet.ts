// Apache Parquet files, read with hyparquet. Parquet is its own index: the footer says how many
// rows each row group holds, so indexing reads only the footer (plus one hashing pass), and a
// record is found by its row group. Records are decoded a row group at a time; batches of one
// rank tend to hit the same groups, so a few decoded groups are kept (LRU).
//
// Schema mapping (top-level columns, in file order):
//   BOOLEAN -> bool; INT32, INT64 (and INTEGER/TIME annotations) -> int64;
//   FLOAT, DOUBLE, DECIMAL, FLOAT16 -> float64;
//   BYTE_ARRAY (UTF8/STRING/ENUM or unannotated) and UUID -> string;
//   DATE, TIMESTAMP, INT96 -> string (ISO 8601, UTC); other FIXED_LEN_BYTE_ARRAY -> string (base64);
//   LIST of a numeric leaf -> list<int64> / list<float64>; JSON, GEOMETRY, structs, maps and
//   other lists -> json. A column is nullable when it is OPTIONAL.
// Record values follow the same mapping: 64-bit integers become numbers when they are safe
// integers and decimal strings otherwise, dates ISO strings, binary base64 strings.
// Compression: none, SNAPPY (hyparquet's own), GZIP and BROTLI (node:zlib), and ZSTD where
// node:zlib has it (Node >= 22.15); a file using another codec (LZ4, LZO) is refused when it is
// registered, not when a batch is read.
import { open, writeFile, type FileHandle } from 'node:fs/promises'
import zlib from 'node:zlib'
import { parquetMetadataAsync, parquetRead, parquetSchema, type AsyncBuffer, type Compressors, type FileMetaData, type SchemaElement, type SchemaTree } from 'hyparquet'
import { AppError } from '../errors.js'
import type { SchemaField } from '../store/registry.js'
import { hashFile } from './file-io.js'
import type { IndexOptions, IndexResult, RecordSource } from './record-source.js'

// The footer is read with one request of this size, more only when the footer is larger.
const FOOTER_FETCH_BYTES = 64 << 10
const DECOMPRESSORS: Compressors = {
  // unzipSync takes the gzip framing the format asks for and the zlib framing some writers used.
  GZIP: (input) => zlib.unzipSync(input),
  BROTLI: (input) => zlib.brotliDecompressSync(input)
}
const zstd = (zlib as { zstdDecompressSync?: (input: Uint8Array) => Buffer }).zstdDecompressSync
if (zstd !== undefined) DECOMPRESSORS.ZSTD = (input) => zstd(input)
const READABLE_CODECS = new Set(['UNCOMPRESSED', 'SNAPPY', ...Object.keys(DECOMPRESSORS)])
const DEFAULT_CACHED_ROW_GROUPS = 4
// Decoded row groups are JS objects, several times their uncompressed bytes: the cache also
// stops at this estimate, so files with large row groups keep one or two, not four.
const DEFAULT_CACHED_BYTES = 64 << 20
const DECODED_PER_UNCOMPRESSED_BYTE = 3

export interface ParquetIndexResult extends IndexResult {
  schema: { fields: SchemaField[] }
  /** Rows in each row group, in file order. */
  rowGroups: number[]
}

/**
 * Reads a Parquet file's footer (never the whole file into memory), checks that its columns
 * can be read, and hashes all bytes in one streaming pass. `indexPath` receives a small JSON
 * summary (row group sizes), which the caller renames into place like any index. Throws
 * AppError SOURCE_INVALID for a file that is not Parquet or uses what this server cannot read,
 * and the signal's AbortError when `opts.signal` aborts.
 */
export async function indexParquet (filePath: string, indexPath: string, opts: IndexOptions = {}): Promise<ParquetIndexResult> {
  opts.signal?.throwIfAborted()
  const fh = await open(filePath, 'r')
  try {
    const { size } = await fh.stat()
    const metadata = await readMetadata(fh, size)
    const rowGroups = rowGroupSizes(metadata)
    const fields = parquetFields(metadata)
    checkCodecs(metadata)
    const { digest, bytes } = await hashFile(fh, size, opts)
    if (bytes !== size) throw invalid('the file changed size while it was being read; register it again once it is complete')
    await writeFile(indexPath, JSON.stringify({ format: 'parquet', bytes, rowGroups }) + '\n')
    return { numRecords: rowGroups.reduce((a, b) => a + b, 0), digest, bytes, schema: { fields }, rowGroups }
  } finally {
    await fh.close()
  }
}

async function readMetadata (fh: FileHandle, size: number): Promise<FileMetaData> {
  try {
    return await parquetMetadataAsync(fileBuffer(fh, size), { initialFetchSize: FOOTER_FETCH_BYTES })
  } catch (err) {
    if (err instanceof AppError) throw err
    throw invalid(`its footer cannot be read (${(err as Error).message}); check that the file is Parquet and complete`)
  }
}

// Row counts per group, checked against the footer's total.
function rowGroupSizes (metadata: FileMetaData): number[] {
  const sizes = metadata.row_groups.map((g) => Number(g.num_rows))
  const total = sizes.reduce((a, b) => a + b, 0)
  if (!sizes.every((s) => Number.isSafeInteger(s) && s >= 0) || !Number.isSafeInteger(total)) {
    throw invalid('its row groups hold more rows than this server can number (2^53)')
  }
  if (BigInt(total) !== metadata.num_rows) {
    throw invalid(`its footer says ${metadata.num_rows} rows but its row groups hold ${total}`)
  }
  return sizes
}

function checkCodecs (metadata: FileMetaData): void {
  for (const group of metadata.row_groups) {
    for (const column of group.columns) {
      const meta = column.meta_data
      if (column.file_path !== undefined) throw invalid('its columns live in other files (file_path); write a single-file Parquet')
      if (meta !== undefined && !READABLE_CODECS.has(meta.codec)) {
        const hint = meta.codec === 'ZSTD' ? ' (ZSTD needs Node.js 22.15 or later on the server)' : ''
        throw invalid(`column ${JSON.stringify(meta.path_in_schema.join('.'))} is compressed with ${meta.codec}${hint}; write the file with ${[...READABLE_CODECS].filter((c) => c !== 'UNCOMPRESSED').join(', ')} compression, or none`)
      }
    }
  }
}

/** The schema of a Parquet file's top-level columns (see the mapping at the top of this file). */
export function parquetFields (metadata: FileMetaData): SchemaField[] {
  const root = parquetSchema(metadata)
  return root.children.map((node) => {
    const field: SchemaField = { name: node.element.name, type: columnType(node) }
    if (node.element.repetition_type === 'OPTIONAL') field.nullable = true
    return field
  })
}

function columnType (node: SchemaTree): string {
  const { element } = node
  if (node.children.length === 0) {
    const leaf = leafType(element)
    if (element.repetition_type !== 'REPEATED') return leaf
    return leaf === 'int64' || leaf === 'float64' ? `list<${leaf}>` : 'json'
  }
  if (isList(node)) {
    const repeated = node.children[0]!
    const item = repeated.children.length === 0 ? repeated : repeated.children[0]!
    if (item.children.length === 0) {
      const leaf = leafType(item.element)
      if (leaf === 'int64' || leaf === 'float64') return `list<${leaf}>`
    }
  }
  checkLeaves(node)
  return 'json'
}

// hyparquet's rule for a LIST group (one repeated child with at most one child).
function isList (node: SchemaTree): boolean {
  const { element } = node
  if (element.converted_type !== 'LIST' && element.logical_type?.type !== 'LIST') return false
  const repeated = node.children[0]
  return node.children.length === 1 && repeated !== undefined &&
    repeated.element.repetition_type === 'REPEATED' && repeated.children.length <= 1
}

function checkLeaves (node: SchemaTree): void {
  if (node.children.length === 0) leafType(node.element)
  for (const child of node.children) checkLeaves(child)
}

function leafType (element: SchemaElement): string {
  const converted = element.converted_type
  const logical = element.logical_type?.type
  if (converted === 'BSON' || logical === 'BSON' || converted === 'INTERVAL' || logical === 'INTERVAL') {
    throw invalid(`column ${JSON.stringify(element.name)} has type ${converted ?? logical}, which this server cannot read`)
  }
  if (converted === 'JSON' || logical === 'JSON' || logical === 'GEOMETRY' || logical === 'GEOGRAPHY') return 'json'
  if (converted === 'DECIMAL' || logical === 'DECIMAL' || logical === 'FLOAT16') return 'float64'
  if (converted === 'DATE' || converted === 'TIMESTAMP_MILLIS' || converted === 'TIMESTAMP_MICROS' ||
    logical === 'DATE' || logical === 'TIMESTAMP' || logical === 'UUID') return 'string'
  switch (element.type) {
    case 'BOOLEAN': return 'bool'
    case 'INT32':
    case 'INT64': return 'int64'
    case 'FLOAT':
    case 'DOUBLE': return 'float64'
    default: return 'string' // BYTE_ARRAY, FIXED_LEN_BYTE_ARRAY, INT96
  }
}

/** A Parquet source: a RecordSource with the file's row group layout. */
export interface ParquetSource extends RecordSource {
  readonly fields: readonly SchemaField[]
  /** Rows in each row group, in file order. */
  readonly rowGroups: readonly number[]
  /** The decoded row groups held now, least recently used first. */
  readonly cachedRowGroups: number[]
}

export interface OpenParquetOptions {
  /** The file's size when it was indexed: a different size is SOURCE_CHANGED. */
  bytes?: number
  /** The row count when it was indexed: a different count is SOURCE_CHANGED. */
  numRecords?: number
  /** Decoded row groups kept in memory (default 4). */
  cacheRowGroups?: number
  /**
   * And at most this many bytes of them (default 64 MiB), estimated from the footer's
   * uncompressed sizes; the group being read is kept whatever its size.
   */
  cacheBytes?: number
}

/** Opens a Parquet file for random access by record number. */
export async function openParquetSource (filePath: string, opts: OpenParquetOptions = {}): Promise<ParquetSource> {
  const fh = await open(filePath, 'r')
  try {
    const { size } = await fh.stat()
    if (opts.bytes !== undefined && size !== opts.bytes) throw changed()
    const metadata = await readMetadata(fh, size)
    const rowGroups = rowGroupSizes(metadata)
    const fields = parquetFields(metadata)
    const source = new ParquetFileSource(fh, size, metadata, rowGroups, fields, {
      groups: opts.cacheRowGroups ?? DEFAULT_CACHED_ROW_GROUPS,
      bytes: opts.cacheBytes ?? DEFAULT_CACHED_BYTES
    })
    if (opts.numRecords !== undefined && source.numRecords !== opts.numRecords) throw changed()
    return source
  } catch (err) {
    await fh.close()
    throw err
  }
}

function changed (): AppError {
  return new AppError('SOURCE_CHANGED', 'the Parquet file is not the one that was indexed; it changed on disk, so register the dataset again')
}

class ParquetFileSource implements ParquetSource {
  readonly numRecords: number
  readonly fields: readonly SchemaField[]
  readonly rowGroups: readonly number[]
  #fh: FileHandle
  #file: AsyncBuffer
  #metadata: FileMetaData
  // starts[g] = the first record of row group g; starts[G] = numRecords.
  #starts: Float64Array
  #names: string[]
  #plainKeys: boolean
  // Decoded row groups, least recently used first. Entries are promises, so concurrent
  // batches wanting one group share its decoding.
  #cache = new Map<number, Promise<Array<Record<string, unknown>>>>()
  #cacheGroups: number
  #cacheBytes: number
  /** Estimated decoded bytes of each row group. */
  #groupBytes: number[]
  #closed = false

  constructor (fh: FileHandle, size: number, metadata: FileMetaData, rowGroups: number[], fields: SchemaField[], bound: { groups: number, bytes: number }) {
    this.#fh = fh
    this.#file = fileBuffer(fh, size)
    this.#metadata = metadata
    this.rowGroups = rowGroups
    this.fields = fields
    this.#names = fields.map((f) => f.name)
    this.#plainKeys = !this.#names.includes('__proto__')
    this.#starts = new Float64Array(rowGroups.length + 1)
    for (let g = 0; g < rowGroups.length; g++) this.#starts[g + 1] = this.#starts[g]! + rowGroups[g]!
    this.numRecords = this.#starts[rowGroups.length]!
    this.#cacheGroups = Math.max(1, bound.groups)
    this.#cacheBytes = Math.max(0, bound.bytes)
    this.#groupBytes = metadata.row_groups.map((group) =>
      DECODED_PER_UNCOMPRESSED_BYTE * group.columns.reduce((sum, c) => sum + Number(c.meta_data?.total_uncompressed_size ?? 0n), 0))
  }

  /** The row groups held now (least recently used first). */
  get cachedRowGroups (): number[] {
    return [...this.#cache.keys()]
  }

  /** The records of `indices`, decoded row group by row group. Treat them as read-only: they may be shared with later calls. */
  async readRecords (indices: readonly number[]): Promise<unknown[]> {
    if (this.#closed) throw new Error('the Parquet source is closed')
    const n = this.numRecords
    const groupOf = new Uint32Array(indices.length)
    for (let k = 0; k < indices.length; k++) {
      const i = indices[k]!
      if (!Number.isInteger(i) || i < 0 || i >= n) {
        throw new RangeError(`record index ${i} is out of range (the source has ${n} records)`)
      }
      groupOf[k] = this.#groupOf(i)
    }
    // One group at a time, in file order, so at most one group beyond the cache is in memory.
    const groups = [...new Set(groupOf)].sort((a, b) => a - b)
    const out = new Array<unknown>(indices.length)
    for (const g of groups) {
      const rows = await this.#group(g)
      const start = this.#starts[g]!
      for (let k = 0; k < indices.length; k++) {
        if (groupOf[k] === g) out[k] = rows[indices[k]! - start]
      }
    }
    return out
  }

  async readJson (indices: readonly number[]): Promise<Buffer[]> {
    const records = await this.readRecords(indices)
    return records.map((r) => Buffer.from(JSON.stringify(r)))
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    this.#cache.clear()
    await this.#fh.close()
  }

  #groupOf (i: number): number {
    const starts = this.#starts
    let lo = 0
    let hi = starts.length - 2
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (starts[mid]! <= i) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  #group (g: number): Promise<Array<Record<string, unknown>>> {
    const cache = this.#cache
    let rows = cache.get(g)
    if (rows !== undefined) {
      cache.delete(g)
      cache.set(g, rows)
      return rows
    }
    rows = this.#decode(g)
    cache.set(g, rows)
    rows.catch(() => { if (cache.get(g) === rows) cache.delete(g) })
    let bytes = 0
    for (const k of cache.keys()) bytes += this.#groupBytes[k]!
    while (cache.size > 1 && (cache.size > this.#cacheGroups || bytes > this.#cacheBytes)) {
      const oldest = cache.keys().next().value!
      bytes -= this.#groupBytes[oldest]!
      cache.delete(oldest)
    }
    return rows
  }

  async #decode (g: number): Promise<Array<Record<string, unknown>>> {
    let raw: unknown[][] = []
    try {
      await parquetRead({
        file: this.#file,
        metadata: this.#metadata,
        columns: this.#names,
        rowStart: this.#starts[g]!,
        rowEnd: this.#starts[g + 1]!,
        compressors: DECOMPRESSORS,
        onComplete: (rows) => { raw = rows }
      })
    } catch (err) {
      if (err instanceof AppError) throw err
      throw new AppError('SOURCE_INVALID', `row group ${g} of the Parquet file cannot be read (${(err as Error).message})`)
    }
    const names = this.#names
    const out = new Array<Record<string, unknown>>(raw.length)
    for (let r = 0; r < raw.length; r++) {
      const row = raw[r]!
      const obj: Record<string, unknown> = {}
      for (let c = 0; c < names.length; c++) {
        const value = toJsonValue(row[c])
        if (this.#plainKeys) obj[names[c]!] = value
        else Object.defineProperty(obj, names[c]!, { value, enumerable: true, writable: true, configurable: true })
      }
      out[r] = obj
    }
    return out
  }
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER)

/** A decoded Parquet value as a JSON value (see the top of this file). */
export function toJsonValue (v: unknown): unknown {
  switch (typeof v) {
    case 'number':
    case 'string':
    case 'boolean':
      return v
    case 'bigint':
      return v <= MAX_SAFE && v >= -MAX_SAFE ? Number(v) : v.toString()
    case 'undefined':
      return null
    case 'object':
      break
    default:
      return String(v)
  }
  if (v === null) return null
  if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.toISOString()
  if (v instanceof Uint8Array) return Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64')
  if (Array.isArray(v) || ArrayBuffer.isView(v)) {
    const a = v as ArrayLike<unknown>
    const out = new Array<unknown>(a.length)
    for (let j = 0; j < a.length; j++) out[j] = toJsonValue(a[j])
    return out
  }
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(v)) {
    Object.defineProperty(out, key, { value: toJsonValue(value), enumerable: true, writable: true, configurable: true })
  }
  return out
}

// hyparquet's file interface over an open handle: each slice is one positioned read.
function fileBuffer (fh: FileHandle, size: number): AsyncBuffer {
  return {
    byteLength: size,
    async slice (start: number, end: number = size): Promise<ArrayBuffer> {
      const length = Math.max(0, Math.min(end, size) - start)
      const buf = new Uint8Array(length)
      let done = 0
      while (done < length) {
        const { bytesRead } = await fh.read(buf, done, length - done, start + done)
        if (bytesRead === 0) throw new AppError('SOURCE_CHANGED', 'the Parquet file is shorter than when it was indexed; it changed on disk, so register the dataset again')
        done += bytesRead
      }
      return buf.buffer
    }
  }
}

function invalid (reason: string): AppError {
  return new AppError('SOURCE_INVALID', `not a usable Parquet file: ${reason}`)
}
