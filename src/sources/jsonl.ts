// JSON Lines: one JSON object a line. JSON escapes newlines inside strings, so byte 0x0A always
// ends a record and `Buffer.indexOf(10)` finds records exactly (DESIGN.md, "Pitfalls"). Lines
// holding only whitespace are not records. Every record is validated when the source is
// indexed, because batch bodies are later spliced from the raw bytes without parsing them, and
// the validation also gathers the records' schema (codecs/schema-scan.ts), so that the schema
// needs no second pass.
//
// Indexing is one pass over large reads into a ring of buffers. The main thread reads and
// splits each chunk into lines, records their offsets, cuts the lines into blocks of about
// 64 KiB, and validates them; meanwhile the addon hashes the file on libuv's pool
// (file-io.ts, startFileDigest), or without it the main thread hashes the chunks too. For
// files of 128 MiB and more a worker thread (this same module) hashes chunks and validates
// blocks too, reading the ring through shared memory: the two threads take the
// blocks of a chunk in turn from a shared counter, and the hash of a chunk (a block of the
// source digest, source-digest.ts) goes to whichever claims it first, so neither waits for
// the other whatever their speeds (the worker's code starts unoptimised, and either may lose
// its core to other processes). Measured on the 2-core machine (page cache; the bench's
// 68.8 MiB file of 50,000 records with 128 floats): JSON.parse of every line runs at
// ~140 MiB/s of one core's time, the byte validator with the schema at ~1.5 GB/s (most of it
// the addon's check of the numbers, 64 bytes at a time), SHA-256 at ~1.5 GB/s. The pass took
// ~120-135 ms hashing on its own thread, and ~110-120 ms of that thread's time with the file
// hashed beside it; through the server a first registration took 186-247 ms (median 193)
// against 225-289 ms (median 255). A 688 MiB file registers at ~775-840 MiB/s on two threads.
// JSON.parse is only the fallback that words the error message.
import { isUtf8 } from 'node:buffer'
import { open, type FileHandle } from 'node:fs/promises'
import { isMainThread, MessageChannel, parentPort, Worker, workerData, type MessagePort } from 'node:worker_threads'
import { workerBootstrap } from './worker-bootstrap.js'
import { CHUNK_WORKER_MIN_BYTES } from './jsonl-threads.js'
import { openIndexedFile, readFull, startFileDigest, type FileDigestJob } from './file-io.js'
import { AppError } from '../errors.js'
import { planReads, readPlanSync } from './byte-ranges.js'
import { OffsetIndex, OffsetIndexWriter } from './offset-index.js'
import { BLOCK_HASH_BYTES, DIGEST_BLOCK_BYTES, hashBlock, SourceDigest } from './source-digest.js'
import type { IndexOptions, IndexResult, RecordSource } from './record-source.js'
import { mergeSummaries, SchemaScanner, skipBlanks, type SchemaSummary } from '../codecs/schema-scan.js'

export { isJsonObject } from '../codecs/schema-scan.js'

// Large files: 8 slots of 4 MiB shared with the worker, deep enough to absorb jitter between
// the two threads. Small files: 2 slots of 1 MiB, no worker.
const SLOT_BYTES = 4 << 20
const SLOTS = 8
const SMALL_SLOT_BYTES = 1 << 20
const SMALL_SLOTS = 2
// The unit of validation the threads take turns at: small, so that neither waits long for
// the other at the end of the file, and large, so that taking one costs nothing.
const BLOCK_BYTES = 64 << 10
const PROGRESS_BYTES = 8 << 20
// A bound on one record, so a file without newlines cannot grow the carry-over without end.
const MAX_RECORD_BYTES = 64 << 20
const WORKER_ROLE = 'shardfeed:jsonl-chunks'

export interface JsonlIndexOptions extends IndexOptions {
  /**
   * For tests: the ring's slot and block sizes, and whether the chunk worker takes part
   * whatever the file's size. With `mainBlocks` the pass waits for the worker to start, and
   * the main thread takes at most that many blocks of a chunk, leaving the rest to the worker.
   */
  ring?: { slotBytes: number, blockBytes: number, worker: boolean, mainBlocks?: number }
  /**
   * For tests: false hashes the file on the pass's own thread, as without the addon. By
   * default a pass that does not share the hashing with a chunk worker has the addon hash the
   * file on libuv's pool (startFileDigest).
   */
  fileDigest?: boolean
  /**
   * The port of a chunk worker the caller started (startChunkWorker), so that it boots while
   * the caller's own thread does; the pass starts one itself when it needs one and has none.
   */
  chunkPort?: MessagePort
}

