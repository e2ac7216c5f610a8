// `npm install` rebuilds classic-level's LevelDB with SSE4.2 CRC32C (scripts/build-leveldb.mjs)
// where the CPU has it; the server must then load that binding, not the prebuilt one.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'

const require = createRequire(import.meta.url)

function cpuHasSse42 (): boolean {
  try {
    return /^flags\s*:.*\bsse4_2\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'))
  } catch {
    return false
  }
}

test('on x64 Linux with SSE4.2, LevelDB is the binding built with its SSE4.2 CRC32C', (t) => {
  if (process.platform !== 'linux' || process.arch !== 'x64' || !cpuHasSse42()) {
    t.diagnostic(`nothing to check on ${process.platform}-${process.arch} without SSE4.2: the prebuilt binding is used`)
    return
  }
  const dir = path.dirname(require.resolve('classic-level/package.json'))
  const gypBuild = require('node-gyp-build') as { path: (dir: string) => string }
  assert.equal(gypBuild.path(dir), path.join(dir, 'build', 'Release', 'classic_level.node'))
  assert.ok(existsSync(path.join(dir, 'build', 'shardfeed-sse42')), 'built by scripts/build-leveldb.mjs')
  assert.match(readFileSync(path.join(dir, 'build', 'shardfeed-sse42'), 'utf8'), /-DLEVELDB_PLATFORM_POSIX_SSE -msse4\.2/)
})
