// The `ndjson` batch body: one `{"index":k,"record":{...}}` line per record, spliced from the
// records' JSON texts like the json body, each copied once to its place.
import { ownBuffer, type AllocateBody } from './allocate-body.js'

const MID = ',"record":'
const END = Buffer.from('}\n')

export function encodeNdjsonBatch (indices: readonly number[], records: readonly Uint8Array[], allocate: AllocateBody = ownBuffer): Buffer {
  // Record numbers are integers, so each line's head is ASCII: its length is its byte count.
  const heads = new Array<string>(records.length)
  let total = 0
  for (let k = 0; k < records.length; k++) {
    heads[k] = `{"index":${indices[k] as number}${MID}`
    total += heads[k]!.length + records[k]!.length + END.length
  }
  const out = allocate(total)
  let pos = 0
  for (let k = 0; k < records.length; k++) {
    pos += out.write(heads[k]!, pos, 'latin1')
    out.set(records[k]!, pos)
    pos += records[k]!.length
    out.set(END, pos)
    pos += END.length
  }
  return out
}
