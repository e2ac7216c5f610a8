// An allocator that places a body `offset` bytes into a larger buffer, as a build worker does
// when it writes a batch straight into its disk value, and the checks that go with it.
import assert from 'node:assert/strict'

export interface Placement {
  allocate: (bytes: number) => Buffer
  /** `body` is the one allocated, filled with `expected`'s bytes; nothing around it was touched. */
  check: (body: Buffer, expected: Buffer, what: string) => void
}

const GUARD = 0xa5

export function placedAt (offset: number, slack = 11): Placement {
  let outer: Buffer | undefined
  let calls = 0
  return {
    allocate (bytes) {
      calls++
      outer = Buffer.alloc(offset + bytes + slack, GUARD)
      return outer.subarray(offset, offset + bytes)
    },
    check (body, expected, what) {
      assert.equal(calls, 1, `${what}: allocated once`)
      assert.ok(outer !== undefined && body.buffer === outer.buffer, `${what}: written where it was placed`)
      assert.equal(body.byteOffset, outer.byteOffset + offset, what)
      assert.ok(body.equals(expected), `${what}: same bytes`)
      assert.ok(outer.subarray(0, offset).every((b) => b === GUARD), `${what}: nothing written before`)
      assert.ok(outer.subarray(offset + body.length).every((b) => b === GUARD), `${what}: nothing written after`)
    }
  }
}
