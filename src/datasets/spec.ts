// Turns a registration body into the canonical spec (every default filled in, keys in a fixed
// order) and its key. "The same spec" means the same key, so idempotency never depends on
// the order or presence of defaulted properties in the request.
import { createHash } from 'node:crypto'
import { AppError } from '../errors.js'
import type { RegisterBodyT, SourceSpecT } from '../schemas/datasets.js'
import type { DatasetSpec, StoredSource } from '../store/registry.js'

export function sha256Hex (data: string | Buffer): string {
  return createHash('sha256').update(data).digest('hex')
}

/** Checks the cross-field rules a JSON schema states poorly, with messages a user can act on. */
export function checkSource (source: SourceSpecT): void {
  const given = (['path', 'url', 'records'] as const).filter((k) => source[k] !== undefined)
  if (given.length !== 1) {
    throw new AppError('VALIDATION', `body/source must have exactly one of "path", "url" or "records" (got ${given.length === 0 ? 'none' : given.join(', ')})`)
  }
  if ((source.format === 'json') !== (source.records !== undefined)) {
    throw new AppError('VALIDATION', 'body/source: inline "records" go with format "json", and format "json" needs inline "records"; files use format jsonl, csv, parquet or npy')
  }
}

/**
 * The canonical spec of a registration body. Inline records are replaced by their digest
 * (computed by the caller from the records' JSON lines), so the stored spec stays small.
 * The body's source has passed checkSource.
 */
export function canonicalSpec (body: RegisterBodyT, inline?: { sha256: string, count: number }): DatasetSpec {
  const { format, path, url } = body.source
  let source: StoredSource
  if (inline !== undefined) {
    // The records themselves live in a file under CACHE_DIR.
    source = { format, numInlineRecords: inline.count, recordsSha256: inline.sha256 }
  } else if (path !== undefined) {
    source = { format, path }
  } else {
    source = { format, url: url as string }
  }
  return {
    name: body.name,
    source,
    batchSize: body.batchSize,
    numShards: body.numShards,
    shuffle: body.shuffle ?? false,
    seed: body.seed ?? 0,
    remainder: body.remainder ?? 'partial',
    partition: body.partition ?? 'strided'
  }
}

/** Key of a canonical spec: equal for equal specs, whatever the request's property order. */
export function specKeyOf (spec: DatasetSpec): string {
  return sha256Hex(JSON.stringify(spec))
}

/** The fingerprint: every input a batch's bytes depend on, hashed. */
export function fingerprintOf (specKey: string, sourceDigest: string, planVersion: number): string {
  return sha256Hex(JSON.stringify({ planVersion, specKey, sourceDigest }))
}
