// Small file helpers shared by the sources: full positioned reads, whole-file hashing, and
// opening a file together with its byte-offset index.
import { open, type FileHandle } from 'node:fs/promises'
import { AppError } from '../errors.js'
import type { IndexOptions } from './record-source.js'
import { CorruptIndexError, OffsetIndex } from './offset-index.js'
import { BLOCK_HASH_BYTES, DIGEST_BLOCK_BYTES, SourceDigest } from './source-digest.js'
import { addonFunction } from '../native/addon.js'

const HASH_CHUNK_BYTES = 4 << 20
const PROGRESS_BYTES = 8 << 20

/** Reads until `buf` is full or the file ends; returns the bytes read. */
export async function readFull (fh: FileHandle, buf: Buffer, position: number): Promise<number> {
  let done = 0
  while (done < buf.length) {
    const { bytesRead } = await fh.read(buf, done, buf.length - done, position + done)
    if (bytesRead === 0) break
    done += bytesRead
  }
  return done
}

/**
 * The digest of a whole file (source-digest.ts), read in large chunks with the next read in flight while the
 * current chunk is hashed; reports progress and honours the abort signal. Shared by the
 * formats that need no offset index (npy, parquet).
 */
export async function hashFile (fh: FileHandle, total: number, opts: IndexOptions = {}): Promise<{ digest: string, bytes: number }> {
  const { onProgress, signal } = opts
  const hash = new SourceDigest()
  const bufs = [Buffer.allocUnsafe(HASH_CHUNK_BYTES), Buffer.allocUnsafe(HASH_CHUNK_BYTES)]
  let pos = 0
  let reported = 0
  let b = 0
  let pending = readFull(fh, bufs[0]!, 0)
  for (;;) {
    const n = await pending
    if (n === 0) break
    signal?.throwIfAborted()
    const chunk = bufs[b]!.subarray(0, n)
    pos += n
    // A short read is the end of the file (readFull stops only there).
    const more = n === HASH_CHUNK_BYTES
    if (more) {
      b ^= 1
      pending = readFull(fh, bufs[b]!, pos)
      pending.catch(() => {})
    }
    hash.update(chunk)
    if (onProgress !== undefined && pos - reported >= PROGRESS_BYTES) {
      reported = pos
      onProgress(pos, Math.max(pos, total))
    }
    if (!more) break
  }
  onProgress?.(pos, pos)
  return { digest: hash.hex(), bytes: pos }
}

/** The digest of a file being hashed on libuv's thread pool (startFileDigest). */
export interface FileDigestJob {
  /** The digest of the bytes from offset 0 to the end of the file, and how many there were. */
  done: Promise<{ digest: string, bytes: number }>
  /** Makes `done` reject soon (the pass failed or was aborted); the file must stay open until it settles. */
  stop: () => void
}

/**
 * Starts hashing the whole file on libuv's thread pool (the addon's hashFileBlocks, which
 * reads the file itself), so that a pass reading the same file does not spend its own thread
 * on SHA-256. Undefined without the addon, or while another file is hashed so (one at a time
 * in the process, leaving the pool to the disk tier's reads): the caller then hashes the
 * bytes it reads.
 */
export function startFileDigest (fh: FileHandle): FileDigestJob | undefined {
  const hashFileBlocks = addonFunction('hashFileBlocks')
  if (hashFileBlocks === undefined) return undefined
  // Shared memory: the pool thread reads the flag, and it must not move.
  const flag = new Int32Array(new SharedArrayBuffer(4))
  const started = hashFileBlocks(fh.fd, DIGEST_BLOCK_BYTES, flag)
  if (started === null) return undefined
  const done = started.then(function foldBlockHashes ({ hashes, bytes }) {
    const digest = new SourceDigest()
    for (let p = 0; p < hashes.length; p += BLOCK_HASH_BYTES) digest.addBlockHash(hashes.subarray(p, p + BLOCK_HASH_BYTES))
    return { digest: digest.hex(), bytes }
  })
  // Unobserved when the pass fails first: its error is the one to report.
  done.catch(() => {})
  return { done, stop: function stopFileDigest () { Atomics.store(flag, 0, 1) } }
}

/**
 * Runs the hasher once on an empty file. The first hashFileBlocks job of a process hashed the
 * bench's 69 MiB file in 82-106 ms, the next ones in 56-62 ms (measured; the cause was not
 * found, but any earlier job, even on an empty file, removed it), so an indexing thread warms
 * it as it starts.
 */
export async function warmFileDigest (): Promise<void> {
  const fh = await open('/dev/null', 'r')
  try {
    await startFileDigest(fh)?.done
  } finally {
    await fh.close()
  }
}

/**
 * Opens an indexed source file with its offset index; a file now shorter than the index says
 * is SOURCE_CHANGED.
 */
export async function openIndexedFile (filePath: string, indexPath: string): Promise<{ index: OffsetIndex, fh: FileHandle }> {
  let index: OffsetIndex
  try {
    index = await OffsetIndex.load(indexPath)
  } catch (err) {
    // A damaged or missing index (disk trouble, a cleaned CACHE_DIR) is the dataset's problem
    // to fix by registering again, not a server error.
    if (err instanceof CorruptIndexError || (err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new AppError('SOURCE_INVALID', 'the byte-offset index of this dataset is damaged or missing; DELETE the dataset and register it again')
    }
    throw err
  }
  const fh = await open(filePath, 'r')
  try {
    const { size } = await fh.stat()
    if (size < index.endOffset) {
      throw new AppError('SOURCE_CHANGED', `the source file is ${size} bytes but was ${index.endOffset} when indexed; it changed on disk, so register the dataset again`)
    }
  } catch (err) {
    await fh.close()
    throw err
  }
  return { index, fh }
}
