// Kill -9 under load, restart, and every batch must come back byte for byte: the disk tier
// may lose the last writes, but it never serves a torn or stale entry.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { makeTempDirs, jsonlRecords } from '../helper.js'
import { startServerProcess } from '../process.js'
import { etagOf } from '../../src/cache/batch-cache.js'

const SHARDS = 4
const EPOCHS = 2

test('SIGKILL under concurrent load, restart: every batch is byte-identical and the disk tier answers', async (t) => {
  const { dataRoot, cacheDir } = await makeTempDirs(t)
  await writeFile(path.join(dataRoot, 'd.jsonl'), jsonlRecords(3000))
  const env = { DATA_ROOT: dataRoot, CACHE_DIR: cacheDir, PREFETCH_BATCHES: '2' }
  const first = await startServerProcess(t, env)
  const reg = await fetch(`${first.url}/datasets`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 16, numShards: SHARDS, shuffle: true, seed: 9 })
  })
  assert.equal(reg.status, 201)
  const { batchesPerShard } = await reg.json() as { batchesPerShard: number[] }
  const urls: string[] = []
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    for (let rank = 0; rank < SHARDS; rank++) {
      for (let i = 0; i < (batchesPerShard[rank] as number); i++) urls.push(`/datasets/d/shards/${rank}/batches/${i}?epoch=${epoch}`)
    }
  }

  // Eight clients read until the server dies under them; the kill lands mid-load.
  const served = new Map<string, Buffer>()
  let next = 0
  let killed = false
  async function client (base: string): Promise<void> {
    while (next < urls.length) {
      const u = urls[next++] as string
      try {
        const res = await fetch(base + u)
        const body = Buffer.from(await res.arrayBuffer())
        assert.equal(res.status, 200)
        assert.equal(res.headers.get('etag'), etagOf(body), 'the ETag is the digest of the body')
        served.set(u, body)
      } catch (err) {
        if (!killed) throw err
        return
      }
      if (served.size === Math.floor(urls.length / 2) && !killed) {
        killed = true
        first.child.kill('SIGKILL')
      }
    }
  }
  await Promise.all(Array.from({ length: 8 }, async () => await client(first.url)))
  if (first.child.exitCode === null && first.child.signalCode === null) await once(first.child, 'exit')
  assert.equal(first.child.signalCode, 'SIGKILL')
  assert.ok(served.size >= urls.length / 2, `served ${served.size} before the kill`)

  const second = await startServerProcess(t, env)
  let fromDisk = 0
  for (const u of urls) {
    const res = await fetch(second.url + u)
    assert.equal(res.status, 200)
    const body = Buffer.from(await res.arrayBuffer())
    if (res.headers.get('x-cache') === 'disk') fromDisk++
    assert.equal(res.headers.get('etag'), etagOf(body))
    const before = served.get(u)
    if (before !== undefined) assert.ok(before.equals(body), `byte-identical after restart: ${u}`)
  }
  assert.ok(fromDisk > 0, 'the disk tier answered after the restart')
  second.child.kill('SIGTERM')
  const [code] = await once(second.child, 'exit')
  assert.equal(code, 0)
})
