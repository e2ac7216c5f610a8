// One place that maps a source format to its indexing pass and its reader.
import { AppError } from '../errors.js'
import type { IndexOptions, IndexResult, RecordSource } from './record-source.js'
import { indexJsonl, openJsonlSource } from './jsonl.js'
import { indexCsv, openCsvSource } from './csv.js'

export type SourceFormat = 'jsonl' | 'csv' | 'parquet' | 'npy' | 'json'

export async function indexSource (format: SourceFormat, filePath: string, indexPath: string, opts: IndexOptions): Promise<IndexResult> {
  switch (format) {
    case 'jsonl':
    case 'json': // inline records are stored as a JSONL file
      return await indexJsonl(filePath, indexPath, opts)
    case 'csv':
      return await indexCsv(filePath, indexPath, opts)
    default:
      throw new AppError('SOURCE_INVALID', `source.format "${format}" is not supported by this server`)
  }
}

export interface OpenableSource {
  format: SourceFormat
  filePath: string
  indexPath: string
  columns?: string[]
}

export async function openSource (src: OpenableSource): Promise<RecordSource> {
  switch (src.format) {
    case 'jsonl':
    case 'json':
      return await openJsonlSource(src.filePath, src.indexPath)
    case 'csv':
      return await openCsvSource(src.filePath, src.indexPath, src.columns ?? [])
    default:
      throw new AppError('SOURCE_INVALID', `source.format "${src.format}" is not supported by this server`)
  }
}
