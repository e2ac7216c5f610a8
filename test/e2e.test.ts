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
import { freePort, startServerProcess } from './process.js'

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

test('settings are read from a .env file in the working directory', async (t) => {
  const { dataRoot, cacheDir } = await makeTempDirs(t)
  const port = await freePort()
  const cwd = path.dirname(dataRoot)
  await writeFile(path.join(cwd, '.env'), `PORT=${port}\nDATA_ROOT=${dataRoot}\nCACHE_DIR=${cacheDir}\nLOG_LEVEL=warn\n`)
  const env = { ...process.env }
  for (const k of ['PORT', 'DATA_ROOT', 'CACHE_DIR', 'LOG_LEVEL']) Reflect.deleteProperty(env, k)
  const child = spawn(process.execPath, [path.join(repoRoot, 'dist', 'src', 'server.js')], { cwd, env, stdio: 'ignore' })
  t.after(() => { child.kill('SIGKILL') })
  let ready = false
  for (let i = 0; i < 200 && !ready; i++) {
    try { ready = (await fetch(`http://127.0.0.1:${port}/readyz`)).ok } catch { await new Promise((resolve) => setTimeout(resolve, 50)) }
  }
  assert.ok(ready, 'the server listens on the PORT given in .env')
  await writeFile(path.join(dataRoot, 'x.jsonl'), jsonlRecords(3))
  const reg = await fetch(`http://127.0.0.1:${port}/datasets`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'x', source: { format: 'jsonl', path: 'x.jsonl' }, batchSize: 1, numShards: 1 }) })
  assert.equal(reg.status, 201, 'DATA_ROOT from .env')
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
