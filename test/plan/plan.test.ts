import { test } from 'node:test'
import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { createOrder } from '../../src/plan/permutation.js'
import {
  PLAN_VERSION, batchIndices, batchPositions, batchesPerShard, shardNumBatches, shardNumRecords,
  type Partition, type PlanSpec, type Remainder
} from '../../src/plan/plan.js'

interface VectorCase {
  numRecords: number
  batchSize: number
  numShards: number
  partition: Partition
  remainder: Remainder
  batchesPerShard: number[]
  batches: number[][][]
}

// The shared contract folder sits beside the repo root (this file is test/plan/*.test.ts).
const repoRootUrl = new URL('../../', import.meta.url)
const repoRoot = fileURLToPath(repoRootUrl)
const fixturePath = fileURLToPath(new URL('test/fixtures/plan-vectors.json', repoRootUrl))
const sharedPath = fileURLToPath(new URL('../shared/conformance/plan-vectors.json', repoRootUrl))
const vectors = JSON.parse(readFileSync(fixturePath, 'utf8')) as { cases: VectorCase[] }

const remainders: Remainder[] = ['partial', 'drop', 'pad']
const partitions: Partition[] = ['strided', 'contiguous']

// Every batch of one epoch, as batches[rank][i].
function allBatches (spec: PlanSpec, epoch: number): number[][][] {
  return batchesPerShard(spec).map((count, rank) =>
    Array.from({ length: count }, (_, i) => batchIndices(spec, epoch, rank, i)))
}

const specArb = fc.record({
  numRecords: fc.nat({ max: 3000 }),
  batchSize: fc.integer({ min: 1, max: 64 }),
  numShards: fc.integer({ min: 1, max: 16 }),
  shuffle: fc.boolean(),
  seed: fc.nat({ max: 2 ** 32 - 1 }),
  remainder: fc.constantFrom(...remainders),
  partition: fc.constantFrom(...partitions)
})
const epochArb = fc.nat({ max: 2 ** 31 - 1 })

test('the plan is version 1', function () {
  assert.equal(PLAN_VERSION, 1)
})

test('the fixture is a byte-identical copy of the shared conformance vectors', function () {
  assert.ok(existsSync(sharedPath),
    `shared conformance vectors not found at ${sharedPath} (expected a "shared" folder beside the repo root ${repoRoot})`)
  assert.ok(readFileSync(fixturePath).equals(readFileSync(sharedPath)),
    `${fixturePath} differs from ${sharedPath}: copy the shared file byte for byte`)
})

test('conformance vectors (shuffle off, any epoch)', function () {
  assert.ok(vectors.cases.length > 0)
  for (const c of vectors.cases) {
    const spec: PlanSpec = { ...c, shuffle: false, seed: 0 }
    const label = `N=${c.numRecords} B=${c.batchSize} W=${c.numShards} ${c.partition} ${c.remainder}`
    assert.deepEqual(batchesPerShard(spec), c.batchesPerShard, label)
    for (const epoch of [0, 5]) assert.deepEqual(allBatches(spec, epoch), c.batches, `${label} epoch ${epoch}`)
  }
})

test('golden shuffled batches: the plan must never change by accident', function () {
  const spec: PlanSpec = {
    numRecords: 103, batchSize: 4, numShards: 3, shuffle: true, seed: 42, remainder: 'pad', partition: 'strided'
  }
  assert.deepEqual(batchesPerShard(spec), [9, 9, 9])
  assert.deepEqual(batchIndices(spec, 1, 0, 0), [48, 1, 43, 80])
  assert.deepEqual(batchIndices(spec, 1, 2, 8), [89, 0, 93, 102])
  // Positions 103 and 106 wrap to 0 and 3, which rank 0's batch 0 reads too.
  assert.deepEqual(batchIndices(spec, 1, 1, 8), [36, 67, 48, 1])
  const contiguous: PlanSpec = { ...spec, partition: 'contiguous', remainder: 'partial' }
  assert.deepEqual(batchesPerShard(contiguous), [9, 9, 9])
  assert.deepEqual(batchIndices(contiguous, 1, 0, 0), [48, 93, 7, 1])
  assert.deepEqual(batchIndices(contiguous, 1, 2, 8), [0, 92])
})

