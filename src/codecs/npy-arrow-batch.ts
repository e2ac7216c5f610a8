// The Arrow body of a batch of an npy source. Apart from the npy reader (sources/npy.ts), so
// that indexing an npy file, which needs the reader's header parsing only, does not load
// apache-arrow (~100 ms, in a fresh indexing thread).
import { allocTensorBatch, encodeArrowTensorBatch } from './arrow-batch.js'
import type { NpySource } from '../sources/npy.js'
import { ownBuffer, type AllocateBody } from './allocate-body.js'

// bool rows are read here before they are packed into bits. A fresh 1 MiB buffer costs ~0.6 ms
// of page faults on first touch (scripts/measure-arrow.ts), as much as reading the rows; the
// read and the packing are synchronous, so one reused buffer serves every batch. Batches larger
// than the bound use a fresh buffer instead.
const SCRATCH_MAX_BYTES = 16 << 20
let scratch: Buffer | undefined

/**
 * The Arrow body of a batch of an npy source: the rows of `indices` as one column `data`
 * (see encodeArrowTensorBatch) plus `__index`, read and encoded synchronously. The rows are
 * read straight into the body's values buffer: the batch's bytes are copied once, by the read.
 */
export function encodeNpyArrowBatch (source: NpySource, indices: readonly number[], allocate: AllocateBody = ownBuffer): Buffer {
  if (source.dtype !== 'bool') {
    const { body, values } = allocTensorBatch(indices, source.dtype, source.innerShape, undefined, allocate)
    source.readRows(indices, values)
    return body
  }
  const size = indices.length * source.rowBytes
  let into: Buffer | undefined
  if (size <= SCRATCH_MAX_BYTES) {
    if (scratch === undefined || scratch.length < size) scratch = Buffer.allocUnsafeSlow(Math.max(size, 1 << 20))
    into = scratch
  }
  return encodeArrowTensorBatch(indices, source.readRows(indices, into), source.dtype, source.innerShape, undefined, allocate)
}
