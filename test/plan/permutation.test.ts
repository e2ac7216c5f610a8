import { test } from 'node:test'
import assert from 'node:assert/strict'
import fc from 'fast-check'
import { FEISTEL_ROUNDS, MAX_PERMUTATION_SIZE, createOrder, murmur3Words } from '../../src/plan/permutation.js'

// Evaluates the whole order and checks it hits every index of 0..n-1 exactly once.
function assertBijection (seed: number, epoch: number, n: number): void {
  const order = createOrder(true, seed, epoch, n)
  const seen = new Uint8Array(n)
  for (let p = 0; p < n; p++) {
    const x = order(p)
    // Messages are built only on failure: this loop runs millions of times.
    if (!(Number.isInteger(x) && x >= 0 && x < n)) assert.fail(`order(${p}) = ${x} is outside 0..${n - 1}`)
    if (seen[x] !== 0) assert.fail(`order hits ${x} twice (seed ${seed}, epoch ${epoch}, n ${n})`)
    seen[x] = 1
  }
}

function firstPositions (seed: number, epoch: number, n: number, count: number): number[] {
  const order = createOrder(true, seed, epoch, n)
  return Array.from({ length: Math.min(count, n) }, (_, p) => order(p))
}

test('round keys use standard MurmurHash3_x86_32 (so other languages can reuse a library)', function () {
  assert.equal(murmur3Words([]), 0)
  assert.equal(murmur3Words([], 1), 0x514e28b7)
  assert.equal(murmur3Words([0]), 0x2362f9de)
  assert.equal(murmur3Words([0xffffffff]), 0x76293b50)
  assert.equal(murmur3Words([0x87654321]), 0xf55b516b)
  assert.equal(FEISTEL_ROUNDS, 6)
})

test('golden orders: the permutation is part of the wire format and must never change', function () {
  assert.deepEqual(firstPositions(7, 3, 1000, 32), [
    233, 735, 919, 48, 857, 81, 198, 443, 888, 264, 777, 297, 108, 113, 15, 785,
    350, 788, 895, 414, 736, 152, 367, 24, 303, 475, 99, 844, 904, 632, 949, 137
  ])
  assert.deepEqual(firstPositions(0, 0, 10, 32), [2, 0, 1, 6, 3, 8, 9, 4, 5, 7])
  assert.deepEqual(firstPositions(4294967295, 2147483647, 100000, 32), [
    39150, 79127, 64113, 64896, 52, 79149, 62029, 81237, 15773, 72926, 50189, 7776, 28449, 38727, 87315, 2848,
    18833, 11055, 60351, 39554, 94125, 19413, 51051, 9575, 89711, 619, 30873, 8427, 29098, 34170, 39751, 88242
  ])
})

test('identity when shuffle is false', function () {
  const order = createOrder(false, 7, 3, 1000)
  for (const p of [0, 1, 500, 999]) assert.equal(order(p), p)
  assert.equal(createOrder(false, 0, 0, MAX_PERMUTATION_SIZE)(MAX_PERMUTATION_SIZE - 1), MAX_PERMUTATION_SIZE - 1)
})

test('n = 0 has no positions and n = 1 always maps to 0', function () {
  assert.throws(() => createOrder(true, 1, 1, 0)(0), RangeError)
  const one = createOrder(true, 123, 456, 1)
  assert.equal(one(0), 0)
  assert.throws(() => one(1), RangeError)
})

test('bijection for every small n', function () {
  for (let n = 2; n <= 300; n++) {
    assertBijection(n * 7919, n % 5, n)
  }
})

test('bijection for random n up to 10^6 (property)', function () {
  fc.assert(fc.property(
    fc.nat({ max: 2 ** 32 - 1 }),
    fc.nat({ max: 2 ** 31 - 1 }),
    fc.integer({ min: 2, max: 1_000_000 }),
    assertBijection
  ), { numRuns: 15 })
})

test('bijection for fixed large n, including the worst cycle-walking ratio', function () {
  assertBijection(0, 0, 999_999)
  // 2^20 + 1 needs the domain 2^22, about 4 walking steps per position.
  assertBijection(12345, 678, 2 ** 20 + 1)
  assertBijection(1, 1, 2 ** 20)
})

test('different epochs and different seeds give different orders (n >= 20)', function () {
  fc.assert(fc.property(
    fc.integer({ min: 20, max: 5000 }),
    fc.nat({ max: 2 ** 32 - 1 }),
    fc.nat({ max: 2 ** 31 - 2 }),
    function (n, seed, epoch) {
      const base = firstPositions(seed, epoch, n, n)
      assert.notDeepEqual(firstPositions(seed, epoch + 1, n, n), base)
      assert.notDeepEqual(firstPositions((seed + 1) % 2 ** 32, epoch, n, n), base)
      // Determinism: a fresh order for the same inputs is the same order.
      assert.deepEqual(firstPositions(seed, epoch, n, n), base)
    }
  ), { numRuns: 50 })
})

test('n near the limit: positions evaluate in range without hanging', function () {
  for (const n of [2 ** 32 - 1, MAX_PERMUTATION_SIZE, 2 ** 31 + 7, 4 ** 15 + 1]) {
    const order = createOrder(true, 99, 7, n)
    const seen = new Set<number>()
    const positions = [...new Set([0, 1, 2, 2 ** 30, n - 2, n - 1])]
    for (const p of positions) {
      const x = order(p)
      assert.ok(Number.isInteger(x) && x >= 0 && x < n, `order(${p}) = ${x} for n = ${n}`)
      seen.add(x)
    }
    assert.equal(seen.size, positions.length, 'distinct positions map to distinct records')
  }
})

test('rejects inputs outside the supported ranges', function () {
  assert.throws(() => createOrder(true, 0, 0, MAX_PERMUTATION_SIZE + 1), RangeError)
  assert.throws(() => createOrder(true, -1, 0, 10), RangeError)
  assert.throws(() => createOrder(true, 2 ** 32, 0, 10), RangeError)
  assert.throws(() => createOrder(true, 0, 2 ** 31, 10), RangeError)
  assert.throws(() => createOrder(true, 0, 0, 1.5), RangeError)
  const order = createOrder(true, 0, 0, 10)
  assert.throws(() => order(10), RangeError)
  assert.throws(() => order(-1), RangeError)
  assert.throws(() => order(0.5), RangeError)
})
