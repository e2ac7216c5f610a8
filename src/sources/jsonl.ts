// JSON Lines: one JSON object a line. JSON escapes newlines inside strings, so byte 0x0A always
// ends a record and `Buffer.indexOf(10)` finds records exactly (DESIGN.md, "Pitfalls"). Lines
// holding only whitespace are not records. Every record is validated when the source is
// indexed, because batch bodies are later spliced from the raw bytes without parsing them.
//
// Indexing is one pass over large reads into a ring of buffers. The main thread splits each
// chunk into lines, records offsets and validates the first part of the lines; for files of
// 32 MiB and more a worker thread (this same module) hashes the chunk and validates the rest,
// reading the ring through shared memory, and the split follows whichever thread is behind.
// Measured on the 2-core machine (scripts/measure-sources.ts, 1 GiB of ~1 KiB records with
// 64-float vectors, page cache): JSON.parse of every line runs at ~125-165 MiB/s on one core,
// the byte validator below at ~500 MiB/s, and the whole pass at ~420-450 MiB/s (~330 when
// other processes hold a core), about 4 CPU-seconds per GiB over both threads. JSON.parse is
// then only the fallback that words the error message.
import { isUtf8 } from 'node:buffer'
import { createHash, type Hash } from 'node:crypto'
import { open, type FileHandle } from 'node:fs/promises'
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { workerBootstrap } from './worker-bootstrap.js'
import { openIndexedFile, readFull } from './file-io.js'
import { AppError } from '../errors.js'
import { planReads, readPlanSync } from './byte-ranges.js'
import { OffsetIndex, OffsetIndexWriter } from './offset-index.js'
import type { IndexOptions, IndexResult, RecordSource } from './record-source.js'

// Large files: 8 slots of 4 MiB shared with the worker, deep enough to absorb jitter between
// the two threads. Small files: 2 slots of 1 MiB, no worker.
const SLOT_BYTES = 4 << 20
const SLOTS = 8
const SMALL_SLOT_BYTES = 1 << 20
const SMALL_SLOTS = 2
const PROGRESS_BYTES = 8 << 20
// Below this size a worker (~50 ms to start) costs more than it saves.
const WORKER_MIN_BYTES = 32 << 20
// A bound on one record, so a file without newlines cannot grow the carry-over without end.
const MAX_RECORD_BYTES = 64 << 20
const WORKER_ROLE = 'shardfeed:jsonl-chunks'

/**
 * Indexes a JSONL file in one streaming pass: writes the offset index to `indexPath`,
 * validates that every non-blank line is a JSON object, and hashes all bytes.
 * Throws AppError SOURCE_INVALID (`line N: reason`, N the 1-based physical line) on a bad
 * record, and the signal's AbortError when `opts.signal` aborts. On failure the index file is
 * removed.
 */
