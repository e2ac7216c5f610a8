// The disk value codec: a batch's key, etag and body in one checksummed buffer, the body last
// so that a Buffer of it can be a view.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { allocDiskValue, bodyOffset, decodeDiskValue, diskValueOf, encodeDiskValue, sealDiskValue } from '../../src/cache/disk-value.js'
import { etagOf } from '../../src/cache/etag.js'
import { createBuildPool } from '../../src/cache/build-pool.js'

test('a value decodes to the key, etag and body it was encoded with; any damage is caught', () => {
  fc.assert(fc.property(fc.string({ maxLength: 200 }), fc.string({ maxLength: 60 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')), fc.uint8Array({ maxLength: 3000 }), fc.nat(), (key, etag, bytes, at) => {
    const body = Buffer.from(bytes)
    const value = encodeDiskValue(key, { etag, body })
    assert.equal(value.buffer.byteLength, value.length, 'a buffer of its own (transferable)')
    const got = decodeDiskValue(value)
    assert.ok(got)
    assert.equal(got.key, key)
    assert.equal(got.etag, etag)
    assert.ok(got.body.equals(body))
    assert.equal(got.body.byteOffset, bodyOffset(key, etag.length))
    const damaged = Buffer.from(value)
    const i = at % damaged.length
    damaged[i] = damaged[i]! ^ 0x10
    const bad = decodeDiskValue(damaged)
    // The version byte changes the layout: a different version is refused as well.
    assert.equal(bad, undefined, `byte ${i} of ${damaged.length} flipped`)
    assert.equal(decodeDiskValue(value.subarray(0, value.length - 1)), undefined)
  }))
})

test('an entry keeps the value it came with only when that value was encoded for its key', () => {
  const body = Buffer.from('{"records":[]}')
  const value = encodeDiskValue('fp/0/0/1/json', { etag: '"e"', body })
  const entry = { etag: '"e"', body: value.subarray(bodyOffset('fp/0/0/1/json', 3)), stored: value }
  assert.equal(diskValueOf('fp/0/0/1/json', entry), value)
  const other = diskValueOf('fp/0/0/2/json', entry)
  assert.notEqual(other, value)
  assert.equal(decodeDiskValue(other)?.key, 'fp/0/0/2/json')
  assert.equal(decodeDiskValue(diskValueOf('k', { etag: '"e"', body }))?.key, 'k')
})

test('a value allocated for a body and sealed is the one encodeDiskValue makes; a wrong etag length is refused', () => {
  const body = Buffer.from('{"records":[1,2,3]}')
  const value = allocDiskValue('fp/1/2/3/json', 4, body.length)
  assert.equal(value.buffer.byteLength, value.length, 'a buffer of its own (transferable)')
  assert.equal(value.length - body.length, bodyOffset('fp/1/2/3/json', 4))
  body.copy(value, value.length - body.length)
  assert.ok(sealDiskValue(value, '"ab"').equals(encodeDiskValue('fp/1/2/3/json', { etag: '"ab"', body })))
  assert.throws(() => sealDiskValue(allocDiskValue('k', 4, 0), '"abc"'), RangeError)
})

test('a build worker returns each body as a view into its disk value, the same bytes as in-process', async (t) => {
  const { buildTestApp, jsonlRecords } = await import('../helper.js')
  const { readFile } = await import('node:fs/promises')
  const { fileURLToPath } = await import('node:url')
  const h = await buildTestApp(t, { PREFETCH_BATCHES: '0' })
  await h.writeData('d.jsonl', jsonlRecords(40))
  await h.writeData('v.npy', await readFile(fileURLToPath(new URL('../fixtures/formats/f32-20x4-v1.npy', import.meta.url))))
  for (const [name, file, format] of [['d', 'd.jsonl', 'jsonl'], ['v', 'v.npy', 'npy']] as const) {
    const res = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name, source: { format, path: file }, batchSize: 8, numShards: 2, shuffle: true } })
    assert.equal(res.statusCode, 201, res.body)
  }
  const { planSpecOf } = await import('../../src/datasets/descriptor.js')
  const inWorker = createBuildPool(1)
  const inProcess = createBuildPool(0)
  t.after(async () => { await inWorker.close(); await inProcess.close() })
  // json and ndjson (and npy's arrow) are written straight into the value; jsonl's arrow,
  // which apache-arrow's writer makes, is copied in.
  for (const [name, formats] of [['d', ['json', 'ndjson', 'arrow']], ['v', ['arrow', 'json']]] as const) {
    const record = await h.app.services.registrar.get(name)
    for (const format of formats) {
      const req = { record, plan: planSpecOf(record), epoch: 2, rank: 1, index: 1, numBatches: 2, format }
      const a = await inWorker.build(req)
      const b = await inProcess.build(req)
      assert.ok(a.body.equals(b.body), `${name} ${format}`)
      assert.equal(a.etag, b.etag)
      assert.equal(a.etag, etagOf(b.body))
      assert.ok(a.stored !== undefined && a.body.buffer === a.stored.buffer, 'the body is a view into the value')
      assert.equal(a.body.byteOffset + a.body.length, a.stored.length, 'the body ends the value')
      const decoded = decodeDiskValue(a.stored)
      assert.equal(decoded?.key, `${record.fingerprint as string}/2/1/1/${format}`)
      assert.ok(decoded?.body.equals(b.body))
    }
  }
})
