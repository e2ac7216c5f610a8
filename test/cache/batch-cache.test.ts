import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { buildTestApp, jsonlRecords, type TestApp } from '../helper.js'

async function metric (app: FastifyInstance, name: string, labels: Record<string, string> = {}, field = ''): Promise<number> {
  const m = app.services.metrics.registry.getSingleMetric(name)
  assert.ok(m, `metric ${name}`)
  const { values } = await m.get()
  const v = values.find((x) => (field === '' || (x as { metricName?: string }).metricName === `${name}${field}`) &&
    Object.entries(labels).every(([k, val]) => (x.labels as Record<string, unknown>)[k] === val))
  return v?.value ?? 0
}

async function setup (t: Parameters<typeof buildTestApp>[0], env: Record<string, string>, n = 200): Promise<TestApp> {
  const h = await buildTestApp(t, env)
  await h.writeData('d.jsonl', jsonlRecords(n))
  const res = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 8, numShards: 2, shuffle: true, seed: 3 } })
  assert.equal(res.statusCode, 201, res.body)
  return h
}

const url = (rank: number, i: number, epoch = 0): string => `/datasets/d/shards/${rank}/batches/${i}?epoch=${epoch}`

test('memory tier answers the second request, disk tier answers after a restart', async (t) => {
  const h = await setup(t, { PREFETCH_BATCHES: '0' })
  const first = await h.app.inject({ method: 'GET', url: url(0, 2) })
  assert.equal(first.headers['x-cache'], 'miss')
  const second = await h.app.inject({ method: 'GET', url: url(0, 2) })
  assert.equal(second.headers['x-cache'], 'memory')
  assert.equal(second.body, first.body)
  assert.equal(second.headers.etag, first.headers.etag)
  assert.equal(await metric(h.app, 'shardfeed_cache_hits_total', { tier: 'memory' }), 1)

  const app = await h.restart()
  const third = await app.inject({ method: 'GET', url: url(0, 2) })
  assert.equal(third.headers['x-cache'], 'disk')
  assert.equal(third.body, first.body)
  assert.equal(third.headers.etag, first.headers.etag)
  assert.equal((await app.inject({ method: 'GET', url: url(0, 2) })).headers['x-cache'], 'memory')
  const other = await app.inject({ method: 'GET', url: url(0, 3) })
  assert.equal(other.headers['x-cache'], 'miss')
})

test('concurrent requests for one missing batch build it once', async (t) => {
  const h = await setup(t, { PREFETCH_BATCHES: '0' })
  const responses = await Promise.all(Array.from({ length: 25 }, async () => await h.app.inject({ method: 'GET', url: url(1, 4, 7) })))
  assert.equal(new Set(responses.map((r) => r.body)).size, 1)
  assert.ok(responses.every((r) => r.statusCode === 200))
  assert.equal(await metric(h.app, 'shardfeed_batch_build_seconds', { format: 'json' }, '_count'), 1)
})

test('requests for one disk-tier batch at once share one LevelDB read (hit path and route)', async (t) => {
  const h = await setup(t, { PREFETCH_BATCHES: '0', MEMORY_CACHE_BYTES: '0' })
  const built = await h.app.inject({ method: 'GET', url: url(0, 3) })
  assert.equal(built.headers['x-cache'], 'miss')
  await h.app.services.batches.settle()
  const reads = async (): Promise<number> => await metric(h.app, 'shardfeed_cache_disk_reads_total')
  const before = await reads()
  const record = h.app.services.registrar.peekReady('d')
  assert.ok(record !== undefined)
  // The hit path's lookups, then the route's requests: all start before a read can complete
  // (that takes a turn of the event loop), as when trainers in lockstep ask at once.
  const peeks = Array.from({ length: 6 }, () => h.app.services.batches.peekCached({ record, epoch: 0, rank: 0, index: 3, format: 'json' }))
  const routed = await Promise.all(Array.from({ length: 4 }, async () => await h.app.inject({ method: 'GET', url: url(0, 3) })))
  for (const peek of peeks) {
    assert.ok(peek instanceof Promise, 'a disk-tier entry is read asynchronously')
    const batch = await peek
    assert.equal(batch?.tier, 'disk')
    assert.equal(Buffer.from(batch.body).toString(), built.body)
  }
  for (const res of routed) {
    assert.equal(res.headers['x-cache'], 'disk')
    assert.equal(res.body, built.body)
  }
  assert.equal(await reads() - before, 1, 'ten requests, one read')
  assert.equal(await metric(h.app, 'shardfeed_cache_hits_total', { tier: 'disk' }), 10)
  // A read is shared while it runs, never kept: the next request reads again.
  assert.equal((await h.app.inject({ method: 'GET', url: url(0, 3) })).headers['x-cache'], 'disk')
  assert.equal(await reads() - before, 2)
})

