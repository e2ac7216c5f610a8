// Random access to the records of one registered source. Every format (jsonl, csv, inline
// json, and later parquet, npy) implements this, so the batch builder never knows which
// file type it reads from.

export interface RecordSource {
  /** Number of records, numbered 0..numRecords-1 in source order. */
  readonly numRecords: number
  /**
   * The JSON text of each record, in the order of `indices` (indices may repeat and come in
   * any order). For JSONL this is the record's raw line, so a JSON body can be spliced from
   * the bytes read without parsing them again.
   */
  readJson: (indices: readonly number[]) => Promise<Buffer[]>
  /** The decoded records, in the order of `indices`. */
  readRecords: (indices: readonly number[]) => Promise<unknown[]>
  /** Releases file handles; the source is not used afterwards. */
  close: () => Promise<void>
}

/** What one streaming indexing pass over a file learns. */
export interface IndexResult {
  numRecords: number
  /** The digest (hex) of the source file's bytes (source-digest.ts), the root of the dataset's fingerprint. */
  digest: string
  /** Size of the source file in bytes. */
  bytes: number
  /** CSV only: the header row's column names. */
  columns?: string[]
}

export interface IndexOptions {
  /** Called now and then with the bytes read so far. */
  onProgress?: (bytesDone: number, bytesTotal: number) => void
  /** Aborts the pass (the dataset was deleted while indexing). */
  signal?: AbortSignal
}
