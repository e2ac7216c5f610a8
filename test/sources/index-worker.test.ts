// indexSourceInWorker: the pass in a worker thread, and for a large JSONL file its second
// thread, started beside the first (index-worker.ts), with the in-process pass as the oracle.
import assert from 'node:assert/strict'
import { readdirSync } from 'node:fs'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { indexSource } from '../../src/sources/index-source.js'
import { indexSourceInWorker } from '../../src/sources/index-worker.js'
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

// ~110-byte records of varied fields, past the size where a second thread validates.
function largeJsonl (bad?: number): { text: string, lines: number } {
  const lines: string[] = []
  let size = 0
  for (let i = 0; size < CHUNK_WORKER_MIN_BYTES + (2 << 20); i++) {
    const line = i === bad ? '{"i":1,"x":[1,2}' : JSON.stringify({ i, label: i % 7, x: [i / 8, -i, 0.5], s: 'ü'.repeat(i % 40) })
    lines.push(line)
    size += Buffer.byteLength(line) + 1
  }
  return { text: lines.join('\n') + '\n', lines: lines.length }
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
