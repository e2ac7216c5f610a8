// CSV (RFC 4180) with a header row: quoted fields may hold commas, doubled quotes and line
// breaks, so record boundaries come from the parser's byte counts, never from scanning for
// `\n` (DESIGN.md, "Pitfalls"). Lines end with LF or CRLF; empty lines are skipped, which
// means a one-column file cannot hold an unquoted empty cell (write `""`).
//
// Cell typing, the same wherever records are read: an unquoted cell that matches the JSON
// number grammar (and is finite) is a number, an unquoted empty cell is null, and every other
// cell, quoted or not, is a string: quoting a cell is how a file says "this is text".
import { open, type FileHandle } from 'node:fs/promises'
import { CsvError, Parser, type Options } from 'csv-parse'
import { parse as parseSync } from 'csv-parse/sync'
import { AppError } from '../errors.js'
import { planReads, readPlanSync } from './byte-ranges.js'
import { OffsetIndex, OffsetIndexWriter } from './offset-index.js'
import { openIndexedFile } from './file-io.js'
import { SourceDigest } from './source-digest.js'
import type { IndexOptions, IndexResult, RecordSource } from './record-source.js'
import { BAIL, scanCsvRecords } from './csv-scan.js'

const CHUNK_BYTES = 1 << 20
const PROGRESS_BYTES = 8 << 20
const MAX_CARRY_BYTES = 16 << 20

// Both record delimiters, always: csv-parse would otherwise guess one from the first line
// break and read a file that mixes them differently from splitRecords below.
const DIALECT = {
  record_delimiter: ['\r\n', '\n'],
  skip_empty_lines: true,
  relax_column_count: true
} satisfies Options

const BOM = Buffer.from([0xef, 0xbb, 0xbf])

/** The JSON value of one cell (see the typing rules at the top of this file). */
export function typeCell (value: string, quoted: boolean): string | number | null {
  if (quoted) return value
  if (value === '') return null
  if (isJsonNumber(value)) {
    const n = Number(value)
    if (Number.isFinite(n)) return n
  }
  return value
}

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? over char codes: a regex costs more per cell.
// `(c - 0x30) >>> 0 <= 9` tests for a digit with one unsigned comparison.
function isJsonNumber (s: string): boolean {
  const n = s.length
  let p = 0
  let c = s.charCodeAt(0)
  if (c === 0x2d) c = s.charCodeAt(++p)
  if (c === 0x30) {
    p++
  } else if (c >= 0x31 && c <= 0x39) {
    p++
    while (p < n && ((s.charCodeAt(p) - 0x30) >>> 0) <= 9) p++
  } else {
    return false
  }
  if (p < n && s.charCodeAt(p) === 0x2e) {
    if (((s.charCodeAt(++p) - 0x30) >>> 0) > 9) return false
    p++
    while (p < n && ((s.charCodeAt(p) - 0x30) >>> 0) <= 9) p++
  }
  if (p < n && ((c = s.charCodeAt(p)) === 0x65 || c === 0x45)) {
    c = s.charCodeAt(++p)
    if (c === 0x2b || c === 0x2d) c = s.charCodeAt(++p)
    if (((c - 0x30) >>> 0) > 9) return false
    p++
    while (p < n && ((s.charCodeAt(p) - 0x30) >>> 0) <= 9) p++
  }
  return p === n
}

// A record that parsed but breaks the header contract; turned into SOURCE_INVALID with a line.
// A record starts where the previous one ended, after the `blanks` empty lines the parser
// skipped in between.
class RecordProblem extends Error {
  readonly prevEnd: number
  readonly blanks: number
  constructor (prevEnd: number, blanks: number, reason: string) {
    super(reason)
    this.prevEnd = prevEnd
    this.blanks = blanks
  }
}

/**
 * The csv-parse stream parser, taking each record as it is pushed, while `info` (the parser's
 * live counters) still describes that record: `info.bytes` is where its line break ends and
 * `info.empty_lines` counts the empty lines skipped so far. The documented alternatives
 * (`info: true`, `on_record`) build a context object per record and made indexing 3-4 times
 * slower. Records are not passed on: indexing needs only their boundaries and field counts.
 */
class RecordingParser extends Parser {
  columns: string[] | undefined
  /** Pairs (previous record's end, empty lines since) for records not yet in the index. */
  pending: number[] = []
  records = 0
  problem: RecordProblem | undefined
  lastEnd: number
  #lastEmpty = 0

  constructor (firstByte: number) {
    super({ ...DIALECT, bom: true })
    this.lastEnd = firstByte
  }

