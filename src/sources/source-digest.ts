// The digest of a source's bytes, which keys its offset index and enters the fingerprint:
// SHA-256 over the SHA-256 digests of the file's consecutive 4 MiB blocks, the last one
// possibly shorter (an empty file has no block: the digest is SHA-256 of nothing). Dropbox's
// content hash is built the same way. One SHA-256 over the whole file would have to run on
// one thread from the first byte to the last; with blocks, the two threads that index a large
// JSONL file share the hashing as they share the validation (jsonl.ts), and the digest is still
// as strong as SHA-256.
import { createHash, type Hash } from 'node:crypto'

export const DIGEST_BLOCK_BYTES = 4 << 20
export const BLOCK_HASH_BYTES = 32

/** The digest of bytes fed in file order, in pieces of any size. */
export class SourceDigest {
  #outer = createHash('sha256')
  #block: Hash | undefined
  #fill = 0

  update (bytes: Uint8Array): void {
    let p = 0
    while (p < bytes.length) {
      const take = Math.min(bytes.length - p, DIGEST_BLOCK_BYTES - this.#fill)
      this.#block ??= createHash('sha256')
      this.#block.update(p === 0 && take === bytes.length ? bytes : bytes.subarray(p, p + take))
      this.#fill += take
      p += take
      if (this.#fill === DIGEST_BLOCK_BYTES) this.#endBlock()
    }
  }

  /** The hash of the next whole block (or the last one), computed elsewhere (hashBlock). */
  addBlockHash (hash: Uint8Array): void {
    if (this.#fill !== 0) throw new Error('a block hash may only follow whole blocks')
    this.#outer.update(hash)
  }

  /** The digest, in hex; the object is done with. */
  hex (): string {
    if (this.#fill > 0) this.#endBlock()
    return this.#outer.digest('hex')
  }

  #endBlock (): void {
    this.#outer.update(this.#block!.digest())
    this.#block = undefined
    this.#fill = 0
  }
}

/** Writes the hash of one block (at most DIGEST_BLOCK_BYTES) into `out` at `offset`. */
export function hashBlock (block: Uint8Array, out: Uint8Array, offset: number): void {
  out.set(createHash('sha256').update(block).digest(), offset)
}
