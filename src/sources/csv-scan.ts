// Record boundaries of CSV bytes, found by one scan over the bytes: the fast path of CSV
// indexing. csv-parse reads ~10 MiB/s when all we need from it is where records start and how
// many fields each has; this finds both at several hundred MiB/s.
//
// It reads a strict part of what csv-parse accepts under the indexer's dialect (DIALECT in
// csv.ts): fields split at commas, records end at LF or CRLF, quoted fields hold anything with
// quotes doubled, empty lines are skipped. Whatever falls outside it (a quote inside an
// unquoted field, anything but a comma or line break after a closing quote, a CR that does
// not start a CRLF, a quote never closed) ends the scan with BAIL, and the indexer reads the
// whole file with csv-parse instead, which accepts or refuses it and names the line. So on
// what this accepts, csv-parse would have found the same records (test/sources/csv.test.ts
// compares both on random files), and it never decides that a file is invalid.

const LF = 0x0a
const CR = 0x0d
const QUOTE = 0x22
const COMMA = 0x2c

/** scanCsvRecords' answer for bytes outside the fast path's grammar. */
export const BAIL = -1
// lineBreakEnd's answer when the bytes end inside a possible CRLF.
const MORE = -2

/**
 * Where the line break at `at` (a LF or a CR) ends: past a LF or a CRLF; BAIL for a CR that
 * does not start a CRLF (csv-parse reads it as text), MORE when the bytes end after the CR.
 */
function lineBreakEnd (b: Buffer, at: number, final: boolean): number {
  if (b[at] === LF) return at + 1
  if (at + 1 >= b.length) return final ? BAIL : MORE
  return b[at + 1] === LF ? at + 2 : BAIL
}

/**
 * Scans the records that start at or after `from` in `b`, skipping empty lines, and pushes a
 * triple (start, end, fields) per whole record onto `out`; `end` is past its line break.
 * Returns where the first incomplete record starts (the caller keeps those bytes and scans
 * them again with more), `b.length` when none is, or BAIL. With `final` the bytes end the
 * file, and a last record may end without a line break.
 */
export function scanCsvRecords (b: Buffer, from: number, final: boolean, out: number[]): number {
  const len = b.length
  let p = from
  while (p < len) {
    const first = b[p]
    if (first === LF || first === CR) {
      // An empty line.
      const end = lineBreakEnd(b, p, final)
      if (end < 0) return end === MORE ? p : BAIL
      p = end
      continue
    }
    const start = p
    let fields = 0
    let q = p
    for (;;) {
      fields++
      if (b[q] === QUOTE) {
        // Up to the quote that is not doubled; at the end of the bytes it may be either.
        let r = q + 1
        for (;;) {
          r = b.indexOf(QUOTE, r)
          if (r === -1) return final ? BAIL : start
          if (r + 1 >= len) {
            if (!final) return start
            break
          }
          if (b[r + 1] !== QUOTE) break
          r += 2
        }
        q = r + 1
      } else {
        while (q < len) {
          const c = b[q]
          if (c === COMMA || c === LF || c === CR || c === QUOTE) break
          q++
        }
      }
      if (q >= len) {
        if (!final) return start
        out.push(start, q, fields)
        return len
      }
      const c = b[q]
      if (c === COMMA) {
        q++
        // A comma that ends the file ends the record with an empty field.
        if (q >= len) {
          if (!final) return start
          out.push(start, q, fields + 1)
          return len
        }
        continue
      }
      if (c === LF || c === CR) {
        const end = lineBreakEnd(b, q, final)
        if (end < 0) return end === MORE ? start : BAIL
        q = end
        break
      }
      // A quote inside an unquoted field, or text after a closing quote.
      return BAIL
    }
    out.push(start, q, fields)
    p = q
  }
  return p
}