test('batchIndices reads order_e at the batch positions, wrapping with pad', function () {
  fc.assert(fc.property(specArb, epochArb, function (spec, epoch) {
    const order = createOrder(spec.shuffle, spec.seed, epoch, spec.numRecords)
    batchesPerShard(spec).forEach(function (count, rank) {
      let records = 0
      for (let i = 0; i < count; i++) {
        const positions = batchPositions(spec, rank, i)
        assert.deepEqual(batchIndices(spec, epoch, rank, i), positions.map(p => order(p % spec.numRecords)))
        records += positions.length
      }
      assert.equal(records, shardNumRecords(spec, rank), 'shardNumRecords counts the positions served')
      assert.equal(count, shardNumBatches(spec, rank))
    })
  }), { numRuns: 100 })
})

test('partial: every record exactly once per epoch', function () {
  fc.assert(fc.property(specArb, epochArb, function (base, epoch) {
    const spec: PlanSpec = { ...base, remainder: 'partial' }
    const seen = new Uint8Array(spec.numRecords)
    for (const batches of allBatches(spec, epoch)) {
      for (const batch of batches) {
        assert.ok(batch.length >= 1 && batch.length <= spec.batchSize)
        for (const index of batch) {
          assert.equal(seen[index], 0, `record ${index} served twice`)
          seen[index] = 1
        }
      }
    }
    assert.ok(seen.every(s => s === 1), 'every record is served')
  }), { numRuns: 100 })
})

test('drop and pad: every rank has the same number of full batches', function () {
  fc.assert(fc.property(specArb, epochArb, fc.constantFrom<Remainder>('drop', 'pad'), function (base, epoch, remainder) {
    const spec: PlanSpec = { ...base, remainder }
    const n = spec.numRecords
    const g = spec.batchSize * spec.numShards
    const counts = batchesPerShard(spec)
    const s = counts[0] ?? 0
    assert.ok(counts.every(c => c === s), `uneven counts ${counts.join(',')}`)
    assert.equal(s, remainder === 'drop' ? Math.floor(n / g) : Math.ceil(n / g))
    const served = new Set<number>()
    let total = 0
    for (const batches of allBatches(spec, epoch)) {
      for (const batch of batches) {
        assert.equal(batch.length, spec.batchSize)
        for (const index of batch) {
          assert.ok(index >= 0 && index < n)
          served.add(index)
          total++
        }
      }
    }
    // drop never repeats a record; pad covers every record (repeating a few).
    if (remainder === 'drop') assert.equal(served.size, total)
    else assert.equal(served.size, n)
  }), { numRuns: 100 })
})

test('strided: global step i is the same set of records when W changes with G fixed', function () {
  fc.assert(fc.property(
    fc.nat({ max: 2000 }), fc.nat({ max: 2 ** 32 - 1 }), epochArb, fc.constantFrom(...remainders),
    function (numRecords, seed, epoch, remainder) {
      const stepSets = [[8, 4], [16, 2], [32, 1], [2, 16]].map(function ([batchSize, numShards]) {
        const spec: PlanSpec = {
          numRecords, batchSize: batchSize as number, numShards: numShards as number, shuffle: true, seed, remainder, partition: 'strided'
        }
        const batches = allBatches(spec, epoch)
        const steps = Math.max(0, ...batchesPerShard(spec))
        return Array.from({ length: steps }, function (_, i) {
          return batches.flatMap(rank => rank[i] ?? []).sort((a, b) => a - b)
        })
      })
      for (const other of stepSets.slice(1)) assert.deepEqual(other, stepSets[0])
    }
  ), { numRuns: 60 })
})

