// Dropped batch bodies are freed by the collection the reclaimer asks for, not ~64 MiB later.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { setTimeout as sleep } from 'node:timers/promises'
import { createReclaimer } from '../../src/cache/reclaim.js'

test('releasing a threshold of bytes starts one major collection that frees them', async () => {
  const reclaimer = createReclaimer(16 << 20)
  let bodies: Buffer[] | undefined = Array.from({ length: 40 }, () => Buffer.allocUnsafeSlow(1 << 20).fill(1))
  const before = process.memoryUsage().arrayBuffers
  assert.ok(bodies.length === 40 && before >= 40 << 20)

  reclaimer.released(8 << 20)
  assert.equal(reclaimer.collections, 0, 'below the threshold nothing happens')
  bodies = undefined
  reclaimer.released(32 << 20)
  assert.equal(reclaimer.collections, 1)

  let after = process.memoryUsage().arrayBuffers
  for (let i = 0; i < 100 && before - after < 36 << 20; i++) {
    await sleep(20)
    after = process.memoryUsage().arrayBuffers
  }
  assert.ok(before - after >= 36 << 20, `freed ${((before - after) / 2 ** 20).toFixed(1)} MiB of 40`)
})

test('a threshold of 0 never collects', () => {
  const reclaimer = createReclaimer(0)
  reclaimer.released(1 << 30)
  assert.equal(reclaimer.collections, 0)
})
