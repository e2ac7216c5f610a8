// Settings: defaults, validation naming the variable, and .env.example listing every one.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { ConfigSchema, loadConfig } from '../src/config.js'
import { repoRoot } from './shared.js'

test('defaults are embedded', () => {
  const c = loadConfig({})
  assert.equal(c.port, 8080)
  assert.equal(c.host, '127.0.0.1')
  assert.equal(c.dataRoot, path.resolve('./data'))
  assert.equal(c.cacheDir, path.resolve('./var'))
  assert.equal(c.logLevel, 'info')
  assert.equal(c.memoryCacheBytes, 256 * 1024 * 1024)
  assert.equal(c.diskCacheBytes, 4096 * 1024 * 1024)
  assert.equal(c.prefetchBatches, 4)
  assert.equal(c.adminToken, '')
})

test('a bad value names the variable', () => {
  for (const [name, value] of [['PORT', 'eighty'], ['PORT', '70000'], ['LOG_LEVEL', 'loud'], ['MEMORY_CACHE_BYTES', '1.5'], ['PREFETCH_BATCHES', '-1'], ['DISK_CACHE_BYTES', 'lots']]) {
    assert.throws(() => loadConfig({ [name as string]: value }), new RegExp(name as string), `${name}=${value}`)
  }
})

test('.env.example lists every setting with its default', async () => {
  const text = await readFile(path.join(repoRoot, '.env.example'), 'utf8')
  const listed = new Map(text.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => l.split('=', 2) as [string, string]))
  const props = ConfigSchema.properties as Record<string, { default: unknown }>
  assert.deepEqual([...listed.keys()].sort(), Object.keys(props).sort())
  for (const [name, schema] of Object.entries(props)) {
    assert.equal(listed.get(name), String(schema.default), name)
  }
})