  override push (record: unknown, encoding?: BufferEncoding): boolean {
    if (record === null) return super.push(record, encoding)
    const fields = record as string[]
    const prevEnd = this.lastEnd
    const blanks = this.info.empty_lines - this.#lastEmpty
    this.lastEnd = this.info.bytes
    this.#lastEmpty = this.info.empty_lines
    if (this.problem !== undefined) return true // the pass fails once this chunk is parsed
    if (this.columns === undefined) {
      this.problem = checkHeader(fields, prevEnd, blanks)
      this.columns = fields
    } else if (fields.length !== this.columns.length) {
      this.problem = new RecordProblem(prevEnd, blanks, `the record has ${fields.length} fields but the header has ${this.columns.length}; quote fields that contain commas, or fix the row`)
    } else {
      this.pending.push(prevEnd, blanks)
      this.records++
    }
    return true
  }

  /** Empty lines the parser has skipped so far. */
  emptyLinesSoFar (): number {
    return this.#lastEmpty
  }
}

export interface CsvIndexOptions extends IndexOptions {
  /** For tests: 'csv-parse' reads the file with csv-parse alone, without trying the scan first. */
  reader?: 'auto' | 'csv-parse'
}

/**
 * Indexes a CSV file in one streaming pass: checks the header (non-empty, unique names) and
 * that every record has as many fields as the header, writes the offset index (record starts)
 * to `indexPath`, and hashes all bytes. `columns` in the result are the header's names. Throws
 * AppError SOURCE_INVALID (`line N: reason`, N the 1-based line where the offending record
 * starts) and the signal's AbortError on abort.
 *
 * The pass is the byte scan of csv-scan.ts when the file stays within its grammar and meets
 * the header contract; otherwise csv-parse reads the file from the start (a second pass, paid
 * only by files with stray quotes or lone CRs, and by files it then refuses, which it
 * explains). Progress never goes back: the second pass reports only past the first's.
 */
export async function indexCsv (filePath: string, indexPath: string, opts: CsvIndexOptions = {}): Promise<IndexResult> {
  let reported = 0
  const onProgress = opts.onProgress === undefined
    ? undefined
    : (done: number, total: number): void => {
        if (done < reported) return
        reported = done
        opts.onProgress?.(done, total)
      }
  const passOpts: IndexOptions = { ...(onProgress !== undefined ? { onProgress } : {}), ...(opts.signal !== undefined ? { signal: opts.signal } : {}) }
  if (opts.reader !== 'csv-parse') {
    const scanned = await indexCsvByScan(filePath, indexPath, passOpts)
    if (scanned !== undefined) return scanned
  }
  return await indexCsvWithParser(filePath, indexPath, passOpts)
}

/**
 * The scan's pass (see indexCsv); undefined when the file leaves the scan's grammar, breaks
 * the header contract or holds a record longer than `maxCarryBytes` across reads, with nothing
 * left at `indexPath`.
 */
export async function indexCsvByScan (filePath: string, indexPath: string, opts: IndexOptions = {}, maxCarryBytes = MAX_CARRY_BYTES): Promise<IndexResult | undefined> {
  const { onProgress, signal } = opts
  signal?.throwIfAborted()
  const fh = await open(filePath, 'r')
  let writer: OffsetIndexWriter | undefined
  try {
    const total = (await fh.stat()).size
    writer = await OffsetIndexWriter.create(indexPath)
    const hash = new SourceDigest()
    const triples: number[] = []
    let columns: string[] | undefined
    let records = 0
    let bytes = 0
    let reported = 0
    // The bytes of a record cut by the end of the last read, scanned again with the next one.
    let carry = Buffer.alloc(0)
    for (;;) {
      signal?.throwIfAborted()
      const buf = Buffer.allocUnsafe(carry.length + CHUNK_BYTES)
      carry.copy(buf)
      const { bytesRead } = await fh.read(buf, carry.length, CHUNK_BYTES, bytes)
      hash.update(buf.subarray(carry.length, carry.length + bytesRead))
      const final = bytesRead === 0
      const b = buf.subarray(0, carry.length + bytesRead)
      // Where b starts in the file; a byte order mark is skipped, as csv-parse does.
      const base = bytes - carry.length
      const from = base === 0 && b.length >= 3 && b.subarray(0, 3).equals(BOM) ? 3 : 0
      bytes += bytesRead
      triples.length = 0
      const next = scanCsvRecords(b, from, final, triples)
      if (next === BAIL) return await giveUp(writer)
      for (let k = 0; k < triples.length; k += 3) {
        if (columns === undefined) {
          // The names as csv-parse decodes them (quotes, escapes, UTF-8).
          columns = headerNames(b.subarray(triples[k]!, triples[k + 1]!))
          if (columns === undefined || checkHeader(columns, 0, 0) !== undefined) return await giveUp(writer)
        } else if (triples[k + 2] !== columns.length) {
          return await giveUp(writer)
        } else {
          writer.add(base + triples[k]!)
          records++
        }
      }
      await writer.drain()
      if (final) break
      carry = b.subarray(next)
      // A record this long (a quote left open?) is left to csv-parse, which streams it.
      if (carry.length > maxCarryBytes) return await giveUp(writer)
      if (onProgress !== undefined && bytes - reported >= PROGRESS_BYTES) {
        reported = bytes
        onProgress(bytes, Math.max(bytes, total))
      }
    }
    if (columns === undefined) return await giveUp(writer)
    writer.add(bytes)
    await writer.close()
    onProgress?.(bytes, bytes)
    return { numRecords: records, digest: hash.hex(), bytes, columns }
  } catch (err) {
    await writer?.abort()
    throw err
  } finally {
    await fh.close()
  }
}

