// The batching plan of API.md ("The batching plan (normative)"): which source records
// rank r reads at step i of epoch e. Pure integer arithmetic, O(1) per question, so a
// batch can be answered without looking at any other batch.
import { MAX_PERMUTATION_SIZE, createOrder } from './permutation.js'

// Bump when anything here or in permutation.ts changes which records a batch holds.
export const PLAN_VERSION = 1

export type Remainder = 'partial' | 'drop' | 'pad'
export type Partition = 'strided' | 'contiguous'

export interface PlanSpec {
  numRecords: number
  batchSize: number
  numShards: number
  shuffle: boolean
  seed: number
  remainder: Remainder
  partition: Partition
}

// Operands stay below 2^53 (N <= 2^32, B*W <= 2^32), but a rounded float quotient can
// still sit on the wrong side of an integer; the correction makes the floor exact.
function floorDiv (a: number, b: number): number {
  let q = Math.floor(a / b)
  if (q * b > a) q--
  else if ((q + 1) * b <= a) q++
  return q
}

function ceilDiv (a: number, b: number): number {
  return floorDiv(a + b - 1, b)
}

function checkSpec (spec: PlanSpec): void {
  const { numRecords: n, batchSize: b, numShards: w } = spec
  if (!Number.isInteger(n) || n < 0 || n > MAX_PERMUTATION_SIZE) {
    throw new RangeError(`numRecords must be an integer in 0..${MAX_PERMUTATION_SIZE}, got ${n}`)
  }
  if (!Number.isInteger(b) || b < 1) throw new RangeError(`batchSize must be a positive integer, got ${b}`)
  if (!Number.isInteger(w) || w < 1) throw new RangeError(`numShards must be a positive integer, got ${w}`)
}

function checkRank (spec: PlanSpec, rank: number): void {
  if (!Number.isInteger(rank) || rank < 0 || rank >= spec.numShards) {
    throw new RangeError(`rank must be an integer in 0..${spec.numShards - 1}, got ${rank}`)
  }
}

// S for drop and pad: the same count for every rank, so DDP ranks never wait on each other.
function evenBatches (spec: PlanSpec): number {
  const g = spec.batchSize * spec.numShards
  return spec.remainder === 'drop' ? floorDiv(spec.numRecords, g) : ceilDiv(spec.numRecords, g)
}

// Contiguous partial spans, as datasets.Dataset.shard(contiguous=True): the first N mod W
// ranks hold one position more.
function partialSpan (spec: PlanSpec, rank: number): { start: number, length: number } {
  const q = floorDiv(spec.numRecords, spec.numShards)
  const m = spec.numRecords - q * spec.numShards
  return { start: q * rank + Math.min(rank, m), length: q + (rank < m ? 1 : 0) }
}

// Positions rank reads per epoch, padding included (the shard endpoint's numRecords).
export function shardNumRecords (spec: PlanSpec, rank: number): number {
  checkSpec(spec)
  checkRank(spec, rank)
  if (spec.remainder !== 'partial') return evenBatches(spec) * spec.batchSize
  if (spec.partition === 'contiguous') return partialSpan(spec, rank).length
  // Strided: positions r, r+W, ... below N.
  return rank < spec.numRecords ? floorDiv(spec.numRecords - 1 - rank, spec.numShards) + 1 : 0
}

export function shardNumBatches (spec: PlanSpec, rank: number): number {
  return ceilDiv(shardNumRecords(spec, rank), spec.batchSize)
}

export function batchesPerShard (spec: PlanSpec): number[] {
  const counts: number[] = []
  for (let rank = 0; rank < spec.numShards; rank++) counts.push(shardNumBatches(spec, rank))
  return counts
}

// Positions of order_e in rank's batch i, in serving order. With pad a position may be
// >= N; it then reads order_e[p mod N].
export function batchPositions (spec: PlanSpec, rank: number, i: number): number[] {
  const numBatches = shardNumBatches(spec, rank)
  if (!Number.isInteger(i) || i < 0 || i >= numBatches) {
    throw new RangeError(`batch index must be an integer in 0..${numBatches - 1}, got ${i}`)
  }
  const { batchSize: b, numShards: w, numRecords: n } = spec
  const positions: number[] = []
  if (spec.partition === 'strided') {
    // Only partial can run past N here (drop stays below S*G <= N, pad keeps p >= N).
    const limit = spec.remainder === 'partial' ? n : Infinity
    for (let j = 0; j < b; j++) {
      const p = (i * b + j) * w + rank
      if (p >= limit) break
      positions.push(p)
    }
  } else {
    const span = spec.remainder === 'partial'
      ? partialSpan(spec, rank)
      : { start: rank * evenBatches(spec) * b, length: evenBatches(spec) * b }
    const first = i * b
    const count = Math.min(b, span.length - first)
    for (let j = 0; j < count; j++) positions.push(span.start + first + j)
  }
  return positions
}

// Source record indices of rank's batch i in epoch, in position order (API.md step 5).
export function batchIndices (spec: PlanSpec, epoch: number, rank: number, i: number): number[] {
  const positions = batchPositions(spec, rank, i)
  const order = createOrder(spec.shuffle, spec.seed, epoch, spec.numRecords)
  const n = spec.numRecords
  for (let j = 0; j < positions.length; j++) {
    const p = positions[j] as number
    positions[j] = order(p < n ? p : p % n)
  }
  return positions
}
