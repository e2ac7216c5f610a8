// LevelDB must read its table files with pread, not mmap: mapped pages of the disk tier would
// count in the server's RSS (src/native/memory.c).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { openDb } from '../../src/store/db.js'
import { disableLevelMmap } from '../../src/store/leveldb-mmap.js'

test('the store reads its tables without mapping them into memory', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'shardfeed-mmap-'))
  try {
    let kept: string | undefined
    let db = await openDb(dir, (why) => { kept = why })
    assert.equal(kept, undefined, `LevelDB kept its mmap limit: ${String(kept)}`)
    assert.deepEqual(disableLevelMmap(), { ok: true })
    const values = db.sublevel<string, Uint8Array>('v', { valueEncoding: 'view' })
    const body = new Uint8Array(180 * 1024).fill(7)
    // 40 values of 180 KiB: more than the 2 MiB write buffer, so tables are written.
    for (let i = 0; i < 40; i++) await values.put(`k${i}`, body)
    await db.close()

    db = await openDb(dir)
    const reopened = db.sublevel<string, Uint8Array>('v', { valueEncoding: 'view' })
    await reopened.open()
    for (let i = 0; i < 40; i++) assert.equal(reopened.getSync(`k${i}`)?.byteLength, body.byteLength)
    const tables = (await readFile('/proc/self/maps', 'utf8')).split('\n').filter((line) => line.endsWith('.ldb'))
    assert.deepEqual(tables, [], 'table files are memory-mapped')
    await db.close()
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