export async function indexJsonl (filePath: string, indexPath: string, opts: IndexOptions = {}): Promise<IndexResult> {
  const { onProgress, signal } = opts
  signal?.throwIfAborted()
  const fh = await open(filePath, 'r')
  let writer: OffsetIndexWriter | undefined
  let helper: ChunkHelper | undefined
  const released: Array<Promise<void>> = []
  try {
    const total = (await fh.stat()).size
    writer = await OffsetIndexWriter.create(indexPath)
    const offload = total >= WORKER_MIN_BYTES
    const slotBytes = offload ? SLOT_BYTES : SMALL_SLOT_BYTES
    const numSlots = offload ? SLOTS : SMALL_SLOTS
    const ring = offload ? new SharedArrayBuffer(slotBytes * numSlots) : new ArrayBuffer(slotBytes * numSlots)
    helper = offload ? new ChunkWorker(ring as SharedArrayBuffer, slotBytes) : new InlineHelper(ring as ArrayBuffer, slotBytes)
    const slots: Buffer[] = []
    const done: boolean[] = []
    for (let s = 0; s < numSlots; s++) {
      slots.push(Buffer.from(ring, s * slotBytes, slotBytes))
      released.push(Promise.resolve())
      done.push(true)
    }

    const scanner = new LineScanner(writer)
    // The main thread's share of each chunk's lines; the worker validates the rest.
    let share = offload ? 0.5 : 1
    let pos = 0
    let reported = 0
    let s = 0
    let pending = readFull(fh, slots[0]!, 0)
    pending.catch(ignore)
    for (;;) {
      const n = await pending
      if (n === 0) break
      signal?.throwIfAborted()
      // Read ahead into the next slot once the worker is done with it. A worker still busy
      // with the chunk from a whole ring ago is behind: the main thread takes more lines.
      const next = (s + 1) % numSlots
      if (offload) share = done[next]! ? Math.max(0.1, share - 0.01) : Math.min(0.9, share + 0.05)
      const nextPos = pos + n
      const nextSlot = slots[next]!
      pending = released[next]!.then(async () => await readFull(fh, nextSlot, nextPos))
      pending.catch(ignore)

      const split = scanner.scan(slots[s]!.subarray(0, n), pos, share)
      const slot = s
      done[slot] = false
      const task = helper.submit(slot, n, split.from, split.to, split.firstLine)
      task.then(() => { done[slot] = true }, ignore)
      released[slot] = task
      await writer.drain()
      pos = nextPos
      if (onProgress !== undefined && pos - reported >= PROGRESS_BYTES) {
        reported = pos
        onProgress(pos, Math.max(pos, total))
      }
      s = next
    }
    scanner.finish(pos)
    writer.add(pos)
    await Promise.all(released)
    const digest = await helper.digest()
    await writer.close()
    onProgress?.(pos, pos)
    return { numRecords: scanner.records, digest, bytes: pos }
  } catch (err) {
    await writer?.abort()
    // Lines the worker was still checking come before any line the main thread reached.
    await Promise.allSettled(released)
    throw err instanceof AppError ? helper?.failure ?? err : err
  } finally {
    await helper?.close()
    await fh.close()
  }
}

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

/** The lines of a chunk left to the worker: [from, to), the first being line firstLine + 1. */
interface Split {
  from: number
  to: number
  firstLine: number
}

/** Splits chunks into lines, records the offsets of records and validates its share. */
class LineScanner {
  records = 0
  #line = 0
  #writer: OffsetIndexWriter
  // The unfinished last line of the previous chunk(s), copied out of the reused slot.
  #carry: Buffer[] = []
  #carryBytes = 0
  #carryStart = 0

  constructor (writer: OffsetIndexWriter) {
    this.#writer = writer
  }

