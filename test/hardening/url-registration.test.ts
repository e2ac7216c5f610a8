// URL sources through the API: allowed prefixes only, fetched with Range requests into the
// cache, then served like a local file.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { buildTestApp, jsonlRecords, waitReady } from '../helper.js'

test('a URL under an allowed prefix is fetched by ranges, indexed and served', async (t) => {
  const body = Buffer.from(jsonlRecords(500))
  const ranges: string[] = []
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (req.url !== '/data/train.jsonl') { res.writeHead(404).end(); return }
    const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '')
    ranges.push(req.headers.range ?? '')
    if (m === null) { res.writeHead(200, { 'content-length': body.length, etag: '"v1"' }).end(body); return }
    const start = Number(m[1])
    const end = Math.min(m[2] === '' ? body.length - 1 : Number(m[2]), body.length - 1)
    res.writeHead(206, { 'content-range': `bytes ${start}-${end}/${body.length}`, 'content-length': end - start + 1, etag: '"v1"', 'accept-ranges': 'bytes' })
    res.end(body.subarray(start, end + 1))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.after(() => { server.close() })
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const h = await buildTestApp(t, { ALLOWED_SOURCE_URL_PREFIXES: `${base}/data/` })
  const reg = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'u', source: { format: 'jsonl', url: `${base}/data/train.jsonl` }, batchSize: 10, numShards: 2 } })
  assert.equal(reg.statusCode, 202, reg.body)
  const d = await waitReady(h.app, 'u')
  assert.equal(d.status, 'ready', JSON.stringify(d))
  assert.equal(d.numRecords, 500)
  assert.ok(ranges.length >= 1 && ranges.every((r) => r.startsWith('bytes=')), JSON.stringify(ranges))
  const batch = (await h.app.inject({ method: 'GET', url: '/datasets/u/shards/1/batches/3' })).json()
  assert.deepEqual(batch.records.map((r: { id: number }) => r.id), batch.indices)

  for (const url of [`${base}/other/train.jsonl`, `${base}/data/../other/x.jsonl`, `${base}/database.jsonl`, 'ftp://127.0.0.1/data/x', 'http://user:pw@127.0.0.1/data/x']) {
    const res = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'v', source: { format: 'jsonl', url }, batchSize: 1, numShards: 1 } })
    assert.ok(res.statusCode === 403 || res.statusCode === 400, `${url}: ${res.statusCode}`)
  }
  const missing = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'm', source: { format: 'jsonl', url: `${base}/data/missing.jsonl` }, batchSize: 1, numShards: 1 } })
  assert.equal(missing.statusCode, 202)
  const failed = await waitReady(h.app, 'm')
  assert.equal(failed.status, 'failed')
  assert.match(String(failed.error), /404/)
})

test('with no allowed prefixes every URL is 403 SOURCE_FORBIDDEN', async (t) => {
  const { app } = await buildTestApp(t)
  const res = await app.inject({ method: 'POST', url: '/datasets', payload: { name: 'v', source: { format: 'jsonl', url: 'http://127.0.0.1:1/x.jsonl' }, batchSize: 1, numShards: 1 } })
  assert.equal(res.statusCode, 403)
  assert.equal(res.json().code, 'SOURCE_FORBIDDEN')
})
