// Get-or-build for batches: memory tier, then disk tier, then one build per key however many
// requests want it (single-flight). A built batch is answered at once and written to the disk
// tier in the background. After each foreground request, the next batches of the same rank
// are warmed (read-ahead): the plan is known in advance, so this is exact.
import type { FastifyBaseLogger } from 'fastify'
import { AppError } from '../errors.js'
import type { DatasetRecord } from '../store/registry.js'
import type { Db } from '../store/db.js'
import { shardNumBatches, type PlanSpec } from '../plan/plan.js'
import { planSpecOf } from '../datasets/descriptor.js'
import type { BatchFormat } from '../codecs/negotiate.js'
import { createBuildPool } from './build-pool.js'
import { etagOf } from './etag.js'
import { batchKey } from './batch-key.js'
import { createMemoryTier, type CachedBatch } from './memory-tier.js'
import { createDiskTier } from './disk-tier.js'
import type { CacheMetrics } from './metrics.js'
import type { SourceGuard } from '../datasets/source-guard.js'
import { createBodyReleaser, type BodyReleaser } from './body-release.js'

export type CacheTier = 'memory' | 'disk' | 'miss'

export interface Batch {
  body: Buffer
  /** Strong ETag: a digest of the body, so any client can check the bytes it got. */
  etag: string
  tier: CacheTier
  /** Batches of this rank per epoch (for the Link header). */
  numBatches: number
}

export interface BatchRequest {
  record: DatasetRecord
  epoch: number
  rank: number
  index: number
  format: BatchFormat
}

export interface BatchCacheOptions {
  db: Db
  memoryBytes: number
  diskBytes: number
  prefetchBatches: number
  metrics: CacheMetrics
  log: FastifyBaseLogger
  guard: SourceGuard
  /** Foreground builds running at once; more wait their turn. */
  maxConcurrentBuilds?: number
  /** Worker threads that build batches (0: build on the event loop). */
  buildWorkers?: number
  /** Bytes of batches that may wait for their disk-tier write (default 8 MiB). */
  diskWriteQueueBytes?: number
  /**
   * Frees the bodies the tiers let go of once no request is sending them; the server opens a
   * ticket per request on it (plugins/hit-path.ts). Default: none is freed early.
   */
  releaser?: BodyReleaser
}

export interface BatchCache {
  open: () => Promise<void>
  getBatch: (req: BatchRequest) => Promise<Batch>
  /**
   * The cached steps of getBatch alone, for the hit path: the batch when the memory tier holds
   * it, a promise when the disk tier may (it resolves to undefined when not), else undefined.
   * A hit is counted as getBatch counts it; a miss counts nothing, so that getBatch can follow.
   * Throws as getBatch does for a bad address or a changed source.
   */
  peekCached: (req: BatchRequest) => Batch | Promise<Batch | undefined> | undefined
  /** Resolves once read-ahead and background disk writes started so far have finished. */
  settle: () => Promise<void>
  /** Drops a dataset: its source is closed and its batches leave both tiers. */
  forget: (record: DatasetRecord) => Promise<void>
  close: () => Promise<void>
}

const PREFETCH_CONCURRENCY = 2
const PREFETCH_QUEUE_MAX = 1024
// Disk writes wait in a bounded queue and go to LevelDB in batches of up to this many bytes,
// one write at a time, after the responses that produced them have been sent.
const WRITE_BATCH_BYTES = 8 * 1024 * 1024
// Queued bodies may already have left the memory tier: the bound is memory on top of it.
const WRITE_QUEUE_MAX_BYTES = 8 * 1024 * 1024

export { etagOf, batchKey }

/** Throws SHARD_NOT_FOUND for a rank the plan does not have. */
export function checkRank (plan: PlanSpec, rank: number): void {
  if (rank >= plan.numShards) {
    throw new AppError('SHARD_NOT_FOUND', `rank ${rank}: the dataset has ${plan.numShards} shards (ranks 0..${plan.numShards - 1})`)
  }
}

