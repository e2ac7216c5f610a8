// The TypeScript client of shardfeed (`import { ShardfeedClient } from 'shardfeed/client'`):
// typed descriptors and batches, keep-alive connections (Node's fetch pools them), and retries
// with backoff on connection errors, 503 and 409 DATASET_NOT_READY, honouring Retry-After.
// A server restart mid-epoch therefore loses and repeats no batch: each index is asked for
// until it is answered, and its bytes are the same whichever replica or restart answers.
import type { DescriptorT } from '../schemas/datasets.js'

export type Descriptor = DescriptorT
export type BatchFormat = 'json' | 'ndjson' | 'arrow'

export interface JsonBatch<R = Record<string, unknown>> {
  dataset: string
  epoch: number
  rank: number
  index: number
  numBatches: number
  indices: number[]
  records: R[]
}

export interface NdjsonRow<R = Record<string, unknown>> { index: number, record: R }

export interface ShardInfo { rank: number, numBatches: number, numRecords: number }

export interface RawBatch {
  body: Buffer
  etag: string | null
  cache: string | null
  contentType: string | null
}

export interface ClientOptions {
  /** e.g. http://127.0.0.1:8080 */
  baseUrl: string
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string
  /** Attempts after the first one, for retryable failures. */
  retries?: number
  backoffMs?: number
  maxBackoffMs?: number
  timeoutMs?: number
}

export interface RegisterSpec {
  name: string
  source: { format: 'jsonl' | 'csv' | 'parquet' | 'npy' | 'json', path?: string, url?: string, records?: unknown[] }
  batchSize: number
  numShards: number
  shuffle?: boolean
  seed?: number
  remainder?: 'partial' | 'drop' | 'pad'
  partition?: 'strided' | 'contiguous'
}

/** An answer of the API that is not retried: status and the stable `code` of API.md. */
export class ShardfeedError extends Error {
  readonly status: number
  readonly code: string

  constructor (status: number, code: string, message: string) {
    super(message)
    this.name = 'ShardfeedError'
    this.status = status
    this.code = code
  }
}