function headerNames (bytes: Buffer): string[] | undefined {
  try {
    return (parseSync(bytes, DIALECT) as string[][])[0]
  } catch {
    return undefined
  }
}

async function giveUp (writer: OffsetIndexWriter): Promise<undefined> {
  await writer.abort()
  return undefined
}

/** The csv-parse pass (see indexCsv). */
async function indexCsvWithParser (filePath: string, indexPath: string, opts: IndexOptions): Promise<IndexResult> {
  const { onProgress, signal } = opts
  signal?.throwIfAborted()
  const fh = await open(filePath, 'r')
  let writer: OffsetIndexWriter | undefined
  let parser: RecordingParser | undefined
  try {
    const total = (await fh.stat()).size
    // With a byte order mark the header (and any error in it) starts at byte 3.
    const head = Buffer.alloc(3)
    await fh.read(head, 0, 3, 0)
    parser = new RecordingParser(head.equals(BOM) ? 3 : 0)
    const csv = parser
    // Errors reach us through the write and end callbacks; this listener only keeps an
    // 'error' event from being thrown as uncaught.
    csv.on('error', () => {})
    writer = await OffsetIndexWriter.create(indexPath)
    const index = writer
    const hash = new SourceDigest()
    let bytes = 0
    let reported = 0

    // Record starts go to the index after each chunk; a start behind empty lines costs a
    // small read, which is rare.
    async function flushPending (): Promise<void> {
      if (csv.problem !== undefined) throw csv.problem
      const { pending } = csv
      csv.pending = []
      for (let k = 0; k < pending.length; k += 2) {
        const prevEnd = pending[k]!
        const blanks = pending[k + 1]!
        index.add(blanks === 0 ? prevEnd : await skipBlankLines(fh, prevEnd, blanks))
      }
      await index.drain()
    }

    for (;;) {
      signal?.throwIfAborted()
      // A fresh buffer each time: the parser may keep a slice of the previous chunk.
      const buf = Buffer.allocUnsafe(CHUNK_BYTES)
      const { bytesRead } = await fh.read(buf, 0, CHUNK_BYTES, bytes)
      if (bytesRead === 0) break
      const chunk = buf.subarray(0, bytesRead)
      hash.update(chunk)
      bytes += bytesRead
      await new Promise<void>((resolve, reject) => csv.write(chunk, (err) => { if (err != null) reject(err); else resolve() }))
      await flushPending()
      if (onProgress !== undefined && bytes - reported >= PROGRESS_BYTES) {
        reported = bytes
        onProgress(bytes, Math.max(bytes, total))
      }
    }
    // The last record may end at the end of the file, without a line break.
    await new Promise<void>((resolve, reject) => {
      csv.end(() => { if (csv.errored != null) reject(csv.errored); else resolve() })
      csv.resume() // let the (empty) readable side end
    })
    await flushPending()

    if (csv.columns === undefined) {
      throw new AppError('SOURCE_INVALID', 'the file is empty; a CSV source needs a header row naming the columns')
    }
    index.add(bytes)
    await index.close()
    onProgress?.(bytes, bytes)
    return { numRecords: csv.records, digest: hash.hex(), bytes, columns: csv.columns }
  } catch (err) {
    await writer?.abort()
    parser?.destroy()
    throw await explain(fh, parser?.problem ?? err, parser)
  } finally {
    await fh.close()
  }
}

