// Runs a source's indexing (offsets, digest, validation, schema) in a worker thread. The
// event loop keeps serving cache hits to trainers while a large file is indexed, and the
// memory the pass needs (parsed records for the schema of a CSV file, or of a JSONL file with
// a value that does not fit) leaves with the worker instead of staying in the server's heap.
//
// The server starts one thread with itself (IndexThreads.prepare), before its own modules
// load, for the first registration: starting a thread and loading the indexing code into it
// takes ~60-90 ms (more on a loaded machine), about a third of what registering the
// benchmark's 69 MiB file took. That thread holds ~12 MiB while it waits, so it waits a few
// seconds at most. A thread that has run a job is stopped, as it holds the job's code and
// garbage (~15-25 MiB, more after a CSV or Parquet file), which the server needs for batches.
import { stat } from 'node:fs/promises'
import { isMainThread, parentPort, Worker, workerData, type MessagePort } from 'node:worker_threads'
import { AppError, type ErrorCode } from '../errors.js'
import type { IndexOptions } from './record-source.js'
// Types only: the readers of every format (apache-arrow, hyparquet, csv-parse) load in the
// worker, never in the server's thread, which would keep them (~15 MiB) for nothing.
import type { SourceFormat, SourceIndex } from './index-source.js'
import { workerBootstrap } from './worker-bootstrap.js'
import { CHUNK_WORKER_MIN_BYTES } from './jsonl-threads.js'

const ROLE = 'shardfeed-index-worker'

interface Job { format: SourceFormat, filePath: string, indexPath: string, chunkPort?: MessagePort }
type Message =
  | { type: 'progress', bytesDone: number, bytesTotal: number }
  | { type: 'done', result: SourceIndex }
  | { type: 'error', code?: ErrorCode, message: string }

export interface IndexThreads {
  /**
   * Indexes a source in the prepared thread, or in a new one when there is none; the thread
   * is stopped afterwards (at once when aborted).
   */
  index: (format: SourceFormat, filePath: string, indexPath: string, opts?: IndexOptions) => Promise<SourceIndex>
  /** Starts a thread now for the next job, unless one is ready; stopped if unused for the wait time. */
  prepare: () => void
  /** Threads started so far. */
  readonly started: number
  close: () => Promise<void>
}

/** Indexing threads, of which one prepared thread waits at most `waitMs` for a job. */
export function createIndexThreads (waitMs: number): IndexThreads {
  let spare: IndexThread | undefined
  let timer: NodeJS.Timeout | undefined
  let started = 0
  let closed = false

  function start (): IndexThread {
    started++
    return new IndexThread()
  }

  function take (): IndexThread {
    const thread = spare
    spare = undefined
    clearTimeout(timer)
    return thread !== undefined && !thread.dead ? thread : start()
  }

  return {
    async index (format, filePath, indexPath, opts = {}) {
      opts.signal?.throwIfAborted()
      if (closed) throw new Error('the indexing threads are closed')
      // A large JSONL file is validated by two threads (jsonl.ts): the second starts now,
      // beside this one, rather than once this one is up and reading.
      const chunks = await chunkWorkerFor(format, filePath)
      const thread = take()
      try {
        return await thread.run({ format, filePath, indexPath, ...(chunks !== undefined ? { chunkPort: chunks.port } : {}) }, opts)
      } finally {
        thread.stop().catch(() => {})
        chunks?.worker.terminate().catch(() => {})
      }
    },
    prepare () {
      if (closed || waitMs <= 0 || spare !== undefined) return
      const thread = start()
      spare = thread
      // Waiting for a job, it must not keep the process alive.
      thread.idle()
      timer = setTimeout(() => {
        if (spare !== thread) return
        spare = undefined
        thread.stop().catch(() => {})
      }, waitMs)
      timer.unref()
    },
    get started () { return started },
    async close () {
      closed = true
      clearTimeout(timer)
      const thread = spare
      spare = undefined
      await thread?.stop()
    }
  }
}