const MEDIA: Record<BatchFormat, string> = {
  json: 'application/json',
  ndjson: 'application/x-ndjson',
  arrow: 'application/vnd.apache.arrow.stream'
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

function retryAfterMs (res: Response): number | undefined {
  const v = res.headers.get('retry-after')
  if (v === null) return undefined
  const s = Number(v)
  return Number.isFinite(s) && s >= 0 ? s * 1000 : undefined
}

export class ShardfeedClient {
  readonly baseUrl: string
  private readonly opts: Required<Omit<ClientOptions, 'token' | 'baseUrl'>> & { token?: string }

  constructor (options: ClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '')
    this.opts = {
      retries: options.retries ?? 8,
      backoffMs: options.backoffMs ?? 200,
      maxBackoffMs: options.maxBackoffMs ?? 5000,
      timeoutMs: options.timeoutMs ?? 30000,
      ...(options.token !== undefined ? { token: options.token } : {})
    }
  }

  /** One request with the retry rules; non-retryable API errors become ShardfeedError. */
  async request (method: string, path: string, init: { body?: unknown, accept?: string } = {}): Promise<Response> {
    const headers: Record<string, string> = {}
    if (this.opts.token !== undefined) headers.authorization = `Bearer ${this.opts.token}`
    if (init.accept !== undefined) headers.accept = init.accept
    if (init.body !== undefined) headers['content-type'] = 'application/json'
    let attempt = 0
    for (;;) {
      let res: Response | undefined
      let failure: unknown
      try {
        res = await fetch(this.baseUrl + path, {
          method,
          headers,
          ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
          signal: AbortSignal.timeout(this.opts.timeoutMs)
        })
      } catch (err) {
        failure = err // refused, reset, timed out: the server may be restarting
      }
      if (res !== undefined && res.ok) return res
      if (res !== undefined && res.status === 304) return res
      let wait: number | undefined
      if (res !== undefined) {
        const body = await res.text()
        let parsed: { code?: string, message?: string } = {}
        try { parsed = JSON.parse(body) } catch {}
        const retryable = res.status === 503 || (res.status === 409 && parsed.code === 'DATASET_NOT_READY')
        if (!retryable || attempt >= this.opts.retries) {
          throw new ShardfeedError(res.status, parsed.code ?? 'HTTP_' + String(res.status), parsed.message ?? body.slice(0, 500))
        }
        wait = retryAfterMs(res)
      } else if (attempt >= this.opts.retries) {
        throw failure
      }
      const backoff = Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** attempt)
      await sleep(wait ?? backoff * (0.5 + Math.random() / 2))
      attempt++
    }
  }

  async list (): Promise<Descriptor[]> {
    return ((await (await this.request('GET', '/datasets')).json()) as { datasets: Descriptor[] }).datasets
  }

  async describe (name: string): Promise<Descriptor> {
    return await (await this.request('GET', `/datasets/${encodeURIComponent(name)}`)).json() as Descriptor
  }

  async register (spec: RegisterSpec): Promise<Descriptor> {
    return await (await this.request('POST', '/datasets', { body: spec })).json() as Descriptor
  }

  /** Registers and waits until indexing is done (status ready or failed). */
  async registerAndWait (spec: RegisterSpec, pollMs = 200): Promise<Descriptor> {
    let d = await this.register(spec)
    while (d.status === 'indexing') {
      await sleep(pollMs)
      d = await this.describe(spec.name)
    }
    return d
  }

  async delete (name: string): Promise<void> {
    await this.request('DELETE', `/datasets/${encodeURIComponent(name)}`)
  }

  async shard (name: string, rank: number): Promise<ShardInfo> {
    return await (await this.request('GET', `/datasets/${encodeURIComponent(name)}/shards/${rank}`)).json() as ShardInfo
  }

  /** A batch's bytes and caching headers, in any format. */
  async batchBytes (name: string, rank: number, index: number, opts: { epoch?: number, format?: BatchFormat } = {}): Promise<RawBatch> {
    const format = opts.format ?? 'json'
    const res = await this.request('GET', `/datasets/${encodeURIComponent(name)}/shards/${rank}/batches/${index}?epoch=${opts.epoch ?? 0}&format=${format}`, { accept: MEDIA[format] })
    return {
      body: Buffer.from(await res.arrayBuffer()),
      etag: res.headers.get('etag'),
      cache: res.headers.get('x-cache'),
      contentType: res.headers.get('content-type')
    }
  }

  async batch<R = Record<string, unknown>> (name: string, rank: number, index: number, opts: { epoch?: number } = {}): Promise<JsonBatch<R>> {
    const raw = await this.batchBytes(name, rank, index, { ...opts, format: 'json' })
    return JSON.parse(raw.body.toString('utf8')) as JsonBatch<R>
  }

  async ndjsonBatch<R = Record<string, unknown>> (name: string, rank: number, index: number, opts: { epoch?: number } = {}): Promise<Array<NdjsonRow<R>>> {
    const raw = await this.batchBytes(name, rank, index, { ...opts, format: 'ndjson' })
    return raw.body.toString('utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as NdjsonRow<R>)
  }

  /**
   * A rank's batches of one epoch in order, from `start` (resume), fetched `concurrency` at a
   * time ahead of the consumer.
   */
  async * iterBatches (name: string, rank: number, opts: { epoch?: number, start?: number, format?: BatchFormat, concurrency?: number } = {}): AsyncGenerator<{ index: number, batch: RawBatch }> {
    const { numBatches } = await this.shard(name, rank)
    const concurrency = Math.max(1, opts.concurrency ?? 4)
    const ahead: Array<Promise<RawBatch>> = []
    let nextToFetch = opts.start ?? 0
    const fetchOpts = { epoch: opts.epoch ?? 0, format: opts.format ?? 'json' as BatchFormat }
    for (let i = opts.start ?? 0; i < numBatches; i++) {
      while (nextToFetch < numBatches && ahead.length < concurrency) {
        const p = this.batchBytes(name, rank, nextToFetch++, fetchOpts)
        p.catch(() => {}) // awaited below, in order
        ahead.push(p)
      }
      const batch = await (ahead.shift() as Promise<RawBatch>)
      yield { index: i, batch }
    }
  }
}