export interface JsonlIndexResult extends IndexResult {
  /** The schema of the records as far as the validating scan could tell (schema-scan.ts). */
  schema: SchemaSummary
}

/**
 * Indexes a JSONL file in one streaming pass: writes the offset index to `indexPath`,
 * validates that every non-blank line is a JSON object, summarises the records' schema and
 * hashes all bytes.
 * Throws AppError SOURCE_INVALID (`line N: reason`, N the 1-based physical line) on a bad
 * record, and the signal's AbortError when `opts.signal` aborts. On failure the index file is
 * removed.
 */
export async function indexJsonl (filePath: string, indexPath: string, opts: JsonlIndexOptions = {}): Promise<JsonlIndexResult> {
  const { onProgress, signal, ring: forced, chunkPort, fileDigest: digestBeside = true } = opts
  signal?.throwIfAborted()
  const fh = await open(filePath, 'r')
  let writer: OffsetIndexWriter | undefined
  let worker: ChunkWorker | undefined
  let scanner: LineScanner | undefined
  let fileDigest: FileDigestJob | undefined
  const released: Array<Promise<void>> = []
  try {
    const total = (await fh.stat()).size
    writer = await OffsetIndexWriter.create(indexPath)
    const offload = forced?.worker ?? total >= CHUNK_WORKER_MIN_BYTES
    const slotBytes = forced?.slotBytes ?? (offload ? SLOT_BYTES : SMALL_SLOT_BYTES)
    const numSlots = offload ? SLOTS : SMALL_SLOTS
    const ring = offload ? new SharedArrayBuffer(slotBytes * numSlots) : new ArrayBuffer(slotBytes * numSlots)
    const blockBytes = forced?.blockBytes ?? BLOCK_BYTES
    const tableBytes = BlockTable.bytes(numSlots, slotBytes, blockBytes)
    const blocks = new BlockTable(offload ? new SharedArrayBuffer(tableBytes) : new ArrayBuffer(tableBytes), slotBytes, blockBytes)
    // With the worker and 4 MiB slots every chunk is a block of the digest, which either thread
    // may hash (SlotHashes); otherwise the main thread hashes the bytes as they come.
    const hashes = offload && slotBytes === DIGEST_BLOCK_BYTES ? new SlotHashes(new SharedArrayBuffer(SlotHashes.bytes(numSlots)), numSlots) : undefined
    if (offload) worker = new ChunkWorker(ring as SharedArrayBuffer, slotBytes, blocks, hashes, chunkPort)
    else chunkPort?.close()
    // Otherwise the file is hashed beside the pass, on libuv's pool, when the addon is built.
    if (hashes === undefined && digestBeside) fileDigest = startFileDigest(fh)
    const slots: Buffer[] = []
    // Whether the worker may still read a slot; `released` settles when it is done.
    const busy: boolean[] = []
    for (let s = 0; s < numSlots; s++) {
      slots.push(Buffer.from(ring, s * slotBytes, slotBytes))
      released.push(Promise.resolve())
      busy.push(false)
    }
    const mainBlocks = forced?.mainBlocks
    if (worker !== undefined && mainBlocks !== undefined) await worker.started

    const digest = new SourceDigest()
    const blockHashes = new BlockHashes(digest)
    // The chunk number each slot holds, whose hash is still to be collected.
    const slotChunk: number[] = new Array<number>(numSlots).fill(-1)
    const collect = (slot: number): void => {
      if (hashes === undefined || slotChunk[slot]! < 0) return
      blockHashes.add(slotChunk[slot]!, hashes.hashOf(slot))
      slotChunk[slot] = -1
    }
    const lines = new LineScanner(writer, Buffer.from(ring), slotBytes, blocks)
    scanner = lines
    // With the worker, the main thread takes its blocks of a chunk (and its hash, when the
    // worker has not) only once it has read and split the next one: meanwhile the worker has
    // them to itself.
    let lagging = -1
    let laggingBytes = 0
    let chunkNo = 0
    let laggingShared = false
    // Validates the lagging chunk's blocks that are left to this thread, and hashes it unless the worker has.
    const takeLagging = (): void => {
      if (lagging < 0) return
      hashes?.claim(lagging, slots[lagging]!.subarray(0, laggingBytes))
      lines.validate(lagging, lines.firstLineOf(lagging), laggingShared ? mainBlocks ?? Infinity : Infinity)
    }
    let pos = 0
    let reported = 0
    let s = 0
    let pending = readFull(fh, slots[0]!, 0)
    pending.catch(ignore)
    for (;;) {
      const n = await pending
      if (n === 0) break
      signal?.throwIfAborted()
      // Read ahead into the next slot once the worker is done with it. A free slot is read at
      // once, not in a callback, which would only run once this chunk is done with.
      const next = (s + 1) % numSlots
      const nextPos = pos + n
      const nextSlot = slots[next]!
      pending = busy[next]!
        ? released[next]!.then(async () => { collect(next); return await readFull(fh, nextSlot, nextPos) })
        : (collect(next), readFull(fh, nextSlot, nextPos))
      pending.catch(ignore)

      const chunk = slots[s]!.subarray(0, n)
      if (hashes === undefined) {
        if (fileDigest === undefined) digest.update(chunk)
      } else {
        hashes.reset(s)
        slotChunk[s] = chunkNo
        // Until the worker runs, nothing waits for it.
        if (worker?.ready !== true) hashes.claim(s, chunk)
      }
      chunkNo++
      const firstLine = scanner.scan(chunk, pos, s)
      const shared = worker?.ready === true && blocks.count(s) > 0
      if (shared) {
        const slot = s
        const task = worker!.submit(slot, firstLine, n)
        busy[slot] = true
        task.then(() => { busy[slot] = false }, ignore)
        released[slot] = task
      }
      if (worker === undefined) {
        scanner.validate(s, firstLine, Infinity)
      } else {
        takeLagging()
        lagging = s
        laggingBytes = n
        laggingShared = shared
      }
      scanner.checkCarried()
      await writer.drain()
      pos = nextPos
      if (onProgress !== undefined && pos - reported >= PROGRESS_BYTES) {
        reported = pos
        onProgress(pos, Math.max(pos, total))
      }
      s = next
    }
    takeLagging()
    scanner.finish(pos)
    writer.add(pos)
    await Promise.all(released)
    if (hashes !== undefined) {
      for (let slot = 0; slot < numSlots; slot++) collect(slot)
      blockHashes.expect(chunkNo)
    }
    const schema = mergeSummaries([scanner.schema.summary(), await worker?.finish() ?? EMPTY_SUMMARY])
    await writer.close()
    onProgress?.(pos, pos)
    return { numRecords: scanner.records, digest: fileDigest === undefined ? digest.hex() : await digestOf(fileDigest, pos), bytes: pos, schema }
  } catch (err) {
    await writer?.abort()
    if (!(err instanceof AppError)) throw err
    // The first bad line of the file: the lines before the one found may still be waiting in
    // blocks the main thread has not taken yet, or in the worker.
    scanner?.drain()
    await Promise.allSettled(released)
    const first = earliest(scanner?.failure, worker?.failure)
    throw first !== undefined ? invalidLine(first.line, first.reason) : err
  } finally {
    await worker?.close()
    // The pool thread reads the file until its job settles.
    if (fileDigest !== undefined) {
      fileDigest.stop()
      await fileDigest.done.catch(ignore)
    }
    await fh.close()
  }
}

