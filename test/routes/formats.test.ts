// Arrow, NDJSON and JSON from every source format, end to end through the HTTP routes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { tableFromIPC } from 'apache-arrow'
import { buildTestApp } from '../helper.js'
import { repoRoot } from '../shared.js'

const fixture = async (name: string): Promise<Buffer> => await readFile(path.join(repoRoot, 'test', 'fixtures', 'formats', name))

function arrowRows (body: Buffer): Array<Record<string, unknown>> {
  const table = tableFromIPC(body)
  return table.toArray().map((row) => row.toJSON() as Record<string, unknown>)
}

test('JSONL: the schema is inferred at registration and Arrow carries it plus __index', async (t) => {
  const h = await buildTestApp(t)
  const lines = Array.from({ length: 12 }, (_, i) => JSON.stringify({ id: i, score: i / 4, ok: i % 2 === 0, name: `n${i}`, x: [i, i + 0.5], meta: { k: i }, opt: i % 3 === 0 ? null : i }))
  await h.writeData('d.jsonl', lines.join('\n') + '\n')
  const reg = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 5, numShards: 1, shuffle: true } })
  assert.equal(reg.statusCode, 201, reg.body)
  assert.deepEqual(reg.json().schema.fields.map((f: { name: string, type: string }) => [f.name, f.type]), [
    // i/4 and i+0.5 are exact float32 values: lossless float32 columns.
    ['id', 'int64'], ['score', 'float32'], ['ok', 'bool'], ['name', 'string'], ['x', 'list<float32>'], ['meta', 'json'], ['opt', 'int64']
  ])
  const json = (await h.app.inject({ method: 'GET', url: '/datasets/d/shards/0/batches/1?epoch=2' })).json()
  const res = await h.app.inject({ method: 'GET', url: '/datasets/d/shards/0/batches/1?epoch=2', headers: { accept: 'application/vnd.apache.arrow.stream' } })
  assert.equal(res.statusCode, 200)
  assert.equal(res.headers['content-type'], 'application/vnd.apache.arrow.stream')
  const rows = arrowRows(res.rawPayload)
  assert.deepEqual(rows.map((r) => Number(r.__index)), json.indices)
  rows.forEach((r, k) => {
    const rec = json.records[k]
    assert.equal(Number(r.id), rec.id)
    assert.equal(r.score, rec.score)
    assert.equal(r.ok, rec.ok)
    assert.equal(r.name, rec.name)
    assert.deepEqual([...(r.x as Iterable<number>)], rec.x)
    assert.deepEqual(JSON.parse(r.meta as string), rec.meta)
    assert.equal(r.opt === null ? null : Number(r.opt), rec.opt)
  })
  const byParam = await h.app.inject({ method: 'GET', url: '/datasets/d/shards/0/batches/1?epoch=2&format=arrow' })
  assert.ok(byParam.rawPayload.equals(res.rawPayload))
  assert.notEqual(byParam.headers.etag, (await h.app.inject({ method: 'GET', url: '/datasets/d/shards/0/batches/1?epoch=2' })).headers.etag)
})

test('JSONL: a record that does not fit the inferred schema fails registration with its line', async (t) => {
  const h = await buildTestApp(t)
  await h.writeData('d.jsonl', '{"a":1}\n\n{"a":2}\n{"a":"three"}\n')
  const res = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 1, numShards: 1 } })
  assert.equal(res.statusCode, 422)
  assert.equal(res.json().code, 'SOURCE_INVALID')
  assert.match(res.json().message, /line 4/)
  assert.match(res.json().message, /"a"/)
})

test('CSV: typed columns in Arrow', async (t) => {
  const h = await buildTestApp(t)
  await h.writeData('c.csv', 'id,name,score\n1,a,0.5\n2,"b, c",\n3,d,2\n')
  const reg = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'c', source: { format: 'csv', path: 'c.csv' }, batchSize: 3, numShards: 1 } })
  assert.equal(reg.statusCode, 201, reg.body)
  assert.deepEqual(reg.json().schema.fields.map((f: { name: string, type: string, nullable?: boolean }) => [f.name, f.type, f.nullable === true]), [['id', 'int64', false], ['name', 'string', false], ['score', 'float32', true]])
  const rows = arrowRows((await h.app.inject({ method: 'GET', url: '/datasets/c/shards/0/batches/0?format=arrow' })).rawPayload)
  assert.deepEqual(rows.map((r) => [Number(r.id), r.name, r.score]), [[1, 'a', 0.5], [2, 'b, c', null], [3, 'd', 2]])
})

test('npy: one record per leading index; Arrow fixed-size lists, JSON nested arrays', async (t) => {
  const h = await buildTestApp(t)
  await h.writeData('x.npy', await fixture('f64-6x2x3-v2.npy'))
  const expected = JSON.parse((await fixture('npy-expected.json')).toString())['f64-6x2x3-v2.npy'].records as number[][][]
  const reg = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'x', source: { format: 'npy', path: 'x.npy' }, batchSize: 4, numShards: 2 } })
  assert.equal(reg.statusCode, 201, reg.body)
  assert.equal(reg.json().numRecords, 6)
  assert.deepEqual(reg.json().schema.fields[0], { name: 'data', type: 'fixed_size_list<float64>', shape: [2, 3] })
  const json = (await h.app.inject({ method: 'GET', url: '/datasets/x/shards/1/batches/0' })).json()
  assert.deepEqual(json.indices, [1, 3, 5])
  assert.deepEqual(json.records, json.indices.map((i: number) => expected[i]))
  const table = tableFromIPC((await h.app.inject({ method: 'GET', url: '/datasets/x/shards/1/batches/0?format=arrow' })).rawPayload)
  assert.deepEqual([...table.getChild('__index')!].map(Number), [1, 3, 5])
  const data = table.getChild('data')!
  for (let k = 0; k < 3; k++) assert.deepEqual([...data.get(k)], expected[json.indices[k]]!.flat())
})

test('parquet: rows by row group, JSON and Arrow agree with the file', async (t) => {
  const h = await buildTestApp(t)
  await h.writeData('p.parquet', await fixture('rows-30.parquet'))
  const reg = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'p', source: { format: 'parquet', path: 'p.parquet' }, batchSize: 4, numShards: 2, shuffle: true, seed: 1 } })
  assert.equal(reg.statusCode, 201, reg.body)
  assert.equal(reg.json().numRecords, 30)
  const ids: number[] = []
  for (let rank = 0; rank < 2; rank++) {
    for (let i = 0; i < reg.json().batchesPerShard[rank]; i++) {
      const b = (await h.app.inject({ method: 'GET', url: `/datasets/p/shards/${rank}/batches/${i}` })).json()
      ids.push(...b.indices)
      const arrow = await h.app.inject({ method: 'GET', url: `/datasets/p/shards/${rank}/batches/${i}?format=arrow` })
      assert.equal(arrow.statusCode, 200, arrow.body)
      assert.deepEqual(arrowRows(arrow.rawPayload).map((r) => Number(r.__index)), b.indices)
    }
  }
  assert.deepEqual(ids.sort((a, b) => a - b), Array.from({ length: 30 }, (_, i) => i))
})
