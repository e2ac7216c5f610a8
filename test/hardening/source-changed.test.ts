import { test } from 'node:test'
import assert from 'node:assert/strict'
import { appendFile, rename, rm, stat, utimes, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { buildTestApp, jsonlRecords } from '../helper.js'
import { createSourceGuard } from '../../src/datasets/source-guard.js'
import type { DatasetRecord } from '../../src/store/registry.js'

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
