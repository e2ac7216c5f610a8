// Reading the byte regions of a batch's records with as few calls as possible. The regions
// of the distinct requested records are laid out in file order in one Buffer, and records
// that follow each other in the file (no shuffle, contiguous partitions) share one read.
//
// Reads are synchronous preads. Measured with scripts/measure-sources.ts on a 1 GiB JSONL file
// in page cache: a batch of 128 shuffled ~1 KiB records takes ~0.4 ms (median) with readSync
// against ~1.3-1.9 ms with 128 concurrent FileHandle.read calls, whose cost is the libuv
// pool's per-call hand-off rather than the copy. With the addon all of a batch's reads are
// one call (src/native/read-runs.c), which saves readSync's ~2-3 us of binding per read. A
// batch is a few hundred KiB, so its thread is held for well under a millisecond when the data
// is cached; on a cold disk each read waits for the device, which is the price of this choice.
import { readSync } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'
import { AppError } from '../errors.js'
import { addonFunction } from '../native/addon.js'
import type { OffsetIndex } from './offset-index.js'

/** How one batch's records map onto reads and onto the batch buffer. */
export interface ReadPlan {
  /** The distinct requested record numbers, ascending (= file order). */
  readonly records: Float64Array
  /** For each requested position k, the position of its record in `records`. */
  readonly slotOf: Uint32Array
  /** Where record `records[u]` starts in the batch buffer; `at[records.length]` = total bytes. */
  readonly at: Float64Array
  /** Reads to make: triples (file start, file end, buffer position). */
  readonly runs: Float64Array
  readonly numRuns: number
}

/** Plans the reads of `indices` (any order, repeats allowed); throws RangeError on a bad index. */
export function planReads (index: OffsetIndex, indices: readonly number[]): ReadPlan {
  const n = index.numRecords
  const sorted = new Float64Array(indices.length)
  for (let k = 0; k < indices.length; k++) {
    const i = indices[k]!
    if (!Number.isInteger(i) || i < 0 || i >= n) {
      throw new RangeError(`record index ${i} is out of range (the source has ${n} records)`)
    }
    sorted[k] = i
  }
  sorted.sort()

  let unique = 0
  for (let k = 0; k < sorted.length; k++) {
    if (k === 0 || sorted[k] !== sorted[k - 1]) sorted[unique++] = sorted[k]!
  }
  const records = sorted.subarray(0, unique)

  const at = new Float64Array(unique + 1)
  const runs = new Float64Array(unique * 3)
  let numRuns = 0
  let pos = 0
  for (let u = 0; u < unique; u++) {
    const r = records[u]!
    const start = index.start(r)
    const end = index.end(r)
    at[u] = pos
    // Consecutive record numbers are adjacent bytes: extend the current read.
    if (u > 0 && records[u - 1] === r - 1) {
      runs[(numRuns - 1) * 3 + 1] = end
    } else {
      runs[numRuns * 3] = start
      runs[numRuns * 3 + 1] = end
      runs[numRuns * 3 + 2] = pos
      numRuns++
    }
    pos += end - start
  }
  at[unique] = pos

  const slotOf = new Uint32Array(indices.length)
  for (let k = 0; k < indices.length; k++) slotOf[k] = findSlot(records, indices[k]!)
  return { records, slotOf, at, runs, numRuns }
}

/** Reads a plan's regions into one Buffer. */
export function readPlanSync (fd: number, plan: ReadPlan): Buffer {
  const buf = Buffer.allocUnsafe(plan.at[plan.records.length]!)
  if (!readRuns(fd, buf, plan.runs, plan.numRuns)) throw sourceShrank()
  return buf
}

/**
 * Reads runs (triples: file start, file end, position in `buf`) into `buf`: false when the
 * file ended before a run did. The addon's loop when it is built, picked at the first call,
 * else one readSync per run.
 */
export let readRuns = function firstReadRuns (fd: number, buf: Uint8Array, runs: Float64Array, numRuns: number): boolean {
  readRuns = addonFunction('readRuns') ?? readRunsJs
  return readRuns(fd, buf, runs, numRuns)
}

export function readRunsJs (fd: number, buf: Uint8Array, runs: Float64Array, numRuns: number): boolean {
  for (let r = 0; r < numRuns; r++) {
    let filePos = runs[r * 3]!
    const fileEnd = runs[r * 3 + 1]!
    let bufPos = runs[r * 3 + 2]!
    while (filePos < fileEnd) {
      const got = readSync(fd, buf, bufPos, fileEnd - filePos, filePos)
      if (got === 0) return false
      filePos += got
      bufPos += got
    }
  }
  return true
}

/** The same with concurrent FileHandle.read calls (kept for the measurement script). */
export async function readPlanAsync (fh: FileHandle, plan: ReadPlan): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(plan.at[plan.records.length]!)
  const { runs } = plan
  const reads: Array<Promise<void>> = []
  for (let r = 0; r < plan.numRuns; r++) {
    reads.push(readRun(fh, buf, runs[r * 3]!, runs[r * 3 + 1]!, runs[r * 3 + 2]!))
  }
  await Promise.all(reads)
  return buf
}

async function readRun (fh: FileHandle, buf: Buffer, filePos: number, fileEnd: number, bufPos: number): Promise<void> {
  while (filePos < fileEnd) {
    const { bytesRead } = await fh.read(buf, bufPos, fileEnd - filePos, filePos)
    if (bytesRead === 0) throw sourceShrank()
    filePos += bytesRead
    bufPos += bytesRead
  }
}

function sourceShrank (): AppError {
  return new AppError('SOURCE_CHANGED', 'the source file is shorter than when it was indexed; it changed on disk, so register the dataset again')
}

function findSlot (records: Float64Array, i: number): number {
  let lo = 0
  let hi = records.length - 1
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (records[mid]! < i) lo = mid + 1
    else hi = mid
  }
  return lo
}
