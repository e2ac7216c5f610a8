// The source digest (source-digest.ts) against its definition (expect.ts's sourceDigest),
// whatever the sizes of the pieces it is fed and whoever hashed its blocks.
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { test } from 'node:test'
import { DIGEST_BLOCK_BYTES, hashBlock, SourceDigest } from '../../src/sources/source-digest.js'
import { sourceDigest } from './expect.js'

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
