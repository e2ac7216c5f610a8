// The shuffle order of one epoch, computed position by position, never materialised.
//
// This algorithm is part of the wire format (planVersion 1): the batch a trainer gets for
// (epoch, rank, i) depends on it, across replicas, restarts and client reimplementations.
// Any change to a constant or a step here must bump PLAN_VERSION.
//
// Scheme (planVersion 1), for shuffle = true and n >= 2:
// - h = smallest integer >= 1 with 4^h >= n; the domain is 0..4^h-1, split into two
//   h-bit halves. An even-bit (power-of-4) domain keeps the domain below 4n, so
//   cycle-walking takes fewer than 4 steps per position on average.
// - round key k_i = MurmurHash3_x86_32 (hash seed 0) of the 12 bytes
//   uint32le(seed) ++ uint32le(epoch) ++ uint32le(i), for i = 0..FEISTEL_ROUNDS-1.
//   (In Python: mmh3.hash(struct.pack('<III', seed, epoch, i), 0, signed=False).)
// - a balanced Feistel network: x = L * 2^h + R, each round (L, R) <- (R, L ^ F(R, k_i))
//   with F(R, k) = fmix32(R ^ k) & (2^h - 1); the result is L * 2^h + R.
// - cycle-walking: re-encrypt while the result is >= n; the first value < n is order(p).

// Halves are at most 16 bits, so every intermediate value fits a uint32 and the
// Math.imul-based mixing stays exact. 2^32 records is the largest dataset this scheme
// (planVersion 1) can shuffle; callers must reject larger N with a clear error.
export const MAX_PERMUTATION_SIZE = 2 ** 32

// Six rounds: four already make a Feistel network a strong pseudo-random permutation
// (Luby-Rackoff); two more are cheap insurance for the small domains (h of a few bits).
export const FEISTEL_ROUNDS = 6

const MAX_SEED = 2 ** 32 - 1
const MAX_EPOCH = 2 ** 31 - 1

// MurmurHash3's 32-bit finaliser: a bijection on uint32 with full avalanche.
export function fmix32 (x: number): number {
  x ^= x >>> 16
  x = Math.imul(x, 0x85ebca6b)
  x ^= x >>> 13
  x = Math.imul(x, 0xc2b2ae35)
  x ^= x >>> 16
  return x >>> 0
}

// MurmurHash3_x86_32 of the little-endian bytes of uint32 words (so input lengths are
// multiples of 4 and there is no tail). Standard, so other languages can reuse a library.
export function murmur3Words (words: readonly number[], hashSeed = 0): number {
  let h = hashSeed | 0
  for (const word of words) {
    let k = Math.imul(word | 0, 0xcc9e2d51)
    k = (k << 15) | (k >>> 17)
    k = Math.imul(k, 0x1b873593)
    h ^= k
    h = (h << 13) | (h >>> 19)
    h = (Math.imul(h, 5) + 0xe6546b64) | 0
  }
  return fmix32(h ^ (words.length * 4))
}

function checkInteger (name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer in ${min}..${max}, got ${value}`)
  }
}

// Returns order_e: position (0..n-1) -> record index (0..n-1), a permutation that depends
// only on (shuffle, seed, epoch, n). Cheap to create (FEISTEL_ROUNDS hashes) and O(1)
// memory; each call costs on average < 4 Feistel evaluations.
export function createOrder (shuffle: boolean, seed: number, epoch: number, n: number): (position: number) => number {
  checkInteger('seed', seed, 0, MAX_SEED)
  checkInteger('epoch', epoch, 0, MAX_EPOCH)
  checkInteger('n', n, 0, MAX_PERMUTATION_SIZE)

  function checkPosition (position: number): void {
    // One comparison chain per call; a position out of range would otherwise return a
    // plausible but wrong index (or walk outside the domain).
    if (!(Number.isInteger(position) && position >= 0 && position < n)) {
      throw new RangeError(`position must be an integer in 0..${n - 1}, got ${position}`)
    }
  }

  if (!shuffle || n <= 1) {
    return function identityOrder (position: number): number {
      checkPosition(position)
      return position
    }
  }

  // Smallest h >= 1 with 4^h >= n: half of the bit length of n - 1, rounded up.
  const h = Math.max(1, Math.ceil((32 - Math.clz32(n - 1)) / 2))
  const mask = (1 << h) - 1 // h <= 16, so this stays a positive int32
  // Derived once per order, so each position costs only the Feistel rounds. (A plain
  // loop: Array.from({ length }) costs about a microsecond here, more than the hashing.)
  const roundKeys: number[] = []
  for (let i = 0; i < FEISTEL_ROUNDS; i++) roundKeys.push(murmur3Words([seed, epoch, i]))
  const [k0, k1, k2, k3, k4, k5] = roundKeys as [number, number, number, number, number, number]

  function round (half: number, key: number): number {
    return fmix32(half ^ key) & mask
  }

  function encrypt (x: number): number {
    let left = x >>> h
    let right = x & mask
    // The six rounds unrolled (about 30% faster than a loop over a key array). Updating
    // the halves in place instead of swapping them gives the same (L, R) after an even
    // number of rounds.
    left ^= round(right, k0)
    right ^= round(left, k1)
    left ^= round(right, k2)
    right ^= round(left, k3)
    left ^= round(right, k4)
    right ^= round(left, k5)
    // left < 2^16 when h = 16, so the shift may set the sign bit: >>> 0 reads it as uint32.
    return ((left << h) | right) >>> 0
  }

  return function shuffledOrder (position: number): number {
    checkPosition(position)
    // Cycle-walking: encrypt is a permutation of 0..4^h-1, so following its cycle from a
    // position < n reaches another value < n; this keeps the map a bijection of 0..n-1.
    let x = encrypt(position)
    while (x >= n) x = encrypt(x)
    return x
  }
}
