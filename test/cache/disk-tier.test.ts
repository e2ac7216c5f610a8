// The disk tier on a real LevelDB in a temp dir: its layout keeps LevelDB from rewriting
// bodies, and its index comes back after a clean stop and after a crash.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { FastifyBaseLogger } from 'fastify'
import { openDb, type Db } from '../../src/store/db.js'
import { createDiskTier, type DiskTier } from '../../src/cache/disk-tier.js'
import { createCacheMetrics } from '../../src/cache/metrics.js'
import type { CachedBatch } from '../../src/cache/memory-tier.js'

const quiet = { info () {}, warn () {}, debug () {}, error () {} } as unknown as FastifyBaseLogger
const MiB = 1024 * 1024

const dirs = new WeakMap<Db, string>()

async function tempDb (t: TestContext): Promise<Db> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shardfeed-disk-'))
  const db = await openDb(dir)
  dirs.set(db, path.join(dir, 'db'))
  t.after(async () => {
    await db.close()
    await rm(dir, { recursive: true, force: true })
  })
  return db
}

/** Bytes of LevelDB's table files: what the disk holds, deleted or not. */
async function tableBytes (db: Db): Promise<number> {
  const dir = dirs.get(db) as string
  let sum = 0
  for (const name of await readdir(dir)) {
    if (!name.endsWith('.ldb')) continue
    // A compaction may delete a table between the listing and its stat: it holds nothing then.
    const st = await stat(path.join(dir, name)).catch((err: NodeJS.ErrnoException) => { if (err.code === 'ENOENT') return undefined; throw err })
    sum += st?.size ?? 0
  }
  return sum
}

async function openTier (db: Db, maxBytes: number): Promise<DiskTier> {
  const tier = createDiskTier(db, maxBytes, createCacheMetrics(), quiet)
  await tier.load()
  return tier
}

function batch (seed: number, size: number): CachedBatch {
  return { etag: `"etag-${seed}"`, body: Buffer.alloc(size, seed % 251) }
}

async function blobCount (db: Db): Promise<number> {
  return (await db.sublevel('~batch-blobs').keys().all()).length
}

/** Sums a column of LevelDB's per-level compaction table (MB written or read). */
function compactionMiB (db: Db, column: 'Read(MB)' | 'Write(MB)'): number {
  const lines = db.getProperty('leveldb.stats').split('\n')
  const header = lines.findIndex((l) => l.includes(column))
  const col = (lines[header] as string).trim().split(/\s+/).indexOf(column)
  return lines.slice(header + 2).filter((l) => /^\s*\d/.test(l)).reduce((sum, l) => sum + Number(l.trim().split(/\s+/)[col]), 0)
}

async function compactionsSettled (db: Db): Promise<void> {
  let last = ''
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 150))
    const now = db.getProperty('leveldb.stats')
    if (now === last) return
    last = now
  }
}

test('LevelDB moves stored bodies between levels without rewriting them', async (t) => {
  const db = await tempDb(t)
  const tier = await openTier(db, 4 * 1024 * MiB)
  // A registration lands in the same memtable as the first bodies.
  await db.sublevel<string, unknown>('datasets', { valueEncoding: 'json' }).put('d', { name: 'd' })
  // Like trainers of two datasets over several epochs: batch keys of each epoch sort between
  // those of earlier epochs and those of the other dataset.
  let written = 0
  for (let epoch = 0; epoch < 6; epoch++) {
    for (const fp of ['a1', 'f9']) {
      const entries: Array<[string, CachedBatch]> = []
      for (let i = 0; i < 44; i++) entries.push([`${fp}/${epoch}/${i % 4}/${i >> 2}/json`, batch(i, 180 * 1024)])
      await tier.putMany(entries)
      written += 44 * 180 * 1024
    }
    await tier.flush()
  }
  await compactionsSettled(db)
  const writtenMiB = written / MiB
  const wrote = compactionMiB(db, 'Write(MB)')
  const read = compactionMiB(db, 'Read(MB)')
  // Memtable flushes write each body once; compactions that merge tables would read and
  // write them again (several times over with bodies keyed by batch address).
  assert.ok(wrote <= writtenMiB * 1.15 + 2, `LevelDB wrote ${wrote} MiB of tables for ${writtenMiB.toFixed(1)} MiB of bodies`)
  assert.ok(read <= 2, `compactions read ${read} MiB`)
  assert.equal((await tier.get('f9/5/3/10/json'))?.body.length, 180 * 1024)
  await tier.close()
})

test('evicted bodies leave the table files: the files stay near DISK_CACHE_BYTES', async (t) => {
  const db = await tempDb(t)
  const bound = 8 * MiB
  const tier = await openTier(db, bound)
  for (let round = 0; round < 8; round++) {
    const entries: Array<[string, CachedBatch]> = []
    for (let i = 0; i < 44; i++) entries.push([`fp/${round}/0/${i}/json`, batch(round * 44 + i, 180 * 1024)])
    await tier.putMany(entries)
    // Index writes (and with them tombstones) come every 64 MiB or 30 s; this is 7.7 MiB.
    await tier.flush()
  }
  assert.ok(tier.bytes <= bound)
  const onDisk = await tableBytes(db)
  // Tables moved down the levels without a merge would still hold all 62 MiB written.
  assert.ok(onDisk <= bound * 1.5 + 2 * MiB, `tables hold ${(onDisk / MiB).toFixed(1)} MiB for a bound of ${bound / MiB} MiB`)
  assert.equal((await tier.get('fp/7/0/43/json'))?.body.length, 180 * 1024)
  assert.equal(await tier.get('fp/0/0/0/json'), undefined)
  await tier.close()
})

