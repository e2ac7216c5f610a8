// indexSourceInWorker: the pass in a worker thread, and for a large JSONL file its second
// thread, started beside the first (index-worker.ts), with the in-process pass as the oracle.
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { indexSource } from '../../src/sources/index-source.js'
import { createIndexThreads, indexSourceInWorker } from '../../src/sources/index-worker.js'
import { CHUNK_WORKER_MIN_BYTES } from '../../src/sources/jsonl.js'
import { isAppError, sourceDigest } from './expect.js'
import { tempFiles } from './temp-files.js'

const files = tempFiles('index-worker', 'jsonl')

/** Threads of this process: the indexing threads must be gone once a pass is over. */
function threads (): number {
  return readdirSync('/proc/self/task').length
}

async function settledThreads (atMost: number): Promise<number> {
  let n = threads()
  for (let i = 0; i < 100 && n > atMost; i++) {
    await sleep(20)
    n = threads()
  }
  return n
}

// ~110-byte records of varied fields, past the size where a second thread validates: blocks
// of 10,000 lines, written once and repeated (the file is over 128 MiB), with the bad line,
// if any, in a block of its own.
function largeJsonl (bad?: number): { text: string, lines: number } {
  const per = 10_000
  const block = (first: number, badAt?: number): string => {
    const lines: string[] = []
    for (let i = first; i < first + per; i++) {
      lines.push(i === badAt ? '{"i":1,"x":[1,2}' : JSON.stringify({ i: i % per, label: i % 7, x: [i / 8, -(i % per), 0.5], s: 'ü'.repeat(i % 40) }))
    }
    return lines.join('\n') + '\n'
  }
  const plain = block(0)
  const blocks: string[] = []
  for (let size = 0, k = 0; size < CHUNK_WORKER_MIN_BYTES + (2 << 20); k++) {
    const text = bad !== undefined && Math.floor(bad / per) === k ? block(k * per, bad) : plain
    blocks.push(text)
    size += Buffer.byteLength(text)
  }
  return { text: blocks.join(''), lines: blocks.length * per }
}

test('a large JSONL file indexed in the worker pair gives what the in-process pass gives', async () => {
  const baseline = threads()
  const { text, lines } = largeJsonl()
  const { file, idx } = await files.put(text)
  const inWorker = await indexSourceInWorker('jsonl', file, idx)
  const inProcess = await indexSource('jsonl', file, `${idx}.2`, {})
  assert.equal(inWorker.numRecords, lines)
  // Both threads hash blocks of this file (source-digest.ts): the digest is still the one the
  // definition gives.
  assert.equal(inWorker.digest, sourceDigest(Buffer.from(text)))
  assert.deepEqual(inWorker, inProcess)
  assert.ok(await settledThreads(baseline) <= baseline, 'both indexing threads ended')
})

test('a bad line of a large JSONL file is reported with its line by the worker pair', async () => {
  const baseline = threads()
  const { text, lines } = largeJsonl(290_000)
  assert.ok(lines > 290_000)
  const { file, idx } = await files.put(text)
  await assert.rejects(indexSourceInWorker('jsonl', file, idx), isAppError('SOURCE_INVALID', /^line 290001: not valid JSON/))
  assert.ok(await settledThreads(baseline) <= baseline, 'both indexing threads ended')
})

test('aborting the worker pair ends both threads', async () => {
  const baseline = threads()
  const { text } = largeJsonl()
  const { file, idx } = await files.put(text)
  const controller = new AbortController()
  await assert.rejects(indexSourceInWorker('jsonl', file, idx, { signal: controller.signal, onProgress: () => { controller.abort() } }), { name: 'AbortError' })
  assert.ok(await settledThreads(baseline) <= baseline, 'both indexing threads ended')
})

test('a large JSONL file bad on its first line fails at once, and both threads end', async () => {
  const baseline = threads()
  const { text } = largeJsonl(0)
  const { file, idx } = await files.put(text)
  await assert.rejects(indexSourceInWorker('jsonl', file, idx), isAppError('SOURCE_INVALID', /^line 1: not valid JSON/))
  assert.ok(await settledThreads(baseline) <= baseline, 'both indexing threads ended')
})

// The thread kept ready (createIndexThreads): taken by the next registration, kept after it,
// stopped once idle for the keep time, replaced when a job was aborted.
const small = Array.from({ length: 200 }, (_, i) => JSON.stringify({ i, x: [i, i / 3] })).join('\n') + '\n'

test('a prepared thread runs the next jobs, one at a time, and stops once idle for the keep time', async () => {
  const baseline = threads()
  const pool = createIndexThreads(300)
  const { file, idx } = await files.put(small)
  pool.prepare()
  pool.prepare()
  assert.equal(pool.started, 1, 'one thread is kept ready')
  const first = await pool.index('jsonl', file, idx)
  const second = await pool.index('jsonl', file, `${idx}.2`)
  assert.equal(pool.started, 1, 'both jobs ran in the prepared thread')
  assert.deepEqual(second, first)
  assert.equal(first.numRecords, 200)
  // Two at once: the second needs a thread of its own, which is not kept beside the first.
  await Promise.all([pool.index('jsonl', file, `${idx}.3`), pool.index('jsonl', file, `${idx}.4`)])
  assert.equal(pool.started, 2)
  assert.ok(await settledThreads(baseline) <= baseline, 'the kept thread stopped after 300 ms idle')
  await pool.index('jsonl', file, `${idx}.5`)
  assert.equal(pool.started, 3, 'a stopped thread is not used again')
  await pool.close()
  assert.ok(await settledThreads(baseline) <= baseline, 'close stops the kept thread')
})

test('a bad source leaves the thread kept; an aborted job stops it', async () => {
  const baseline = threads()
  const pool = createIndexThreads(60_000)
  const good = await files.put(small)
  const bad = await files.put('{"i":1}\n{"i":\n')
  await assert.rejects(pool.index('jsonl', bad.file, bad.idx), isAppError('SOURCE_INVALID', /^line 2: /))
  await pool.index('jsonl', good.file, good.idx)
  assert.equal(pool.started, 1, 'the thread that found the bad line ran the next job')
  const controller = new AbortController()
  await assert.rejects(pool.index('jsonl', good.file, `${good.idx}.2`, { signal: controller.signal, onProgress: () => { controller.abort() } }), { name: 'AbortError' })
  await pool.index('jsonl', good.file, `${good.idx}.3`)
  assert.equal(pool.started, 2, 'the aborted job\'s thread was stopped and replaced')
  await pool.close()
  await assert.rejects(pool.index('jsonl', good.file, `${good.idx}.4`), /closed/)
  assert.ok(await settledThreads(baseline) <= baseline, 'no thread is left')
})
