import { test } from 'node:test'
import assert from 'node:assert/strict'
import { buildTestApp, jsonlRecords, waitReady } from '../helper.js'

const inline = (n: number): unknown[] => Array.from({ length: n }, (_, i) => ({ id: i, text: `r${i}` }))

test('registers inline records, describes, lists, is idempotent, conflicts, deletes', async (t) => {
  const { app } = await buildTestApp(t)
  const body = { name: 'demo', source: { format: 'json', records: inline(10) }, batchSize: 2, numShards: 3 }
  const created = await app.inject({ method: 'POST', url: '/datasets', payload: body })
  assert.equal(created.statusCode, 201, created.body)
  const d = created.json()
  assert.equal(d.status, 'ready')
  assert.equal(d.numRecords, 10)
  assert.equal(d.planVersion, 1)
  assert.deepEqual(d.batchesPerShard, [2, 2, 2])
  assert.equal(d.shuffle, false)
  assert.equal(d.seed, 0)
  assert.equal(d.remainder, 'partial')
  assert.equal(d.partition, 'strided')
  assert.match(d.fingerprint, /^[0-9a-f]{64}$/)
  assert.deepEqual(d.source, { format: 'json', numInlineRecords: 10 })
  assert.equal(created.headers.location, '/datasets/demo')

  const again = await app.inject({ method: 'POST', url: '/datasets', payload: { ...body, shuffle: false, seed: 0 } })
  assert.equal(again.statusCode, 200, 'same spec with defaults spelled out is the same spec')
  assert.equal(again.json().fingerprint, d.fingerprint)

  const conflict = await app.inject({ method: 'POST', url: '/datasets', payload: { ...body, batchSize: 3 } })
  assert.equal(conflict.statusCode, 409)
  assert.equal(conflict.json().code, 'DATASET_CONFLICT')
  const otherData = await app.inject({ method: 'POST', url: '/datasets', payload: { ...body, source: { format: 'json', records: inline(11) } } })
  assert.equal(otherData.json().code, 'DATASET_CONFLICT')

  const got = await app.inject({ method: 'GET', url: '/datasets/demo' })
  assert.deepEqual(got.json(), d)
  const list = await app.inject({ method: 'GET', url: '/datasets' })
  assert.deepEqual(list.json(), { datasets: [d] })

  const del = await app.inject({ method: 'DELETE', url: '/datasets/demo' })
  assert.equal(del.statusCode, 204)
  const gone = await app.inject({ method: 'GET', url: '/datasets/demo' })
  assert.equal(gone.statusCode, 404)
  assert.equal(gone.json().code, 'DATASET_NOT_FOUND')
  assert.equal((await app.inject({ method: 'DELETE', url: '/datasets/demo' })).json().code, 'DATASET_NOT_FOUND')
})

test('registers JSONL and CSV files under the data root; survives a restart', async (t) => {
  const h = await buildTestApp(t)
  await h.writeData('a/train.jsonl', jsonlRecords(25))
  await h.writeData('b.csv', 'id,name,score\n1,"Smith, J",2.5\n2,"say ""hi""",3\n3,"two\nlines",\n')
  const j = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'j', source: { format: 'jsonl', path: 'a/train.jsonl' }, batchSize: 4, numShards: 2, shuffle: true, seed: 7 } })
  assert.equal(j.statusCode, 201, j.body)
  assert.equal(j.json().numRecords, 25)
  assert.deepEqual(j.json().progress, { bytesDone: Buffer.byteLength(jsonlRecords(25)), bytesTotal: Buffer.byteLength(jsonlRecords(25)) })
  const c = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'c', source: { format: 'csv', path: 'b.csv' }, batchSize: 8, numShards: 1 } })
  assert.equal(c.statusCode, 201, c.body)
  assert.equal(c.json().numRecords, 3)
  const batch = await h.app.inject({ method: 'GET', url: '/datasets/c/shards/0/batches/0' })
  assert.deepEqual(batch.json().records, [
    { id: 1, name: 'Smith, J', score: 2.5 },
    { id: 2, name: 'say "hi"', score: 3 },
    { id: 3, name: 'two\nlines', score: null }
  ])
  const before = (await h.app.inject({ method: 'GET', url: '/datasets/j/shards/1/batches/2?epoch=4' })).body

  const app = await h.restart()
  const list = (await app.inject({ method: 'GET', url: '/datasets' })).json()
  assert.deepEqual(list.datasets.map((x: { name: string, status: string }) => [x.name, x.status]), [['c', 'ready'], ['j', 'ready']])
  const after = (await app.inject({ method: 'GET', url: '/datasets/j/shards/1/batches/2?epoch=4' })).body
  assert.equal(after, before, 'same bytes after a restart')
})

test('large sources register in the background: 202 indexing with progress, then ready', async (t) => {
  const h = await buildTestApp(t, { INDEX_SYNC_MAX_BYTES: '0' })
  await h.writeData('big.jsonl', jsonlRecords(20000))
  const res = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'big', source: { format: 'jsonl', path: 'big.jsonl' }, batchSize: 64, numShards: 4 } })
  assert.equal(res.statusCode, 202, res.body)
  assert.equal(res.json().status, 'indexing')
  assert.equal(res.json().progress.bytesTotal, Buffer.byteLength(jsonlRecords(20000)))
  assert.equal(res.json().numRecords, undefined)
  const early = await h.app.inject({ method: 'GET', url: '/datasets/big/shards/0/batches/0' })
  if (early.statusCode === 409) {
    assert.equal(early.json().code, 'DATASET_NOT_READY')
    assert.equal(early.headers['retry-after'], '1')
  }
  const d = await waitReady(h.app, 'big')
  assert.equal(d.status, 'ready')
  assert.equal(d.numRecords, 20000)
  const ok = await h.app.inject({ method: 'GET', url: '/datasets/big/shards/3/batches/0' })
  assert.equal(ok.statusCode, 200)
})

