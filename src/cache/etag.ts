// The strong ETag of a batch: a digest of its bytes, so any client can check what it got.
import { createHash } from 'node:crypto'

/** Every etag's length: two quotes around 32 of the digest's 43 base64url characters. */
export const ETAG_LENGTH = 34

export function etagOf (body: Uint8Array): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"`
}
