// Reads need a ready dataset: one still indexing is 409 with Retry-After, a failed one says
// why it failed.
import { AppError } from '../errors.js'
import type { DatasetRecord } from '../store/registry.js'

export function requireReady (record: DatasetRecord): DatasetRecord {
  if (record.status === 'indexing') {
    const { bytesDone, bytesTotal } = record.progress
    const pct = bytesTotal > 0 ? Math.floor((100 * bytesDone) / bytesTotal) : 0
    throw new AppError('DATASET_NOT_READY', `dataset "${record.spec.name}" is still indexing (${pct}%); retry later`, { 'retry-after': '1' })
  }
  if (record.status === 'failed') {
    throw new AppError('SOURCE_INVALID', `dataset "${record.spec.name}" failed to index: ${record.error ?? 'unknown reason'}; fix the source and register it again`)
  }
  return record
}
