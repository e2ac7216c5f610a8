import { test } from 'node:test'
import assert from 'node:assert/strict'
import { buildTestApp, jsonlRecords } from '../helper.js'
import { batchIndices } from '../../src/plan/plan.js'

async function setup (t: Parameters<typeof buildTestApp>[0], n = 50, extra: Record<string, unknown> = {}): Promise<Awaited<ReturnType<typeof buildTestApp>>> {
  const h = await buildTestApp(t)
  await h.writeData('d.jsonl', jsonlRecords(n))
  const res = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 4, numShards: 3, ...extra } })
  assert.equal(res.statusCode, 201, res.body)
  return h
}

test('a json batch holds the plan\'s indices and the source\'s records, with caching headers and Link', async (t) => {
  const { app } = await setup(t, 50, { shuffle: true, seed: 11 })
  const plan = { numRecords: 50, batchSize: 4, numShards: 3, shuffle: true, seed: 11, remainder: 'partial' as const, partition: 'strided' as const }
  const res = await app.inject({ method: 'GET', url: '/datasets/d/shards/2/batches/1?epoch=3' })
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers['content-type'], 'application/json')
  const body = res.json()
  const expected = batchIndices(plan, 3, 2, 1)
  assert.deepEqual(body, {
    dataset: 'd',
    epoch: 3,
    rank: 2,
    index: 1,
    numBatches: 4,
    indices: expected,
    records: expected.map((i) => ({ id: i, label: i % 3, text: `record ${i}` }))
  })
  assert.match(res.headers.etag as string, /^"[A-Za-z0-9_-]{32}"$/)
  assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable')
  assert.equal(res.headers['x-cache'], 'miss')
  assert.equal(res.headers.link, '</datasets/d/shards/2/batches/2?epoch=3>; rel="next"')

  const last = await app.inject({ method: 'GET', url: '/datasets/d/shards/2/batches/3?epoch=3' })
  assert.equal(last.statusCode, 200)
  assert.equal(last.headers.link, undefined)

  const again = await app.inject({ method: 'GET', url: '/datasets/d/shards/2/batches/1?epoch=3' })
  assert.equal(again.body, res.body, 'deterministic bytes')
  assert.equal(again.headers.etag, res.headers.etag)
  const notModified = await app.inject({ method: 'GET', url: '/datasets/d/shards/2/batches/1?epoch=3', headers: { 'if-none-match': res.headers.etag as string } })
  assert.equal(notModified.statusCode, 304)
  assert.equal(notModified.body, '')
  assert.equal(notModified.headers.etag, res.headers.etag)
})

test('every record is served exactly once per epoch across ranks, and epochs differ', async (t) => {
  const { app } = await setup(t, 50, { shuffle: true, seed: 5 })
  const orders: number[][] = []
  for (const epoch of [0, 1]) {
    const seen: number[] = []
    for (let rank = 0; rank < 3; rank++) {
      const shard = (await app.inject({ method: 'GET', url: `/datasets/d/shards/${rank}` })).json()
      for (let i = 0; i < shard.numBatches; i++) {
        const b = (await app.inject({ method: 'GET', url: `/datasets/d/shards/${rank}/batches/${i}?epoch=${epoch}` })).json()
        seen.push(...b.records.map((r: { id: number }) => r.id))
      }
    }
    assert.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 50 }, (_, i) => i))
    orders.push(seen)
  }
  assert.notDeepEqual(orders[0], orders[1])
})

