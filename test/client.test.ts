// The TypeScript client against a real listening server: typed reads, errors with codes,
// ordered iteration with resume, and retries across a server restart on the same port.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../src/app.js'
import { loadConfig } from '../src/config.js'
import { ShardfeedClient, ShardfeedError } from '../src/client/index.js'
import { makeTempDirs, jsonlRecords } from './helper.js'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { freePort } from './process.js'

test('the TypeScript client reads, iterates, resumes and retries across a restart', async (t) => {
  const { dataRoot, cacheDir } = await makeTempDirs(t)
  await writeFile(path.join(dataRoot, 'd.jsonl'), jsonlRecords(120))
  const port = await freePort()
  const config = loadConfig({ DATA_ROOT: dataRoot, CACHE_DIR: cacheDir, LOG_LEVEL: 'silent', PORT: String(port) })
  let app: FastifyInstance = await buildApp(config)
  await app.listen({ port, host: '127.0.0.1' })
  t.after(async () => { await app.close() })

  const client = new ShardfeedClient({ baseUrl: `http://127.0.0.1:${port}/`, backoffMs: 50, retries: 20 })
  const d = await client.registerAndWait({ name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 10, numShards: 3, shuffle: true, seed: 2 })
  assert.equal(d.status, 'ready')
  assert.deepEqual(d.batchesPerShard, [4, 4, 4])
  assert.equal((await client.describe('d')).fingerprint, d.fingerprint)
  assert.deepEqual(await client.shard('d', 2), { rank: 2, numBatches: 4, numRecords: 40 })

  const b = await client.batch<{ id: number }>('d', 1, 2, { epoch: 5 })
  assert.equal(b.records.length, 10)
  assert.deepEqual(b.records.map((r) => r.id), b.indices)
  const rows = await client.ndjsonBatch<{ id: number }>('d', 1, 2, { epoch: 5 })
  assert.deepEqual(rows.map((r) => r.index), b.indices)

  await assert.rejects(client.batch('d', 1, 9), (err: unknown) => err instanceof ShardfeedError && err.status === 404 && err.code === 'BATCH_OUT_OF_RANGE')
  await assert.rejects(client.describe('nope'), (err: unknown) => err instanceof ShardfeedError && err.code === 'DATASET_NOT_FOUND')

  // Every record once per epoch across the ranks, in order within a rank; resume from 2.
  const ids: number[] = []
  for (let rank = 0; rank < 3; rank++) {
    for await (const { index, batch } of client.iterBatches('d', rank, { epoch: 1, concurrency: 3 })) {
      const body = JSON.parse(batch.body.toString())
      assert.equal(body.index, index)
      ids.push(...body.records.map((r: { id: number }) => r.id))
    }
  }
  assert.deepEqual(ids.sort((x, y) => x - y), Array.from({ length: 120 }, (_, i) => i))
  const resumed: number[] = []
  for await (const { index } of client.iterBatches('d', 0, { epoch: 1, start: 2 })) resumed.push(index)
  assert.deepEqual(resumed, [2, 3])

  // The server goes away mid-epoch and comes back on the same port: nothing lost or repeated.
  const expected = await Promise.all([0, 1, 2, 3].map(async (i) => (await client.batchBytes('d', 2, i, { epoch: 3 })).body))
  const seen: number[] = []
  for await (const { index, batch } of client.iterBatches('d', 2, { epoch: 3, concurrency: 1 })) {
    seen.push(index)
    assert.ok(batch.body.equals(expected[index] as Buffer), `batch ${index} bytes`)
    if (index === 1) {
      await app.close()
      setTimeout(() => {
        buildApp(config).then(async (a) => {
          app = a
          await a.listen({ port, host: '127.0.0.1' })
        }).catch((err: unknown) => { throw err })
      }, 300)
    }
  }
  assert.deepEqual(seen, [0, 1, 2, 3])
})
