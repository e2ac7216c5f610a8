// The `ndjson` batch body: one `{"index":k,"record":{...}}` line per record, spliced from the
// records' JSON texts like the json body.
const MID = Buffer.from(',"record":')
const END = Buffer.from('}\n')

export function encodeNdjsonBatch (indices: readonly number[], records: readonly Buffer[]): Buffer {
  const parts: Buffer[] = []
  for (let k = 0; k < records.length; k++) {
    parts.push(Buffer.from(`{"index":${indices[k] as number}`), MID, records[k] as Buffer, END)
  }
  return Buffer.concat(parts)
}
