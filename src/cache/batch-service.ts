// Turns (dataset, epoch, rank, index, format) into the batch's bytes: plan -> source read ->
// codec. Sources are opened once per fingerprint and kept open while the dataset exists.
import { createHash } from 'node:crypto'
import { AppError } from '../errors.js'
import type { DatasetRecord } from '../store/registry.js'
import { batchIndices, shardNumBatches, type PlanSpec } from '../plan/plan.js'
import { planSpecOf } from '../datasets/descriptor.js'
import { openSource } from '../sources/index-source.js'
import type { RecordSource } from '../sources/record-source.js'
import { encodeJsonBatch } from '../codecs/json-batch.js'
import { encodeNdjsonBatch } from '../codecs/ndjson-batch.js'
import type { BatchFormat } from '../codecs/negotiate.js'

export type CacheTier = 'memory' | 'disk' | 'miss'

export interface Batch {
  body: Buffer
  /** Strong ETag: a digest of the body, so any client can check the bytes it got. */
  etag: string
  tier: CacheTier
  /** Batches of this rank per epoch (for the Link header). */
  numBatches: number
}

export interface BatchRequest {
  record: DatasetRecord
  epoch: number
  rank: number
  index: number
  format: BatchFormat
}

export interface BatchService {
  getBatch: (req: BatchRequest) => Promise<Batch>
  /** Closes the dataset's source; its next batch opens it again. */
  forget: (record: DatasetRecord) => Promise<void>
  close: () => Promise<void>
}

export function etagOf (body: Buffer): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"`
}

export function createBatchService (): BatchService {
  const sources = new Map<string, Promise<RecordSource>>()

  function sourceFor (record: DatasetRecord): Promise<RecordSource> {
    const key = record.fingerprint as string
    let src = sources.get(key)
    if (src === undefined) {
      src = openSource({
        format: record.spec.source.format,
        filePath: record.filePath as string,
        indexPath: record.indexPath as string,
        ...(record.columns !== undefined ? { columns: record.columns } : {})
      })
      // A failed open is not cached: the next request tries again.
      src.catch(() => sources.delete(key))
      sources.set(key, src)
    }
    return src
  }

  async function build (req: BatchRequest, plan: PlanSpec, numBatches: number): Promise<Buffer> {
    const indices = batchIndices(plan, req.epoch, req.rank, req.index)
    const source = await sourceFor(req.record)
    const texts = await source.readJson(indices)
    if (req.format === 'ndjson') return encodeNdjsonBatch(indices, texts)
    return encodeJsonBatch({
      dataset: req.record.spec.name,
      epoch: req.epoch,
      rank: req.rank,
      index: req.index,
      numBatches,
      indices
    }, texts)
  }

  async function getBatch (req: BatchRequest): Promise<Batch> {
    const plan = planSpecOf(req.record)
    const numBatches = checkAddress(plan, req.rank, req.index)
    const body = await build(req, plan, numBatches)
    return { body, etag: etagOf(body), tier: 'miss', numBatches }
  }

  async function forget (record: DatasetRecord): Promise<void> {
    if (record.fingerprint === undefined) return
    const src = sources.get(record.fingerprint)
    sources.delete(record.fingerprint)
    if (src !== undefined) await (await src.catch(() => undefined))?.close()
  }

  async function close (): Promise<void> {
    const all = [...sources.values()]
    sources.clear()
    await Promise.all(all.map(async (s) => await (await s.catch(() => undefined))?.close()))
  }

  return { getBatch, forget, close }
}

/** Checks rank and index against the plan; returns the shard's batch count. */
export function checkAddress (plan: PlanSpec, rank: number, index: number): number {
  if (rank >= plan.numShards) {
    throw new AppError('SHARD_NOT_FOUND', `rank ${rank}: the dataset has ${plan.numShards} shards (ranks 0..${plan.numShards - 1})`)
  }
  const numBatches = shardNumBatches(plan, rank)
  if (index >= numBatches) {
    throw new AppError('BATCH_OUT_OF_RANGE', numBatches === 0
      ? `batch ${index} of shard ${rank}: the shard has no batches (remainder "${plan.remainder}" leaves none for ${plan.numRecords} records)`
      : `batch ${index} of shard ${rank}: the shard has ${numBatches} batches (0..${numBatches - 1})`)
  }
  return numBatches
}
