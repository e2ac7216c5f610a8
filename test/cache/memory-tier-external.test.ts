// The memory tier keeps what it holds out of V8's external-memory count, so that filling it does
// not start major collections that can free none of it; what leaves it is counted again.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { PerformanceObserver, constants } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { createMemoryTier } from '../../src/cache/memory-tier.js'
import { createCacheMetrics } from '../../src/cache/metrics.js'
import { createBodyReleaser } from '../../src/cache/body-release.js'
import { nativeAddon } from '../../src/native/addon.js'

const MiB = 1024 * 1024
const BODIES = 160

/** Counts V8's major collections while `fn` runs (and shortly after). */
async function majorCollections (fn: () => Promise<void>): Promise<number> {
  let majors = 0
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) if ((e as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majors++
  })
  obs.observe({ entryTypes: ['gc'] })
  await fn()
  await sleep(300)
  obs.disconnect()
  return majors
}

/** Allocates a body at a time, with turns of the event loop between, as a server would. */
async function fill (put: (k: number, body: Buffer) => void): Promise<void> {
  for (let k = 0; k < BODIES; k++) {
    put(k, Buffer.allocUnsafeSlow(MiB))
    if (k % 8 === 7) await sleep(1)
  }
}

test('filling the memory tier starts no major collection; bodies it lets go of count again', async () => {
  const native = nativeAddon()
  assert.ok(!('error' in native), 'the addon must be built')
  const counted = (): number => native.addon.adjustExternalMemory(0)
  const tier = createMemoryTier(256 * MiB, createCacheMetrics(), createBodyReleaser({ detach: undefined, maxWaitingBytes: 0 }))
  const held: Buffer[] = []

  const before = counted()
  const inTier = await majorCollections(async () => {
    await fill((k, body) => {
      held.push(body)
      tier.set(`k${k}`, { body, etag: `"${k}"` })
    })
  })
  assert.equal(tier.size > BODIES * MiB, true)
  assert.equal(inTier, 0, 'major collections while the tier filled')
  // The bodies are allocated (and counted by V8), and uncounted by the tier: about even.
  assert.ok(Math.abs(counted() - before) < 8 * MiB, `counted ${((counted() - before) / MiB).toFixed(1)} MiB more than before`)

  // Let go of, they count again (`held` keeps them alive, so no collection frees them here).
  tier.deletePrefix('k')
  assert.ok(counted() - before >= (BODIES - 8) * MiB, `counted ${((counted() - before) / MiB).toFixed(1)} MiB more than before`)

  // The same allocations outside the tier do start major collections: what the tier avoids.
  const outside: Buffer[] = []
  const control = await majorCollections(async () => { await fill((_k, body) => { outside.push(body) }) })
  assert.ok(control >= 1, `major collections for ${BODIES} MiB outside the tier: ${control}`)
  assert.equal(held.length + outside.length, 2 * BODIES)
})
