// The element types of tensor sources (npy) and their sizes. Apart from the Arrow encoder
// (arrow-batch.ts), so that indexing an npy file does not load apache-arrow (~100 ms).

/** The element types an npy file (and so a tensor batch) can hold. */
export type TensorDtype = 'bool' | 'int8' | 'int16' | 'int32' | 'int64' | 'uint8' | 'uint16' | 'uint32' | 'uint64' | 'float32' | 'float64'

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<TensorDtype, number>> = {
  bool: 1, int8: 1, uint8: 1, int16: 2, uint16: 2, int32: 4, uint32: 4, float32: 4, int64: 8, uint64: 8, float64: 8
}
