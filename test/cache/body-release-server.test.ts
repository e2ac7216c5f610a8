// The memory of a body the caches let go of is freed at once, but never under a response that
// is still sending it: a client that stops reading mid-body gets every byte when it resumes.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { makeTempDirs } from '../helper.js'
import { startServerProcess, type ServerProcess } from '../process.js'
import { etagOf } from '../../src/cache/batch-cache.js'

const MiB = 1024 * 1024
// Each batch is ~24 MiB: far more than loopback's socket buffers hold, so a response to a
// client that does not read stays under way.
const RECORD_BYTES = MiB
const BATCH = 24

async function freedTotal (url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith('shardfeed_cache_bodies_freed_total '))
  assert.ok(line !== undefined, 'the metric is exported')
  return Number(line.split(' ')[1])
}

/** Sends the request and reads nothing until `drain` is called. */
function stalledGet (server: ServerProcess, urlPath: string): { socket: Socket, drain: () => Promise<Buffer> } {
  const socket = connect(server.port, '127.0.0.1')
  socket.pause()
  socket.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`)
  return {
    socket,
    async drain () {
      const chunks: Buffer[] = []
      socket.on('data', (c: Buffer) => chunks.push(c))
      socket.resume()
      await once(socket, 'end')
      return Buffer.concat(chunks)
    }
  }
}

function bodyOf (raw: Buffer): { headers: string, body: Buffer } {
  const end = raw.indexOf('\r\n\r\n')
  return { headers: raw.subarray(0, end).toString('latin1'), body: raw.subarray(end + 4) }
}

// Batches built by a build worker, and (BUILD_WORKERS=0) on the event loop.
const CASES = [
  { memory: true, workers: 1 },
  { memory: false, workers: 1 },
  { memory: true, workers: 0 }
]

for (const { memory, workers } of CASES) {
  test(`${memory ? 'an evicted memory-tier body' : 'a disk-tier body with the memory tier off'} (BUILD_WORKERS=${workers}) reaches a stalled client whole, and is freed after`, async (t) => {
    const { dataRoot, cacheDir } = await makeTempDirs(t)
    const line = (k: number): string => JSON.stringify({ id: k, pad: String.fromCharCode(97 + (k % 26)).repeat(RECORD_BYTES) })
    await writeFile(path.join(dataRoot, 'big.jsonl'), Array.from({ length: 2 * BATCH }, (_, k) => line(k)).join('\n') + '\n')
    const server = await startServerProcess(t, {
      DATA_ROOT: dataRoot,
      CACHE_DIR: cacheDir,
      INDEX_SYNC_MAX_BYTES: String(1 << 30),
      PREFETCH_BATCHES: '0',
      BUILD_WORKERS: String(workers),
      // One batch fits the memory tier, so that reading the other evicts it.
      MEMORY_CACHE_BYTES: String(memory ? 30 * MiB : 0),
      DISK_WRITE_QUEUE_BYTES: String(64 * MiB)
    })
    const reg = await fetch(`${server.url}/datasets`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'big', source: { format: 'jsonl', path: 'big.jsonl' }, batchSize: BATCH, numShards: 1, shuffle: false })
    })
    assert.equal(reg.status, 201, await reg.clone().text())

    const url0 = '/datasets/big/shards/0/batches/0'
    const first = await fetch(server.url + url0)
    assert.equal(first.status, 200)
    const expected = Buffer.from(await first.arrayBuffer())
    assert.ok(expected.length > BATCH * RECORD_BYTES)
    assert.equal(first.headers.get('etag'), etagOf(expected))
    if (!memory) {
      // Wait for the disk-tier write, so that the stalled request below is a disk hit.
      for (let k = 0; k < 100 && (await fetch(server.url + url0, { method: 'HEAD' })).headers.get('x-cache') !== 'disk'; k++) await new Promise((resolve) => setTimeout(resolve, 50))
    }

    const stalled = stalledGet(server, url0)
    // The server has started sending batch 0 to the stalled client.
    await new Promise((resolve) => setTimeout(resolve, 300))
    const freedBefore = await freedTotal(server.url)
    // Batch 1 pushes batch 0 out of the memory tier (or, with the tier off, is let go of at once).
    const other = await fetch(`${server.url}/datasets/big/shards/0/batches/1`)
    assert.equal(other.status, 200)
    await other.arrayBuffer()
    await new Promise((resolve) => setTimeout(resolve, 300))
    // Batch 1's body (and, with the tier off, the first read of batch 0) may have gone; batch 0's
    // under way may not.
    const whileStalled = await freedTotal(server.url)

    const raw = await stalled.drain()
    const { headers, body } = bodyOf(raw)
    assert.match(headers, /^HTTP\/1\.1 200/)
    assert.match(headers, new RegExp(`x-cache: ${memory ? 'memory' : 'disk'}`, 'i'))
    assert.equal(body.length, expected.length)
    assert.ok(body.equals(expected), 'the stalled client got the bytes the first one got')

    // Once that response is done, its body is freed too.
    let after = whileStalled
    for (let k = 0; k < 100 && after <= whileStalled; k++) {
      await new Promise((resolve) => setTimeout(resolve, 20))
      after = await freedTotal(server.url)
    }
    assert.ok(after > whileStalled, `freed ${freedBefore} before, ${whileStalled} while stalled, ${after} after`)
    assert.equal(server.child.exitCode, null)
  })
}
