// Builds a batch's bytes: plan -> source read -> codec. Sources are opened once per
// fingerprint and kept open while the dataset exists.
import type { DatasetRecord } from '../store/registry.js'
import { batchIndices, type PlanSpec } from '../plan/plan.js'
import { openSource } from '../sources/index-source.js'
import type { RecordSource } from '../sources/record-source.js'
import { encodeJsonBatch } from '../codecs/json-batch.js'
import { encodeNdjsonBatch } from '../codecs/ndjson-batch.js'
import type { BatchFormat } from '../codecs/negotiate.js'
import { encodeArrowBatch } from '../codecs/arrow-batch.js'
import type { NpySource } from '../sources/npy.js'
import { encodeNpyArrowBatch } from '../codecs/npy-arrow-batch.js'
import { ownBuffer, type AllocateBody } from '../codecs/allocate-body.js'

export interface BuildRequest {
  record: DatasetRecord
  plan: PlanSpec
  epoch: number
  rank: number
  index: number
  numBatches: number
  format: BatchFormat
}

export interface BatchBuilder {
  /**
   * The batch's body. Codecs that know the body's length before writing it write it where
   * `allocate` says; the others return a Buffer of their own.
   */
  build: (req: BuildRequest, allocate?: AllocateBody) => Promise<Buffer>
  /** Closes the dataset's source; its next batch opens it again. */
  forget: (fingerprint: string) => Promise<void>
  close: () => Promise<void>
}

export function createBatchBuilder (): BatchBuilder {
  const sources = new Map<string, Promise<RecordSource>>()

  function sourceFor (record: DatasetRecord): Promise<RecordSource> {
    const key = record.fingerprint as string
    let src = sources.get(key)
    if (src === undefined) {
      src = openSource({
        format: record.spec.source.format,
        filePath: record.filePath as string,
        indexPath: record.indexPath as string,
        ...(record.columns !== undefined ? { columns: record.columns } : {}),
        ...(record.numRecords !== undefined ? { numRecords: record.numRecords } : {}),
        ...(record.sourceStat !== undefined ? { bytes: record.sourceStat.size } : {})
      })
      // A failed open is not kept: the next request tries again.
      src.catch(() => sources.delete(key))
      sources.set(key, src)
    }
    return src
  }

  async function closeSource (src: Promise<RecordSource> | undefined): Promise<void> {
    const opened = await src?.catch(() => undefined)
    await opened?.close()
  }

  return {
    async build (req, allocate = ownBuffer) {
      const indices = batchIndices(req.plan, req.epoch, req.rank, req.index)
      const source = await sourceFor(req.record)
      if (req.format === 'arrow') {
        // npy rows are already little-endian arrays: the Arrow column is a byte copy.
        if (req.record.spec.source.format === 'npy') return encodeNpyArrowBatch(source as NpySource, indices, allocate)
        return encodeArrowBatch(req.record.schema ?? { fields: [] }, indices, await source.readRecords(indices))
      }
      const texts = await source.readJson(indices)
      if (req.format === 'ndjson') return encodeNdjsonBatch(indices, texts, allocate)
      return encodeJsonBatch({
        dataset: req.record.spec.name,
        epoch: req.epoch,
        rank: req.rank,
        index: req.index,
        numBatches: req.numBatches,
        indices
      }, texts, allocate)
    },
    async forget (fingerprint) {
      const src = sources.get(fingerprint)
      sources.delete(fingerprint)
      await closeSource(src)
    },
    async close () {
      const all = [...sources.values()]
      sources.clear()
      await Promise.all(all.map(closeSource))
    }
  }
}
