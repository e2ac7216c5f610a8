import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setImmediate as nextTurn } from 'node:timers/promises'
import { createBodyReleaser, type BodyReleaser } from '../../src/cache/body-release.js'
import { nativeAddon } from '../../src/native/addon.js'

function detacher (): (buffer: ArrayBuffer) => boolean {
  const native = nativeAddon()
  assert.ok(!('error' in native), `the addon must be built: ${'error' in native ? native.error : ''}`)
  return native.addon.detachBuffer
}

function releaser (maxWaitingBytes = 1 << 30): BodyReleaser {
  return createBodyReleaser({ detach: detacher(), maxWaitingBytes })
}

/** A body as the caches hold it: a view into a value of its own, behind a header. */
function body (bytes = 64 * 1024): { stored: Buffer, body: Buffer } {
  const stored = Buffer.allocUnsafeSlow(bytes + 100).fill(7)
  return { stored, body: stored.subarray(100) }
}

test('a retired body is freed in a later turn when no request is open', async () => {
  const r = releaser()
  const b = body()
  r.adopt(b.stored)
  assert.equal(r.retire(b.body), true)
  // Never inside the caller's own steps: it may still hand the body on.
  assert.equal(b.body.length, 64 * 1024)
  await nextTurn()
  assert.equal(b.body.length, 0)
  assert.equal(b.stored.buffer.byteLength, 0)
  assert.equal(r.freed, 1)
  assert.equal(r.waitingBytes, 0)
})

test('a request open when the body was retired holds it until it closes; a later one does not', async () => {
  const r = releaser()
  const b = body()
  r.adopt(b.stored)
  const before = r.open()
  assert.equal(r.retire(b.body), true)
  const after = r.open()
  r.close(after)
  await nextTurn()
  assert.equal(b.body.length, 64 * 1024, 'freed under a request that may be sending it')
  assert.equal(r.waitingBytes, 64 * 1024 + 100)
  r.close(before)
  await nextTurn()
  assert.equal(b.body.length, 0)
  assert.equal(r.freed, 1)
})

test('bodies retired in turn are freed as the requests before each close', async () => {
  const r = releaser()
  const first = body()
  const second = body()
  r.adopt(first.stored)
  r.adopt(second.stored)
  const a = r.open()
  r.retire(first.body)
  const b = r.open()
  r.retire(second.body)
  r.close(a)
  await nextTurn()
  assert.equal(first.body.length, 0)
  assert.equal(second.body.length, 64 * 1024)
  r.close(b)
  await nextTurn()
  assert.equal(second.body.length, 0)
  assert.equal(r.freed, 2)
})

test('a pinned body waits for its last unpin', async () => {
  const r = releaser()
  const b = body()
  r.adopt(b.stored)
  r.pin(b.body)
  r.pin(b.body)
  r.retire(b.body)
  await nextTurn()
  r.unpin(b.body)
  await nextTurn()
  assert.equal(b.body.length, 64 * 1024)
  r.unpin(b.body)
  await nextTurn()
  assert.equal(b.body.length, 0)
})

test('a body a cache holds again is not freed', async () => {
  const r = releaser()
  const b = body()
  r.adopt(b.stored)
  r.retire(b.body)
  r.keep(b.body)
  assert.equal(r.waitingBytes, 0)
  await nextTurn()
  assert.equal(b.body.length, 64 * 1024)
  // ...and may be retired again later.
  assert.equal(r.retire(b.body), true)
  await nextTurn()
  assert.equal(b.body.length, 0)
})

test('only buffers adopted whole and larger than the shared pool are ever freed', async () => {
  const r = releaser()
  const pooled = Buffer.from('a small body, in the pool')
  r.adopt(pooled)
  assert.equal(r.retire(pooled), false)
  const large = Buffer.allocUnsafeSlow(256 * 1024)
  // A view is not the whole buffer: something else may use the rest.
  r.adopt(large.subarray(0, 1024))
  assert.equal(r.retire(large.subarray(0, 1024)), false)
  const notAdopted = body()
  assert.equal(r.retire(notAdopted.body), false)
  const twice = body()
  r.adopt(twice.stored)
  assert.equal(r.retire(twice.body), true)
  assert.equal(r.retire(twice.body), false, 'counted once')
  await nextTurn()
  assert.equal(pooled.length, 25)
  assert.equal(large.length, 256 * 1024)
  assert.equal(notAdopted.body.length, 64 * 1024)
  assert.equal(Buffer.from('the pool still works').toString(), 'the pool still works')
  assert.equal(r.freed, 1)
})

test('past maxWaitingBytes, retire leaves the body to the collector (one body alone may wait)', async () => {
  const r = releaser(100 * 1024)
  const alone = body(200 * 1024)
  r.adopt(alone.stored)
  assert.equal(r.retire(alone.body), true)
  await nextTurn()
  assert.equal(alone.body.length, 0)
  const ticket = r.open()
  const a = body()
  const b = body()
  r.adopt(a.stored)
  r.adopt(b.stored)
  assert.equal(r.retire(a.body), true)
  assert.equal(r.retire(b.body), false)
  r.close(ticket)
  await nextTurn()
  assert.equal(a.body.length, 0)
  assert.equal(b.body.length, 64 * 1024)
})

test('without the addon nothing is adopted or freed', async () => {
  const r = createBodyReleaser({ detach: undefined, maxWaitingBytes: 1 << 30 })
  const b = body()
  r.adopt(b.stored)
  assert.equal(r.retire(b.body), false)
  await nextTurn()
  assert.equal(b.body.length, 64 * 1024)
})
