// SIGTERM: stop accepting, finish what is in flight, close LevelDB cleanly, exit 0; the next
// start on the same folders finds everything.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { makeTempDirs, jsonlRecords } from '../helper.js'
import { startServerProcess } from '../process.js'
import { etagOf } from '../../src/cache/batch-cache.js'

test('SIGTERM under load: in-flight requests complete, exit 0, the store reopens', async (t) => {
  const { dataRoot, cacheDir } = await makeTempDirs(t)
  await writeFile(path.join(dataRoot, 'd.jsonl'), jsonlRecords(20000))
  const env = { DATA_ROOT: dataRoot, CACHE_DIR: cacheDir }
  const server = await startServerProcess(t, env)
  const reg = await fetch(`${server.url}/datasets`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 256, numShards: 2, shuffle: true })
  })
  assert.equal(reg.status, 201)

  const urls = Array.from({ length: 60 }, (_, k) => `/datasets/d/shards/${k % 2}/batches/${Math.floor(k / 2)}?epoch=1`)
  const results = urls.map(async (u) => {
    try {
      const res = await fetch(server.url + u)
      const body = Buffer.from(await res.arrayBuffer())
      return { u, status: res.status, ok: res.headers.get('etag') === etagOf(body) }
    } catch {
      return { u, status: 0, ok: true } // not accepted: the listener was already closed
    }
  })
  // Let the requests reach the server, then ask it to stop while they are being served.
  await new Promise((resolve) => setTimeout(resolve, 30))
  server.child.kill('SIGTERM')
  const done = await Promise.all(results)
  const [code] = await once(server.child, 'exit')
  assert.equal(code, 0, server.output())
  const answered = done.filter((r) => r.status !== 0)
  assert.ok(answered.length > 0, 'some requests were in flight')
  for (const r of answered) {
    assert.ok(r.status === 200 || r.status === 503, `${r.u}: ${r.status}`)
    if (r.status === 200) assert.ok(r.ok, `${r.u}: complete body`)
  }

  const again = await startServerProcess(t, env)
  const res = await fetch(`${again.url}/datasets/d/shards/0/batches/0?epoch=1`)
  assert.equal(res.status, 200)
  assert.equal((await fetch(`${again.url}/datasets/d`).then(async (r) => await r.json()) as { status: string }).status, 'ready')
  again.child.kill('SIGTERM')
  assert.equal((await once(again.child, 'exit'))[0], 0)
})
