// The store's table cache is sized for a full disk tier, within the file descriptor limit.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { maxOpenFilesFor, openFilesLimit } from '../../src/store/db.js'

const MiB = 1024 * 1024

test('LevelDB may keep every table of a full disk tier open, within half the descriptor limit', () => {
  // 4 GiB of tables of 2 MiB or more: 2048, plus room for the registry and index tables.
  assert.equal(maxOpenFilesFor(4096 * MiB, 20000), 2112)
  assert.equal(maxOpenFilesFor(4096 * MiB, 4096), 2048)
  // Never fewer than LevelDB's own default while the limit allows it...
  assert.equal(maxOpenFilesFor(64 * MiB, 20000), 1000)
  assert.equal(maxOpenFilesFor(0, 20000), 1000)
  // ...nor more than half of a low limit, so that sockets still get descriptors.
  assert.equal(maxOpenFilesFor(4096 * MiB, 1024), 512)
  assert.equal(maxOpenFilesFor(64 * MiB, 1024), 512)
  // Limit unknown: LevelDB's default.
  assert.equal(maxOpenFilesFor(4096 * MiB, undefined), 1000)
})

test('the open files limit is read from /proc on Linux', () => {
  const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
  const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0]
  assert.equal(openFilesLimit(), soft === 'unlimited' ? 1 << 20 : Number(soft))
})
