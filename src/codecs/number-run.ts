// The syntax check of a run of comma-separated JSON numbers (a feature vector's): the loop that
// dominates indexing a JSONL file of vectors, ~85% of its time. In JavaScript each byte is a
// bounds-checked typed-array load, ~3.4 ns a byte here; the addon's C loop
// (src/native/number-run.c) takes ~1.6 ns, and ~0.46 ns where it checks 64 bytes at a time
// (x86-64: the bench's vectors). Without the addon (no C toolchain at install) the
// JavaScript loop below runs: both accept, and stop at, exactly the same bytes
// (test/codecs/number-run.test.ts holds the addon to this one).
import { addonFunction } from '../native/addon.js'

/**
 * A JSON number at p, then, as long as a comma (with blanks around it) is followed by another
 * number, that one too. Returns the end of the last number, or -1 when one is malformed.
 * Bytes from `end` on are never read.
 */
export type SkipNumberRun = (b: Uint8Array, p: number, end: number) => number

export function skipNumberRunJs (b: Uint8Array, p: number, end: number): number {
  p = skipNumberWithin(b, p, end)
  while (p >= 0) {
    let q = p
    while (q < end && isBlank(b[q]!)) q++
    if (q >= end || b[q] !== 0x2c) break
    q++
    while (q < end && isBlank(b[q]!)) q++
    if (q >= end) break
    const c = b[q]!
    if (c !== 0x2d && ((c - 0x30) >>> 0) > 9) break
    p = skipNumberWithin(b, q, end)
  }
  return p
}

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? within [p, end): its end, or -1.
function skipNumberWithin (b: Uint8Array, p: number, end: number): number {
  if (p < end && b[p] === 0x2d) p++
  if (p >= end) return -1
  if (b[p] === 0x30) {
    p++
  } else if (((b[p]! - 0x31) >>> 0) <= 8) {
    p++
    while (p < end && ((b[p]! - 0x30) >>> 0) <= 9) p++
  } else {
    return -1
  }
  if (p < end && b[p] === 0x2e) {
    p++
    if (p >= end || ((b[p]! - 0x30) >>> 0) > 9) return -1
    while (p < end && ((b[p]! - 0x30) >>> 0) <= 9) p++
  }
  if (p < end && (b[p]! | 0x20) === 0x65) {
    p++
    if (p < end && (b[p] === 0x2b || b[p] === 0x2d)) p++
    if (p >= end || ((b[p]! - 0x30) >>> 0) > 9) return -1
    while (p < end && ((b[p]! - 0x30) >>> 0) <= 9) p++
  }
  return p
}

function isBlank (c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d
}

/** The addon's loop when it is built (and has it), else the JavaScript one. */
export function nativeSkipNumberRun (): SkipNumberRun | undefined {
  return addonFunction('skipNumberRun')
}

/**
 * skipNumberRun: the addon's loop or the JavaScript one, picked at the first call. Loading the
 * addon costs a fresh indexing thread ~5-10 ms, which a pass over npy, Parquet or CSV, or JSONL
 * without number lists, need not pay.
 */
export let skipNumberRun: SkipNumberRun = function firstSkipNumberRun (b, p, end) {
  skipNumberRun = nativeSkipNumberRun() ?? skipNumberRunJs
  return skipNumberRun(b, p, end)
}
