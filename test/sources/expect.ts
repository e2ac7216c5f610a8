// Shared helpers of the source tests.
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { stat } from 'node:fs/promises'
import { AppError } from '../../src/errors.js'

/**
 * The digest of a source's bytes, as README's "Registration" defines it: SHA-256 over the
 * SHA-256 of each 4 MiB block (the last one shorter; an empty file has none). Written out here
 * rather than taken from src/sources/source-digest.ts, so that the tests hold the code to it.
 */
export function sourceDigest (bytes: Uint8Array): string {
  const outer = createHash('sha256')
  for (let at = 0; at < bytes.length; at += 4 * 1024 * 1024) {
    outer.update(createHash('sha256').update(bytes.subarray(at, at + 4 * 1024 * 1024)).digest())
  }
  return outer.digest('hex')
}

/** An assert.throws/rejects validator: an AppError with this code and a message matching. */
export function isAppError (code: string, pattern: RegExp): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof AppError, `expected an AppError, got ${String(err)}`)
    assert.equal(err.code, code)
    assert.match(err.message, pattern)
    return true
  }
}

/** Deterministic "shuffled" indices in 0..n-1, with repeats. */
export function scramble (n: number, count: number, seed = 1): number[] {
  let x = seed
  return Array.from({ length: count }, () => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    return x % n
  })
}

/**
 * Writes `content`, runs an indexing pass over it and returns the SOURCE_INVALID message it
 * must fail with; a failed pass must leave no index file behind.
 */
export async function indexFailure (
  put: (content: string | Buffer) => Promise<{ file: string, idx: string }>,
  index: (file: string, idx: string) => Promise<unknown>,
  content: string | Buffer
): Promise<string> {
  const { file, idx } = await put(content)
  try {
    await index(file, idx)
  } catch (err) {
    assert.ok(err instanceof AppError, String(err))
    assert.equal(err.code, 'SOURCE_INVALID')
    await assert.rejects(stat(idx), { code: 'ENOENT' }, 'a failed pass leaves no index file')
    return err.message
  }
  assert.fail('the file was accepted')
}