test('a batch that finds the disk-tier write queue full is served, counted and not written', async (t) => {
  // A queue of one byte holds no batch: every build is served from memory and skipped on disk.
  const h = await setup(t, { PREFETCH_BATCHES: '0', DISK_WRITE_QUEUE_BYTES: '1' })
  for (const i of [0, 1, 2]) assert.equal((await h.app.inject({ method: 'GET', url: url(0, i) })).headers['x-cache'], 'miss')
  await h.app.services.batches.settle()
  assert.equal(await metric(h.app, 'shardfeed_cache_disk_writes_skipped_total'), 3)
  assert.equal(await metric(h.app, 'shardfeed_cache_entries', { tier: 'disk' }), 0)
  assert.equal((await h.app.inject({ method: 'GET', url: url(0, 1) })).headers['x-cache'], 'memory')
  // After a restart nothing of them is on disk: they are built again.
  const app = await h.restart()
  assert.equal((await app.inject({ method: 'GET', url: url(0, 1) })).headers['x-cache'], 'miss')
})

test('with the default queue nothing is skipped', async (t) => {
  const h = await setup(t, { PREFETCH_BATCHES: '0' })
  for (const i of [0, 1, 2]) await h.app.inject({ method: 'GET', url: url(0, i) })
  await h.app.services.batches.settle()
  assert.equal(await metric(h.app, 'shardfeed_cache_disk_writes_skipped_total'), 0)
  assert.equal(await metric(h.app, 'shardfeed_cache_entries', { tier: 'disk' }), 3)
})

test('read-ahead warms the next batches of the rank', async (t) => {
  const h = await setup(t, { PREFETCH_BATCHES: '3' })
  await h.app.inject({ method: 'GET', url: url(0, 0, 1) })
  // Read-ahead runs in the background; wait for its three builds.
  await h.app.services.batches.settle()
  assert.equal(await metric(h.app, 'shardfeed_batch_build_seconds', { format: 'json' }, '_count'), 4)
  for (const i of [1, 2, 3]) {
    assert.equal((await h.app.inject({ method: 'GET', url: url(0, i, 1) })).headers['x-cache'], 'memory', `batch ${i}`)
  }
  assert.equal(await metric(h.app, 'shardfeed_readahead_hits_total'), 3)
  // Nothing beyond the window, nothing of another rank or epoch was built.
  assert.equal((await h.app.inject({ method: 'GET', url: url(1, 0, 1) })).headers['x-cache'], 'miss')
})

test('PREFETCH_BATCHES=0 turns read-ahead off', async (t) => {
  const h = await setup(t, { PREFETCH_BATCHES: '0' })
  await h.app.inject({ method: 'GET', url: url(0, 0) })
  await h.app.services.batches.settle()
  assert.equal(await metric(h.app, 'shardfeed_batch_build_seconds', { format: 'json' }, '_count'), 1)
  assert.equal((await h.app.inject({ method: 'GET', url: url(0, 1) })).headers['x-cache'], 'miss')
})

test('the memory tier stays within MEMORY_CACHE_BYTES', async (t) => {
  const h = await setup(t, { PREFETCH_BATCHES: '0', MEMORY_CACHE_BYTES: '8000' })
  for (let i = 0; i < 12; i++) await h.app.inject({ method: 'GET', url: url(0, i) })
  const bytes = await metric(h.app, 'shardfeed_cache_bytes', { tier: 'memory' })
  assert.ok(bytes > 0 && bytes <= 8000, `memory bytes ${bytes}`)
  assert.ok(await metric(h.app, 'shardfeed_cache_evictions_total', { tier: 'memory' }) > 0)
})

