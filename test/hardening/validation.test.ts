// Hostile input: strict integers, body limits, and a fuzz run of arbitrary bodies, paths and
// query strings that must never produce a 5xx, a hang or a non-JSON error.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { buildTestApp, jsonlRecords } from '../helper.js'

test('integers only where integers are meant', async (t) => {
  const { app } = await buildTestApp(t)
  await app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'json', records: [{ a: 1 }, { a: 2 }] }, batchSize: 1, numShards: 1 } })
  for (const v of ['1.5', '"8"', '1e3', '0x1', '99999999999999999999', '-1', 'null', 'true', '[8]']) {
    const res = await app.inject({ method: 'POST', url: '/datasets', headers: { 'content-type': 'application/json' }, payload: `{"name":"x","source":{"format":"json","records":[{"a":1}]},"batchSize":${v},"numShards":1}` })
    assert.equal(res.statusCode, 400, v)
    assert.equal(res.json().code, 'VALIDATION', v)
  }
  for (const q of ['epoch=1.5', 'epoch=1e3', 'epoch=0x1', 'epoch=99999999999', 'epoch=2147483648', 'epoch=', 'epoch=%20', 'epoch=1&epoch=2']) {
    const res = await app.inject({ method: 'GET', url: `/datasets/d/shards/0/batches/0?${q}` })
    assert.equal(res.statusCode, 400, q)
    assert.equal(res.json().code, 'VALIDATION', q)
  }
  assert.equal((await app.inject({ method: 'GET', url: '/datasets/d/shards/0/batches/0?epoch=2147483647' })).statusCode, 200)
})

test('bodies over BODY_LIMIT_BYTES are 413 BODY_TOO_LARGE', async (t) => {
  const { app } = await buildTestApp(t, { BODY_LIMIT_BYTES: '2048' })
  const records = Array.from({ length: 200 }, (_, i) => ({ i, pad: 'x'.repeat(20) }))
  const res = await app.inject({ method: 'POST', url: '/datasets', payload: { name: 'big', source: { format: 'json', records }, batchSize: 1, numShards: 1 } })
  assert.equal(res.statusCode, 413)
  assert.deepEqual(Object.keys(res.json()).sort(), ['code', 'error', 'message', 'statusCode'])
  assert.equal(res.json().code, 'BODY_TOO_LARGE')
})

test('fuzz: arbitrary bodies, paths and query strings never give a 5xx and always a JSON error', async (t) => {
  const h = await buildTestApp(t, { BODY_LIMIT_BYTES: '65536' })
  await h.writeData('d.jsonl', jsonlRecords(40))
  await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 4, numShards: 2 } })
  const { app } = h
  const segment = fc.oneof(
    fc.constantFrom('d', 'datasets', 'shards', 'batches', '0', '1', '..', '%2e%2e', '%00', '-1', '1.5', '1e3', '0x1', '99999999999', 'é', '%', '%zz', ''),
    fc.string({ maxLength: 12 }).map(encodeURIComponent),
    fc.nat().map(String)
  )
  const path = fc.array(segment, { maxLength: 7 }).map((segs) => '/' + segs.join('/'))
  const query = fc.array(fc.tuple(fc.constantFrom('epoch', 'format', 'x', 'epoch[]', ''), fc.oneof(fc.string({ maxLength: 10 }), fc.nat().map(String))), { maxLength: 3 })
    .map((kv) => kv.length === 0 ? '' : '?' + kv.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&'))
  const body = fc.oneof(
    fc.json({ maxDepth: 4 }),
    fc.string({ maxLength: 200 }),
    fc.record({
      name: fc.oneof(fc.constantFrom('d', 'ok', 'x'), fc.string({ maxLength: 70 })),
      source: fc.oneof(fc.record({ format: fc.constantFrom('jsonl', 'csv', 'json', 'npy', 'parquet', 'xml'), path: fc.oneof(fc.constantFrom('d.jsonl', '../x', '/etc/passwd', 'a\\b', 'a\u0000b', '%2e%2e/x'), fc.string({ maxLength: 20 })) }, { requiredKeys: [] }), fc.anything()),
      batchSize: fc.oneof(fc.integer(), fc.double(), fc.string({ maxLength: 5 }), fc.constant(1)),
      numShards: fc.oneof(fc.integer(), fc.constant(1)),
      shuffle: fc.anything(),
      seed: fc.oneof(fc.integer(), fc.double(), fc.bigInt().map(String)),
      extra: fc.anything()
    }, { requiredKeys: [] }).map((o) => JSON.stringify(o))
  )
  const methods = fc.constantFrom('GET', 'GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'HEAD', 'OPTIONS')
  const headers = fc.record({
    'content-type': fc.constantFrom('application/json', 'text/plain', 'application/x-www-form-urlencoded', 'application/json; charset=latin1', ''),
    accept: fc.constantFrom('*/*', 'application/json', 'application/x-ndjson;q=0.5', 'image/png', 'application/vnd.apache.arrow.stream', '', ';;;q=x')
  }, { requiredKeys: [] })

  let requests = 0
  await fc.assert(fc.asyncProperty(methods, path, query, body, headers, async (method, p, q, b, hdrs) => {
    requests++
    const res = await app.inject({
      method: method as 'GET',
      url: p + q,
      headers: hdrs,
      ...(method === 'GET' || method === 'HEAD' || method === 'OPTIONS' ? {} : { payload: typeof b === 'string' ? b : JSON.stringify(b) })
    })
    assert.ok(res.statusCode < 500, `${method} ${p}${q} -> ${res.statusCode} ${res.body.slice(0, 200)}`)
    if (res.statusCode >= 400 && method !== 'HEAD') {
      const err = res.json()
      assert.equal(typeof err.statusCode, 'number')
      assert.equal(err.statusCode, res.statusCode)
      assert.equal(typeof err.code, 'string')
      assert.equal(typeof err.message, 'string')
    }
  }), { numRuns: 3000, seed: 42 })
  assert.equal(requests, 3000)
  // The process is alive and still serves.
  assert.equal((await app.inject({ method: 'GET', url: '/datasets/d/shards/1/batches/0' })).statusCode, 200)
})