/** The digest hashed beside the pass, which must have hashed the same `bytes` as the pass read. */
async function digestOf (job: FileDigestJob, bytes: number): Promise<string> {
  const hashed = await job.done
  if (hashed.bytes !== bytes) throw new AppError('SOURCE_INVALID', 'the source file changed while it was being indexed; register it again once it is complete')
  return hashed.digest
}

const EMPTY_SUMMARY: SchemaSummary = { records: 0, conflict: false, columns: [] }

/** Opens an indexed JSONL file for random access by record number. */
export async function openJsonlSource (filePath: string, indexPath: string): Promise<RecordSource> {
  const { index, fh } = await openIndexedFile(filePath, indexPath)
  return new JsonlSource(fh, index)
}

class JsonlSource implements RecordSource {
  readonly numRecords: number
  #fh: FileHandle
  #index: OffsetIndex
  #closed = false

  constructor (fh: FileHandle, index: OffsetIndex) {
    this.#fh = fh
    this.#index = index
    this.numRecords = index.numRecords
  }

  // Each record's line without its newline and surrounding blanks: views into one Buffer
  // read for the whole batch (see byte-ranges.ts for why the reads are synchronous).
  async readJson (indices: readonly number[]): Promise<Buffer[]> {
    return this.#read(indices)
  }

