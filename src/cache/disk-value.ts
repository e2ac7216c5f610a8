// A disk-tier value: one buffer that names its batch key and carries etag and body, with a
// checksum over all of it.
//
// Layout: [version u8][crc32 u32 LE][key length u16 LE][etag length u8][key][etag][body]; the
// crc covers everything after itself. The body comes last, so a batch's Buffer can be a view
// into its value: build workers encode the value, and the memory tier and the reply use the
// view.
import { crc32 } from './checksum.js'
import type { CachedBatch } from './memory-tier.js'

const VERSION = 2
const HEADER = 8

/** A new value holding a copy of the body (in a buffer of its own: it may be transferred). */
export function encodeDiskValue (key: string, entry: Pick<CachedBatch, 'etag' | 'body'>): Buffer {
  const value = allocDiskValue(key, entry.etag.length, entry.body.length)
  value.set(entry.body, value.length - entry.body.length)
  return sealDiskValue(value, entry.etag)
}

/**
 * A value for `key` (in a buffer of its own) with room for an etag of `etagLength` bytes and
 * a body of `bodyLength`, the body's bytes left to fill: its last `bodyLength` bytes. Then
 * sealDiskValue writes the etag and the checksum. A build worker encodes the batch straight
 * into them (the etag's length is fixed, so the body's place is known before its digest).
 */
export function allocDiskValue (key: string, etagLength: number, bodyLength: number): Buffer {
  const keyBytes = Buffer.from(key, 'utf8')
  const value = Buffer.allocUnsafeSlow(HEADER + keyBytes.length + etagLength + bodyLength)
  value.writeUInt8(VERSION, 0)
  value.writeUInt16LE(keyBytes.length, 5)
  value.writeUInt8(etagLength, 7)
  keyBytes.copy(value, HEADER)
  return value
}

/** Writes the etag (of the length the value was allocated for) and the checksum; returns the value. */
export function sealDiskValue (value: Buffer, etag: string): Buffer {
  const keyLen = value.readUInt16LE(5)
  if (etag.length !== value.readUInt8(7)) throw new RangeError(`an etag of ${etag.length} bytes in a value made for ${value.readUInt8(7)}`)
  value.write(etag, HEADER + keyLen, 'latin1')
  value.writeUInt32LE(crc32(value.subarray(5)), 1)
  return value
}

/** The entry a value holds, its body a view into it; undefined when damaged. */
export function decodeDiskValue (value: Uint8Array): (CachedBatch & { key: string, stored: Buffer }) | undefined {
  const buf = Buffer.from(value.buffer, value.byteOffset, value.byteLength)
  if (buf.length < HEADER || buf.readUInt8(0) !== VERSION) return undefined
  const keyLen = buf.readUInt16LE(5)
  const etagLen = buf.readUInt8(7)
  if (buf.length < HEADER + keyLen + etagLen) return undefined
  if (crc32(buf.subarray(5)) !== buf.readUInt32LE(1)) return undefined
  return {
    key: buf.toString('utf8', HEADER, HEADER + keyLen),
    etag: buf.toString('latin1', HEADER + keyLen, HEADER + keyLen + etagLen),
    body: buf.subarray(HEADER + keyLen + etagLen),
    stored: buf
  }
}

/** Where the body starts in a value encoded for `key` and an etag of `etagLength` bytes. */
export function bodyOffset (key: string, etagLength: number): number {
  return HEADER + Buffer.byteLength(key, 'utf8') + etagLength
}

/**
 * The value to store for an entry: the one it came with (a build worker encodes it, so the
 * event loop neither copies nor checksums the body) when that was encoded for this key,
 * else a new one.
 */
export function diskValueOf (key: string, entry: CachedBatch): Buffer {
  const stored = entry.stored
  const keyLen = Buffer.byteLength(key, 'utf8')
  if (stored !== undefined && stored.length === HEADER + keyLen + entry.etag.length + entry.body.length &&
    stored.readUInt16LE(5) === keyLen && stored.toString('utf8', HEADER, HEADER + keyLen) === key) {
    return stored
  }
  return encodeDiskValue(key, entry)
}
