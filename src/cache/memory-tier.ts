// Memory tier: encoded batches in an lru-cache bounded in bytes. A hit hands the stored
// Buffer to the socket as it is.
import { LRUCache } from 'lru-cache'
import type { CacheMetrics } from './metrics.js'
import { createReclaimer } from './reclaim.js'

export interface CachedBatch {
  body: Buffer
  etag: string
  /** Set when read-ahead built the entry and no request has read it yet. */
  prefetched?: boolean
}

// Per-entry bookkeeping beyond the body (key string, etag, LRU node): counted so that many
// small batches cannot push the real footprint far past the bound.
const ENTRY_OVERHEAD = 256

/**
 * The body in a buffer of its own. Small Buffers often live in Node's shared 8 KiB pool and
 * views may pin a larger allocation: the tier would then hold far more memory than it counts.
 */
function ownBytes (body: Buffer): Buffer {
  if (body.buffer.byteLength <= body.byteLength + 64) return body
  const own = Buffer.allocUnsafeSlow(body.byteLength)
  body.copy(own)
  return own
}

export interface MemoryTier {
  get: (key: string) => CachedBatch | undefined
  has: (key: string) => boolean
  set: (key: string, entry: CachedBatch) => void
  deletePrefix: (prefix: string) => void
  readonly size: number
}

export function createMemoryTier (maxBytes: number, metrics: CacheMetrics): MemoryTier {
  if (maxBytes <= 0) {
    // MEMORY_CACHE_BYTES=0 turns the tier off (e.g. to measure the disk tier alone).
    return { get: () => undefined, has: () => false, set: () => {}, deletePrefix: () => {}, size: 0 }
  }
  // Dead bodies wait for a major collection; one per sixteenth of the tier evicted (2..32 MiB)
  // keeps them a small surplus over the bound without collecting all the time.
  const reclaimer = createReclaimer(Math.min(32 << 20, Math.max(2 << 20, Math.floor(maxBytes / 16))))
  const lru = new LRUCache<string, CachedBatch>({
    maxSize: maxBytes,
    sizeCalculation: (entry) => entry.body.length + ENTRY_OVERHEAD,
    dispose: (value, _key, reason) => {
      if (reason === 'evict') metrics.evictions.inc({ tier: 'memory' })
      reclaimer.released(value.body.length)
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
      if (entry.body.length + ENTRY_OVERHEAD > maxBytes) return
      lru.set(key, { ...entry, body: ownBytes(entry.body) })
      publish()
    },
    deletePrefix (prefix) {
      for (const key of lru.keys()) if (key.startsWith(prefix)) lru.delete(key)
      publish()
    },
    get size () { return lru.calculatedSize }
  }
}
