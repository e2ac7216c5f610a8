// End to end: the built service started as its own process (the `npm start` path), a
// dataset registered and a batch read over a real socket.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import path from 'node:path'
import request from 'supertest'
import { makeTempDirs, jsonlRecords } from './helper.js'
import { repoRoot } from './shared.js'
import { writeFile } from 'node:fs/promises'
import { startServerProcess } from './process.js'

test('the started process registers a dataset and serves a batch over HTTP', async (t) => {
  const { dataRoot, cacheDir } = await makeTempDirs(t)
  await writeFile(path.join(dataRoot, 'train.jsonl'), jsonlRecords(100))
  const server = await startServerProcess(t, { DATA_ROOT: dataRoot, CACHE_DIR: cacheDir })
  const api = request(server.url)
  assert.equal((await api.get('/healthz')).status, 200)
  assert.equal((await api.get('/readyz')).body.status, 'ready')
  const reg = await api.post('/datasets').send({ name: 'train', source: { format: 'jsonl', path: 'train.jsonl' }, batchSize: 8, numShards: 2, shuffle: true, seed: 1 })
  assert.equal(reg.status, 201, JSON.stringify(reg.body))
  const res = await api.get('/datasets/train/shards/1/batches/3?epoch=2')
  assert.equal(res.status, 200)
  assert.equal(res.body.records.length, 8)
  assert.equal(res.body.indices.length, 8)
  assert.equal(res.headers['cache-control'], 'public, max-age=31536000, immutable')

  // SIGTERM closes cleanly with exit code 0.
  server.child.kill('SIGTERM')
  const [code] = await once(server.child, 'exit')
  assert.equal(code, 0)
})

test('a bad setting stops the process with a message naming the variable', async () => {
  const child = spawn(process.execPath, [path.join(repoRoot, 'dist', 'src', 'server.js')], {
    env: { ...process.env, PORT: 'eighty' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const [code] = await once(child, 'exit')
  assert.equal(code, 1)
  assert.match(stderr, /PORT/)
})
