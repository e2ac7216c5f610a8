// The `json` batch body, assembled from bytes: the header fields are serialised once and the
// records' JSON texts (raw JSONL lines where the source has them) are spliced in as they are,
// so a batch is never parsed and re-serialised. The body's length is counted first, so each
// text is copied once, straight to its place.
import { ownBuffer, type AllocateBody } from './allocate-body.js'

export interface BatchHeader {
  dataset: string
  epoch: number
  rank: number
  index: number
  numBatches: number
  indices: readonly number[]
}

const COMMA = 0x2c
const TAIL = Buffer.from(']}')

export function encodeJsonBatch (header: BatchHeader, records: readonly Uint8Array[], allocate: AllocateBody = ownBuffer): Buffer {
  const head = `{"dataset":${JSON.stringify(header.dataset)},"epoch":${header.epoch},"rank":${header.rank},` +
    `"index":${header.index},"numBatches":${header.numBatches},"indices":[${header.indices.join(',')}],"records":[`
  const headBytes = Buffer.byteLength(head, 'utf8')
  let total = headBytes + Math.max(0, records.length - 1) + TAIL.length
  for (let k = 0; k < records.length; k++) total += records[k]!.length
  const out = allocate(total)
  let pos = out.write(head, 0, 'utf8')
  for (let k = 0; k < records.length; k++) {
    if (k > 0) out[pos++] = COMMA
    const text = records[k]!
    out.set(text, pos)
    pos += text.length
  }
  out.set(TAIL, pos)
  return out
}
