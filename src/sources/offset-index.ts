// The byte-offset index of a line- or row-oriented source: (N+1) little-endian uint64 values,
// offset[i] = the byte where record i starts and offset[N] = the end of the last record's
// region. Record i lives in [offset[i], offset[i+1]); the region may end with blank lines,
// which each format trims or skips. 8 bytes a record is the only memory that grows with a
// dataset (DESIGN.md, "O(1) memory"), so the reader keeps it as one typed array.
import { open, rm, type FileHandle } from 'node:fs/promises'
import { endianness } from 'node:os'

const TWO_32 = 4294967296
const BUFFER_BYTES = 1 << 20
// Reads of the index file stay below fs's 2 GiB limit per call.
const READ_PIECE = 1 << 26

/**
 * Streams offsets to an index file. `add` only fills memory; callers `await drain()` now and
 * then (after each chunk of source) so at most a few MiB are buffered, and `close()` at the end.
 */
export class OffsetIndexWriter {
  readonly path: string
  #fh: FileHandle
  #buf = Buffer.allocUnsafe(BUFFER_BYTES)
  #used = 0
  #full: Buffer[] = []
  #count = 0
  #last = 0
  #closed = false

  private constructor (filePath: string, fh: FileHandle) {
    this.path = filePath
    this.#fh = fh
  }

  /** Creates (or truncates) the index file at `filePath`. */
  static async create (filePath: string): Promise<OffsetIndexWriter> {
    return new OffsetIndexWriter(filePath, await open(filePath, 'w'))
  }

  /** Offsets added so far (N+1 once the end offset is in). */
  get count (): number {
    return this.#count
  }

  /** Appends one offset: a non-negative integer, not smaller than the previous one. */
  add (offset: number): void {
    if (!Number.isSafeInteger(offset) || offset < this.#last) {
      throw new RangeError(`offset ${offset} after ${this.#last}: offsets must be non-decreasing safe integers`)
    }
    this.#last = offset
    if (this.#used === BUFFER_BYTES) {
      this.#full.push(this.#buf)
      this.#buf = Buffer.allocUnsafe(BUFFER_BYTES)
      this.#used = 0
    }
    const buf = this.#buf
    const at = this.#used
    // `>>> 0` keeps the low 32 bits of any integer below 2^53; no BigInt needed.
    buf.writeUInt32LE(offset >>> 0, at)
    buf.writeUInt32LE(Math.floor(offset / TWO_32), at + 4)
    this.#used = at + 8
    this.#count++
  }

  /** Writes the full buffers collected so far. */
  async drain (): Promise<void> {
    while (this.#full.length > 0) {
      const buf = this.#full.shift()!
      await this.#fh.write(buf, 0, buf.length)
    }
  }

  /** Writes the rest, syncs (the caller renames the file into place next) and closes. */
  async close (): Promise<void> {
    if (this.#closed) return
    await this.drain()
    if (this.#used > 0) await this.#fh.write(this.#buf, 0, this.#used)
    await this.#fh.datasync()
    this.#closed = true
    await this.#fh.close()
  }

  /** Closes and deletes the unfinished file (indexing failed or was aborted). */
  async abort (): Promise<void> {
    if (!this.#closed) {
      this.#closed = true
      await this.#fh.close().catch(() => {})
    }
    await rm(this.path, { force: true })
  }
}

/** Thrown for an index file that cannot be one this module wrote. */
export class CorruptIndexError extends Error {
  constructor (filePath: string, why: string) {
    super(`offset index ${filePath} is corrupt (${why}); delete it so the source is indexed again`)
    this.name = 'CorruptIndexError'
  }
}

/**
 * An offset index held in memory as pairs of uint32 (low, high) words, so `start(i)` is two
 * array loads and a multiply-add: no BigInt and no DataView on the read path.
 */
export class OffsetIndex {
  readonly numRecords: number
  #words: Uint32Array

  private constructor (words: Uint32Array) {
    this.#words = words
    this.numRecords = words.length / 2 - 1
  }

  /** Loads and checks an index file written by OffsetIndexWriter. */
  static async load (filePath: string): Promise<OffsetIndex> {
    const fh = await open(filePath, 'r')
    try {
      const { size } = await fh.stat()
      if (size < 8 || size % 8 !== 0) throw new CorruptIndexError(filePath, `size ${size} is not a positive multiple of 8`)
      const words = new Uint32Array(size / 4)
      for (let done = 0; done < size;) {
        const want = Math.min(READ_PIECE, size - done)
        const { bytesRead } = await fh.read(new Uint8Array(words.buffer, done, want), 0, want, done)
        if (bytesRead === 0) throw new CorruptIndexError(filePath, 'it shrank while being read')
        done += bytesRead
      }
      if (endianness() === 'BE') swapWords(words)
      const index = new OffsetIndex(words)
      index.#check(filePath)
      return index
    } finally {
      await fh.close()
    }
  }

  /** An index built in memory (inline sources, tests). */
  static fromOffsets (offsets: ArrayLike<number>): OffsetIndex {
    if (offsets.length < 1) throw new RangeError('an offset index needs at least the end offset')
    const words = new Uint32Array(offsets.length * 2)
    for (let i = 0; i < offsets.length; i++) {
      const v = offsets[i]!
      words[2 * i] = v >>> 0
      words[2 * i + 1] = Math.floor(v / TWO_32)
    }
    const index = new OffsetIndex(words)
    index.#check('(in memory)')
    return index
  }

  /** Byte where record i starts. */
  start (i: number): number {
    const w = this.#words
    return w[2 * i]! + w[2 * i + 1]! * TWO_32
  }

  /** Byte where record i's region ends (the next record's start). */
  end (i: number): number {
    return this.start(i + 1)
  }

  /** The end of the last record's region: the source must be at least this long. */
  get endOffset (): number {
    return this.start(this.numRecords)
  }

  // One linear pass at load: a torn or foreign file fails here, not as a wild read later.
  #check (filePath: string): void {
    let prev = 0
    for (let i = 0; i <= this.numRecords; i++) {
      const v = this.start(i)
      if (v < prev || !Number.isSafeInteger(v)) throw new CorruptIndexError(filePath, `offset ${i} goes backwards`)
      prev = v
    }
  }
}

function swapWords (words: Uint32Array): void {
  const view = new DataView(words.buffer, words.byteOffset, words.byteLength)
  for (let i = 0; i < words.length; i++) words[i] = view.getUint32(i * 4, true)
}
