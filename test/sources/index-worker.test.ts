// indexSourceInWorker: the pass in a worker thread, and for a large JSONL file its second
// thread, started beside the first (index-worker.ts), with the in-process pass as the oracle.
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { indexSource } from '../../src/sources/index-source.js'
import { createIndexThreads, indexSourceInWorker } from '../../src/sources/index-worker.js'
import { CHUNK_WORKER_MIN_BYTES } from '../../src/sources/jsonl-threads.js'
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

// The thread prepared ahead of the first job (createIndexThreads): taken by the next job,
// stopped after it like any other, and stopped unused after the wait time.
const small = Array.from({ length: 200 }, (_, i) => JSON.stringify({ i, x: [i, i / 3] })).join('\n') + '\n'

test('a prepared thread runs the next job and is stopped after it', async () => {
  const baseline = threads()
  const pool = createIndexThreads(60_000)
  const { file, idx } = await files.put(small)
  pool.prepare()
  pool.prepare()
  assert.equal(pool.started, 1, 'one thread is prepared')
  assert.ok(threads() > baseline, 'it runs before any job')
  const first = await pool.index('jsonl', file, idx)
  assert.equal(pool.started, 1, 'the job ran in the prepared thread')
  assert.equal(first.numRecords, 200)
  assert.ok(await settledThreads(baseline) <= baseline, 'the thread stopped after its job')
  // Two at once: one takes a thread prepared again, the other starts its own.
  pool.prepare()
  const [a, b] = await Promise.all([pool.index('jsonl', file, `${idx}.2`), pool.index('jsonl', file, `${idx}.3`)])
  assert.deepEqual(a, first)
  assert.deepEqual(b, first)
  assert.equal(pool.started, 3)
  assert.ok(await settledThreads(baseline) <= baseline, 'both threads stopped')
  await pool.close()
})

test('an unused prepared thread stops after the wait time, or at close; no thread is prepared when it is 0', async () => {
  const baseline = threads()
  const pool = createIndexThreads(300)
  pool.prepare()
  assert.ok(threads() > baseline)
  assert.ok(await settledThreads(baseline) <= baseline, 'stopped after 300 ms unused')
  const { file, idx } = await files.put(small)
  await pool.index('jsonl', file, idx)
  assert.equal(pool.started, 2, 'a stopped thread is not used')
  pool.prepare()
  await pool.close()
  assert.ok(await settledThreads(baseline) <= baseline, 'close stops the prepared thread')
  await assert.rejects(pool.index('jsonl', file, `${idx}.2`), /closed/)
  const none = createIndexThreads(0)
  none.prepare()
  assert.equal(none.started, 0)
  await none.close()
})

test('a bad source and an aborted job each stop their thread', async () => {
  const baseline = threads()
  const pool = createIndexThreads(60_000)
  const good = await files.put(small)
  const bad = await files.put('{"i":1}\n{"i":\n')
  pool.prepare()
  await assert.rejects(pool.index('jsonl', bad.file, bad.idx), isAppError('SOURCE_INVALID', /^line 2: /))
  pool.prepare()
  const controller = new AbortController()
  await assert.rejects(pool.index('jsonl', good.file, good.idx, { signal: controller.signal, onProgress: () => { controller.abort() } }), { name: 'AbortError' })
  assert.equal(pool.started, 2)
  assert.ok(await settledThreads(baseline) <= baseline, 'no thread is left')
  await pool.close()
})