test('address errors use the catalogue codes', async (t) => {
  const { app } = await setup(t)
  const cases: Array<[string, number, string]> = [
    ['/datasets/nope/shards/0/batches/0', 404, 'DATASET_NOT_FOUND'],
    ['/datasets/d/shards/3/batches/0', 404, 'SHARD_NOT_FOUND'],
    ['/datasets/d/shards/0/batches/5', 404, 'BATCH_OUT_OF_RANGE'],
    ['/datasets/d/shards/0/batches/0?epoch=2147483648', 400, 'VALIDATION'],
    ['/datasets/d/shards/0/batches/0?epoch=1.5', 400, 'VALIDATION'],
    ['/datasets/d/shards/0/batches/0?epoch=-1', 400, 'VALIDATION'],
    ['/datasets/d/shards/0/batches/0?epoch=1e3', 400, 'VALIDATION'],
    ['/datasets/d/shards/0/batches/0x1', 400, 'VALIDATION'],
    ['/datasets/d/shards/a/batches/0', 400, 'VALIDATION'],
    ['/datasets/d/shards/0/batches/99999999999', 400, 'VALIDATION'],
    ['/datasets/d/shards/0/batches/0?colour=red', 400, 'VALIDATION'],
    ['/datasets/d/shards/0/batches/0?format=xml', 406, 'FORMAT_NOT_ACCEPTABLE'],
    ['/nowhere', 404, 'ROUTE_NOT_FOUND']
  ]
  for (const [url, status, code] of cases) {
    const res = await app.inject({ method: 'GET', url })
    assert.equal(res.statusCode, status, url)
    const body = res.json()
    assert.equal(body.code, code, url)
    assert.equal(body.statusCode, status)
    assert.equal(typeof body.message, 'string')
  }
  const out = (await app.inject({ method: 'GET', url: '/datasets/d/shards/0/batches/5' })).json()
  assert.equal(out.message, 'batch 5 of shard 0: the shard has 5 batches (0..4)')
})

test('format negotiation: ?format wins, then Accept with q-values, else json; 406 otherwise', async (t) => {
  const { app } = await setup(t)
  const url = '/datasets/d/shards/0/batches/0'
  const nd = await app.inject({ method: 'GET', url: `${url}?format=ndjson` })
  assert.equal(nd.headers['content-type'], 'application/x-ndjson')
  const lines = nd.body.trimEnd().split('\n').map((l) => JSON.parse(l))
  assert.deepEqual(lines[0], { index: 0, record: { id: 0, label: 0, text: 'record 0' } })
  assert.equal(lines.length, 4)
  assert.equal(nd.headers.link, '</datasets/d/shards/0/batches/1?epoch=0&format=ndjson>; rel="next"')

  const byAccept = await app.inject({ method: 'GET', url, headers: { accept: 'application/json;q=0.5, application/x-ndjson' } })
  assert.equal(byAccept.headers['content-type'], 'application/x-ndjson')
  assert.equal(byAccept.body, nd.body)
  assert.notEqual(byAccept.headers.etag, (await app.inject({ method: 'GET', url })).headers.etag)
  assert.equal((await app.inject({ method: 'GET', url, headers: { accept: '*/*' } })).headers['content-type'], 'application/json')
  const wins = await app.inject({ method: 'GET', url: `${url}?format=json`, headers: { accept: 'application/x-ndjson' } })
  assert.equal(wins.headers['content-type'], 'application/json')
  const none = await app.inject({ method: 'GET', url, headers: { accept: 'image/png' } })
  assert.equal(none.statusCode, 406)
  assert.equal(none.json().code, 'FORMAT_NOT_ACCEPTABLE')
})

test('drop and pad remainders serve the plan\'s batches', async (t) => {
  const h = await buildTestApp(t)
  await h.writeData('ten.jsonl', jsonlRecords(10))
  for (const [remainder, expect] of [['drop', [[0, 3]]], ['pad', [[0, 3], [6, 9]]]] as const) {
    const name = `ten-${remainder}`
    await h.app.inject({ method: 'POST', url: '/datasets', payload: { name, source: { format: 'jsonl', path: 'ten.jsonl' }, batchSize: 2, numShards: 3, remainder } })
    const d = (await h.app.inject({ method: 'GET', url: `/datasets/${name}` })).json()
    assert.equal(d.batchesPerShard.length, 3)
    const got: number[][] = []
    for (let i = 0; i < d.batchesPerShard[0]; i++) got.push((await h.app.inject({ method: 'GET', url: `/datasets/${name}/shards/0/batches/${i}` })).json().indices)
    assert.deepEqual(got, expect)
  }
  const pad = (await h.app.inject({ method: 'GET', url: '/datasets/ten-pad/shards/1/batches/1' })).json()
  assert.deepEqual(pad.indices, [7, 0])
  assert.deepEqual(pad.records.map((r: { id: number }) => r.id), [7, 0])
})
