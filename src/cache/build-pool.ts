// Where batches are built. Building is CPU work (reads, parsing, encoding, hashing); on the
// event loop it would make every cache hit of every other trainer wait behind it. With
// BUILD_WORKERS > 0 builds run in worker threads, each with its own open sources, and the
// event loop only moves bytes; with 0 they run in-process.
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads'
import { AppError, type ErrorCode } from '../errors.js'
import type { BatchBuilder, BuildRequest } from './batch-builder.js'
import { ETAG_LENGTH, etagOf } from './etag.js'
import { batchKey } from './batch-key.js'
import { allocDiskValue, bodyOffset, encodeDiskValue, sealDiskValue } from './disk-value.js'
import { workerBootstrap } from '../sources/worker-bootstrap.js'

/** A built batch; from a build worker, `body` is a view into `stored`, its disk value. */
export interface Built { body: Buffer, etag: string, stored?: Buffer }

export interface BuildPool {
  build: (req: BuildRequest) => Promise<Built>
  /** Closes the dataset's sources wherever they are open. */
  forget: (fingerprint: string) => Promise<void>
  close: () => Promise<void>
}

const ROLE = 'shardfeed-build-worker'

type Request =
  | { id: number, type: 'build', req: BuildRequest }
  | { id: number, type: 'forget', fingerprint: string }
type Reply =
  | { id: number, ok: true, value?: ArrayBuffer, etag?: string, bodyOffset?: number }
  | { id: number, ok: false, code?: ErrorCode, message: string }

export function createBuildPool (workers: number): BuildPool {
  if (workers <= 0) return inProcessPool()
  return workerPool(workers)
}

// The builder and the codecs and source readers under it (apache-arrow, hyparquet, csv-parse:
// ~15 MiB once loaded) are imported only where builds run, so with build workers the event
// loop's thread never loads them.
async function loadBuilder (): Promise<BatchBuilder> {
  const { createBatchBuilder } = await import('./batch-builder.js')
  return createBatchBuilder()
}

function inProcessPool (): BuildPool {
  let builder: Promise<BatchBuilder> | undefined
  const get = async (): Promise<BatchBuilder> => await (builder ??= loadBuilder())
  return {
    async build (req) {
      const body = await (await get()).build(req)
      return { body, etag: etagOf(body) }
    },
    forget: async (fingerprint) => { if (builder !== undefined) await (await builder).forget(fingerprint) },
    close: async () => { if (builder !== undefined) await (await builder).close() }
  }
}

interface Slot {
  worker: Worker
  pending: Map<number, { resolve: (r: Reply) => void, reject: (e: Error) => void }>
}

function workerPool (size: number): BuildPool {
  const slots: Array<Slot | undefined> = new Array(size).fill(undefined)
  let nextId = 0
  let closed = false

  function spawn (k: number): Slot {
    // A small young generation (2 MiB; 8 cost ~5 MiB more RSS) keeps the worker's footprint
    // near what it holds: its garbage is short-lived (one batch at a time).
    const worker = new Worker(workerBootstrap(import.meta.url), { eval: true, workerData: { role: ROLE }, resourceLimits: { maxYoungGenerationSizeMb: 2 } })
    worker.unref()
    const slot: Slot = { worker, pending: new Map() }
    worker.on('message', (reply: Reply) => {
      const p = slot.pending.get(reply.id)
      slot.pending.delete(reply.id)
      p?.resolve(reply)
    })
    // A worker that dies fails its pending builds (they are retried by the next request) and
    // is replaced on next use.
    const fail = (err: Error): void => {
      if (slots[k] === slot) slots[k] = undefined
      for (const p of slot.pending.values()) p.reject(err)
      slot.pending.clear()
    }
    worker.on('error', fail)
    worker.on('exit', (code) => { fail(new Error(`a build worker exited with code ${code}`)) })
    slots[k] = slot
    return slot
  }

  function pick (): Slot {
    let best: Slot | undefined
    for (let k = 0; k < size; k++) {
      const slot = slots[k] ?? spawn(k)
      if (best === undefined || slot.pending.size < best.pending.size) best = slot
    }
    return best as Slot
  }

  async function ask (slot: Slot, msg: Request): Promise<Reply> {
    return await new Promise<Reply>((resolve, reject) => {
      slot.pending.set(msg.id, { resolve, reject })
      slot.worker.postMessage(msg)
    })
  }

  return {
    async build (req) {
      if (closed) throw new Error('the build pool is closed')
      const reply = await ask(pick(), { id: nextId++, type: 'build', req })
      if (!reply.ok) throw reply.code !== undefined ? new AppError(reply.code, reply.message) : new Error(reply.message)
      const stored = Buffer.from(reply.value as ArrayBuffer)
      return { body: stored.subarray(reply.bodyOffset), etag: reply.etag as string, stored }
    },
    async forget (fingerprint) {
      await Promise.all(slots.map(async (slot) => {
        if (slot !== undefined) await ask(slot, { id: nextId++, type: 'forget', fingerprint }).catch(() => {})
      }))
    },
    async close () {
      closed = true
      await Promise.all(slots.map(async (slot) => { if (slot !== undefined) await slot.worker.terminate() }))
    }
  }
}

/**
 * A batch as its disk value (key, etag, checksum, body), so that the event loop neither copies
 * nor checksums it to store it. The codecs that know a body's length before writing it (json,
 * ndjson, npy's arrow) write it straight into the value; other bodies are copied in.
 */
async function buildValue (builder: BatchBuilder, req: BuildRequest): Promise<{ value: Buffer, etag: string, bodyOffset: number }> {
  const key = batchKey(req.record.fingerprint as string, req.epoch, req.rank, req.index, req.format)
  let value: Buffer | undefined
  const body = await builder.build(req, (bytes) => {
    value = allocDiskValue(key, ETAG_LENGTH, bytes)
    return value.subarray(value.length - bytes)
  })
  const at = bodyOffset(key, ETAG_LENGTH)
  const etag = etagOf(body)
  // A body the codec made elsewhere is copied into a value of its own.
  const stored = value !== undefined && body.buffer === value.buffer && body.byteOffset === at && value.length === at + body.length
    ? sealDiskValue(value, etag)
    : encodeDiskValue(key, { etag, body })
  return { value: stored, etag, bodyOffset: at }
}

/** The worker's side: one builder, its sources kept open between builds. */
async function serve (): Promise<void> {
  const port = parentPort
  if (port === null) return
  const builder = await loadBuilder()
  port.on('message', (msg: Request) => {
    const work = msg.type === 'build'
      ? buildValue(builder, msg.req).then(({ value, etag, bodyOffset }) => {
        // Transferred, not copied. (The value is a buffer of its own: transferring a view into
        // Node's shared pool would detach the pool.)
        const ab = value.buffer as ArrayBuffer
        port.postMessage({ id: msg.id, ok: true, value: ab, etag, bodyOffset } satisfies Reply, [ab])
      })
      : builder.forget(msg.fingerprint).then(() => { port.postMessage({ id: msg.id, ok: true } satisfies Reply) })
    work.catch((err: unknown) => {
      const code = err instanceof AppError ? err.code : undefined
      port.postMessage({ id: msg.id, ok: false, ...(code !== undefined ? { code } : {}), message: (err as Error).message ?? String(err) } satisfies Reply)
    })
  })
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) {
  // A failure to load is an unhandled rejection: the worker exits and the pool sees its error.
  serve().catch((err: unknown) => { setImmediate(() => { throw err }) })
}
