// The source digest (source-digest.ts) against its definition (expect.ts's sourceDigest),
// whatever the sizes of the pieces it is fed and whoever hashed its blocks, the addon on
// libuv's pool included.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { open, type FileHandle } from 'node:fs/promises'
import os from 'node:os'
import { describe, test } from 'node:test'
import { DIGEST_BLOCK_BYTES, hashBlock, SourceDigest } from '../../src/sources/source-digest.js'
import { startFileDigest, warmFileDigest } from '../../src/sources/file-io.js'
import { addonFunction } from '../../src/native/addon.js'
import { sourceDigest } from './expect.js'
import { tempFiles } from './temp-files.js'

const bytes = randomBytes(2 * DIGEST_BLOCK_BYTES + 12345)

test('pieces of any size, across block ends, give the defined digest', () => {
  for (const sizes of [[bytes.length], [1, 2, 3, DIGEST_BLOCK_BYTES, 7], [DIGEST_BLOCK_BYTES - 1, 1, DIGEST_BLOCK_BYTES + 1], [999_999]]) {
    const digest = new SourceDigest()
    let at = 0
    for (let i = 0; at < bytes.length; i++) {
      const n = sizes[i % sizes.length]!
      digest.update(bytes.subarray(at, at + n))
      at += n
    }
    assert.equal(digest.hex(), sourceDigest(bytes), String(sizes))
  }
})

test('blocks hashed elsewhere give the same digest, and an empty source has no block', () => {
  const digest = new SourceDigest()
  const hash = Buffer.alloc(32)
  for (let at = 0; at < bytes.length; at += DIGEST_BLOCK_BYTES) {
    hashBlock(bytes.subarray(at, at + DIGEST_BLOCK_BYTES), hash, 0)
    digest.addBlockHash(hash)
  }
  assert.equal(digest.hex(), sourceDigest(bytes))
  assert.equal(new SourceDigest().hex(), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855')
})

test('a block hash cannot follow part of a block', () => {
  const digest = new SourceDigest()
  digest.update(bytes.subarray(0, 10))
  assert.throws(() => { digest.addBlockHash(Buffer.alloc(32)) }, /whole blocks/)
})

describe('the file hashed on the pool by the addon (startFileDigest)', () => {
  const files = tempFiles('digest', 'bin')
  const hashFileBlocks = addonFunction('hashFileBlocks')

  /** Runs `use` with the file at `path` open, then closes it. */
  async function withOpen (path: string, use: (fh: FileHandle) => Promise<void>): Promise<void> {
    const fh = await open(path, 'r')
    try {
      await use(fh)
    } finally {
      await fh.close()
    }
  }

  /** Runs `use` with a new file of `content` open. */
  async function withFile (content: Buffer, use: (fh: FileHandle) => Promise<void>): Promise<void> {
    await withOpen((await files.put(content)).file, use)
  }

  /** A stop flag already set: the job stops before its first block. */
  function stoppedFlag (): Int32Array {
    const flag = new Int32Array(new SharedArrayBuffer(4))
    flag[0] = 1
    return flag
  }

  test('files across block ends give the defined digest and their length', async () => {
    assert.ok(hashFileBlocks !== undefined, 'the addon is built by npm install and has hashFileBlocks')
    for (const size of [0, 1, DIGEST_BLOCK_BYTES - 1, DIGEST_BLOCK_BYTES, DIGEST_BLOCK_BYTES + 1, bytes.length]) {
      await withFile(bytes.subarray(0, size), async (fh) => {
        const job = startFileDigest(fh)
        assert.ok(job !== undefined)
        assert.deepEqual(await job.done, { digest: sourceDigest(bytes.subarray(0, size)), bytes: size }, `size ${size}`)
      })
    }
  })

  test('a stopped job, a read error and bad arguments reject', async () => {
    assert.ok(hashFileBlocks !== undefined)
    await withFile(bytes, async (fh) => {
      const stopped = stoppedFlag()
      await assert.rejects(hashFileBlocks(fh.fd, DIGEST_BLOCK_BYTES, stopped)!, { errno: os.constants.errno.ECANCELED })
      assert.throws(() => hashFileBlocks(-1, DIGEST_BLOCK_BYTES, stopped), TypeError)
      assert.throws(() => hashFileBlocks(fh.fd, 0, stopped), TypeError)
      assert.throws(() => hashFileBlocks(fh.fd, DIGEST_BLOCK_BYTES, new Int32Array(0)), TypeError)
      assert.throws(() => hashFileBlocks(fh.fd, DIGEST_BLOCK_BYTES, new Uint8Array(4) as unknown as Int32Array), TypeError)
    })
    await withOpen(files.dir(), async (dir) => {
      await assert.rejects(startFileDigest(dir)!.done, { errno: os.constants.errno.EISDIR })
    })
  })

  test('one job at a time in the process: the next caller hashes on its own thread', async () => {
    assert.ok(hashFileBlocks !== undefined)
    await withFile(bytes, async (fh) => {
      // ~8 MiB take milliseconds to hash; the second call comes microseconds after the first.
      const first = startFileDigest(fh)
      assert.ok(first !== undefined)
      assert.equal(startFileDigest(fh), undefined)
      assert.equal(hashFileBlocks(fh.fd, DIGEST_BLOCK_BYTES, new Int32Array(new SharedArrayBuffer(4))), null)
      assert.equal((await first.done).digest, sourceDigest(bytes))
      // Done, stopped or failed, a job makes room for the next.
      const next = startFileDigest(fh)
      assert.ok(next !== undefined)
      next.stop()
      await next.done.catch(() => {})
      await assert.rejects(hashFileBlocks(fh.fd, DIGEST_BLOCK_BYTES, stoppedFlag())!, { errno: os.constants.errno.ECANCELED })
      const last = startFileDigest(fh)
      assert.ok(last !== undefined)
      assert.equal((await last.done).digest, sourceDigest(bytes))
    })
  })

  test('warming the hasher needs no file of its own', async () => {
    await warmFileDigest()
  })
})
