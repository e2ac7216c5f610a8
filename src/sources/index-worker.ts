// Runs a source's indexing (offsets, digest, validation, schema) in a worker thread. The
// event loop keeps serving cache hits to trainers while a large file is indexed, and the
// memory the pass needs (parsed records for the schema of a CSV file, or of a JSONL file with
// a value that does not fit) leaves with the worker instead of staying in the server's heap.
//
// One thread is kept ready (IndexThreads): the server starts it with itself, and keeps the
// thread of each registration for a few seconds afterwards. Starting a thread and loading the
// indexing code into it takes ~60-90 ms (more on a loaded machine), and a fresh thread's code
// runs unoptimised for its first megabytes: that was a third of the time a first registration
// of the benchmark's 69 MiB file took, and registering the splits of a dataset one after
// another paid it each time. An idle thread holds ~12 MiB, so it is not kept longer.
import { stat } from 'node:fs/promises'
import { isMainThread, parentPort, Worker, workerData, type MessagePort } from 'node:worker_threads'
import { AppError, type ErrorCode } from '../errors.js'
import type { IndexOptions } from './record-source.js'
// Types only: the readers of every format (apache-arrow, hyparquet, csv-parse) load in the
// worker, never in the server's thread, which would keep them (~15 MiB) for nothing.
import type { SourceFormat, SourceIndex } from './index-source.js'
import { workerBootstrap } from './worker-bootstrap.js'

const ROLE = 'shardfeed-index-worker'

interface Job { format: SourceFormat, filePath: string, indexPath: string, chunkPort?: MessagePort }
type Message =
  | { type: 'progress', bytesDone: number, bytesTotal: number }
  | { type: 'done', result: SourceIndex }
  | { type: 'error', code?: ErrorCode, message: string }

export interface IndexThreads {
  /**
   * Indexes a source in the ready thread, or in a new one when it is busy or there is none.
   * The thread is then kept ready for the next registration (unless another one is), and
   * stopped once it has been idle for the keep time. Aborting stops the thread at once.
   */
  index: (format: SourceFormat, filePath: string, indexPath: string, opts?: IndexOptions) => Promise<SourceIndex>
  /** Starts a thread now, for the next registration, unless one is ready. */
  prepare: () => void
  /** Threads started so far. */
  readonly started: number
  close: () => Promise<void>
}

/** Indexing threads of which one is kept ready for `keepMs` after its last job (0: none is). */
export function createIndexThreads (keepMs: number): IndexThreads {
  let spare: IndexThread | undefined
  let timer: NodeJS.Timeout | undefined
  let started = 0
  let closed = false

  function start (): IndexThread {
    started++
    return new IndexThread()
  }

  function keep (thread: IndexThread): void {
    if (closed || keepMs <= 0 || spare !== undefined || thread.dead) {
      thread.stop()
      return
    }
    spare = thread
    thread.idle()
    timer = setTimeout(() => {
      if (spare !== thread) return
      spare = undefined
      thread.stop()
    }, keepMs)
    timer.unref()
  }

  function take (): IndexThread {
    const thread = spare
    if (thread === undefined || thread.dead) {
      spare = undefined
      return start()
    }
    spare = undefined
    clearTimeout(timer)
    return thread
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
        const result = await thread.run({ format, filePath, indexPath, ...(chunks !== undefined ? { chunkPort: chunks.port } : {}) }, opts)
        keep(thread)
        return result
      } catch (err) {
        // A bad source leaves a sound thread; anything else (an abort, a crash) does not.
        if (err instanceof AppError) keep(thread)
        else thread.stop()
        throw err
      } finally {
        chunks?.worker.terminate().catch(() => {})
      }
    },
    prepare () {
      if (closed || keepMs <= 0 || spare !== undefined) return
      keep(start())
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

/** One worker thread that runs indexing jobs, one at a time. */
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
  const { CHUNK_WORKER_MIN_BYTES, startChunkWorker } = await import('./jsonl.js')
  const size = await stat(filePath).then((st) => st.size, () => 0)
  if (size < CHUNK_WORKER_MIN_BYTES) return undefined
  const started = startChunkWorker()
  // Its failure reaches the pass as its port closing; the pass then reports it.
  started.worker.on('error', () => {})
  return started
}

// The worker's side: loads the indexing code at once, before a job needs it, and runs each
// job it is sent (a failure to load is each job's error).
function serveJobs (port: MessagePort): void {
  const loading = import('./index-source.js')
  loading.catch(() => {})
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
