// Runs a source's indexing (offsets, digest, validation, schema) in a worker thread. The
// event loop keeps serving cache hits to trainers while a large file is indexed, and the
// memory the pass needs (parsed records for the schema of a CSV file, or of a JSONL file with
// a value that does not fit) leaves with the worker instead of staying in the server's heap.
import { stat } from 'node:fs/promises'
import { isMainThread, parentPort, Worker, workerData, type MessagePort } from 'node:worker_threads'
import { AppError, type ErrorCode } from '../errors.js'
import type { IndexOptions } from './record-source.js'
// Types only: the readers of every format (apache-arrow, hyparquet, csv-parse) load in the
// worker, never in the server's thread, which would keep them (~15 MiB) for nothing.
import type { SourceFormat, SourceIndex } from './index-source.js'
import { workerBootstrap } from './worker-bootstrap.js'

const ROLE = 'shardfeed-index-worker'

interface Job { role: typeof ROLE, format: SourceFormat, filePath: string, indexPath: string, chunkPort?: MessagePort }
type Message =
  | { type: 'progress', bytesDone: number, bytesTotal: number }
  | { type: 'done', result: SourceIndex }
  | { type: 'error', code?: ErrorCode, message: string }

export async function indexSourceInWorker (format: SourceFormat, filePath: string, indexPath: string, opts: IndexOptions = {}): Promise<SourceIndex> {
  opts.signal?.throwIfAborted()
  const job: Job = { role: ROLE, format, filePath, indexPath }
  // A large JSONL file is validated by two threads (jsonl.ts): the second starts now, beside
  // this one, rather than once this one is up and reading. Each takes ~50 ms to start, and the
  // second used to join the pass only ~120 ms into it.
  const chunks = await chunkWorkerFor(format, filePath)
  if (chunks !== undefined) job.chunkPort = chunks.port
  const worker = new Worker(workerBootstrap(import.meta.url), { eval: true, workerData: job, transferList: chunks !== undefined ? [chunks.port] : [] })
  return await new Promise<SourceIndex>((resolve, reject) => {
    let settled = false
    function settle (fn: () => void): void {
      if (settled) return
      settled = true
      opts.signal?.removeEventListener('abort', onAbort)
      chunks?.worker.terminate().catch(() => {})
      fn()
    }
    function onAbort (): void {
      settle(() => { reject(opts.signal?.reason ?? new Error('aborted')) })
      worker.terminate().catch(() => {})
    }
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    worker.on('message', (msg: Message) => {
      if (msg.type === 'progress') opts.onProgress?.(msg.bytesDone, msg.bytesTotal)
      else if (msg.type === 'done') settle(() => { resolve(msg.result) })
      else settle(() => { reject(msg.code !== undefined ? new AppError(msg.code, msg.message) : new Error(msg.message)) })
    })
    worker.on('error', (err) => { settle(() => { reject(err) }) })
    worker.on('exit', (code) => { settle(() => { reject(new Error(`the indexing worker exited with code ${code}`)) }) })
  })
}

async function chunkWorkerFor (format: SourceFormat, filePath: string): Promise<{ worker: Worker, port: MessagePort } | undefined> {
  if (format !== 'jsonl' && format !== 'json') return undefined
  const { CHUNK_WORKER_MIN_BYTES, startChunkWorker } = await import('./jsonl.js')
  const size = await stat(filePath).then((st) => st.size, () => 0)
  if (size < CHUNK_WORKER_MIN_BYTES) return undefined
  const started = startChunkWorker()
  // Its failure reaches the pass as its port closing; the pass then reports it.
  started.worker.on('error', () => {})
  return started
}

async function runJob (job: Job): Promise<void> {
  const port = parentPort
  if (port === null) return
  try {
    const { indexSource } = await import('./index-source.js')
    const result = await indexSource(job.format, job.filePath, job.indexPath, {
      ...(job.chunkPort !== undefined ? { chunkPort: job.chunkPort } : {}),
      onProgress (bytesDone, bytesTotal) { port.postMessage({ type: 'progress', bytesDone, bytesTotal } satisfies Message) }
    })
    port.postMessage({ type: 'done', result } satisfies Message)
  } catch (err) {
    const e = err as { code?: unknown, message?: string }
    const code = err instanceof AppError ? e.code as ErrorCode : undefined
    port.postMessage({ type: 'error', ...(code !== undefined ? { code } : {}), message: e.message ?? String(err) } satisfies Message)
  }
}

if (!isMainThread && (workerData as Partial<Job> | null)?.role === ROLE) {
  runJob(workerData as Job).catch(() => {})
}
