// The disk value codec: a batch's key, etag and body in one checksummed buffer, the body last
// so that a Buffer of it can be a view.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { bodyOffset, decodeDiskValue, diskValueOf, encodeDiskValue } from '../../src/cache/disk-value.js'
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
    assert.equal(got.body.byteOffset, bodyOffset(key, etag))
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
  const entry = { etag: '"e"', body: value.subarray(bodyOffset('fp/0/0/1/json', '"e"')), stored: value }
  assert.equal(diskValueOf('fp/0/0/1/json', entry), value)
  const other = diskValueOf('fp/0/0/2/json', entry)
  assert.notEqual(other, value)
  assert.equal(decodeDiskValue(other)?.key, 'fp/0/0/2/json')
  assert.equal(decodeDiskValue(diskValueOf('k', { etag: '"e"', body }))?.key, 'k')
})

test('a build worker returns the body as a view into its disk value, the same bytes as in-process', async (t) => {
  const { buildTestApp, jsonlRecords } = await import('../helper.js')
  const h = await buildTestApp(t, { PREFETCH_BATCHES: '0' })
  await h.writeData('d.jsonl', jsonlRecords(40))
  const res = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 8, numShards: 2 } })
  assert.equal(res.statusCode, 201, res.body)
  const record = await h.app.services.registrar.get('d')
  const { planSpecOf } = await import('../../src/datasets/descriptor.js')
  const req = { record, plan: planSpecOf(record), epoch: 2, rank: 1, index: 1, numBatches: 3, format: 'json' as const }
  const inWorker = createBuildPool(1)
  const inProcess = createBuildPool(0)
  t.after(async () => { await inWorker.close(); await inProcess.close() })
  const a = await inWorker.build(req)
  const b = await inProcess.build(req)
  assert.ok(a.body.equals(b.body))
  assert.equal(a.etag, b.etag)
  assert.ok(a.stored !== undefined && a.body.buffer === a.stored.buffer, 'the body is a view into the value')
  const decoded = decodeDiskValue(a.stored)
  assert.equal(decoded?.key, `${record.fingerprint as string}/2/1/1/json`)
  assert.ok(decoded?.body.equals(b.body))
})
