// The `json` batch body, assembled from bytes: the header fields are serialised once and the
// records' JSON texts (raw JSONL lines where the source has them) are spliced in as they are,
// so a batch is never parsed and re-serialised.
export interface BatchHeader {
  dataset: string
  epoch: number
  rank: number
  index: number
  numBatches: number
  indices: readonly number[]
}

const COMMA = Buffer.from(',')
const TAIL = Buffer.from(']}')

export function encodeJsonBatch (header: BatchHeader, records: readonly Buffer[]): Buffer {
  const head = Buffer.from(
    `{"dataset":${JSON.stringify(header.dataset)},"epoch":${header.epoch},"rank":${header.rank},` +
    `"index":${header.index},"numBatches":${header.numBatches},"indices":[${header.indices.join(',')}],"records":[`
  )
  const parts: Buffer[] = [head]
  for (let k = 0; k < records.length; k++) {
    if (k > 0) parts.push(COMMA)
    parts.push(records[k] as Buffer)
  }
  parts.push(TAIL)
  return Buffer.concat(parts)
}
