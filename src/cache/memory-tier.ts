// Memory tier: encoded batches in an lru-cache bounded in bytes. A hit hands the stored
// Buffer to the socket as it is.
import { LRUCache } from 'lru-cache'
import type { CacheMetrics } from './metrics.js'
import { createReclaimer } from './reclaim.js'
import type { BodyReleaser } from './body-release.js'
import { addonFunction } from '../native/addon.js'

export interface CachedBatch {
  body: Buffer
  etag: string
  /** The disk-tier value the body is a view into, when there is one (disk-value.ts). */
  stored?: Buffer
  /** Set when read-ahead built the entry and no request has read it yet. */
  prefetched?: boolean
}

// Per-entry bookkeeping beyond the body (key string, etag, LRU node): counted so that many
// small batches cannot push the real footprint far past the bound.
const ENTRY_OVERHEAD = 256
// A body may be a view into its disk value, behind a header of ~100 bytes (disk-value.ts).
const VIEW_SLACK = 1024

/**
 * The body in a buffer of about its size. Small Buffers often live in Node's shared 8 KiB
 * pool and views may pin a larger allocation: the tier would then hold far more memory than
 * it counts.
 */
function ownBytes (entry: CachedBatch, releaser: BodyReleaser): CachedBatch {
  const { body } = entry
  if (body.buffer.byteLength <= body.byteLength + VIEW_SLACK) return entry
  const own = Buffer.allocUnsafeSlow(body.byteLength)
  body.copy(own)
  releaser.adopt(own)
  const { stored: _dropped, ...rest } = entry
  return { ...rest, body: own }
}

/** What an entry holds: its whole backing store, header included. */
function footprint (entry: CachedBatch): number {
  return entry.body.buffer.byteLength + ENTRY_OVERHEAD
}

export interface MemoryTier {
  get: (key: string) => CachedBatch | undefined
  has: (key: string) => boolean
  set: (key: string, entry: CachedBatch) => void
  deletePrefix: (prefix: string) => void
  readonly size: number
}

/**
 * `hold` tells V8 not to count bytes the tier holds toward starting a major collection, and
 * `release` counts them again when they leave. V8 starts one whenever ArrayBuffer memory grows
 * by ~64 MiB, which a filling tier does every ~64 MiB it caches although no collection can
 * free what it holds: while a 256 MiB tier filled, those collections cost ~0.2 core-s per
 * 69 MiB epoch of json batches (V8's marking threads). No-ops without the addon.
 */
function externalAccounting (): { hold: (bytes: number) => void, release: (bytes: number) => void } {
  const adjust = addonFunction('adjustExternalMemory')
  if (adjust === undefined) return { hold: () => {}, release: () => {} }
  return { hold: (bytes) => { adjust(-bytes) }, release: (bytes) => { adjust(bytes) } }
}

/**
 * `releaser` frees the bodies the tier lets go of once no response is sending them
 * (body-release.ts); those it cannot free wait for the collector, which the reclaimer hastens.
 */
export function createMemoryTier (maxBytes: number, metrics: CacheMetrics, releaser: BodyReleaser): MemoryTier {
  if (maxBytes <= 0) {
    // MEMORY_CACHE_BYTES=0 turns the tier off (e.g. to measure the disk tier alone): it lets
    // go of every body at once.
    return { get: () => undefined, has: () => false, set: (_key, entry) => { releaser.retire(entry.body) }, deletePrefix: () => {}, size: 0 }
  }
  // Dead bodies the releaser cannot free wait for a major collection; one per sixteenth of the
  // tier evicted that way (2..32 MiB) keeps them a small surplus over the bound without
  // collecting all the time.
  const reclaimer = createReclaimer(Math.min(32 << 20, Math.max(2 << 20, Math.floor(maxBytes / 16))))
  // What the tier holds is not V8's to collect; a body that leaves is counted again.
  const external = externalAccounting()
  const lru = new LRUCache<string, CachedBatch>({
    maxSize: maxBytes,
    sizeCalculation: footprint,
    dispose: (value, _key, reason) => {
      external.release(value.body.buffer.byteLength)
      if (reason === 'evict') metrics.evictions.inc({ tier: 'memory' })
      // Not on 'set': the entry that replaces it may hold the same body.
      if ((reason === 'evict' || reason === 'delete') && releaser.retire(value.body)) return
      reclaimer.released(value.body.buffer.byteLength)
    }
  })
  function publish (): void {
    metrics.bytes.set({ tier: 'memory' }, lru.calculatedSize)
    metrics.entries.set({ tier: 'memory' }, lru.size)
  }
  return {
    get: (key) => lru.get(key),
    has: (key) => lru.has(key),
    set (key, entry) {
      // A batch larger than the whole tier is not cached (lru-cache would refuse it anyway).
      const own = ownBytes(entry, releaser)
      if (footprint(own) > maxBytes) {
        releaser.retire(own.body)
        return
      }
      // A body let go of earlier may come back (a request that shared its read puts it back).
      releaser.keep(own.body)
      lru.set(key, own)
      if (lru.peek(key) === own) external.hold(own.body.buffer.byteLength)
      publish()
    },
    deletePrefix (prefix) {
      for (const key of lru.keys()) if (key.startsWith(prefix)) lru.delete(key)
      publish()
    },
    get size () { return lru.calculatedSize }
  }
}