test('a range of deleted bodies not yet compacted at a stop is compacted at the next start', async (t) => {
  const db = await tempDb(t)
  const first = await openTier(db, 1024 * MiB)
  for (let round = 0; round < 4; round++) {
    const entries: Array<[string, CachedBatch]> = []
    for (let i = 0; i < 44; i++) entries.push([`fp/${round}/0/${i}/json`, batch(i, 180 * 1024)])
    await first.putMany(entries)
  }
  await first.close()
  // What a stop right after an index write leaves: entries deleted, tombstones written, the
  // range to compact in the state, no compaction yet.
  const blobs = db.sublevel<string, Uint8Array>('~batch-blobs', { valueEncoding: 'view' })
  const ids = await blobs.keys().all()
  await db.sublevel('batch-index').clear()
  await blobs.batch(ids.map((key) => ({ type: 'del' as const, key })))
  await db.sublevel<string, unknown>('batch-state', { valueEncoding: 'json' }).put('state', { checkpoint: ids.length, deletes: [], compact: [0, ids.length - 1] })
  assert.ok(await tableBytes(db) > 25 * MiB)
  const second = await openTier(db, 1024 * MiB)
  await second.flush()
  assert.ok(await tableBytes(db) < 2 * MiB, `tables hold ${(await tableBytes(db) / MiB).toFixed(1)} MiB`)
  await second.close()
})

test('entries written after the last index write survive a crash; due deletions are applied', async (t) => {
  const db = await tempDb(t)
  const size = 1000
  const first = await openTier(db, 2.5 * (size + 64))
  await first.putMany([['k/0', batch(0, size)], ['k/1', batch(1, size)]])
  await first.putMany([['k/2', batch(2, size)]])
  // k/0 was evicted, but its blob is deleted only at the next index write. The process dies
  // here: no flush, no close. A new tier on the same store stands for the restart.
  assert.equal(await blobCount(db), 3)
  const second = await openTier(db, 2.5 * (size + 64))
  assert.equal(await second.get('k/0'), undefined)
  for (const k of [1, 2]) {
    const got = await second.get(`k/${k}`)
    assert.ok(got?.body.equals(batch(k, size).body), `k/${k}`)
    assert.equal(got?.etag, `"etag-${k}"`)
  }
  assert.equal(await blobCount(db), 2)
  assert.equal(second.bytes, 2 * (size + 8 + 3 + 8))
  await second.close()
})

test('the least recently used entry is evicted first, also across a restart', async (t) => {
  const db = await tempDb(t)
  const size = 1000
  const first = await openTier(db, 100 * size)
  for (const k of ['a', 'b', 'c']) await first.putMany([[k, batch(k.charCodeAt(0), size)]])
  assert.ok(await first.get('a'))
  await first.close()
  // Room for two: b is the least recently used.
  const second = await openTier(db, 2.5 * (size + 32))
  assert.equal(await second.get('b'), undefined)
  assert.ok(await second.get('a'))
  assert.ok(await second.get('c'))
  assert.equal(await blobCount(db), 2)
  await second.close()
})

test('the index waits while bodies trickle in, so that tables are not cut small', async (t) => {
  t.mock.timers.enable({ apis: ['setInterval'] })
  const db = await tempDb(t)
  const tier = await openTier(db, 1024 * MiB)
  const indexed = async (): Promise<number> => (await db.sublevel('batch-index').keys().all()).length
  const tick = async (): Promise<void> => {
    t.mock.timers.tick(30_000)
    await tier.get('none') // lets the timer's write start, then waits for the chain:
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
  await tier.putMany([['a', batch(1, 100 * 1024)]])
  await tick()
  assert.equal(await indexed(), 0, 'one small body: the index write waits')
  await tier.putMany([['b', batch(2, 2 * MiB)]])
  await tick()
  assert.equal(await indexed(), 2, 'past 2 MiB: the index is written')
  // Touches alone (no new body) are written at the next tick.
  assert.ok(await tier.get('a'))
  await tick()
  const [, , seqA] = await db.sublevel<string, [number, number, number]>('batch-index', { valueEncoding: 'json' }).get('a') as [number, number, number]
  assert.equal(seqA, 3)
  await tier.close()
})

test('entries of the older layout are removed at load, and their space freed', async (t) => {
  const db = await tempDb(t)
  const legacy = db.sublevel<string, Uint8Array>('batches', { valueEncoding: 'view' })
  const meta = db.sublevel<string, unknown>('batch-meta', { valueEncoding: 'json' })
  for (let i = 0; i < 120; i++) {
    await legacy.put(`fp/0/0/${i}/json`, Buffer.alloc(180 * 1024, i))
    await meta.put(`fp/0/0/${i}/json`, { size: 180 * 1024, seq: i })
  }
  assert.ok(await tableBytes(db) > 10 * MiB)
  const tier = await openTier(db, MiB)
  assert.equal((await db.sublevel('batches').keys().all()).length, 0)
  assert.equal((await db.sublevel('batch-meta').keys().all()).length, 0)
  assert.equal(await tier.get('fp/0/0/0/json'), undefined)
  await tier.close()
  assert.ok(await tableBytes(db) < 2 * MiB, `tables hold ${(await tableBytes(db) / MiB).toFixed(1)} MiB`)
})