function checkHeader (names: string[], prevEnd: number, blanks: number): RecordProblem | undefined {
  const seen = new Set<string>()
  for (let c = 0; c < names.length; c++) {
    const name = names[c]!
    if (name.trim() === '') {
      return new RecordProblem(prevEnd, blanks, `column ${c + 1} of the header row has no name; the first row must name every column`)
    }
    if (seen.has(name)) {
      return new RecordProblem(prevEnd, blanks, `the header row names column ${JSON.stringify(name)} twice; column names must be unique`)
    }
    seen.add(name)
  }
  return undefined
}

// Turns parser errors and record problems into SOURCE_INVALID naming the line where the
// offending record starts; other errors (I/O, abort) pass through.
async function explain (fh: FileHandle, err: unknown, parser: RecordingParser | undefined): Promise<unknown> {
  if (err instanceof RecordProblem) {
    const line = await lineAt(fh, await skipBlankLines(fh, err.prevEnd, err.blanks))
    return new AppError('SOURCE_INVALID', `line ${line}: ${err.message}`)
  }
  if (err instanceof CsvError && parser !== undefined) {
    // The failing record starts after the last good one and the empty lines since.
    const emptyLines = (err as CsvError & { empty_lines?: number }).empty_lines ?? parser.emptyLinesSoFar()
    const line = await lineAt(fh, await skipBlankLines(fh, parser.lastEnd, emptyLines - parser.emptyLinesSoFar()))
    return new AppError('SOURCE_INVALID', `line ${line}: ${describeCsvError(err)}`)
  }
  return err
}

function describeCsvError (err: CsvError): string {
  switch (err.code) {
    case 'CSV_QUOTE_NOT_CLOSED':
      return 'a quoted field is never closed; add the missing closing quote (")'
    case 'INVALID_OPENING_QUOTE':
      return 'a quote (") appears inside an unquoted field; quote the whole field and double the quotes inside it ("")'
    case 'CSV_INVALID_CLOSING_QUOTE':
      return 'a closing quote is followed by other characters; end the field after the quote, and double quotes inside quoted fields ("")'
    default:
      return `not valid CSV (${err.message})`
  }
}

// The position after `count` empty lines (each `\n` or `\r\n`, as the parser skips them),
// read in small windows: usually there are one or two.
async function skipBlankLines (fh: FileHandle, from: number, count: number): Promise<number> {
  const buf = Buffer.alloc(Math.min(count * 2, 1 << 16))
  let pos = from
  while (count > 0) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos)
    if (bytesRead === 0) break
    let p = 0
    // A `\r\n` cut by the window's end is read again with the next window.
    while (count > 0 && p < bytesRead && !(buf[p] === 0x0d && p + 1 === bytesRead)) {
      p += buf[p] === 0x0d ? 2 : 1
      count--
    }
    if (p === 0) break
    pos += p
  }
  return pos
}

// The 1-based line holding byte `offset`: one plus the line feeds before it. Error path only,
// so a plain re-read is fine.
async function lineAt (fh: FileHandle, offset: number): Promise<number> {
  const buf = Buffer.allocUnsafe(CHUNK_BYTES)
  let line = 1
  for (let pos = 0; pos < offset;) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK_BYTES, offset - pos), pos)
    if (bytesRead === 0) break
    for (let p = buf.indexOf(10); p !== -1 && p < bytesRead; p = buf.indexOf(10, p + 1)) line++
    pos += bytesRead
  }
  return line
}

/** Opens an indexed CSV file for random access; `columns` are IndexResult.columns. */
export async function openCsvSource (filePath: string, indexPath: string, columns: string[]): Promise<RecordSource> {
  if (columns.length === 0) throw new RangeError('a CSV source needs its header columns')
  const { index, fh } = await openIndexedFile(filePath, indexPath)
  return new CsvSource(fh, index, [...columns])
}

/**
 * Splits the bytes of whole records, as csv-parse accepted them when the file was indexed,
 * into rows of typed cells. This is csv-parse's reading under DIALECT restricted to input it
 * accepts: fields split at commas, records at LF or CRLF outside quotes, empty lines skipped,
 * `""` inside quotes is one quote, a lone CR is text. csv-parse itself costs ~6 ms for 128
 * rows of 51 cells and ~33 ms with the typing callback (it builds a context object per
 * cell); this takes about 1 ms. The bytes are decoded once: the delimiters are ASCII, so
 * decoding fields one by one (as csv-parse does) gives the same text. test/sources/csv.test.ts
 * checks that both agree on random input. Returns undefined for bytes csv-parse would have
 * refused (the file changed).
 */