test('the disk tier stays within DISK_CACHE_BYTES, evicting the least recently used', async (t) => {
  const h = await setup(t, { PREFETCH_BATCHES: '0', MEMORY_CACHE_BYTES: '0', DISK_CACHE_BYTES: '3000' })
  for (let i = 0; i < 12; i++) await h.app.inject({ method: 'GET', url: url(0, i) })
  // Disk writes happen after the response; let them land.
  await h.app.services.batches.settle()
  const bytes = await metric(h.app, 'shardfeed_cache_bytes', { tier: 'disk' })
  assert.ok(bytes > 0 && bytes <= 3000, `disk bytes ${bytes}`)
  assert.ok(await metric(h.app, 'shardfeed_cache_evictions_total', { tier: 'disk' }) > 0)
  assert.equal((await h.app.inject({ method: 'GET', url: url(0, 11) })).headers['x-cache'], 'disk', 'newest kept')
  assert.equal((await h.app.inject({ method: 'GET', url: url(0, 0) })).headers['x-cache'], 'miss', 'oldest evicted')
  // Counting what is really stored: the bound holds in LevelDB, not only in the books.
  await h.app.services.batches.settle()
  let stored = 0
  for await (const v of h.app.services.db.sublevel<string, Uint8Array>('~batch-blobs', { valueEncoding: 'view' }).values()) stored += v.byteLength
  assert.ok(stored <= 3000, `stored ${stored}`)
})

test('a corrupt or truncated disk entry is dropped and rebuilt, never served', async (t) => {
  const h = await setup(t, { PREFETCH_BATCHES: '0', MEMORY_CACHE_BYTES: '0' })
  const good = await h.app.inject({ method: 'GET', url: url(1, 1) })
  await h.app.services.batches.settle()
  assert.equal((await h.app.inject({ method: 'GET', url: url(1, 1) })).headers['x-cache'], 'disk')
  const values = h.app.services.db.sublevel<string, Uint8Array>('~batch-blobs', { valueEncoding: 'view' })
  const original = Buffer.from((await values.values().all())[0] as Uint8Array)
  const damages = [
    (raw: Buffer) => Buffer.concat([raw.subarray(0, raw.length - 1), Buffer.from([raw[raw.length - 1]! ^ 1])]),
    (raw: Buffer) => raw.subarray(0, raw.length - 10),
    (raw: Buffer) => raw.subarray(0, 3)
  ]
  for (const damage of damages) {
    // Each rebuild is stored anew and the damaged blob is deleted: one blob at a time.
    const keys = await values.keys().all()
    assert.equal(keys.length, 1)
    const key = keys[0] as string
    const raw = Buffer.from((await values.get(key)) as Uint8Array)
    assert.ok(raw.subarray(8).equals(original.subarray(8)), 'the rebuilt entry holds the same key, etag and body')
    await values.put(key, damage(raw))
    const res = await h.app.inject({ method: 'GET', url: url(1, 1) })
    assert.equal(res.headers['x-cache'], 'miss')
    assert.equal(res.body, good.body)
    await h.app.services.batches.settle()
  }
  assert.equal((await h.app.inject({ method: 'GET', url: url(1, 1) })).headers['x-cache'], 'disk')
  assert.equal(await metric(h.app, 'shardfeed_cache_corrupt_total'), 3)
})

