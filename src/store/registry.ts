// Dataset registrations, persisted in the store's `datasets` sublevel (one small JSON value
// per name; record data never goes here).
import type { Db } from './db.js'
import type { PlanSpec } from '../plan/plan.js'

export type DatasetStatus = 'indexing' | 'ready' | 'failed'

/** Where records come from, as stored: inline records are kept as their digest and count. */
export interface StoredSource {
  format: 'jsonl' | 'csv' | 'parquet' | 'npy' | 'json'
  path?: string
  url?: string
  numInlineRecords?: number
  recordsSha256?: string
}

/** A registration with every default filled in: what "the same spec" compares. */
export interface DatasetSpec {
  name: string
  source: StoredSource
  batchSize: number
  numShards: number
  shuffle: boolean
  seed: number
  remainder: PlanSpec['remainder']
  partition: PlanSpec['partition']
}

export interface SchemaField {
  name: string
  type: string
  nullable?: boolean
  shape?: number[]
}

export interface DatasetRecord {
  spec: DatasetSpec
  /** sha256 of the canonical spec; equal specs have equal keys. */
  specKey: string
  status: DatasetStatus
  error?: string
  createdAt: string
  progress: { bytesDone: number, bytesTotal: number }
  /** Set once indexing succeeded. */
  numRecords?: number
  /** sha256 of the source bytes (or of the inline records' JSON). */
  sourceDigest?: string
  /** sha256 over source digest, canonical spec and plan version: the cache key root. */
  fingerprint?: string
  /** Absolute path of the file records are read from (the source or a copy of inline data). */
  filePath?: string
  /** Absolute path of the byte-offset index file. */
  indexPath?: string
  /** CSV header names. */
  columns?: string[]
  /**
   * Size, mtime and inode of the source when it was indexed (`ino` is missing from records
   * written before it was kept).
   */
  sourceStat?: { size: number, mtimeMs: number, ino?: number }
  schema?: { fields: SchemaField[] }
}

export interface Registry {
  get: (name: string) => Promise<DatasetRecord | undefined>
  /** The record if it is in memory already (no store read): for the hit path. */
  peek: (name: string) => DatasetRecord | undefined
  put: (name: string, record: DatasetRecord) => Promise<void>
  del: (name: string) => Promise<void>
  list: () => Promise<DatasetRecord[]>
}

export function createRegistry (db: Db): Registry {
  const datasets = db.sublevel<string, DatasetRecord>('datasets', { valueEncoding: 'json' })
  // Every write goes through this object, so a write-through copy in memory is exact and
  // spares each batch request a LevelDB read and a JSON parse.
  const memo = new Map<string, DatasetRecord>()
  return {
    async get (name) {
      const hit = memo.get(name)
      if (hit !== undefined) return hit
      const record = await datasets.get(name)
      if (record !== undefined) memo.set(name, record)
      return record
    },
    peek (name) {
      return memo.get(name)
    },
    async put (name, record) {
      await datasets.put(name, record)
      memo.set(name, record)
    },
    async del (name) {
      memo.delete(name)
      await datasets.del(name)
    },
    async list () {
      // Keys iterate in byte order, so the list is sorted by name.
      return await datasets.values().all()
    }
  }
}