test('contiguous partial: spans follow q = floor(N/W), m = N mod W', function () {
  fc.assert(fc.property(specArb, function (base) {
    const spec: PlanSpec = { ...base, remainder: 'partial', partition: 'contiguous' }
    const n = spec.numRecords
    const w = spec.numShards
    const q = Math.floor(n / w)
    const m = n % w
    for (let r = 0; r < w; r++) {
      const start = q * r + Math.min(r, m)
      const length = q + (r < m ? 1 : 0)
      const positions = Array.from({ length: shardNumBatches(spec, r) }, (_, i) => batchPositions(spec, r, i)).flat()
      assert.deepEqual(positions, Array.from({ length }, (_, k) => start + k))
      assert.equal(shardNumRecords(spec, r), length)
    }
  }), { numRuns: 100 })
})

test('contiguous drop and pad: rank r spans positions r*S*B .. (r+1)*S*B-1', function () {
  fc.assert(fc.property(specArb, fc.constantFrom<Remainder>('drop', 'pad'), function (base, remainder) {
    const spec: PlanSpec = { ...base, remainder, partition: 'contiguous' }
    const s = shardNumBatches(spec, 0)
    const span = s * spec.batchSize
    for (let r = 0; r < spec.numShards; r++) {
      const positions = Array.from({ length: s }, (_, i) => batchPositions(spec, r, i)).flat()
      assert.deepEqual(positions, Array.from({ length: span }, (_, k) => r * span + k))
    }
  }), { numRuns: 100 })
})

test('counts stay exact for N up to 2^32 and W, B up to 65536', function () {
  fc.assert(fc.property(
    fc.nat({ max: 2 ** 32 }), fc.integer({ min: 1, max: 65536 }), fc.integer({ min: 1, max: 65536 }),
    fc.constantFrom(...remainders), fc.constantFrom(...partitions),
    function (numRecords, batchSize, numShards, remainder, partition) {
      const spec: PlanSpec = { numRecords, batchSize, numShards, shuffle: true, seed: 1, remainder, partition }
      const counts = batchesPerShard(spec)
      assert.equal(counts.length, numShards)
      const n = BigInt(numRecords)
      const g = BigInt(batchSize) * BigInt(numShards)
      if (remainder === 'partial') {
        let total = 0n
        for (let r = 0; r < numShards; r++) total += BigInt(shardNumRecords(spec, r))
        assert.equal(total, n)
      } else {
        const s = BigInt(counts[0] ?? -1)
        assert.ok(counts.every(c => c === counts[0]))
        if (remainder === 'drop') assert.ok(s * g <= n && n < (s + 1n) * g)
        else assert.ok((s - 1n) * g < n && n <= s * g)
      }
    }
  ), { numRuns: 60 })
  const huge: PlanSpec = {
    numRecords: 2 ** 32, batchSize: 65536, numShards: 65536, shuffle: true, seed: 9, remainder: 'pad', partition: 'strided'
  }
  assert.deepEqual(new Set(batchesPerShard(huge)), new Set([1]))
  const last = batchIndices(huge, 3, 65535, 0)
  assert.equal(last.length, 65536)
  assert.ok(last.every(x => x >= 0 && x < 2 ** 32))
})

test('rejects a rank or batch index out of range', function () {
  const spec: PlanSpec = {
    numRecords: 10, batchSize: 2, numShards: 3, shuffle: false, seed: 0, remainder: 'partial', partition: 'strided'
  }
  assert.throws(() => shardNumBatches(spec, 3), RangeError)
  assert.throws(() => batchIndices(spec, 0, -1, 0), RangeError)
  assert.throws(() => batchIndices(spec, 0, 1, 2), RangeError)
  assert.throws(() => batchPositions(spec, 0, 0.5), RangeError)
  assert.throws(() => batchesPerShard({ ...spec, numRecords: 2 ** 32 + 1 }), RangeError)
  assert.throws(() => batchesPerShard({ ...spec, batchSize: 0 }), RangeError)
})