/** Indexes one source in a thread of its own, stopped afterwards. */
export async function indexSourceInWorker (format: SourceFormat, filePath: string, indexPath: string, opts: IndexOptions = {}): Promise<SourceIndex> {
  const threads = createIndexThreads(0)
  try {
    return await threads.index(format, filePath, indexPath, opts)
  } finally {
    await threads.close()
  }
}

/**
 * One worker thread, which may start before its job is known (prepare): it loads the indexing
 * code at once, then runs the job it is sent.
 */
class IndexThread {
  dead = false
  #worker: Worker
  #job: { resolve: (result: SourceIndex) => void, reject: (err: Error) => void, opts: IndexOptions } | undefined

  constructor () {
    this.#worker = new Worker(workerBootstrap(import.meta.url), { eval: true, workerData: { role: ROLE } })
    this.#worker.on('message', (msg: Message) => {
      const job = this.#job
      if (job === undefined) return
      if (msg.type === 'progress') {
        job.opts.onProgress?.(msg.bytesDone, msg.bytesTotal)
        return
      }
      this.#job = undefined
      if (msg.type === 'done') job.resolve(msg.result)
      else job.reject(msg.code !== undefined ? new AppError(msg.code, msg.message) : new Error(msg.message))
    })
    this.#worker.on('error', (err) => { this.#end(err) })
    this.#worker.on('exit', (code) => { this.#end(new Error(`the indexing worker exited with code ${code}`)) })
  }

  async run (job: Job, opts: IndexOptions): Promise<SourceIndex> {
    if (this.dead) throw new Error('the indexing worker has stopped')
    this.#worker.ref()
    const { signal } = opts
    const onAbort = (): void => {
      const job = this.#job
      this.#job = undefined
      job?.reject(signal?.reason ?? new Error('aborted'))
      this.stop().catch(() => {})
    }
    signal?.addEventListener('abort', onAbort, { once: true })
    try {
      return await new Promise<SourceIndex>((resolve, reject) => {
        this.#job = { resolve, reject, opts }
        this.#worker.postMessage(job, job.chunkPort !== undefined ? [job.chunkPort] : [])
      })
    } finally {
      signal?.removeEventListener('abort', onAbort)
    }
  }

  /** Waiting for a job: it must not keep the process alive. */
  idle (): void {
    this.#worker.unref()
  }

  async stop (): Promise<void> {
    this.dead = true
    await this.#worker.terminate()
  }

  #end (err: Error): void {
    this.dead = true
    const job = this.#job
    this.#job = undefined
    job?.reject(err)
  }
}

async function chunkWorkerFor (format: SourceFormat, filePath: string): Promise<{ worker: Worker, port: MessagePort } | undefined> {
  if (format !== 'jsonl' && format !== 'json') return undefined
  const size = await stat(filePath).then((st) => st.size, () => 0)
  if (size < CHUNK_WORKER_MIN_BYTES) return undefined
  const { startChunkWorker } = await import('./jsonl.js')
  const started = startChunkWorker()
  // Its failure reaches the pass as its port closing; the pass then reports it.
  started.worker.on('error', () => {})
  return started
}

// The worker's side: loads the indexing code and warms the file hasher at once, before a job
// needs them, and runs the job it is sent (a failure to load is the job's error).
function serveJobs (port: MessagePort): void {
  const loading = import('./index-source.js')
  loading.catch(() => {})
  // A failure here only leaves the first job's hashing slower.
  import('./file-io.js').then(async ({ warmFileDigest }) => { await warmFileDigest() }).catch(() => {})
  port.on('message', (job: Job) => {
    runJob(loading, job, port).catch(() => {})
  })
}

async function runJob (loading: Promise<typeof import('./index-source.js')>, job: Job, port: MessagePort): Promise<void> {
  try {
    const { indexSource } = await loading
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

if (!isMainThread && (workerData as { role?: unknown } | null)?.role === ROLE) serveJobs(parentPort!)
