// The fixed part of an Arrow IPC stream of one record batch whose columns have a fixed size
// (a tensor column and `__index`): everything but the bytes of two buffers. For a given schema
// and row count the schema message, the record batch message (lengths, buffer offsets), the
// padding and the end marker do not depend on the values, so they are taken once from a stream
// that apache-arrow wrote (with zeroed values) and every later batch of that shape is that
// frame with its own values and record numbers written in place. The bytes are the ones
// apache-arrow writes, by construction; the cost is two copies into one allocation instead of
// building schema, vectors, table and flatbuffers again for every batch.
import { MessageHeader, MessageReader } from 'apache-arrow'

/** Where a batch's variable bytes go in its stream, and the fixed bytes around them. */
export interface StreamFrame {
  readonly byteLength: number
  /** The values buffer of the tensor column: raw little-endian values, or packed bits for bool. */
  readonly valuesOffset: number
  readonly valuesLength: number
  /** The int64 data buffer of `__index`. */
  readonly indexOffset: number
  readonly indexLength: number
  /** Bytes before the values, between the values and the index, and after the index. */
  readonly head: Buffer
  readonly gap: Buffer
  readonly tail: Buffer
}

// A stream ends with the continuation marker and a zero metadata length.
const END_OF_STREAM = Buffer.from([0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])

/**
 * Finds the frame in `reference`, a stream of one schema and one record batch whose last three
 * buffers are the tensor's values, the index's validity and the index's data (the order
 * apache-arrow writes a struct of [tensor column, `__index`] in). The lengths say what the two
 * variable buffers must hold; a stream laid out otherwise is an Error (a writer that changed
 * its layout must not produce wrong bytes silently).
 */
export function frameOf (reference: Uint8Array, valuesLength: number, indexLength: number): StreamFrame {
  const total = reference.byteLength
  if (total < END_OF_STREAM.length || !END_OF_STREAM.equals(reference.subarray(total - END_OF_STREAM.length))) {
    throw new Error('the reference Arrow stream does not end with the end-of-stream marker')
  }
  const reader = new MessageReader(reference)
  let regions: Array<{ offset: number, length: number }> | undefined
  let bodyLength = 0
  for (const message of reader) {
    if (message.headerType === MessageHeader.RecordBatch) {
      if (regions !== undefined) throw new Error('the reference Arrow stream has more than one record batch')
      regions = (message.header() as unknown as { buffers: Array<{ offset: number, length: number }> }).buffers
        .map((b) => ({ offset: Number(b.offset), length: Number(b.length) }))
      bodyLength = message.bodyLength
    }
    if (message.bodyLength > 0) reader.readMessageBody(message.bodyLength)
  }
  if (regions === undefined || regions.length < 3) throw new Error('the reference Arrow stream has no record batch of the expected shape')
  // The body is the last thing before the end marker.
  const bodyStart = total - END_OF_STREAM.length - bodyLength
  const values = regions[regions.length - 3]!
  const index = regions[regions.length - 1]!
  // A region's recorded length includes the writer's padding (to 8 bytes), which stays in the
  // fixed bytes (zeros in the reference, as the writer pads).
  if (!padded(values.length, valuesLength) || !padded(index.length, indexLength) || regions[regions.length - 2]!.length !== 0 ||
    values.offset + values.length > index.offset || index.offset + index.length > bodyLength) {
    throw new Error('the reference Arrow stream is not laid out as expected (values, index validity, index data)')
  }
  const valuesOffset = bodyStart + values.offset
  const indexOffset = bodyStart + index.offset
  // Own copies: the reference may be large (a whole batch of zeros); the frame keeps only the
  // fixed bytes.
  return {
    byteLength: total,
    valuesOffset,
    valuesLength,
    indexOffset,
    indexLength,
    head: Buffer.from(reference.subarray(0, valuesOffset)),
    gap: Buffer.from(reference.subarray(valuesOffset + valuesLength, indexOffset)),
    tail: Buffer.from(reference.subarray(indexOffset + indexLength))
  }
}

function padded (recorded: number, length: number): boolean {
  return recorded >= length && recorded - length < 64
}

/** Writes the fixed bytes of `frame` into `out` (its byteLength), leaving values and index. */
export function writeFrame (frame: StreamFrame, out: Uint8Array): void {
  out.set(frame.head, 0)
  out.set(frame.gap, frame.valuesOffset + frame.valuesLength)
  out.set(frame.tail, frame.indexOffset + frame.indexLength)
}
