// The schema of a JSONL or CSV source, inferred at registration over every record (the Arrow
// format needs one schema for all batches, and a record that does not fit must fail
// registration, not a batch later). It reads the source through its RecordSource in runs of
// consecutive records, so each run is one coalesced read. For JSONL the indexing pass
// summarises the schema as it validates (codecs/schema-scan.ts); this pass then only runs
// when that summary cannot stand for it, chiefly to find and word a value that does not fit.
import { open } from 'node:fs/promises'
import { AppError, isAppError } from '../errors.js'
import { createSchemaInferrer } from '../codecs/schema-infer.js'
import type { SchemaField } from '../store/registry.js'
import type { IndexOptions, RecordSource } from './record-source.js'
import { OffsetIndex } from './offset-index.js'

// Records per read. A run's records are alive together; the server runs with a 1 MiB
// semi-space (small heaps for the event loop, for every thread), where runs of 4096 records
// made each scavenge copy most of a run. A 12 MiB CSV of 400,000 short rows registered in
// ~1.1 s with runs of 4096, ~0.7 s with 256 (128 was no faster).
const RUN = 256

/**
 * Infers the schema of all records. `lineOf` maps a record number to the 1-based line a user
 * sees in an editor, for the error message of a record that does not fit.
 */
export async function inferSchema (
  source: RecordSource,
  lineOf: (record: number) => Promise<number>,
  opts: IndexOptions = {}
): Promise<{ fields: SchemaField[] }> {
  const inferrer = createSchemaInferrer()
  const n = source.numRecords
  const run: number[] = []
  for (let first = 0; first < n; first += RUN) {
    opts.signal?.throwIfAborted()
    run.length = 0
    for (let i = first; i < Math.min(n, first + RUN); i++) run.push(i)
    const records = await source.readRecords(run)
    for (let k = 0; k < records.length; k++) {
      try {
        inferrer.add(records[k], first + k + 1)
      } catch (err) {
        if (!isAppError(err)) throw err
        // The inferrer counts records; say the line the user can find in the file.
        const line = await lineOf(first + k)
        throw new AppError('SOURCE_INVALID', err.message.replace(/^line \d+/, `line ${line}`))
      }
    }
  }
  return inferrer.result()
}

/** 1-based line of record `i` of a JSONL file: newlines before its first byte, plus one. */
export async function jsonlLineOf (filePath: string, indexPath: string, i: number): Promise<number> {
  const index = await OffsetIndex.load(indexPath)
  const end = index.start(i)
  const fh = await open(filePath, 'r')
  try {
    const buf = Buffer.allocUnsafe(1 << 20)
    let lines = 1
    for (let pos = 0; pos < end;) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, end - pos), pos)
      if (bytesRead === 0) break
      for (let k = buf.indexOf(10, 0); k !== -1 && k < bytesRead; k = buf.indexOf(10, k + 1)) lines++
      pos += bytesRead
    }
    return lines
  } finally {
    await fh.close()
  }
}