  async readRecords (indices: readonly number[]): Promise<unknown[]> {
    const raw = this.#read(indices)
    const out = new Array<unknown>(raw.length)
    for (let k = 0; k < raw.length; k++) out[k] = JSON.parse(raw[k]!.toString('utf8'))
    return out
  }

  async close (): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    await this.#fh.close()
  }

  #read (indices: readonly number[]): Buffer[] {
    if (this.#closed) throw new Error('the JSONL source is closed')
    const plan = planReads(this.#index, indices)
    const batch = readPlanSync(this.#fh.fd, plan)
    const { at, slotOf } = plan
    const views = new Array<Buffer>(plan.records.length)
    for (let u = 0; u < views.length; u++) views[u] = trim(batch, at[u]!, at[u + 1]!)
    const out = new Array<Buffer>(indices.length)
    for (let k = 0; k < indices.length; k++) out[k] = views[slotOf[k]!]!
    return out
  }
}

function trim (b: Buffer, start: number, end: number): Buffer {
  while (start < end && isBlank(b[start]!)) start++
  while (end > start && isBlank(b[end - 1]!)) end--
  return b.subarray(start, end)
}

function isBlank (c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09
}

function ignore (): void {}

/** A bad line: its 1-based number and what is wrong with it. */
interface LineFailure {
  line: number
  reason: string
}

function earliest (a: LineFailure | undefined, b: LineFailure | undefined): LineFailure | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return b.line < a.line ? b : a
}

/**
 * The blocks of whole lines of each ring slot, in memory the worker shares: per slot, the
 * next block to take, the number of blocks, then per block its start and end in the slot and
 * its first line (counted from the chunk's first whole line). Each thread takes the next
 * block with one atomic add, so every block is validated exactly once.
 */
class BlockTable {
  readonly buffer: SharedArrayBuffer | ArrayBuffer
  readonly blockBytes: number
  #cells: Int32Array
  #stride: number

  /** The size of the table for a ring of numSlots slots. */
  static bytes (numSlots: number, slotBytes: number, blockBytes: number): number {
    return numSlots * stride(slotBytes, blockBytes) * 4
  }

  constructor (buffer: SharedArrayBuffer | ArrayBuffer, slotBytes: number, blockBytes: number) {
    this.buffer = buffer
    this.blockBytes = blockBytes
    this.#cells = new Int32Array(buffer)
    this.#stride = stride(slotBytes, blockBytes)
  }

  /** Sets block i of `slot`; blocks become visible with publish. */
  set (slot: number, i: number, start: number, end: number, line: number): void {
    const at = slot * this.#stride + 2 + 3 * i
    this.#cells[at] = start
    this.#cells[at + 1] = end
    this.#cells[at + 2] = line
  }

