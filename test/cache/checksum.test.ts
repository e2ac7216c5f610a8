// The disk tier's checksum: the SIMD CRC-32 must give zlib's number for every input, since
// values written with one are read with the other (an install without the package's binary
// falls back to zlib on a disk tier the SIMD one wrote).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import fc from 'fast-check'
import { crc32, simdCrc32, zlibCrc32 } from '../../src/cache/checksum.js'

test('the SIMD CRC-32 loads on this platform and is the one in use', () => {
  const simd = simdCrc32()
  assert.ok(simd !== undefined, '@node-rs/crc32 did not load')
  assert.equal(crc32.name, simd.name)
})

test('the SIMD CRC-32 equals zlib\'s on arbitrary bytes, views and sizes', () => {
  const simd = simdCrc32()!
  fc.assert(fc.property(fc.uint8Array({ maxLength: 4096 }), fc.nat(64), (bytes, skip) => {
    const view = bytes.subarray(Math.min(skip, bytes.length))
    return simd(view) === zlibCrc32(view)
  }), { numRuns: 2000 })
  // Sizes around the SIMD path's block lengths, and a batch-sized buffer.
  for (const n of [0, 1, 15, 16, 17, 63, 64, 65, 127, 128, 129, 255, 256, 1023, 1024, 1025, 65_536, 184_320]) {
    const b = randomBytes(n + 7).subarray(7)
    assert.equal(simd(b), zlibCrc32(b), `length ${n}`)
  }
})