/** Checks rank and index against the plan; returns the shard's batch count. */
export function checkAddress (plan: PlanSpec, rank: number, index: number): number {
  checkRank(plan, rank)
  const numBatches = shardNumBatches(plan, rank)
  if (index >= numBatches) {
    throw new AppError('BATCH_OUT_OF_RANGE', numBatches === 0
      ? `batch ${index} of shard ${rank}: the shard has no batches (remainder "${plan.remainder}" leaves none for ${plan.numRecords} records)`
      : `batch ${index} of shard ${rank}: the shard has ${numBatches} batches (0..${numBatches - 1})`)
  }
  return numBatches
}

interface Job { req: BatchRequest, plan: PlanSpec, numBatches: number, key: string }

export function createBatchCache (opts: BatchCacheOptions): BatchCache {
  const { metrics, log } = opts
  const writeQueueMaxBytes = opts.diskWriteQueueBytes ?? WRITE_QUEUE_MAX_BYTES
  const builder = createBuildPool(opts.buildWorkers ?? 0)
  const releaser = opts.releaser ?? createBodyReleaser({ detach: undefined, maxWaitingBytes: 0 })
  const memory = createMemoryTier(opts.memoryBytes, metrics, releaser)
  const disk = createDiskTier(opts.db, opts.diskBytes, metrics, log)
  const inflight = new Map<string, Promise<{ entry: CachedBatch, tier: CacheTier }>>()
  // Disk-tier reads under way, one per key, shared by loads and the hit path (peekCached):
  // trainers in lockstep ask for the same batch at once.
  const reads = new Map<string, Promise<CachedBatch | undefined>>()
  const writeQueue: Array<readonly [string, CachedBatch]> = []
  let writeQueueBytes = 0
  let writer: Promise<void> | undefined
  const maxBuilds = opts.maxConcurrentBuilds ?? 8
  let runningBuilds = 0
  const buildWaiters: Array<() => void> = []
  const prefetchQueue = new Map<string, Job>()
  // How many times each fingerprint was forgotten (DELETE): builds compare it before caching.
  const forgotten = new Map<string, number>()
  let prefetchRunning = 0
  let foregroundWaiting = 0
  let closed = false

  async function acquireBuildSlot (): Promise<void> {
    if (runningBuilds < maxBuilds) {
      runningBuilds++
      return
    }
    await new Promise<void>((resolve) => buildWaiters.push(resolve))
  }

  function releaseBuildSlot (): void {
    const next = buildWaiters.shift()
    if (next !== undefined) next()
    else runningBuilds--
  }

  async function build (job: Job): Promise<CachedBatch> {
    await acquireBuildSlot()
    metrics.inflightBuilds.inc()
    const end = metrics.buildSeconds.startTimer({ format: job.req.format })
    try {
      const { req } = job
      const built = await builder.build({ ...req, plan: job.plan, numBatches: job.numBatches })
      // A worker's batch arrives in a buffer of its own (its disk value), which may be freed
      // early; so may one built here, in the buffer its codec made for it alone (adopt leaves
      // a view into a larger or shared buffer to the collector).
      releaser.adopt(built.stored ?? built.body)
      // A file rewritten while the batch was read must not leave a mixed batch in a cache.
      opts.guard.verify(req.record)
      return built
    } finally {
      end()
      metrics.inflightBuilds.dec()
      releaseBuildSlot()
    }
  }

  function writeBehind (key: string, entry: CachedBatch): void {
    // A disk that cannot keep up loses cache entries, never memory: past the bound, skip.
    if (writeQueueBytes + entry.body.length > writeQueueMaxBytes) {
      metrics.diskWritesSkipped.inc()
      return
    }
    writeQueue.push([key, entry])
    writeQueueBytes += entry.body.length
    // Not freed before LevelDB has it, even if the memory tier lets go of it meanwhile.
    releaser.pin(entry.body)
    writer ??= drainWrites().finally(() => { writer = undefined })
  }

  async function drainWrites (): Promise<void> {
    await new Promise((resolve) => setImmediate(resolve))
    while (writeQueue.length > 0) {
      let bytes = 0
      let n = 0
      while (n < writeQueue.length && (n === 0 || bytes < WRITE_BATCH_BYTES)) bytes += writeQueue[n++]![1].body.length
      const chunk = writeQueue.splice(0, n)
      writeQueueBytes -= bytes
      await disk.putMany(chunk).catch((err) => log.warn({ err }, 'disk tier: write failed'))
      for (const [, entry] of chunk) releaser.unpin(entry.body)
    }
  }

  /** Disk tier or build, once per key at a time. */
  function load (job: Job, prefetch: boolean): Promise<{ entry: CachedBatch, tier: CacheTier }> {
    let p = inflight.get(job.key)
    if (p !== undefined) return p
    const fingerprint = job.req.record.fingerprint as string
    const generation = forgotten.get(fingerprint) ?? 0
    p = (async () => {
      const fromDisk = await readDisk(job.key)
      if (fromDisk !== undefined) {
        memory.set(job.key, prefetch ? { ...fromDisk, prefetched: true } : fromDisk)
        return { entry: fromDisk, tier: 'disk' as const }
      }
      const entry = await build(job)
      // A build that was under way when its dataset was deleted still answers its request,
      // but is not cached: the delete has already emptied the tiers of that fingerprint.
      if ((forgotten.get(fingerprint) ?? 0) === generation) {
        memory.set(job.key, prefetch ? { ...entry, prefetched: true } : entry)
        writeBehind(job.key, entry)
      }
      return { entry, tier: 'miss' as const }
    })()
    inflight.set(job.key, p)
    p.finally(() => inflight.delete(job.key)).catch(() => {})
    return p
  }

  function schedulePrefetch (job: Job): void {
    const { req } = job
    for (let k = 1; k <= opts.prefetchBatches; k++) {
      const index = req.index + k
      if (index >= job.numBatches) break
      const key = batchKey(req.record.fingerprint as string, req.epoch, req.rank, index, req.format)
      if (memory.has(key) || inflight.has(key) || prefetchQueue.has(key)) continue
      if (prefetchQueue.size >= PREFETCH_QUEUE_MAX) {
        // Oldest first out: a trainer that moved on no longer needs its old read-ahead.
        const oldest = prefetchQueue.keys().next().value
        if (oldest !== undefined) prefetchQueue.delete(oldest)
      }
      prefetchQueue.set(key, { ...job, req: { ...req, index }, key })
      metrics.readAheadScheduled.inc()
    }
    pumpPrefetch()
  }

  function pumpPrefetch (): void {
    // Read-ahead yields to foreground requests: it starts only while none waits for a build.
    for (;;) {
      if (closed || prefetchRunning >= PREFETCH_CONCURRENCY || foregroundWaiting > 0 || prefetchQueue.size === 0) return
      const [key, job] = prefetchQueue.entries().next().value as [string, Job]
      prefetchQueue.delete(key)
      if (memory.has(key)) continue
      prefetchRunning++
      setImmediate(() => {
        load(job, true)
          .catch((err) => log.debug({ err, key }, 'read-ahead build failed'))
          .finally(() => {
            prefetchRunning--
            pumpPrefetch()
          })
      })
    }
  }

  function jobOf (req: BatchRequest): Job {
    const plan = planSpecOf(req.record)
    const numBatches = checkAddress(plan, req.rank, req.index)
    opts.guard.check(req.record)
    const key = batchKey(req.record.fingerprint as string, req.epoch, req.rank, req.index, req.format)
    return { req, plan, numBatches, key }
  }

  function memoryHit (job: Job): Batch | undefined {
    const hit = memory.get(job.key)
    if (hit === undefined) return undefined
    metrics.hits.inc({ tier: 'memory' })
    if (hit.prefetched === true) {
      hit.prefetched = false
      metrics.readAheadHits.inc()
    }
    if (opts.prefetchBatches > 0) schedulePrefetch(job)
    return { body: hit.body, etag: hit.etag, tier: 'memory', numBatches: job.numBatches }
  }

  function readDisk (key: string): Promise<CachedBatch | undefined> {
    let r = reads.get(key)
    if (r !== undefined) return r
    // A disk-tier read is a buffer of its own (LevelDB's copy), which may be freed early.
    r = disk.get(key).then((entry) => {
      if (entry?.stored !== undefined) releaser.adopt(entry.stored)
      return entry
    })
    metrics.diskReads.inc()
    reads.set(key, r)
    r.finally(() => reads.delete(key)).catch(() => {})
    return r
  }

  function peekCached (req: BatchRequest): Batch | Promise<Batch | undefined> | undefined {
    const job = jobOf(req)
    const hit = memoryHit(job)
    if (hit !== undefined) return hit
    // A load under way (it may be building the batch) is getBatch's to join.
    if (!disk.holds(job.key) || inflight.has(job.key)) return undefined
    return diskHit(job)
  }

  async function diskHit (job: Job): Promise<Batch | undefined> {
    foregroundWaiting++
    let entry
    try {
      entry = await readDisk(job.key)
    } finally {
      foregroundWaiting--
    }
    if (entry === undefined) {
      pumpPrefetch()
      return undefined
    }
    memory.set(job.key, entry)
    metrics.misses.inc({ tier: 'memory' })
    metrics.hits.inc({ tier: 'disk' })
    if (opts.prefetchBatches > 0) schedulePrefetch(job)
    else pumpPrefetch()
    return { body: entry.body, etag: entry.etag, tier: 'disk', numBatches: job.numBatches }
  }

  async function getBatch (req: BatchRequest): Promise<Batch> {
    const job = jobOf(req)
    const numBatches = job.numBatches
    const hit = memoryHit(job)
    if (hit !== undefined) return hit
    metrics.misses.inc({ tier: 'memory' })
    foregroundWaiting++
    let result
    try {
      result = await load(job, false)
    } finally {
      foregroundWaiting--
    }
    if (result.tier === 'disk') metrics.hits.inc({ tier: 'disk' })
    else metrics.misses.inc({ tier: 'disk' })
    if (opts.prefetchBatches > 0) schedulePrefetch(job)
    else pumpPrefetch()
    return { body: result.entry.body, etag: result.entry.etag, tier: result.tier, numBatches }
  }

  return {
    async open () {
      await disk.load()
    },
    getBatch,
    peekCached,
    async settle () {
      for (;;) {
        if (inflight.size === 0 && reads.size === 0 && writer === undefined && prefetchQueue.size === 0 && prefetchRunning === 0) break
        await Promise.allSettled([...inflight.values(), ...reads.values(), writer])
        await new Promise((resolve) => setImmediate(resolve))
      }
      // The disk tier's index and due deletions reach LevelDB too.
      await disk.flush()
    },
    async forget (record) {
      if (record.fingerprint === undefined) return
      const prefix = `${record.fingerprint}/`
      forgotten.set(record.fingerprint, (forgotten.get(record.fingerprint) ?? 0) + 1)
      for (const key of prefetchQueue.keys()) if (key.startsWith(prefix)) prefetchQueue.delete(key)
      memory.deletePrefix(prefix)
      // Queued disk writes of the dataset are dropped; one already under way lands first, so
      // the delete below sees (and removes) its keys.
      for (let k = writeQueue.length - 1; k >= 0; k--) {
        const [key, entry] = writeQueue[k]!
        if (key.startsWith(prefix)) {
          writeQueue.splice(k, 1)
          writeQueueBytes -= entry.body.length
          releaser.unpin(entry.body)
        }
      }
      await writer
      await builder.forget(record.fingerprint)
      await disk.deletePrefix(prefix)
    },
    async close () {
      closed = true
      prefetchQueue.clear()
      // In-flight builds and disk writes finish before the store closes under them.
      await Promise.allSettled([...inflight.values(), ...reads.values()])
      await writer
      await disk.close()
      await builder.close()
    }
  }
}
