// Prometheus metrics of the batch cache and the process, on a registry of the app's own (not
// prom-client's global one), so several apps in one process (tests) never collide.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

export interface CacheMetrics {
  registry: Registry
  hits: Counter<'tier'>
  misses: Counter<'tier'>
  bytes: Gauge<'tier'>
  entries: Gauge<'tier'>
  evictions: Counter<'tier'>
  corrupt: Counter
  diskReads: Counter
  diskWritesSkipped: Counter
  diskWriteErrors: Counter
  buildSeconds: Histogram<'format'>
  readAheadHits: Counter
  readAheadScheduled: Counter
  inflightBuilds: Gauge
}

/** Figures kept elsewhere, read at each scrape. */
export interface MetricSources {
  /** Bodies the tiers let go of whose memory was freed at once (body-release.ts). */
  bodiesFreed?: () => number
}

export function createCacheMetrics (sources: MetricSources = {}): CacheMetrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  const registers = [registry]
  const { bodiesFreed } = sources
  if (bodiesFreed !== undefined) {
    let seen = 0
    // eslint-disable-next-line no-new -- registered on the registry, read through it
    new Counter({
      name: 'shardfeed_cache_bodies_freed_total',
      help: 'Batch bodies the tiers let go of that were freed as soon as no response was sending them, rather than by the garbage collector',
      registers,
      collect () {
        const now = bodiesFreed()
        this.inc(now - seen)
        seen = now
      }
    })
  }
  return {
    registry,
    hits: new Counter({ name: 'shardfeed_cache_hits_total', help: 'Batches answered by a cache tier', labelNames: ['tier'], registers }),
    misses: new Counter({ name: 'shardfeed_cache_misses_total', help: 'Lookups a cache tier could not answer', labelNames: ['tier'], registers }),
    bytes: new Gauge({ name: 'shardfeed_cache_bytes', help: 'Bytes of encoded batches held by a tier', labelNames: ['tier'], registers }),
    entries: new Gauge({ name: 'shardfeed_cache_entries', help: 'Batches held by a tier', labelNames: ['tier'], registers }),
    evictions: new Counter({ name: 'shardfeed_cache_evictions_total', help: 'Batches evicted to keep a tier within its bound', labelNames: ['tier'], registers }),
    diskReads: new Counter({ name: 'shardfeed_cache_disk_reads_total', help: 'LevelDB reads of disk-tier entries (requests for one entry at once share a read)', registers }),
    diskWritesSkipped: new Counter({ name: 'shardfeed_cache_disk_writes_skipped_total', help: 'Batches served but not written to the disk tier, its write queue being full (DISK_WRITE_QUEUE_BYTES)', registers }),
    corrupt: new Counter({ name: 'shardfeed_cache_corrupt_total', help: 'Disk-tier entries that failed their checksum and were dropped', registers }),
    diskWriteErrors: new Counter({ name: 'shardfeed_cache_disk_write_errors_total', help: 'Disk-tier writes that failed (the batch was still served)', registers }),
    buildSeconds: new Histogram({
      name: 'shardfeed_batch_build_seconds',
      help: 'Time to build a batch (read records, encode)',
      labelNames: ['format'],
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers
    }),
    readAheadHits: new Counter({ name: 'shardfeed_readahead_hits_total', help: 'Requests answered by a batch that read-ahead had built', registers }),
    readAheadScheduled: new Counter({ name: 'shardfeed_readahead_scheduled_total', help: 'Batches queued for read-ahead', registers }),
    inflightBuilds: new Gauge({ name: 'shardfeed_inflight_builds', help: 'Batch builds in progress', registers })
  }
}