test('DELETE removes the dataset\'s batches from both tiers; a new registration never sees old bytes', async (t) => {
  const h = await setup(t, { PREFETCH_BATCHES: '0' })
  const before = await h.app.inject({ method: 'GET', url: url(0, 0) })
  await h.app.services.batches.settle()
  assert.ok(await metric(h.app, 'shardfeed_cache_entries', { tier: 'disk' }) === 1)
  assert.equal((await h.app.inject({ method: 'DELETE', url: '/datasets/d' })).statusCode, 204)
  assert.equal(await metric(h.app, 'shardfeed_cache_entries', { tier: 'disk' }), 0)
  assert.equal(await metric(h.app, 'shardfeed_cache_entries', { tier: 'memory' }), 0)
  assert.equal((await h.app.services.db.sublevel('~batch-blobs').keys().all()).length, 0)

  await h.writeData('d.jsonl', jsonlRecords(200).replaceAll('record', 'changed'))
  await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 8, numShards: 2, shuffle: true, seed: 3 } })
  const after = await h.app.inject({ method: 'GET', url: url(0, 0) })
  assert.equal(after.headers['x-cache'], 'miss')
  assert.notEqual(after.body, before.body)
  assert.match(after.body, /changed/)
})

test('a build under way when its dataset is deleted answers its request but is not cached', async (t) => {
  const h = await setup(t, { PREFETCH_BATCHES: '0' })
  const { batches, registrar } = h.app.services
  const record = await registrar.get('d')
  const pending = batches.getBatch({ record, epoch: 0, rank: 0, index: 1, format: 'json' })
  await batches.forget(record)
  const batch = await pending
  assert.equal(batch.tier, 'miss')
  assert.ok(batch.body.length > 0)
  await batches.settle()
  assert.equal(await metric(h.app, 'shardfeed_cache_entries', { tier: 'memory' }), 0)
  assert.equal((await h.app.services.db.sublevel('~batch-blobs').keys().all()).length, 0)
})

test('/metrics exposes the cache and process metrics in Prometheus text', async (t) => {
  const h = await setup(t, { PREFETCH_BATCHES: '0' })
  await h.app.inject({ method: 'GET', url: url(0, 0) })
  await h.app.inject({ method: 'GET', url: url(0, 0) })
  const res = await h.app.inject({ method: 'GET', url: '/metrics' })
  assert.equal(res.statusCode, 200)
  assert.match(res.headers['content-type'] as string, /^text\/plain/)
  for (const name of ['shardfeed_cache_hits_total{tier="memory"} 1', 'shardfeed_cache_misses_total', 'shardfeed_cache_bytes', 'shardfeed_cache_entries',
    'shardfeed_cache_evictions_total', 'shardfeed_cache_disk_reads_total', 'shardfeed_cache_disk_writes_skipped_total', 'shardfeed_batch_build_seconds_bucket', 'shardfeed_readahead_hits_total', 'shardfeed_inflight_builds', 'process_resident_memory_bytes']) {
    assert.ok(res.body.includes(name), name)
  }
})

// The build runs in a worker thread (BUILD_WORKERS defaults to 1): its AppError keeps its code.
test('a damaged offset index answers 422 SOURCE_INVALID, not a 500', async (t) => {
  const h = await setup(t, { PREFETCH_BATCHES: '0' })
  const record = await h.app.services.registrar.get('d')
  await (await import('node:fs/promises')).writeFile(record.indexPath as string, Buffer.alloc(13))
  await h.restart()
  const res = await h.app.inject({ method: 'GET', url: url(0, 0) })
  assert.equal(res.statusCode, 422)
  assert.equal(res.json().code, 'SOURCE_INVALID')
  assert.match(res.json().message, /register it again/)
})

test('builds in worker threads and on the event loop give the same bytes, in every format', async (t) => {
  const inWorkers = await setup(t, { PREFETCH_BATCHES: '0', BUILD_WORKERS: '2' })
  const inProcess = await setup(t, { PREFETCH_BATCHES: '0', BUILD_WORKERS: '0' })
  for (const format of ['json', 'ndjson', 'arrow']) {
    for (const [rank, i] of [[0, 0], [1, 5], [1, 12]] as const) {
      const u = `${url(rank, i, 3)}&format=${format}`
      const a = await inWorkers.app.inject({ method: 'GET', url: u })
      const b = await inProcess.app.inject({ method: 'GET', url: u })
      assert.equal(a.statusCode, 200)
      assert.ok(a.rawPayload.equals(b.rawPayload), `${format} ${rank}/${i}`)
      assert.equal(a.headers.etag, b.headers.etag)
    }
  }
})