test('a malformed record fails the dataset with the line named', async (t) => {
  const h = await buildTestApp(t, { INDEX_SYNC_MAX_BYTES: '0' })
  await h.writeData('bad.jsonl', '{"a":1}\n\n{"a":2}\n{"a":\n')
  const res = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'bad', source: { format: 'jsonl', path: 'bad.jsonl' }, batchSize: 1, numShards: 1 } })
  assert.equal(res.statusCode, 202)
  const d = await waitReady(h.app, 'bad')
  assert.equal(d.status, 'failed')
  assert.match(String(d.error), /line 4/)
  const read = await h.app.inject({ method: 'GET', url: '/datasets/bad/shards/0/batches/0' })
  assert.equal(read.statusCode, 422)
  assert.equal(read.json().code, 'SOURCE_INVALID')
  // Fixing the file and registering again replaces the failed registration.
  await h.writeData('bad.jsonl', '{"a":1}\n{"a":2}\n')
  const again = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'bad', source: { format: 'jsonl', path: 'bad.jsonl' }, batchSize: 1, numShards: 1 } })
  assert.equal(again.statusCode, 202)
  assert.equal((await waitReady(h.app, 'bad')).status, 'ready')
})

test('small malformed sources are refused at once with 422 and nothing stays registered', async (t) => {
  const h = await buildTestApp(t)
  await h.writeData('bad.jsonl', '{"a":1}\nnot json\n')
  const res = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'bad', source: { format: 'jsonl', path: 'bad.jsonl' }, batchSize: 1, numShards: 1 } })
  assert.equal(res.statusCode, 422)
  assert.equal(res.json().code, 'SOURCE_INVALID')
  assert.match(res.json().message, /line 2/)
  assert.equal((await h.app.inject({ method: 'GET', url: '/datasets/bad' })).statusCode, 404)
})

test('paths are confined to the data root; missing files are 422', async (t) => {
  const h = await buildTestApp(t)
  for (const p of ['../etc/passwd', '/etc/passwd', 'a/../../x.jsonl']) {
    const res = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'x', source: { format: 'jsonl', path: p }, batchSize: 1, numShards: 1 } })
    assert.equal(res.statusCode, 403, p)
    assert.equal(res.json().code, 'SOURCE_FORBIDDEN')
    assert.doesNotMatch(res.json().message, new RegExp(h.dataRoot), 'the server\'s own paths are not revealed')
  }
  const missing = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'x', source: { format: 'jsonl', path: 'nope.jsonl' }, batchSize: 1, numShards: 1 } })
  assert.equal(missing.statusCode, 422)
  assert.equal(missing.json().code, 'SOURCE_INVALID')
})

test('bad registration bodies are 400 VALIDATION with a message', async (t) => {
  const { app } = await buildTestApp(t)
  const good = { name: 'ok', source: { format: 'json', records: [{ a: 1 }] }, batchSize: 1, numShards: 1 }
  const bad: unknown[] = [
    { ...good, batchSz: 2 },
    { ...good, batchSize: '8' },
    { ...good, batchSize: 1.5 },
    { ...good, batchSize: 0 },
    { ...good, numShards: 65537 },
    { ...good, seed: -1 },
    { ...good, seed: 2 ** 32 },
    { ...good, remainder: 'keep' },
    { ...good, name: 'Upper' },
    { ...good, name: 'a'.repeat(65) },
    { ...good, source: { format: 'json', records: [{ a: 1 }], path: 'x' } },
    { ...good, source: { format: 'jsonl', records: [{ a: 1 }] } },
    { ...good, source: { format: 'json' } },
    { ...good, source: { format: 'json', records: [1, 2] } },
    { ...good, source: { format: 'xml', path: 'a' } },
    { ...good, source: { format: 'jsonl', path: 'a', extra: 1 } },
    [],
    'text'
  ]
  for (const payload of bad) {
    const res = await app.inject({ method: 'POST', url: '/datasets', payload: payload as object })
    assert.equal(res.statusCode, 400, JSON.stringify(payload))
    const body = res.json()
    assert.equal(body.code, 'VALIDATION')
    assert.equal(body.statusCode, 400)
    assert.ok(body.message.length > 0)
  }
  const notJson = await app.inject({ method: 'POST', url: '/datasets', payload: '{"name":', headers: { 'content-type': 'application/json' } })
  assert.equal(notJson.statusCode, 400)
  assert.equal(notJson.json().code, 'VALIDATION')
})

test('shard info counts batches and records per rank', async (t) => {
  const { app } = await buildTestApp(t)
  await app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'json', records: inline(10) }, batchSize: 2, numShards: 3 } })
  assert.deepEqual((await app.inject({ method: 'GET', url: '/datasets/d/shards/1' })).json(), { rank: 1, numBatches: 2, numRecords: 3 })
  const out = await app.inject({ method: 'GET', url: '/datasets/d/shards/3' })
  assert.equal(out.statusCode, 404)
  assert.equal(out.json().code, 'SHARD_NOT_FOUND')
  assert.equal((await app.inject({ method: 'GET', url: '/datasets/d/shards/x' })).json().code, 'VALIDATION')
})