  /**
   * Scans `chunk`, whose first byte is at file offset `base`. Lines starting in about the
   * first `share` of it are validated here; the rest are only indexed and returned.
   */
  scan (chunk: Buffer, base: number, share: number): Split {
    let p = 0
    // A UTF-8 byte order mark is not part of the first record.
    if (base === 0 && chunk[0] === 0xef && chunk[1] === 0xbb && chunk[2] === 0xbf) p = 3

    if (this.#carryBytes > 0) {
      const nl = chunk.indexOf(10)
      if (nl === -1) {
        this.#keep(chunk, 0, base)
        return { from: 0, to: 0, firstLine: this.#line }
      }
      this.#carry.push(chunk.subarray(0, nl))
      const line = Buffer.concat(this.#carry, this.#carryBytes + nl)
      this.#dropCarry()
      if (!isUtf8(line)) this.#notUtf8()
      this.#check(line, 0, line.length, this.#carryStart)
      p = nl + 1
    }

    const last = chunk.lastIndexOf(10)
    if (last < p) {
      if (p < chunk.length) this.#keep(chunk, p, base)
      return { from: 0, to: 0, firstLine: this.#line }
    }
    // One UTF-8 check over all whole lines of the chunk (simdutf, several GB/s).
    if (!isUtf8(chunk.subarray(p, last))) this.#findNotUtf8(chunk, p)

    const split = share >= 1 ? last + 1 : chunk.indexOf(10, p + Math.floor((last - p) * share)) + 1
    let nl: number
    while (p < split) {
      nl = chunk.indexOf(10, p)
      this.#check(chunk, p, nl, base + p)
      p = nl + 1
    }
    const firstLine = this.#line
    while (p <= last) {
      nl = chunk.indexOf(10, p)
      this.#index(chunk, p, nl, base + p)
      p = nl + 1
    }
    if (p < chunk.length) this.#keep(chunk, p, base)
    return { from: split, to: last + 1, firstLine }
  }

  /** Ends the pass: a last line without a newline is a record too. */
  finish (fileEnd: number): void {
    if (this.#carryBytes === 0) return
    const line = Buffer.concat(this.#carry, this.#carryBytes)
    this.#dropCarry()
    if (!isUtf8(line)) this.#notUtf8()
    this.#check(line, 0, line.length, fileEnd - line.length)
  }

  #keep (chunk: Buffer, from: number, base: number): void {
    if (this.#carryBytes === 0) this.#carryStart = base + from
    // Copy: the slot is overwritten by a later read.
    this.#carry.push(Buffer.from(chunk.subarray(from)))
    this.#carryBytes += chunk.length - from
    if (this.#carryBytes > MAX_RECORD_BYTES) {
      throw invalidLine(this.#line + 1, `the line is longer than ${MAX_RECORD_BYTES >> 20} MiB; split the record or check that the file is JSON Lines`)
    }
  }

  #dropCarry (): void {
    this.#carry = []
    this.#carryBytes = 0
  }

  // A line validated here.
  #check (b: Buffer, start: number, end: number, fileOffset: number): void {
    this.#line++
    const p = skipBlanks(b, start, end)
    if (p === end) return
    const problem = lineProblem(b, p, end)
    if (problem !== undefined) throw invalidLine(this.#line, problem)
    this.#writer.add(fileOffset)
    this.records++
  }

  // A line the worker validates: only its offset here.
  #index (b: Buffer, start: number, end: number, fileOffset: number): void {
    this.#line++
    if (b[start] !== 0x7b && skipBlanks(b, start, end) === end) return
    this.#writer.add(fileOffset)
    this.records++
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
    throw invalidLine(this.#line + 1, 'the line is not valid UTF-8 text; save the file as UTF-8')
  }
}

/**
 * Why the line [start, end) is not a record (start at its first non-blank byte), or
 * undefined if it is a JSON object. Should JSON.parse accept an object the fast validator
 * refused, JSON.parse wins: the validator is only a fast path.
 */
function lineProblem (b: Buffer, start: number, end: number): string | undefined {
  if (isJsonObject(b, start, end)) return undefined
  let value: unknown
  try {
    value = JSON.parse(b.toString('utf8', start, end))
  } catch (err) {
    return `not valid JSON (${(err as Error).message})`
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return `each line must be a JSON object ({...}), got ${describe(value)}`
  }
  return undefined
}

/** The first bad line among the whole lines [from, to) of `b`: its 0-based position there. */
function checkLines (b: Buffer, from: number, to: number): { line: number, reason: string } | null {
  let line = 0
  for (let p = from; p < to; line++) {
    const nl = b.indexOf(10, p)
    const start = skipBlanks(b, p, nl)
    if (start < nl) {
      const reason = lineProblem(b, start, nl)
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
// An exact JSON validator over bytes, allocation-free: JSON.parse builds every object and
// converts every float, which is most of its cost. It accepts exactly what JSON.parse accepts
// on valid UTF-8 (checked separately): the RFC 8259 grammar, whitespace = space, tab, CR, LF,
// any depth. test/sources/jsonl.test.ts checks it against JSON.parse on random inputs.

let stack = new Uint8Array(256)

/** True when bytes [start, end) of `b` are one JSON object, with optional whitespace around. */
export function isJsonObject (b: Uint8Array, start: number, end: number): boolean {
  let p = skipBlanks(b, start, end)
  if (p >= end || b[p] !== 0x7b) return false
  let depth = 0
  let top = 0 // the innermost open bracket: 0x7b `{`, 0x5b `[`, 0 at top level
  for (;;) {
    // A value starts at p.
    if (p >= end) return false
    let c = b[p]!
    if (c === 0x22) {
      p = skipString(b, p + 1, end)
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      p = skipNumber(b, p, end)
      // Arrays of numbers (feature vectors) dominate typical records: stay in this loop.
      if (top === 0x5b) {
        while (p >= 0 && p + 1 < end && b[p] === 0x2c && ((c = b[p + 1]!) === 0x2d || ((c - 0x30) >>> 0) <= 9)) {
          p = skipNumber(b, p + 1, end)
        }
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (depth === stack.length) {
        const grown = new Uint8Array(depth * 2)
        grown.set(stack)
        stack = grown
      }
      stack[depth++] = c
      top = c
      p = skipBlanks(b, p + 1, end)
      if (p < end && b[p] === c + 2) { // `{}` or `[]`
        p++
        depth--
        top = depth > 0 ? stack[depth - 1]! : 0
      } else {
        if (c === 0x7b && (p = skipKey(b, p, end)) < 0) return false
        continue
      }
    } else if (c === 0x74) {
      p = p + 4 <= end && b[p + 1] === 0x72 && b[p + 2] === 0x75 && b[p + 3] === 0x65 ? p + 4 : -1
    } else if (c === 0x66) {
      p = p + 5 <= end && b[p + 1] === 0x61 && b[p + 2] === 0x6c && b[p + 3] === 0x73 && b[p + 4] === 0x65 ? p + 5 : -1
    } else if (c === 0x6e) {
      p = p + 4 <= end && b[p + 1] === 0x75 && b[p + 2] === 0x6c && b[p + 3] === 0x6c ? p + 4 : -1
    } else {
      return false
    }
    if (p < 0) return false

    // After a value: a comma leads to the next value, a closing bracket pops.
    for (;;) {
      p = skipBlanks(b, p, end)
      if (depth === 0) return p === end
      if (p >= end) return false
      c = b[p]!
      if (c === 0x2c) {
        p = skipBlanks(b, p + 1, end)
        if (top === 0x7b && (p = skipKey(b, p, end)) < 0) return false
        break
      }
      if (c !== top + 2) return false
      p++
      depth--
      top = depth > 0 ? stack[depth - 1]! : 0
    }
  }
}

function skipBlanks (b: Uint8Array, p: number, end: number): number {
  while (p < end) {
    const c = b[p]!
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break
    p++
  }
  return p
}

// `"key"` then `:`, ending at the start of the member's value; -1 if malformed.
function skipKey (b: Uint8Array, p: number, end: number): number {
  if (p >= end || b[p] !== 0x22) return -1
  p = skipString(b, p + 1, end)
  if (p < 0) return -1
  p = skipBlanks(b, p, end)
  if (p >= end || b[p] !== 0x3a) return -1
  return skipBlanks(b, p + 1, end)
}

// From just after the opening quote to just after the closing one; -1 if malformed.
function skipString (b: Uint8Array, p: number, end: number): number {
  while (p < end) {
    const c = b[p]!
    if (c === 0x22) return p + 1
    if (c === 0x5c) {
      if (p + 1 >= end) return -1
      const e = b[p + 1]!
      if (e === 0x75) {
        if (p + 6 > end || !isHex(b[p + 2]!) || !isHex(b[p + 3]!) || !isHex(b[p + 4]!) || !isHex(b[p + 5]!)) return -1
        p += 6
      } else if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
        p += 2
      } else {
        return -1
      }
    } else if (c < 0x20) {
      return -1
    } else {
      p++
    }
  }
  return -1
}

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; -1 if malformed.
// `(c - 0x30) >>> 0 <= 9` tests for a digit with one unsigned comparison.
function skipNumber (b: Uint8Array, p: number, end: number): number {
  let c = b[p]!
  if (c === 0x2d) {
    if (++p >= end) return -1
    c = b[p]!
  }
  if (c === 0x30) {
    p++
  } else if (c >= 0x31 && c <= 0x39) {
    p++
    while (p < end && ((b[p]! - 0x30) >>> 0) <= 9) p++
  } else {
    return -1
  }
  if (p < end && b[p] === 0x2e) {
    p++
    if (p >= end || ((b[p]! - 0x30) >>> 0) > 9) return -1
    p++
    while (p < end && ((b[p]! - 0x30) >>> 0) <= 9) p++
  }
  if (p < end && ((c = b[p]!) === 0x65 || c === 0x45)) {
    p++
    if (p < end && ((c = b[p]!) === 0x2b || c === 0x2d)) p++
    if (p >= end || ((b[p]! - 0x30) >>> 0) > 9) return -1
    p++
    while (p < end && ((b[p]! - 0x30) >>> 0) <= 9) p++
  }
  return p
}

function isHex (c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
}

// ---------------------------------------------------------------------------------------
// The work that may leave the main thread: sha256 of every chunk, in file order, and the
// validation of the lines the scanner left over. The worker reads the ring's slots through
// shared memory, so no chunk is copied.

interface ChunkHelper {
  /**
   * Hashes bytes [0, n) of ring slot `slot` and validates its whole lines [from, to) (the
   * first is line firstLine + 1). Resolves when the slot may be overwritten; rejects with
   * SOURCE_INVALID for a bad line.
   */
  submit: (slot: number, n: number, from: number, to: number, firstLine: number) => Promise<void>
  digest: () => Promise<string>
  /** The first bad line found, once the submitted chunks are settled. */
  readonly failure: AppError | undefined
  close: () => Promise<void>
}

class InlineHelper implements ChunkHelper {
  failure: AppError | undefined
  #hash: Hash = createHash('sha256')
  #ring: Buffer
  #slotBytes: number

  constructor (ring: ArrayBuffer, slotBytes: number) {
    this.#ring = Buffer.from(ring)
    this.#slotBytes = slotBytes
  }

  async submit (slot: number, n: number, from: number, to: number, firstLine: number): Promise<void> {
    const base = slot * this.#slotBytes
    this.#hash.update(this.#ring.subarray(base, base + n))
    const bad = checkLines(this.#ring, base + from, base + to)
    if (bad !== null) throw (this.failure ??= invalidLine(firstLine + bad.line + 1, bad.reason))
  }

  async digest (): Promise<string> {
    return this.#hash.digest('hex')
  }

  async close (): Promise<void> {}
}

interface WorkerInit {
  role: typeof WORKER_ROLE
  ring: SharedArrayBuffer
  slotBytes: number
}

type WorkerReply = string | { line: number, reason: string } | null

class ChunkWorker implements ChunkHelper {
  failure: AppError | undefined
  #worker: Worker
  #waiting: Array<{ resolve: (reply: WorkerReply) => void, reject: (err: Error) => void }> = []
  #broken: Error | undefined
  #closed = false

  constructor (ring: SharedArrayBuffer, slotBytes: number) {
    const init: WorkerInit = { role: WORKER_ROLE, ring, slotBytes }
    this.#worker = new Worker(workerSource(), { eval: true, workerData: init })
    this.#worker.on('message', (reply: WorkerReply) => this.#waiting.shift()?.resolve(reply))
    this.#worker.on('error', (err) => this.#fail(err))
    this.#worker.on('exit', (code) => this.#fail(new Error(`the JSONL indexing worker stopped (exit code ${code})`)))
  }

  async submit (slot: number, n: number, from: number, to: number, firstLine: number): Promise<void> {
    const reply = await this.#ask([slot, n, from, to])
    if (reply !== null && typeof reply === 'object') {
      throw (this.failure ??= invalidLine(firstLine + reply.line + 1, reply.reason))
    }
  }

  async digest (): Promise<string> {
    return String(await this.#ask([-1, 0, 0, 0]))
  }

  async close (): Promise<void> {
    this.#closed = true
    await this.#worker.terminate()
  }

  #ask (msg: number[]): Promise<WorkerReply> {
    if (this.#broken !== undefined) return Promise.reject(this.#broken)
    return new Promise((resolve, reject) => {
      this.#waiting.push({ resolve, reject })
      this.#worker.postMessage(msg)
    })
  }

  #fail (err: Error): void {
    if (this.#closed) return
    this.#broken = err
    for (const w of this.#waiting.splice(0)) w.reject(err)
  }
}

// This module is the worker's code too (see the end of the file).
function workerSource (): string {
  return workerBootstrap(import.meta.url)
}

// The worker's side: messages [slot, n, from, to] in file order, [-1, ...] for the digest.
function serveChunks (init: WorkerInit): void {
  const port = parentPort!
  const hash = createHash('sha256')
  const ring = Buffer.from(init.ring)
  port.on('message', ([slot, n, from, to]: number[]) => {
    if (slot! < 0) {
      port.postMessage(hash.digest('hex'))
      return
    }
    const base = slot! * init.slotBytes
    hash.update(ring.subarray(base, base + n!))
    port.postMessage(checkLines(ring, base + from!, base + to!) satisfies WorkerReply)
  })
}

if (!isMainThread && (workerData as Partial<WorkerInit> | null)?.role === WORKER_ROLE) {
  serveChunks(workerData as WorkerInit)
}
