// Disk tier: encoded batches in the one LevelDB, bounded in bytes with least-recently-used
// eviction, every value checksummed.
//
// Layout, chosen so that LevelDB never rewrites a body it has stored:
// - `~batch-blobs`: bodies under a monotonic blob id (12 hex digits). Keys only ever grow, so
//   each table LevelDB flushes covers a key range no other table touches, and its compactions
//   are "trivial moves" (a file changes level without being read or written). Keyed by the
//   batch address instead, new keys land between old ones and every table overlaps the next
//   level: a cold epoch measured 3.2 GiB of compaction output for 394 MiB cached. The `~`
//   makes these keys sort after every other sublevel's: a table that also holds, say, a
//   registration then spans older bodies only, never the range new bodies go to.
// - `batch-index`: batch key -> [blob id, size, access seq], so that startup never reads a
//   body. It is written in batches now and then (`flush`), not with every body, in a memtable
//   of its own (see `isolate`): the few index tables overlap one another, never the bodies.
// - `batch-state`: the blob id where the last index write stopped, the blob deletions that
//   were due, and the range of deleted blobs still to compact. After a crash, blobs from that
//   id on are read back (each names its key), and the deletions and compaction are taken up.
// Evicted and deleted bodies are tombstoned in batches too, also in a memtable of their own,
// and the range of ids they span is then compacted in the background (`compactLater`):
// tables that only move are never merged, so without it their space would never come back.
//
// Each blob is a disk value (disk-value.ts): checksummed, and naming its key. A blob that is
// short, fails its crc or names another key is deleted and reported as a miss, so the batch
// is rebuilt and a torn or corrupted entry is never served.
import type { FastifyBaseLogger } from 'fastify'
import { WRITE_BUFFER_BYTES, type Db } from '../store/db.js'
import type { CacheMetrics } from './metrics.js'
import type { CachedBatch } from './memory-tier.js'
import { decodeDiskValue, diskValueOf } from './disk-value.js'

const BLOBS = '~batch-blobs'
const ID_DIGITS = 12
// The index and the tombstones go to disk at least this often while there are changes...
const FLUSH_INTERVAL_MS = 30_000
// ...except while fewer body bytes than a write buffer (WRITE_BUFFER_BYTES) were written since
// the last time, for up to FLUSH_MAX_DELAY_MS: each index write closes the table under way,
// and bodies trickling in would otherwise leave many small tables (db.ts sizes the table
// cache for tables of a write buffer or more)...
const FLUSH_MAX_DELAY_MS = 10 * 60_000
// ...or once this many body bytes were written or became due for deletion since the last
// time. It bounds the bodies read back after a crash, and how far LevelDB's files may exceed
// DISK_CACHE_BYTES before deleted bodies are tombstoned.
const FLUSH_BYTES = 64 * 1024 * 1024
// What a compacted range may still hold beyond its live bodies (table overhead, a boundary
// table's neighbours) before its compaction is tried again.
const COMPACTION_SLACK_BYTES = 4 * 1024 * 1024
// Before this layout, bodies and sizes lived under these sublevels.
const LEGACY_SUBLEVELS = ['batches', 'batch-meta']
// A key range no table can hold (every key of the store lies in a sublevel, `!name!...`):
// compacting it only flushes the memtable.
const EMPTY_RANGE = ['\x00', '\x00\x01'] as const

/** [blob id, size in bytes, access seq] */
type IndexEntry = [number, number, number]
/** Blob ids lo..hi */
type Range = [number, number]
interface State { checkpoint: number, deletes: number[], compact?: Range }

function union (a: Range | undefined, b: Range | undefined): Range | undefined {
  if (a === undefined) return b
  if (b === undefined) return a
  return [Math.min(a[0], b[0]), Math.max(a[1], b[1])]
}

function rangeOf (ids: readonly number[]): Range | undefined {
  if (ids.length === 0) return undefined
  let lo = Infinity
  let hi = -1
  for (const id of ids) {
    if (id < lo) lo = id
    if (id > hi) hi = id
  }
  return [lo, hi]
}

interface Slot { blob: number, size: number }

export interface DiskTier {
  /** Loads the index (and recovers what a crash left unindexed); call once before use. */
  load: () => Promise<void>
  get: (key: string) => Promise<CachedBatch | undefined>
  /** Whether the index lists the key (no read: get may still find it corrupt). */
  holds: (key: string) => boolean
  /** Stores entries in one LevelDB write (one WAL append, one memtable insert run). */
  putMany: (entries: ReadonlyArray<readonly [string, CachedBatch]>) => Promise<void>
  /** Removes every entry whose key starts with `prefix`; they are gone when it resolves. */
  deletePrefix: (prefix: string) => Promise<void>
  /** Writes the index and due deletions now, and waits for their compaction. */
  flush: () => Promise<void>
  close: () => Promise<void>
  readonly bytes: number
  readonly degraded: boolean
}

