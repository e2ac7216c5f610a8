// Faults: a store that cannot open, a disk that fills up, a saturated event loop.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import path from 'node:path'
import { buildTestApp, makeTempDirs, jsonlRecords } from '../helper.js'
import { repoRoot } from '../shared.js'
import { startServerProcess } from '../process.js'

async function runServer (env: Record<string, string>): Promise<{ code: number | null, output: string }> {
  const child = spawn(process.execPath, [path.join(repoRoot, 'dist', 'src', 'server.js')], { env: { ...process.env, PORT: '0', LOG_LEVEL: 'warn', ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (d: Buffer) => { output += d.toString() })
  child.stderr.on('data', (d: Buffer) => { output += d.toString() })
  const timer = setTimeout(() => child.kill('SIGKILL'), 15000)
  const [code] = await once(child, 'exit') as [number | null]
  clearTimeout(timer)
  return { code, output }
}

test('a store locked by another process stops the start with the folder and the reason', async (t) => {
  const { dataRoot, cacheDir } = await makeTempDirs(t)
  await startServerProcess(t, { DATA_ROOT: dataRoot, CACHE_DIR: cacheDir })
  const second = await runServer({ DATA_ROOT: dataRoot, CACHE_DIR: cacheDir })
  assert.equal(second.code, 1)
  assert.ok(second.output.includes(path.join(cacheDir, 'db')), second.output)
  assert.match(second.output, /lock/i)
})

test('a CACHE_DIR that cannot be created stops the start with a message', async (t) => {
  const { dataRoot, cacheDir } = await makeTempDirs(t)
  await writeFile(cacheDir, 'a file where the folder should be')
  const res = await runServer({ DATA_ROOT: dataRoot, CACHE_DIR: cacheDir })
  assert.equal(res.code, 1)
  assert.ok(res.output.includes(cacheDir), res.output)
})

test('a full disk degrades the disk tier to memory-only; requests still succeed', async (t) => {
  const base = await mkdtemp(path.join(os.tmpdir(), 'shardfeed-full-'))
  const dataRoot = path.join(base, 'data')
  const cacheDir = path.join(base, 'var')
  await mkdir(dataRoot)
  await mkdir(cacheDir)
  // A small real filesystem, so LevelDB meets a real ENOSPC.
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=3m', 'tmpfs', cacheDir])
  const app = await buildApp(loadConfig({ DATA_ROOT: dataRoot, CACHE_DIR: cacheDir, LOG_LEVEL: 'silent', PREFETCH_BATCHES: '0', MAX_EVENT_LOOP_DELAY_MS: '0' }))
  t.after(async () => {
    await app.close()
    execFileSync('umount', ['-l', cacheDir])
    await rm(base, { recursive: true, force: true })
  })
  const h = { app }
  const big = Array.from({ length: 400 }, (_, i) => JSON.stringify({ id: i, pad: 'y'.repeat(20000) })).join('\n') + '\n'
  await writeFile(path.join(dataRoot, 'big.jsonl'), big)
  const reg = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'big', source: { format: 'jsonl', path: 'big.jsonl' }, batchSize: 4, numShards: 1 } })
  assert.equal(reg.statusCode, 201, reg.body)
  for (let i = 0; i < 100; i++) {
    const res = await h.app.inject({ method: 'GET', url: `/datasets/big/shards/0/batches/${i}` })
    assert.equal(res.statusCode, 200, `batch ${i}`)
    await h.app.services.batches.settle()
  }
  const metrics = (await h.app.inject({ method: 'GET', url: '/metrics' })).body
  assert.match(metrics, /shardfeed_cache_disk_write_errors_total [1-9]/)
  // Memory still answers, and reads keep working.
  assert.equal((await h.app.inject({ method: 'GET', url: '/datasets/big/shards/0/batches/99' })).headers['x-cache'], 'memory')
})

test('a saturated event loop sheds load with 503 and Retry-After', async (t) => {
  const h = await buildTestApp(t, { MAX_EVENT_LOOP_DELAY_MS: '50' })
  await h.writeData('d.jsonl', jsonlRecords(10))
  await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 2, numShards: 1 } })
  // Keep the loop saturated (blocked well past the limit, over and over) until the sampler,
  // which runs on its own timer, has seen it.
  let res
  for (let attempt = 0; attempt < 20; attempt++) {
    const until = Date.now() + 300
    while (Date.now() < until) { /* busy */ }
    await new Promise((resolve) => setImmediate(resolve))
    res = await h.app.inject({ method: 'GET', url: '/datasets/d/shards/0/batches/0' })
    if (res.statusCode === 503) break
  }
  assert.ok(res !== undefined)
  assert.equal(res.statusCode, 503)
  assert.equal(res.headers['retry-after'], '1')
  assert.equal(res.json().code, 'OVERLOADED')
  assert.equal((await h.app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'liveness still answers')
})
