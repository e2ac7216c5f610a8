// Shared helpers of the source tests.
import assert from 'node:assert/strict'
import { AppError } from '../../src/errors.js'

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
