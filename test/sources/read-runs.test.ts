// A batch's reads in one call: the addon's loop (src/native/read-runs.c) must read exactly
// what the readSync loop reads, report a file that ends early the same way, and refuse runs
// outside the buffer.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs'
import { randomBytes } from 'node:crypto'
import os from 'node:os'
import path from 'node:path'
import fc from 'fast-check'
import { readRuns, readRunsJs } from '../../src/sources/byte-ranges.js'
import { nativeAddon } from '../../src/native/addon.js'

const loaded = nativeAddon()
const native = 'addon' in loaded ? loaded.addon.readRuns : undefined
const dir = mkdtempSync(path.join(os.tmpdir(), 'read-runs-'))
const bytes = randomBytes(256 * 1024)
const file = path.join(dir, 'data.bin')
writeFileSync(file, bytes)
const fd = openSync(file, 'r')
test.after(() => {
  closeSync(fd)
  rmSync(dir, { recursive: true, force: true })
})

test('the addon\'s loop is built, loaded and in use from the first call on', () => {
  assert.ok(native !== undefined, 'src/native was not built (npm install builds it with node-gyp)')
  const buf = Buffer.alloc(4)
  assert.equal(readRuns(fd, buf, new Float64Array([10, 14, 0]), 1), true)
  assert.deepEqual(buf, bytes.subarray(10, 14))
  assert.equal(readRuns, native)
})

test('random runs read the same bytes as the readSync loop, and as the file holds', () => {
  const run = fc.tuple(fc.nat(bytes.length), fc.nat(8192))
  fc.assert(fc.property(fc.array(run, { maxLength: 64 }), (spec) => {
    const runs = new Float64Array(spec.length * 3)
    let at = 0
    spec.forEach(([start, len], r) => {
      const end = Math.min(bytes.length, start + len)
      runs.set([start, end, at], r * 3)
      at += end - start
    })
    const a = Buffer.alloc(at)
    const b = Buffer.alloc(at)
    assert.equal(native!(fd, a, runs, spec.length), true)
    assert.equal(readRunsJs(fd, b, runs, spec.length), true)
    assert.deepEqual(a, b)
    const expected = Buffer.concat(spec.map(([start, len]) => bytes.subarray(start, Math.min(bytes.length, start + len))))
    assert.deepEqual(a, expected)
  }), { numRuns: 300 })
})

test('a run past the end of the file reads false; bad runs and a bad descriptor throw', () => {
  const past = new Float64Array([bytes.length - 10, bytes.length + 10, 0])
  assert.equal(native!(fd, Buffer.alloc(20), past, 1), false)
  assert.equal(readRunsJs(fd, Buffer.alloc(20), past, 1), false)
  assert.throws(() => native!(fd, Buffer.alloc(4), new Float64Array([0, 8, 0]), 1), RangeError, 'beyond the buffer')
  assert.throws(() => native!(fd, Buffer.alloc(4), new Float64Array([0, 2, 3]), 1), RangeError, 'beyond the buffer, by its position')
  assert.throws(() => native!(fd, Buffer.alloc(4), new Float64Array([-1, 2, 0]), 1), RangeError)
  assert.throws(() => native!(fd, Buffer.alloc(4), new Float64Array([0.5, 2, 0]), 1), RangeError)
  assert.throws(() => native!(fd, Buffer.alloc(4), new Float64Array([0, 2, 0]), 2), TypeError, 'fewer runs than numRuns')
  const closed = openSync(file, 'r')
  closeSync(closed)
  assert.throws(() => native!(closed, Buffer.alloc(4), new Float64Array([0, 2, 0]), 1), (err: Error & { errno?: number }) => err.errno === os.constants.errno.EBADF)
})