  publish (slot: number, count: number): void {
    Atomics.store(this.#cells, slot * this.#stride, 0)
    Atomics.store(this.#cells, slot * this.#stride + 1, count)
  }

  count (slot: number): number {
    return Atomics.load(this.#cells, slot * this.#stride + 1)
  }

  /** The next block of `slot` nobody has taken, now this thread's; -1 when none is left. */
  take (slot: number): number {
    const i = Atomics.add(this.#cells, slot * this.#stride, 1)
    return i < this.count(slot) ? i : -1
  }

  start (slot: number, i: number): number {
    return this.#cells[slot * this.#stride + 2 + 3 * i]!
  }

  end (slot: number, i: number): number {
    return this.#cells[slot * this.#stride + 3 + 3 * i]!
  }

  line (slot: number, i: number): number {
    return this.#cells[slot * this.#stride + 4 + 3 * i]!
  }
}

/**
 * Per ring slot of 4 MiB, the hash of the chunk it holds (a block of the source digest),
 * made by whichever thread claims the slot first: the worker when it is told of the chunk, or
 * the main thread when it comes back to the chunk's blocks. So the two threads share the
 * hashing as they share the validation.
 */
class SlotHashes {
  readonly buffer: SharedArrayBuffer
  #claims: Int32Array
  #hashes: Buffer

  static bytes (numSlots: number): number {
    return numSlots * (4 + BLOCK_HASH_BYTES)
  }

  constructor (buffer: SharedArrayBuffer, numSlots: number) {
    this.buffer = buffer
    this.#claims = new Int32Array(buffer, 0, numSlots)
    this.#hashes = Buffer.from(buffer, numSlots * 4, numSlots * BLOCK_HASH_BYTES)
  }

  /** Before the slot is handed a new chunk. */
  reset (slot: number): void {
    Atomics.store(this.#claims, slot, 0)
  }

  /** Hashes the slot's chunk, unless the other thread has (or is doing it). */
  claim (slot: number, chunk: Uint8Array): void {
    if (Atomics.compareExchange(this.#claims, slot, 0, 1) === 0) hashBlock(chunk, this.#hashes, slot * BLOCK_HASH_BYTES)
  }

  /** A copy of the slot's hash, once both threads are done with the slot. */
  hashOf (slot: number): Buffer {
    return Buffer.from(this.#hashes.subarray(slot * BLOCK_HASH_BYTES, (slot + 1) * BLOCK_HASH_BYTES))
  }
}

/** Block hashes, collected in any order, fed to the digest in file order. */
class BlockHashes {
  #digest: SourceDigest
  #waiting = new Map<number, Buffer>()
  #next = 0

  constructor (digest: SourceDigest) {
    this.#digest = digest
  }

  add (block: number, hash: Buffer): void {
    this.#waiting.set(block, hash)
    for (let h = this.#waiting.get(this.#next); h !== undefined; h = this.#waiting.get(this.#next)) {
      this.#waiting.delete(this.#next++)
      this.#digest.addBlockHash(h)
    }
  }

  /** Throws unless the hashes of blocks 0..count-1, and only those, were added. */
  expect (count: number): void {
    if (this.#next !== count || this.#waiting.size > 0) throw new Error(`the JSONL pass hashed ${this.#next} of ${count} blocks`)
  }
}

// Int32 cells per slot. Every block but a slot's last holds at least blockBytes.
function stride (slotBytes: number, blockBytes: number): number {
  return 2 + 3 * (Math.floor(slotBytes / blockBytes) + 1)
}

/**
 * Takes blocks of `slot` (whose first whole line is line firstLine + 1) until none is left or
 * `limit` were taken, and validates their lines into `schema`: the first bad line, if any.
 */
function takeBlocks (ring: Buffer, slotBytes: number, blocks: BlockTable, slot: number, firstLine: number, schema: SchemaScanner, limit: number): LineFailure | null {
  const base = slot * slotBytes
  for (let taken = 0; taken < limit; taken++) {
    const i = blocks.take(slot)
    if (i < 0) break
    const line = firstLine + blocks.line(slot, i)
    const bad = checkLines(ring, base + blocks.start(slot, i), base + blocks.end(slot, i), line, schema)
    if (bad !== null) return { line: line + bad.line + 1, reason: bad.reason }
  }
  return null
}

/**
 * Splits chunks into lines, records the offsets of records and cuts the lines into blocks;
 * validates the blocks it takes and the lines that span chunks.
 */
class LineScanner {
  records = 0
  /** The schema of the lines validated here. */
  readonly schema = new SchemaScanner()
  /** The first bad line found here. */
  failure: LineFailure | undefined
  #line = 0
  #writer: OffsetIndexWriter
  #ring: Buffer
  #slotBytes: number
  #blocks: BlockTable
  // Per slot: the number of lines before the chunk's first whole line.
  #firstLines: number[] = []
  // The slots whose blocks the main thread has still to take, should the pass stop.
  #open: number[] = []
  // The unfinished last line of the previous chunk(s), copied out of the reused slot.
  #carry: Buffer[] = []
  #carryBytes = 0
  #carryStart = 0
  // The line completed at the start of the last chunk, to validate, and its number.
  #carried: Buffer | undefined
  #carriedLine = 0

  constructor (writer: OffsetIndexWriter, ring: Buffer, slotBytes: number, blocks: BlockTable) {
    this.#writer = writer
    this.#ring = ring
    this.#slotBytes = slotBytes
    this.#blocks = blocks
  }

  /**
   * Scans `chunk` (ring slot `slot`, whose first byte is at file offset `base`): indexes its
   * lines and publishes them as blocks of the slot. Returns the number of lines before the
   * first of them.
   */
  scan (chunk: Buffer, base: number, slot: number): number {
    let p = 0
    // A UTF-8 byte order mark is not part of the first record.
    if (base === 0 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) p = 3
    this.#blocks.publish(slot, 0)
    this.#firstLines[slot] = this.#line

    if (this.#carryBytes > 0) {
      const nl = chunk.indexOf(10)
      if (nl === -1) {
        this.#keep(chunk, 0, base)
        return this.#line
      }
      this.#carry.push(chunk.subarray(0, nl))
      const line = Buffer.concat(this.#carry, this.#carryBytes + nl)
      this.#dropCarry()
      if (!isUtf8(line)) this.#notUtf8()
      this.#index(line, 0, line.length, this.#carryStart)
      this.#carried = line
      this.#carriedLine = this.#line
      p = nl + 1
    }

    const firstLine = this.#line
    this.#firstLines[slot] = firstLine
    const last = chunk.lastIndexOf(10)
    if (last < p) {
      if (p < chunk.length) this.#keep(chunk, p, base)
      return firstLine
    }
    // One UTF-8 check over all whole lines of the chunk (simdutf, several GB/s).
    if (!isUtf8(chunk.subarray(p, last))) this.#findNotUtf8(chunk, p)

    const blockBytes = this.#blocks.blockBytes
    let count = 0
    let blockStart = p
    let blockLine = 0
    let nl: number
    while (p <= last) {
      nl = chunk.indexOf(10, p)
      this.#index(chunk, p, nl, base + p)
      p = nl + 1
      if (p - blockStart >= blockBytes || p > last) {
        this.#blocks.set(slot, count++, blockStart, p, blockLine)
        blockStart = p
        blockLine = this.#line - firstLine
      }
    }
    this.#blocks.publish(slot, count)
    this.#open.push(slot)
    if (p < chunk.length) this.#keep(chunk, p, base)
    return firstLine
  }

  /** The number of lines before the first whole line of the chunk in `slot`. */
  firstLineOf (slot: number): number {
    return this.#firstLines[slot]!
  }

  /** Takes blocks of `slot` (at most `limit`) and validates them. */
  validate (slot: number, firstLine: number, limit: number): void {
    const open = this.#open.indexOf(slot)
    if (open >= 0) this.#open.splice(open, 1)
    const bad = takeBlocks(this.#ring, this.#slotBytes, this.#blocks, slot, firstLine, this.schema, limit)
    if (bad !== null) this.#fail(bad.line, bad.reason)
  }

  /** Validates the line completed at the start of the last chunk scanned. */
  checkCarried (): void {
    const line = this.#carried
    if (line === undefined) return
    this.#carried = undefined
    this.#check(line, this.#carriedLine)
  }

  /** Ends the pass: a last line without a newline is a record too. */
  finish (fileEnd: number): void {
    if (this.#carryBytes === 0) return
    const line = Buffer.concat(this.#carry, this.#carryBytes)
    this.#dropCarry()
    if (!isUtf8(line)) this.#notUtf8()
    this.#index(line, 0, line.length, fileEnd - line.length)
    this.#check(line, this.#line)
  }

  /** After a failure: validates what the main thread still had to, recording failures only. */
  drain (): void {
    for (const slot of this.#open.splice(0)) {
      const bad = takeBlocks(this.#ring, this.#slotBytes, this.#blocks, slot, this.#firstLines[slot]!, this.schema, Infinity)
      if (bad !== null) this.failure = earliest(this.failure, bad)
    }
    try {
      this.checkCarried()
    } catch (err) {
      if (!(err instanceof AppError)) throw err
    }
  }

  #keep (chunk: Buffer, from: number, base: number): void {
    if (this.#carryBytes === 0) this.#carryStart = base + from
    // Copy: the slot is overwritten by a later read.
    this.#carry.push(Buffer.from(chunk.subarray(from)))
    this.#carryBytes += chunk.length - from
    if (this.#carryBytes > MAX_RECORD_BYTES) {
      this.#fail(this.#line + 1, `the line is longer than ${MAX_RECORD_BYTES >> 20} MiB; split the record or check that the file is JSON Lines`)
    }
  }

  #dropCarry (): void {
    this.#carry = []
    this.#carryBytes = 0
  }

  // Counts a line and records its offset if it is not blank.
  #index (b: Buffer, start: number, end: number, fileOffset: number): void {
    this.#line++
    if (b[start] !== 0x7b && skipBlanks(b, start, end) === end) return
    this.#writer.add(fileOffset)
    this.records++
  }

  // Validates a whole line (counted already) on its own.
  #check (b: Buffer, line: number): void {
    const p = skipBlanks(b, 0, b.length)
    if (p === b.length) return
    const problem = lineProblem(b, p, b.length, this.schema, line)
    if (problem !== undefined) this.#fail(line, problem)
  }

  #findNotUtf8 (chunk: Buffer, from: number): never {
    let line = this.#line
    let p = from
    let nl: number
    while ((nl = chunk.indexOf(10, p)) !== -1) {
      line++
      if (!isUtf8(chunk.subarray(p, nl))) break
      p = nl + 1
    }
    this.#line = line - 1
    this.#notUtf8()
  }

  #notUtf8 (): never {
    this.#fail(this.#line + 1, 'the line is not valid UTF-8 text; save the file as UTF-8')
  }

  #fail (line: number, reason: string): never {
    this.failure = earliest(this.failure, { line, reason })
    throw invalidLine(line, reason)
  }
}

/**
 * Why line number `line`, bytes [start, end) (start at its first non-blank byte), is not a
 * record, or undefined if it is a JSON object, which `schema` then adds. Should JSON.parse
 * accept an object the fast validator refused, JSON.parse wins: the validator is only a fast
 * path.
 */
function lineProblem (b: Buffer, start: number, end: number, schema: SchemaScanner, line: number): string | undefined {
  if (schema.addLine(b, start, end, line)) return undefined
  let value: unknown
  try {
    value = JSON.parse(b.toString('utf8', start, end))
  } catch (err) {
    return `not valid JSON (${(err as Error).message})`
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return `each line must be a JSON object ({...}), got ${describe(value)}`
  }
  schema.addRecord(value, line)
  return undefined
}

/**
 * The first bad line among the whole lines [from, to) of `b`, the first being line
 * firstLine + 1: its 0-based position there. The good ones before it are added to `schema`.
 */
function checkLines (b: Buffer, from: number, to: number, firstLine: number, schema: SchemaScanner): { line: number, reason: string } | null {
  let line = 0
  for (let p = from; p < to; line++) {
    const nl = b.indexOf(10, p)
    const start = skipBlanks(b, p, nl)
    if (start < nl) {
      const reason = lineProblem(b, start, nl, schema, firstLine + line + 1)
      if (reason !== undefined) return { line, reason }
    }
    p = nl + 1
  }
  return null
}

function invalidLine (line: number, reason: string): AppError {
  return new AppError('SOURCE_INVALID', `line ${line}: ${reason}`)
}

function describe (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  return `a ${typeof value}`
}

// ---------------------------------------------------------------------------------------
// The worker hashes (when it claims them first) and validates blocks of the chunks it is told
// about, reading the ring through shared memory, so no chunk is copied, and keeps the schema
// of the lines it validated. The main thread never waits for the worker to start (~50 ms, and
// much more when other processes hold the cores): until the worker says it runs, the main
// thread hashes every chunk and validates every block.

interface WorkerInit {
  role: typeof WORKER_ROLE
  ring: SharedArrayBuffer
  slotBytes: number
  /** SlotHashes' memory, when the chunks are blocks of the digest. */
  hashes?: SharedArrayBuffer
  blocks: SharedArrayBuffer
  blockBytes: number
  /** [1 once the worker runs]: read at once, where a message waits until the main thread is idle. */
  state: SharedArrayBuffer
}

type WorkerReply = SchemaSummary | LineFailure | null

class ChunkWorker {
  /** The first bad line the worker found, once the submitted chunks are settled. */
  failure: LineFailure | undefined
  /** Settles when the worker runs, or fails to start. */
  readonly started: Promise<void>
  // The worker this pass started, or the port of one the caller started (and stops).
  #worker: Worker | undefined
  #port: Worker | MessagePort
  #state = new Int32Array(new SharedArrayBuffer(4))
  #onStart: () => void = ignore
  #onStartFailed: (err: Error) => void = ignore
  #waiting: Array<{ resolve: (reply: WorkerReply) => void, reject: (err: Error) => void }> = []
  #submitted = 0
  #broken: Error | undefined
  #closed = false

  constructor (ring: SharedArrayBuffer, slotBytes: number, blocks: BlockTable, hashes: SlotHashes | undefined, peer?: MessagePort) {
    const init: WorkerInit = {
      role: WORKER_ROLE,
      ring,
      slotBytes,
      ...(hashes !== undefined ? { hashes: hashes.buffer } : {}),
      blocks: blocks.buffer as SharedArrayBuffer,
      blockBytes: blocks.blockBytes,
      state: this.#state.buffer as SharedArrayBuffer
    }
    this.started = new Promise((resolve, reject) => {
      this.#onStart = resolve
      this.#onStartFailed = reject
    })
    this.started.catch(ignore)
    const onReply = (reply: WorkerReply | 'ready'): void => {
      if (reply === 'ready') this.#onStart()
      else this.#waiting.shift()?.resolve(reply)
    }
    if (peer === undefined) {
      const worker = new Worker(workerSource(), { eval: true, workerData: init })
      worker.on('message', onReply)
      worker.on('error', (err) => this.#fail(err))
      worker.on('exit', (code) => this.#fail(new Error(`the JSONL indexing worker stopped (exit code ${code})`)))
      this.#worker = worker
      this.#port = worker
    } else {
      peer.on('message', onReply)
      // The port closes when the worker's thread ends (or fails to start).
      peer.on('close', () => this.#fail(new Error('the JSONL indexing worker stopped')))
      peer.postMessage(init)
      this.#port = peer
    }
  }

  /** Whether the worker runs. */
  get ready (): boolean {
    return Atomics.load(this.#state, 0) === 1
  }

  /**
   * Has the worker claim the hash of the chunk in ring slot `slot` (`bytes` long, whose first
   * whole line is line firstLine + 1), then take its blocks until none is left. Resolves when
   * the slot may be overwritten; rejects with SOURCE_INVALID for a bad line.
   */
  async submit (slot: number, firstLine: number, bytes: number): Promise<void> {
    this.#submitted++
    const reply = await this.#ask([slot, firstLine, bytes])
    if (reply !== null && 'reason' in reply) {
      this.failure = earliest(this.failure, reply)
      throw invalidLine(reply.line, reply.reason)
    }
  }

  /** Once every chunk was submitted: the schema of the lines validated there. */
  async finish (): Promise<SchemaSummary> {
    if (this.#submitted === 0) return EMPTY_SUMMARY
    const reply = await this.#ask([-1, 0])
    if (reply === null || !('columns' in reply)) throw new Error('the JSONL indexing worker did not finish')
    return reply
  }

  async close (): Promise<void> {
    this.#closed = true
    if (this.#worker !== undefined) await this.#worker.terminate()
    else (this.#port as MessagePort).close()
  }

  #ask (msg: number[]): Promise<WorkerReply> {
    if (this.#broken !== undefined) return Promise.reject(this.#broken)
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject })
      this.#port.postMessage(msg)
    })
  }

  #fail (err: Error): void {
    if (this.#closed) return
    this.#broken = err
    this.#onStartFailed(err)
    for (const w of this.#waiting.splice(0)) w.reject(err)
  }
}

// This module is the worker's code too (see the end of the file).
function workerSource (): string {
  return workerBootstrap(import.meta.url)
}

/**
 * Starts a chunk worker for a pass to come, in a thread of the caller's: the caller hands
 * `port` to the pass (JsonlIndexOptions.chunkPort), possibly in another thread, and stops
 * `worker` once the pass is over. Indexing a large file thus starts both of its threads at
 * once, instead of the second only when the first is up and reading (index-worker.ts).
 */
export function startChunkWorker (): { worker: Worker, port: MessagePort } {
  const { port1, port2 } = new MessageChannel()
  const worker = new Worker(workerSource(), { eval: true, workerData: { role: WORKER_ROLE, port: port2 } satisfies PortedInit, transferList: [port2] })
  return { worker, port: port1 }
}

interface PortedInit { role: typeof WORKER_ROLE, port: MessagePort }

// The worker's side: 'ready' first, then an answer to each [slot, firstLine, bytes] in file
// order, and the schema summary for [-1, ...] at the end.
function serveChunks (init: WorkerInit, port: MessagePort): void {
  const schema = new SchemaScanner()
  const ring = Buffer.from(init.ring)
  const blocks = new BlockTable(init.blocks, init.slotBytes, init.blockBytes)
  const hashes = init.hashes !== undefined ? new SlotHashes(init.hashes, ring.length / init.slotBytes) : undefined
  port.on('message', ([slot, firstLine, bytes]: number[]) => {
    if (slot! < 0) {
      port.postMessage(schema.summary() satisfies WorkerReply)
      return
    }
    hashes?.claim(slot!, ring.subarray(slot! * init.slotBytes, slot! * init.slotBytes + bytes!))
    port.postMessage(takeBlocks(ring, init.slotBytes, blocks, slot!, firstLine!, schema, Infinity) satisfies WorkerReply)
  })
  Atomics.store(new Int32Array(init.state), 0, 1)
  port.postMessage('ready')
}

if (!isMainThread && (workerData as Partial<WorkerInit> | null)?.role === WORKER_ROLE) {
  const ported = (workerData as Partial<PortedInit>).port
  // Started ahead of its pass (startChunkWorker): the pass sends its ring when it begins.
  if (ported !== undefined) ported.once('message', (init: WorkerInit) => { serveChunks(init, ported) })
  else serveChunks(workerData as WorkerInit, parentPort!)
}