export function splitRecords (bytes: Buffer): unknown[][] | undefined {
  const s = bytes.toString('utf8')
  const end = s.length
  const rows: unknown[][] = []
  let p = 0
  while (p < end) {
    // Empty lines are not records.
    let c = s.charCodeAt(p)
    if (c === 0x0a) {
      p++
      continue
    }
    if (c === 0x0d && s.charCodeAt(p + 1) === 0x0a) {
      p += 2
      continue
    }
    const row: unknown[] = []
    for (;;) {
      if (s.charCodeAt(p) === 0x22) {
        // Quoted: up to the quote that is not doubled.
        let q = p + 1
        let doubled = false
        for (;;) {
          q = s.indexOf('"', q)
          if (q === -1) return undefined
          if (s.charCodeAt(q + 1) !== 0x22) break
          doubled = true
          q += 2
        }
        const text = s.slice(p + 1, q)
        row.push(doubled ? text.replaceAll('""', '"') : text)
        p = q + 1
      } else {
        let q = p
        for (; q < end; q++) {
          c = s.charCodeAt(q)
          if (c === 0x2c || c === 0x0a || (c === 0x0d && s.charCodeAt(q + 1) === 0x0a)) break
          if (c === 0x22) return undefined
        }
        row.push(typeCell(s.slice(p, q), false))
        p = q
      }
      if (p >= end) break
      c = s.charCodeAt(p)
      if (c === 0x2c) {
        p++
      } else if (c === 0x0a) {
        p++
        break
      } else if (c === 0x0d && s.charCodeAt(p + 1) === 0x0a) {
        p += 2
        break
      } else {
        return undefined
      }
    }
    rows.push(row)
  }
  return rows
}

class CsvSource implements RecordSource {
  readonly numRecords: number
  #fh: FileHandle
  #index: OffsetIndex
  #columns: string[]
  // `{"name":` then `,"name":` for each column: readJson writes the JSON text directly,
  // which is about a third cheaper than building objects and calling JSON.stringify.
  #keys: string[]
  // A column named `__proto__` must become an own property, not the object's prototype.
  #plainKeys: boolean
  #closed = false

  constructor (fh: FileHandle, index: OffsetIndex, columns: string[]) {
    this.#fh = fh
    this.#index = index
    this.#columns = columns
    this.#keys = columns.map((name, c) => (c === 0 ? '{' : ',') + JSON.stringify(name) + ':')
    this.#plainKeys = !columns.includes('__proto__')
    this.numRecords = index.numRecords
  }

  // Cells are strings, finite numbers or null, so String() of a non-string is its JSON.
  async readJson (indices: readonly number[]): Promise<Buffer[]> {
    const keys = this.#keys
    return this.#read(indices, (row) => {
      let json = ''
      for (let c = 0; c < keys.length; c++) {
        const v = row[c]
        json += keys[c]! + (typeof v === 'string' ? JSON.stringify(v) : String(v))
      }
      return Buffer.from(json + '}')
    })
  }

  async readRecords (indices: readonly number[]): Promise<unknown[]> {
    return this.#read(indices, (row) => this.#toObject(row))
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#fh.close()
  }

  // The batch's distinct records are read into one Buffer in file order and split at once;
  // `make` turns each requested row into its result, in the order of `indices`.
  #read<T> (indices: readonly number[], make: (row: unknown[]) => T): T[] {
    if (this.#closed) throw new Error('the CSV source is closed')
    const plan = planReads(this.#index, indices)
    // Each region ends with its record's line break (only the file's last record may end
    // at the end of the file, and it comes last), so the batch splits as a whole.
    const rows = splitRecords(readPlanSync(this.#fh.fd, plan))
    const width = this.#columns.length
    if (rows?.length !== plan.records.length || rows.some((row) => row.length !== width)) {
      throw new AppError('SOURCE_CHANGED', 'the source file no longer matches its index; it changed on disk, so register the dataset again')
    }
    const out = new Array<T>(indices.length)
    for (let k = 0; k < indices.length; k++) out[k] = make(rows[plan.slotOf[k]!]!)
    return out
  }

  #toObject (row: unknown[]): Record<string, unknown> {
    const columns = this.#columns
    const obj: Record<string, unknown> = {}
    if (this.#plainKeys) {
      for (let c = 0; c < columns.length; c++) obj[columns[c]!] = row[c]
    } else {
      for (let c = 0; c < columns.length; c++) {
        Object.defineProperty(obj, columns[c]!, { value: row[c], enumerable: true, writable: true, configurable: true })
      }
    }
    return obj
  }
}
