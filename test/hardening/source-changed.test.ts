import { test } from 'node:test'
import assert from 'node:assert/strict'
import { appendFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { buildTestApp, jsonlRecords } from '../helper.js'
import { createSourceGuard } from '../../src/datasets/source-guard.js'
import type { DatasetRecord } from '../../src/store/registry.js'
import { createIndexThreads, type IndexThreads } from '../../src/sources/index-worker.js'

test('a source changed after registration answers 409 SOURCE_CHANGED, cached batches too', async (t) => {
  const h = await buildTestApp(t, { PREFETCH_BATCHES: '0' })
  await h.writeData('d.jsonl', jsonlRecords(30))
  await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 5, numShards: 1 } })
  assert.equal((await h.app.inject({ method: 'GET', url: '/datasets/d/shards/0/batches/0' })).statusCode, 200)
  await appendFile(path.join(h.dataRoot, 'd.jsonl'), JSON.stringify({ id: 99 }) + '\n')
  // The check runs at most once a second per dataset.
  await new Promise((resolve) => setTimeout(resolve, 1100))
  for (const i of [0, 1]) {
    const res = await h.app.inject({ method: 'GET', url: `/datasets/d/shards/0/batches/${i}` })
    assert.equal(res.statusCode, 409, `batch ${i}`)
    assert.equal(res.json().code, 'SOURCE_CHANGED')
    assert.match(res.json().message, /register it again/)
  }
  // Re-registering (DELETE, POST) serves the new content.
  await h.app.inject({ method: 'DELETE', url: '/datasets/d' })
  const reg = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 5, numShards: 1 } })
  assert.equal(reg.json().numRecords, 31)
  assert.equal((await h.app.inject({ method: 'GET', url: '/datasets/d/shards/0/batches/6' })).json().records[0].id, 99)
})

test('the guard stats at most once per interval, and notices mtime and deletion', async (t) => {
  const h = await buildTestApp(t)
  const file = path.join(h.dataRoot, 'f.jsonl')
  await h.writeData('f.jsonl', '{"a":1}\n')
  const reg = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'f', source: { format: 'jsonl', path: 'f.jsonl' }, batchSize: 1, numShards: 1 } })
  assert.equal(reg.statusCode, 201)
  const record = await h.app.services.registrar.get('f') as DatasetRecord
  let clock = 0
  const guard = createSourceGuard(1000, () => clock)
  guard.check(record)
  await utimes(file, new Date(), new Date(Date.now() + 5000))
  clock = 999
  guard.check(record) // within the interval: not stat'ed again
  clock = 1000
  assert.throws(() => { guard.check(record) }, /modified/)
  await rm(file)
  assert.throws(() => { guard.verify(record) }, /can no longer be read/)
})

test('a file of the same size and mtime renamed over the source is SOURCE_CHANGED too', async (t) => {
  const h = await buildTestApp(t, { PREFETCH_BATCHES: '0' })
  await h.writeData('d.jsonl', '{"id":1}\n{"id":2}\n')
  // A whole second, so that the copy below can be given exactly the same mtime.
  const when = Math.floor(Date.now() / 1000) - 60
  const file = path.join(h.dataRoot, 'd.jsonl')
  await utimes(file, when, when)
  const reg = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 1, numShards: 1 } })
  assert.equal(reg.statusCode, 201)
  assert.equal((await h.app.inject({ method: 'GET', url: '/datasets/d/shards/0/batches/0' })).statusCode, 200)
  // What `rsync -t` or `cp -p` to a temp name and a rename make: other bytes, same size and mtime.
  const before = await stat(file)
  const tmp = path.join(h.dataRoot, 'd.jsonl.tmp')
  await writeFile(tmp, '{"id":3}\n{"id":4}\n')
  await utimes(tmp, when, when)
  await rename(tmp, file)
  const after = await stat(file)
  assert.equal(after.size, before.size)
  assert.equal(after.mtimeMs, before.mtimeMs)
  assert.notEqual(after.ino, before.ino)
  await new Promise((resolve) => setTimeout(resolve, 1100))
  const res = await h.app.inject({ method: 'GET', url: '/datasets/d/shards/0/batches/1' })
  assert.equal(res.statusCode, 409)
  assert.equal(res.json().code, 'SOURCE_CHANGED')
  assert.match(res.json().message, /another file was put in its place/)
})

test('a source replaced, touched or grown while it is indexed fails its registration; registered again, it is ready', async (t) => {
  // The real indexing threads; the file changes right after the pass ends, before the
  // registrar compares the file's stat with the one taken before the pass.
  const threads = createIndexThreads(0)
  let changeAfterPass: ((file: string) => Promise<void>) | undefined
  const changing: IndexThreads = {
    async index (format, file, indexPath, opts) {
      const result = await threads.index(format, file, indexPath, opts)
      const change = changeAfterPass
      changeAfterPass = undefined
      await change?.(file)
      return result
    },
    prepare: () => { threads.prepare() },
    get started () { return threads.started },
    close: async () => { await threads.close() }
  }
  const h = await buildTestApp(t, {}, { indexThreads: changing })
  const file = path.join(h.dataRoot, 'd.jsonl')
  const content = jsonlRecords(20)
  const changes: Record<string, (f: string) => Promise<void>> = {
    // Same size and bytes, another inode.
    'renamed over': async (f) => { await writeFile(`${f}.new`, content); await rename(`${f}.new`, f) },
    // Same inode, size and bytes, a later mtime.
    touched: async (f) => { const later = new Date(Date.now() + 60_000); await utimes(f, later, later) },
    grown: async (f) => { await appendFile(f, JSON.stringify({ id: 20 }) + '\n') }
  }
  for (const [what, change] of Object.entries(changes)) {
    await writeFile(file, content)
    changeAfterPass = change
    const res = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 5, numShards: 1 } })
    const body = res.json()
    assert.equal(changeAfterPass, undefined, `${what}: the pass ran`)
    const failed = res.statusCode === 201 ? (await h.app.inject({ method: 'GET', url: '/datasets/d' })).json() : body
    assert.match(JSON.stringify(failed), /changed while it was being indexed/, `${what}: ${res.statusCode} ${res.body}`)
    assert.equal((await h.app.inject({ method: 'GET', url: '/datasets/d/shards/0/batches/0' })).statusCode >= 400, true, `${what}: no batches`)
    await h.app.inject({ method: 'DELETE', url: '/datasets/d' })
    const again = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 5, numShards: 1 } })
    assert.equal(again.statusCode, 201, `${what}: ${again.body}`)
    assert.equal(again.json().status, 'ready')
    assert.equal(again.json().numRecords, what === 'grown' ? 21 : 20)
    await h.app.inject({ method: 'DELETE', url: '/datasets/d' })
  }
})