export function blobKey (id: number): string {
  return id.toString(16).padStart(ID_DIGITS, '0')
}

export function createDiskTier (db: Db, maxBytes: number, metrics: CacheMetrics, log: FastifyBaseLogger): DiskTier {
  const blobs = db.sublevel<string, Uint8Array>(BLOBS, { valueEncoding: 'view' })
  const index = db.sublevel<string, IndexEntry>('batch-index', { valueEncoding: 'json' })
  const state = db.sublevel<string, State>('batch-state', { valueEncoding: 'json' })
  // key -> slot, in access order (oldest first): Map keeps insertion order, a touch re-inserts.
  const order = new Map<string, Slot>()
  // Index entries to write (new or touched) and to delete, and blobs to tombstone.
  const dirty = new Set<string>()
  const dropped = new Set<string>()
  let dueBlobs: number[] = []
  let bytesSinceFlush = 0
  let blobBytesSinceFlush = 0
  let lastFlush = performance.now()
  let nextBlob = 0
  let seq = 0
  let total = 0
  let degraded = false
  let flushTimer: NodeJS.Timeout | undefined
  // Blob ranges whose deleted bodies still wait for their compaction (see compactLater).
  let dueRange: Range | undefined
  let runningRange: Range | undefined
  let compacting: Promise<void> | undefined
  let legacyCompaction: Promise<void> | undefined
  let closing = false
  // Every LevelDB write of the tier runs in this chain, one at a time: the memtable isolation
  // in `flush` relies on no body being written between its steps.
  let chain: Promise<unknown> = Promise.resolve()

  function serial<T> (fn: () => Promise<T>): Promise<T> {
    const run = chain.then(fn, fn)
    chain = run.catch(() => {})
    return run
  }

  function publish (): void {
    metrics.bytes.set({ tier: 'disk' }, total)
    metrics.entries.set({ tier: 'disk' }, order.size)
  }

  /** Forgets an entry now; its index entry and blob go at the next flush. */
  function drop (key: string): void {
    const slot = order.get(key)
    if (slot === undefined) return
    order.delete(key)
    dirty.delete(key)
    dropped.add(key)
    dueBlobs.push(slot.blob)
    total -= slot.size
    bytesSinceFlush += slot.size
  }

  function evictToFit (): void {
    let victims = 0
    for (const [key] of order) {
      if (total <= maxBytes) break
      drop(key)
      victims++
    }
    if (victims > 0) metrics.evictions.inc({ tier: 'disk' }, victims)
  }

  /** Flushes LevelDB's memtable, so that what is written next starts a table of its own. */
  async function isolate (): Promise<void> {
    await db.compactRange(EMPTY_RANGE[0], EMPTY_RANGE[1])
  }

  async function flushNow (): Promise<void> {
    if (dirty.size === 0 && dropped.size === 0 && dueBlobs.length === 0) return
    // `dirty` is in access order, and every other entry was last used before the previous
    // flush, so fresh seqs in this order keep the whole index in access order.
    const puts = [...dirty].flatMap((key) => {
      const slot = order.get(key)
      return slot === undefined ? [] : [{ type: 'put' as const, key, value: [slot.blob, slot.size, ++seq] as IndexEntry }]
    })
    const dels = [...dropped].map((key) => ({ type: 'del' as const, key }))
    const deletes = dueBlobs
    const deleted = rangeOf(deletes)
    const wasDirty = [...dirty]
    const wasDropped = [...dropped]
    dirty.clear()
    dropped.clear()
    dueBlobs = []
    bytesSinceFlush = 0
    blobBytesSinceFlush = 0
    lastFlush = performance.now()
    try {
      await isolate()
      // The index and the state change together: after a crash, either both or neither. The
      // state also keeps the range still to compact, which the next start takes up.
      const compact = union(union(dueRange, runningRange), deleted)
      await db.batch([
        ...puts.map((op) => ({ ...op, sublevel: index })),
        ...dels.map((op) => ({ ...op, sublevel: index })),
        { type: 'put' as const, sublevel: state, key: 'state', value: { checkpoint: nextBlob, deletes, ...(compact !== undefined ? { compact } : {}) } }
      ])
    } catch (err) {
      // Keep the changes for the next attempt (entries dropped meanwhile stay dropped).
      for (const key of wasDirty) if (order.has(key) && !dirty.has(key)) dirty.add(key)
      for (const key of wasDropped) if (!order.has(key)) dropped.add(key)
      dueBlobs.unshift(...deletes)
      throw err
    }
    await isolate()
    if (deleted !== undefined) {
      await blobs.batch(deletes.map((id) => ({ type: 'del' as const, key: blobKey(id) })))
      await isolate()
      compactLater(deleted)
    }
  }

  /**
   * Compacts the tables that hold the blobs of `range`, in the background. Tables that only ever move
   * are never merged, so nothing else would drop the deleted bodies: without this the files
   * grow past DISK_CACHE_BYTES for good. Eviction takes the oldest blobs, so the range is
   * mostly dead and the survivors in it are few. Ranges that arrive meanwhile join the next
   * run; one compaction at a time, outside the write chain, so writes go on.
   */
  function compactLater (range: Range): void {
    dueRange = union(dueRange, range)
    compacting ??= (async () => {
      for (;;) {
        if (closing || dueRange === undefined) return
        runningRange = dueRange
        dueRange = undefined
        const [lo, hi] = runningRange
        let live = 0
        for (const slot of order.values()) if (slot.blob >= lo && slot.blob <= hi) live += slot.size
        await compactAway(`!${BLOBS}!${blobKey(lo)}`, `!${BLOBS}!${blobKey(hi)}`, live)
          .catch((err: unknown) => { log.warn({ err }, 'disk tier: cannot compact deleted entries') })
        runningRange = undefined
      }
    })().finally(() => { compacting = undefined })
  }

  /**
   * Compacts [start, end] until its tables hold about `live` bytes, at most three times. One
   * manual compaction walks the levels that held the range when it began; a table LevelDB
   * moved down meanwhile (its own compactions run beside) would keep its deleted bodies.
   */
  async function compactAway (start: string, end: string, live: number): Promise<void> {
    let failure: unknown
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await db.compactRange(start, end)
      } catch (err) {
        failure = err
        continue
      }
      if (await db.approximateSize(start, end) <= live + COMPACTION_SLACK_BYTES) return
    }
    if (failure !== undefined) throw failure
  }

  /** flushNow in the write chain; a failure degrades the tier instead of failing callers. */
  async function flushSafely (): Promise<void> {
    if (degraded) return
    await serial(flushNow).catch((err) => { degrade(err) })
  }

  function degrade (err: unknown): void {
    // A full or failing disk must not fail requests: serve from memory only from now on.
    // (LevelDB itself refuses every write after a failed background write, until reopened.)
    if (degraded) return
    degraded = true
    metrics.diskWriteErrors.inc()
    log.warn({ err }, 'disk tier: write failed; continuing with the memory tier only')
  }

  function flushSoon (): void {
    if (bytesSinceFlush >= FLUSH_BYTES) flushSafely().catch(() => {})
  }

  /** Reads back blobs written after the last index write (a crash came before the next). */
  async function recover (checkpoint: number): Promise<void> {
    let recovered = 0
    for await (const [id, raw] of blobs.iterator({ gte: blobKey(checkpoint) })) {
      const blob = parseInt(id, 16)
      nextBlob = Math.max(nextBlob, blob + 1)
      const entry = decodeDiskValue(raw)
      if (entry === undefined) {
        dueBlobs.push(blob)
        continue
      }
      const old = order.get(entry.key)
      if (old !== undefined) {
        order.delete(entry.key)
        total -= old.size
        dueBlobs.push(old.blob)
      }
      order.set(entry.key, { blob, size: raw.byteLength })
      total += raw.byteLength
      dirty.add(entry.key)
      recovered++
    }
    if (recovered > 0) log.info({ recovered }, 'disk tier: entries written after the last index write recovered')
  }

  const tier: DiskTier = {
    async load () {
      const saved = await state.get('state')
      const entries: Array<[string, IndexEntry]> = []
      for await (const entry of index.iterator()) entries.push(entry)
      entries.sort((a, b) => a[1][2] - b[1][2])
      for (const [key, [blob, size, s]] of entries) {
        order.set(key, { blob, size })
        total += size
        seq = Math.max(seq, s)
        nextBlob = Math.max(nextBlob, blob + 1)
      }
      nextBlob = Math.max(nextBlob, saved?.checkpoint ?? 0)
      await recover(saved?.checkpoint ?? 0)
      // Deletions that were due when the process stopped may not have reached the blobs.
      dueBlobs.push(...(saved?.deletes ?? []))
      publish()
      // The bound may have shrunk since the last run.
      evictToFit()
      // The range left to compact stays in the state this flush writes, and is compacted
      // after it (a compaction under way would hold up the flush's memtable isolation), and
      // after dropLegacy's reads: a table a compaction replaces is deleted only if no open
      // iterator still holds it, and LevelDB looks again only at its next compaction.
      dueRange = saved?.compact
      await flushSafely()
      await dropLegacy()
      if (dueRange !== undefined) compactLater(dueRange)
      flushTimer = setInterval(() => {
        const trickle = blobBytesSinceFlush > 0 && blobBytesSinceFlush < WRITE_BUFFER_BYTES
        if (trickle && performance.now() - lastFlush < FLUSH_MAX_DELAY_MS) return
        flushSafely().catch(() => {})
      }, FLUSH_INTERVAL_MS)
      flushTimer.unref()
    },

    holds (key) {
      return order.has(key)
    },
    async get (key) {
      const slot = order.get(key)
      if (slot === undefined) return undefined
      // An asynchronous read: LevelDB reads tables with pread (leveldb-mmap.ts) and copies the
      // value twice more, and on the libuv pool that work runs beside the event loop instead
      // of in it. getSync measured half the hits per second (2970 against 5783 at 32
      // connections). fillCache off: the memory tier keeps bodies, so LevelDB's block cache
      // keeps only index blocks. (classic-level's option; the sublevel passes it on but does
      // not type it.)
      const raw = await blobs.get(blobKey(slot.blob), { fillCache: false } as Record<string, unknown>)
      const entry = raw === undefined ? undefined : decodeDiskValue(raw)
      if (entry === undefined || entry.key !== key) {
        if (raw !== undefined) {
          metrics.corrupt.inc()
          log.warn({ key }, 'disk tier: entry failed its checksum; dropped and rebuilt')
        }
        if (order.get(key) === slot) {
          drop(key)
          publish()
          flushSoon()
        }
        return undefined
      }
      // The entry may have been evicted or deleted while it was read: answer with it, but
      // leave the access order alone.
      if (order.get(key) === slot) {
        order.delete(key)
        order.set(key, slot)
        // Re-inserted, so that `dirty` too lists keys in access order (see flushNow).
        dirty.delete(key)
        dirty.add(key)
      }
      return { etag: entry.etag, body: entry.body, stored: entry.stored }
    },

    async putMany (entries) {
      if (degraded || maxBytes <= 0) return
      await serial(async () => {
        const items: Array<{ key: string, blob: number, value: Buffer }> = []
        for (const [key, entry] of entries) {
          if (order.has(key)) continue
          const value = diskValueOf(key, entry)
          if (value.length > maxBytes) continue
          items.push({ key, blob: nextBlob++, value })
        }
        if (items.length === 0) return
        try {
          // One put at a time, in blob order. A batch is built on the event loop, where
          // LevelDB's WriteBatch copies every body into a buffer that grows by doubling: ~0.7 ms
          // per MiB there, against ~0.37 for a put, whose copy into LevelDB's own batch runs on
          // the thread pool (the same CPU in all). In order, so that flushed tables keep
          // covering key ranges of their own. Blobs put before a failure are read back at the
          // next start like any written after the last index write (recover).
          for (const { blob, value } of items) await blobs.put(blobKey(blob), value)
        } catch (err) {
          degrade(err)
          return
        }
        for (const { key, blob, value } of items) {
          order.set(key, { blob, size: value.length })
          dirty.add(key)
          total += value.length
          bytesSinceFlush += value.length
          blobBytesSinceFlush += value.length
        }
        evictToFit()
        publish()
      })
      flushSoon()
    },

    async deletePrefix (prefix) {
      for (const key of [...order.keys()]) if (key.startsWith(prefix)) drop(key)
      publish()
      // On a degraded store the entries stay on disk but are never read: batch keys start
      // with the source's fingerprint, so other data registered under the name has others.
      await flushSafely()
    },

    async flush () {
      await flushSafely()
      await compacting
    },

    async close () {
      if (flushTimer !== undefined) clearInterval(flushTimer)
      await flushSafely()
      // A compaction under way ends before the store closes; what is left waits for the next
      // run (LevelDB keeps the tombstones).
      closing = true
      await compacting
      await legacyCompaction
    },

    get bytes () { return total },
    get degraded () { return degraded }
  }

  /** Removes what an older layout stored; it is a cache, so it is rebuilt on demand. */
  async function dropLegacy (): Promise<void> {
    for (const name of LEGACY_SUBLEVELS) {
      const legacy = db.sublevel(name)
      const first = await legacy.keys({ limit: 1 }).all()
      if (first.length === 0) continue
      log.info({ sublevel: name }, 'disk tier: removing entries of an older layout')
      await legacy.clear()
      // Tombstones free no space by themselves: compact the sublevel's range (`!name!` up to
      // the next prefix), in the background; close waits for it.
      const range = [`!${name}!`, `!${name}"`] as const
      const prior = legacyCompaction
      legacyCompaction = (async () => {
        await prior
        await compactAway(range[0], range[1], 0)
          .catch((err: unknown) => { log.warn({ err }, 'disk tier: cannot compact entries of an older layout') })
      })()
    }
  }

  return tier
}
