// One place that maps a source format to its indexing pass and its reader. The readers of CSV,
// npy and Parquet (csv-parse, apache-arrow, hyparquet) are imported when their format is
// used: an indexing worker starts for each registration, and loading every reader cost it
// ~170 ms and ~15 MiB.
import { AppError } from '../errors.js'
import type { SchemaField } from '../store/registry.js'
import type { IndexOptions, IndexResult, RecordSource } from './record-source.js'
import { indexJsonl, openJsonlSource, type JsonlIndexOptions } from './jsonl.js'
import { inferSchema, jsonlLineOf } from './schema-pass.js'
import { summarySchema } from '../codecs/schema-scan.js'

export type SourceFormat = 'jsonl' | 'csv' | 'parquet' | 'npy' | 'json'

export interface SourceIndex extends IndexResult {
  schema: { fields: SchemaField[] }
}

export interface OpenableSource {
  format: SourceFormat
  filePath: string
  indexPath: string
  columns?: string[]
  numRecords?: number
  bytes?: number
}

/**
 * Indexes a source (one streaming pass: offsets, digest, validation) and infers its schema.
 * `indexPath` receives the format's index file. For JSONL the pass summarises the schema as
 * it validates; a second pass over JSON.parse'd records (the inferrer itself) runs only when
 * the summary cannot stand for it: a value that does not fit its column, whose error message
 * that pass words with the line. `opts.ring` (a test setting) and `opts.chunkPort` are JSONL's
 * (JsonlIndexOptions).
 */
export async function indexSource (format: SourceFormat, filePath: string, indexPath: string, opts: IndexOptions & Pick<JsonlIndexOptions, 'ring' | 'chunkPort'>): Promise<SourceIndex> {
  switch (format) {
    case 'jsonl':
    case 'json': { // inline records are stored as a JSONL file
      const { schema: summary, ...result } = await indexJsonl(filePath, indexPath, opts)
      const schema = summarySchema(summary) ??
        await schemaOf({ format, filePath, indexPath }, async (i) => await jsonlLineOf(filePath, indexPath, i), opts)
      return { ...result, schema }
    }
    case 'csv': {
      const { indexCsv } = await import('./csv.js')
      const result = await indexCsv(filePath, indexPath, opts)
      // CSV records may span lines; the record number (plus the header line) is what a
      // spreadsheet shows as the row.
      const schema = await schemaOf({ format, filePath, indexPath, columns: result.columns ?? [] }, async (i) => i + 2, opts)
      return { ...result, schema }
    }
    case 'npy': {
      const { indexNpy, npySchema } = await import('./npy.js')
      const result = await indexNpy(filePath, indexPath, opts)
      return { numRecords: result.numRecords, digest: result.digest, bytes: result.bytes, schema: npySchema(result) }
    }
    case 'parquet': {
      const { indexParquet } = await import('./parquet.js')
      const result = await indexParquet(filePath, indexPath, opts)
      return { numRecords: result.numRecords, digest: result.digest, bytes: result.bytes, schema: result.schema }
    }
    default:
      throw new AppError('SOURCE_INVALID', `source.format "${String(format)}" is not supported by this server`)
  }
}

async function schemaOf (src: OpenableSource, lineOf: (i: number) => Promise<number>, opts: IndexOptions): Promise<{ fields: SchemaField[] }> {
  const source = await openSource(src)
  try {
    return await inferSchema(source, lineOf, opts)
  } finally {
    await source.close()
  }
}

export async function openSource (src: OpenableSource): Promise<RecordSource> {
  switch (src.format) {
    case 'jsonl':
    case 'json':
      return await openJsonlSource(src.filePath, src.indexPath)
    case 'csv': {
      const { openCsvSource } = await import('./csv.js')
      return await openCsvSource(src.filePath, src.indexPath, src.columns ?? [])
    }
    case 'npy': {
      const { loadNpyMeta, openNpySource } = await import('./npy.js')
      return await openNpySource(src.filePath, await loadNpyMeta(src.indexPath))
    }
    case 'parquet': {
      const { openParquetSource } = await import('./parquet.js')
      return await openParquetSource(src.filePath, {
        ...(src.bytes !== undefined ? { bytes: src.bytes } : {}),
        ...(src.numRecords !== undefined ? { numRecords: src.numRecords } : {})
      })
    }
    default:
      throw new AppError('SOURCE_INVALID', `source.format "${String(src.format)}" is not supported by this server`)
  }
}
