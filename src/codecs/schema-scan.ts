// Schema inference folded into the validation of JSON Lines, over the raw bytes. JSON.parse of
// every record (to hand it to the schema inferrer) costs more than the whole indexing pass:
// it builds every object and converts every float. The typed scanner below validates a line
// exactly as strictly as JSON.parse and, on the way, classifies the value of each top-level
// member into the per-field summary createSchemaInferrer keeps (schema-infer.ts owns the
// rules; this file only has to reproduce, from bytes, the facts those rules read).
//
// - A number's kind, fraction and float32 test are those of the double JSON.parse gives. The
//   double is only computed while a column still needs it: a float64 column whose float32
//   test has failed (feature vectors, after their first number) only has its syntax checked.
// - Object.keys order is byte order except for array-index keys (listed first, ascending)
//   and duplicate keys (first position, last value): such a record, and any other a byte scan
//   cannot vouch for, is parsed with JSON.parse and folded in like the inferrer does.
// - Each thread of an indexing pass keeps its own summary of the lines it validated; the
//   summaries merge exactly (types join, first-seen is the earliest line). A value that does
//   not fit its column only marks the summary: the sequential inference finds and words it.
import type { SchemaField } from '../store/registry.js'
import { skipNumberRun } from './number-run.js'
import { fieldsOf, foldValue, merge, newColumn, tracksFloat32, type Column, type ValueKind } from './schema-infer.js'

/** A field as one scan saw it, with the 1-based line where it first appeared. */
export interface ScanColumn extends Column {
  firstLine: number
}

/** What one scan (or several, merged) learned of the schema of the lines it saw. */
export interface SchemaSummary {
  records: number
  /**
   * Some value did not fit its column, or the scan could not vouch for its facts: only the
   * sequential inference over JSON.parse'd records can give the schema or the error.
   */
  conflict: boolean
  /** In first-seen order. */
  columns: ScanColumn[]
}

/** The schema of merged summaries, as createSchemaInferrer would give it; undefined on a conflict. */
export function summarySchema (summary: SchemaSummary): { fields: SchemaField[] } | undefined {
  return summary.conflict ? undefined : { fields: fieldsOf(summary.columns, summary.records) }
}

/**
 * Merges the summaries of disjoint sets of lines. Every line is in exactly one of them, so
 * two fields first seen on the same line come from the same summary, in its order.
 */
export function mergeSummaries (parts: readonly SchemaSummary[]): SchemaSummary {
  interface Entry { column: ScanColumn, part: number, index: number }
  const byName = new Map<string, Entry>()
  let records = 0
  let conflict = false
  parts.forEach((summary, part) => {
    records += summary.records
    if (summary.conflict) conflict = true
    summary.columns.forEach((c, index) => {
      const seen = byName.get(c.name)
      if (seen === undefined) {
        byName.set(c.name, { column: { ...c }, part, index })
        return
      }
      const a = seen.column
      const kind = a.kind === undefined ? c.kind : c.kind === undefined ? a.kind : merge(a.kind, c.kind)
      if (kind === undefined && a.kind !== undefined) conflict = true
      a.kind = kind
      a.sawNull ||= c.sawNull
      a.present += c.present
      // A summary tracks fractions only while its numbers are all float32; once either is
      // not, the column is not float32 and the fraction no longer matters.
      a.exact32 &&= c.exact32
      a.fraction ||= c.fraction
      if (c.firstLine < a.firstLine) {
        a.firstLine = c.firstLine
        seen.part = part
        seen.index = index
      }
    })
  })
  const entries = [...byName.values()].sort((x, y) =>
    x.column.firstLine - y.column.firstLine || x.part - y.part || x.index - y.index)
  return { records, conflict, columns: entries.map((e) => e.column) }
}

interface LiveColumn extends ScanColumn {
  /** The record that last named this column, to catch a key given twice. */
  mark: number
}

// Property by property, not by spreading: a spread object does not share the map (hidden
// class) of those made before, and optimised code that saw the ones of an earlier pass would
// deoptimise on every new pass.
function liveColumn (name: string): LiveColumn {
  const c = newColumn(name)
  return { name: c.name, kind: c.kind, sawNull: c.sawNull, present: c.present, exact32: c.exact32, fraction: c.fraction, firstLine: 0, mark: 0 }
}

// A placeholder, so that member slots hold a column from the start (and keep one shape).
const NO_COLUMN = liveColumn('')

// An empty array that already has the elements kind of an array of columns: optimised code
// that saw one scanner's arrays then also fits the next scanner's, instead of deoptimising.
function columnList (): LiveColumn[] {
  const list = [NO_COLUMN]
  list.length = 0
  return list
}

/**
 * The member at one position of a record. The objects are reused from record to record, so
 * that scanning allocates nothing; each also remembers the key the previous record had there.
 */
interface Member {
  /** Raw bytes (between the quotes) of the key the last record scanned by bytes had here. */
  knownKey: Buffer | null
  knownColumn: LiveColumn
  column: LiveColumn
  /** The value's kind; null for a null. */
  kind: ValueKind | null
  /** Every number in the value is exactly a float32 (while the column still needs to know). */
  exact: boolean
  /** Some number in the value has a fractional part (idem). */
  frac: boolean
  /** Where the key is, when it differs from knownKey (-1 when it matched). */
  keyStart: number
  keyEnd: number
}

function member (): Member {
  return { knownKey: null, knownColumn: NO_COLUMN, column: NO_COLUMN, kind: null, exact: true, frac: false, keyStart: -1, keyEnd: -1 }
}

// What scanning a record's members gave, besides their number.
const INVALID = -1 // not one JSON object, as far as the byte grammar goes
const REPARSE = -2 // a JSON object whose members a byte scan cannot fold in order

/** Validates lines as JSON objects and summarises the schema of those it accepts. */
export class SchemaScanner {
  #columns = columnList()
  #byName = new Map<string, LiveColumn>()
  #records = 0
  #conflict = false
  #serial = 0
  // The members of the record being scanned, folded in only once the whole line is valid.
  // Records of one file mostly repeat their keys in one order, so comparing a key's bytes with
  // those of the previous record's key at its position names the column without a string.
  #members: Member[] = [member()]
  // Columns first named by the record being scanned, in key order.
  #fresh = columnList()

  /**
   * True when bytes [start, end) of `b` (valid UTF-8) are one JSON object, with optional
   * whitespace around, and then adds the record, `line` being where it is in the file.
   * False, with nothing added, when they are not (the caller asks JSON.parse why).
   */
  addLine (b: Buffer, start: number, end: number, line: number): boolean {
    if (this.#conflict) return isJsonObject(b, start, end)
    let n: number
    try {
      n = this.#scanMembers(b, start, end)
    } catch {
      // Nothing here should throw; if something does, the sequential inference decides.
      this.#dropFresh()
      this.#conflict = true
      return isJsonObject(b, start, end)
    }
    if (n >= 0) {
      this.#commit(b, n, line)
      return true
    }
    this.#dropFresh()
    if (n === INVALID || !isJsonObject(b, start, end)) return false
    this.addRecord(JSON.parse(b.toString('utf8', start, end)) as object, line)
    return true
  }

  /** Adds a record JSON.parse gave, as the inferrer would. */
  addRecord (record: object, line: number): void {
    if (this.#conflict) return
    this.#records++
    for (const name of Object.keys(record)) {
      let column = this.#byName.get(name)
      if (column === undefined) {
        column = liveColumn(name)
        column.firstLine = line
        this.#byName.set(name, column)
        this.#columns.push(column)
      }
      if (!foldValue(column, (record as Record<string, unknown>)[name])) {
        this.#conflict = true
        return
      }
    }
  }

  /** The summary of the lines added so far (a copy, fit for postMessage). */
  summary (): SchemaSummary {
    return {
      records: this.#records,
      conflict: this.#conflict,
      columns: this.#columns.map(({ name, kind, sawNull, present, exact32, fraction, firstLine }) =>
        ({ name, kind, sawNull, present, exact32, fraction, firstLine }))
    }
  }

  // Validates the line and classifies its members into this.#members: their number, or
  // INVALID or REPARSE.
  #scanMembers (b: Buffer, start: number, end: number): number {
    let p = skipBlanks(b, start, end)
    if (p >= end || b[p] !== 0x7b || !endsWithBrace(b, p, end)) return INVALID
    p = skipBlanks(b, p + 1, end)
    const serial = ++this.#serial
    let k = 0
    if (p < end && b[p] === 0x7d) {
      p++
    } else {
      for (;;) {
        if (p >= end || b[p] !== 0x22) return INVALID
        const keyStart = p + 1
        p = skipString(b, keyStart, end)
        if (p < 0) return INVALID
        const keyEnd = p - 1
        if (k === this.#members.length) this.#members.push(member())
        const m = this.#members[k]!
        let column: LiveColumn
        const known = m.knownKey
        if (known !== null && sameBytes(b, keyStart, keyEnd, known)) {
          column = m.knownColumn
          m.keyStart = -1
        } else {
          const name = keyName(b, keyStart, keyEnd)
          if (isArrayIndex(name)) return REPARSE
          let found = this.#byName.get(name)
          if (found === undefined) {
            found = liveColumn(name)
            this.#byName.set(name, found)
            this.#fresh.push(found)
          }
          column = found
          m.keyStart = keyStart
          m.keyEnd = keyEnd
        }
        if (column.mark === serial) return REPARSE // a duplicate key
        column.mark = serial
        m.column = column
        p = skipBlanks(b, p, end)
        if (p >= end || b[p] !== 0x3a) return INVALID
        p = scanValue(b, skipBlanks(b, p + 1, end), end, m)
        if (p < 0) return INVALID
        k++
        p = skipBlanks(b, p, end)
        if (p >= end) return INVALID
        const c = b[p]
        if (c === 0x2c) {
          p = skipBlanks(b, p + 1, end)
        } else if (c === 0x7d) {
          p++
          break
        } else {
          return INVALID
        }
      }
    }
    return skipBlanks(b, p, end) === end ? k : INVALID
  }

  // Folds the n members of a valid line in, as foldValue would.
  #commit (b: Buffer, n: number, line: number): void {
    this.#records++
    const fresh = this.#fresh
    if (fresh.length > 0) {
      for (let i = 0; i < fresh.length; i++) {
        fresh[i]!.firstLine = line
        this.#columns.push(fresh[i]!)
      }
      fresh.length = 0
    }
    for (let k = 0; k < n; k++) {
      const m = this.#members[k]!
      const column = m.column
      if (m.keyStart >= 0) {
        m.knownKey = Buffer.from(b.subarray(m.keyStart, m.keyEnd)) // a copy: b is reused
        m.knownColumn = column
      }
      column.present++
      const kind = m.kind
      if (kind === null) {
        column.sawNull = true
        continue
      }
      const merged = kind === column.kind ? kind : merge(column.kind, kind)
      if (merged === undefined) {
        this.#conflict = true
        return
      }
      column.kind = merged
      if (column.exact32 && tracksFloat32(column)) {
        column.exact32 = m.exact
        if (!column.fraction) column.fraction = m.frac
      }
    }
  }

  #dropFresh (): void {
    const fresh = this.#fresh
    if (fresh.length === 0) return
    for (let i = 0; i < fresh.length; i++) this.#byName.delete(fresh[i]!.name)
    fresh.length = 0
  }
}

// One member's value at p: validates it, records its facts in m, returns its end.
function scanValue (b: Buffer, p: number, end: number, m: Member): number {
  if (p >= end) return -1
  const c = b[p]!
  m.exact = true
  m.frac = false
  if (c === 0x22) {
    m.kind = 'string'
    return skipString(b, p + 1, end)
  }
  if (c === 0x2d || ((c - 0x30) >>> 0) <= 9) {
    const q = skipNumber(b, p)
    if (q < 0) return -1
    const column = m.column
    const kind = column.kind
    // In a float64 column whose float32 test has failed, any number fits and adds nothing.
    if (kind === undefined || kind === 'int64' || needsNumbers(column)) {
      const v = numberValue(b, p, q)
      m.kind = Number.isSafeInteger(v) ? 'int64' : 'float64'
      m.exact = Math.fround(v) === v
      m.frac = !Number.isInteger(v)
    } else {
      m.kind = 'float64'
    }
    return q
  }
  if (c === 0x5b) return scanList(b, p, end, m)
  if (c === 0x7b) {
    m.kind = 'json'
    return skipValue(b, p, end)
  }
  if (c === 0x74 || c === 0x66) {
    m.kind = 'bool'
    return skipValue(b, p, end)
  }
  if (c === 0x6e) {
    m.kind = null
    return skipValue(b, p, end)
  }
  return -1
}

// An array at p: a list while its elements are numbers or null, else json.
function scanList (b: Buffer, p: number, end: number, m: Member): number {
  const column = m.column
  const kind = column.kind
  // Whether the list's element type can change the column's: not for list<float64> (every
  // list fits as is) nor for json or a scalar column (where every list is the same). There
  // the list is reported as list<float64>, which joins exactly like the real one would.
  let needKind = kind === undefined || kind === 'list<?>' || kind === 'list<int64>'
  let needExact = needsNumbers(column)
  let listKind: ValueKind = needKind ? 'list<?>' : 'list<float64>'
  let exact = true
  let frac = false
  p = skipBlanks(b, p + 1, end)
  if (p < end && b[p] === 0x5d) {
    m.kind = 'list<?>'
    return p + 1
  }
  for (;;) {
    if (p >= end) return -1
    let c = b[p]!
    if (c === 0x2d || ((c - 0x30) >>> 0) <= 9) {
      if (!needKind && !needExact) {
        // Feature vectors: syntax only, the whole run of numbers at once (number-run.ts).
        p = skipNumberRun(b, p, end)
        if (p < 0) return -1
      } else {
        const q = skipNumber(b, p)
        if (q < 0) return -1
        const v = numberValue(b, p, q)
        if (needKind) {
          if (!Number.isSafeInteger(v)) {
            listKind = 'list<float64>'
            needKind = false
          } else {
            listKind = 'list<int64>'
          }
        }
        // Past the first number that is not a float32 the column is not float32, so
        // neither this value's other numbers nor its fractions matter.
        if (needExact) {
          if (Math.fround(v) !== v) {
            exact = false
            needExact = false
          } else if (!frac && !Number.isInteger(v)) {
            frac = true
          }
        }
        p = q
      }
    } else if (c === 0x6e) {
      p = skipValue(b, p, end)
      if (p < 0) return -1
    } else {
      m.kind = 'json'
      return skipArrayRest(b, p, end)
    }
    p = skipBlanks(b, p, end)
    if (p >= end) return -1
    c = b[p]!
    if (c === 0x2c) {
      p = skipBlanks(b, p + 1, end)
    } else if (c === 0x5d) {
      break
    } else {
      return -1
    }
  }
  m.kind = listKind
  m.exact = exact
  m.frac = frac
  return p + 1
}

// Whether a value's numbers (as a number or a list of them) can still change the column's
// float32 test: see tracksFloat32, which this anticipates before the value's kind is known.
function needsNumbers (column: Column): boolean {
  const kind = column.kind
  return column.exact32 && kind !== 'json' && kind !== 'string' && kind !== 'bool'
}

function sameBytes (b: Uint8Array, start: number, end: number, known: Uint8Array): boolean {
  if (end - start !== known.length) return false
  for (let i = 0; i < known.length; i++) {
    if (b[start + i] !== known[i]) return false
  }
  return true
}

// The key whose raw text (between the quotes, valid JSON) is [start, end), as JSON.parse
// decodes it.
function keyName (b: Buffer, start: number, end: number): string {
  for (let p = start; p < end; p++) {
    const c = b[p]!
    if (c === 0x5c || c >= 0x80) return JSON.parse(b.toString('utf8', start - 1, end + 1)) as string
  }
  return b.toString('latin1', start, end)
}

// Canonical "0".."4294967294": the keys Object.keys lists first, in ascending order.
function isArrayIndex (name: string): boolean {
  const n = name.length
  if (n === 0 || n > 10) return false
  for (let i = 0; i < n; i++) {
    if (((name.charCodeAt(i) - 0x30) >>> 0) > 9) return false
  }
  if (name.charCodeAt(0) === 0x30) return n === 1
  return n < 10 || Number(name) <= 4294967294
}

const POW10 = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22]
const TWO53 = 2 ** 53

/**
 * The double JSON.parse gives for the number text [start, end) (valid JSON). Clinger's fast
 * path: an integer mantissa below 2^53 and a power of ten up to 10^22 are both exact, so one
 * multiplication or division rounds exactly once, correctly. Anything else goes to Number().
 */
export function numberValue (b: Buffer, start: number, end: number): number {
  let p = start
  const negative = b[p] === 0x2d
  if (negative) p++
  let m = 0
  let scale = 0
  let d = 0
  // While the true mantissa stays below 2^53 every step is exact; once it passes, m stays
  // >= 2^53 and the slow path takes over.
  while (p < end && ((d = b[p]! - 0x30) >>> 0) <= 9) {
    m = m * 10 + d
    p++
  }
  if (p < end && b[p] === 0x2e) {
    p++
    while (p < end && ((d = b[p]! - 0x30) >>> 0) <= 9) {
      m = m * 10 + d
      scale--
      p++
    }
  }
  if (p < end) { // an exponent
    p++
    let negativeExp = false
    if (b[p] === 0x2d) {
      negativeExp = true
      p++
    } else if (b[p] === 0x2b) {
      p++
    }
    let exp = 0
    // Saturates: an exponent this large is out of the fast path's range anyway.
    for (; p < end; p++) {
      if (exp < 1e9) exp = exp * 10 + b[p]! - 0x30
    }
    scale += negativeExp ? -exp : exp
  }
  if (m === 0) return negative ? -0 : 0
  if (m < TWO53 && scale >= -22 && scale <= 22) {
    const v = scale >= 0 ? m * POW10[scale]! : m / POW10[-scale]!
    return negative ? -v : v
  }
  return Number(b.toString('latin1', start, end))
}

// ---------------------------------------------------------------------------------------
// An exact JSON validator over bytes, allocation-free. It accepts exactly what JSON.parse
// accepts on valid UTF-8 (checked separately): the RFC 8259 grammar, whitespace = space, tab,
// CR, LF, any depth. test/sources/jsonl.test.ts checks it against JSON.parse on random inputs.
//
// A line is only scanned once its last non-blank byte is known to be the object's `}`: no
// number can run past it, so the number scanner, where most of the time goes, does without
// bounds checks.

let stack = new Uint8Array(256)

/** True when bytes [start, end) of `b` are one JSON object, with optional whitespace around. */
export function isJsonObject (b: Uint8Array, start: number, end: number): boolean {
  const p = skipBlanks(b, start, end)
  if (p >= end || b[p] !== 0x7b || !endsWithBrace(b, p, end)) return false
  const q = skipValue(b, p, end)
  return q >= 0 && skipBlanks(b, q, end) === end
}

// Whether the last non-blank byte of [start, end) is a `}`.
function endsWithBrace (b: Uint8Array, start: number, end: number): boolean {
  while (end > start) {
    const c = b[--end]
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) return c === 0x7d
  }
  return false
}

// From the first byte of a JSON value to just after it; -1 if malformed.
function skipValue (b: Uint8Array, p: number, end: number): number {
  let depth = 0
  let top = 0 // the innermost open bracket: 0x7b `{`, 0x5b `[`, 0 outside
  for (;;) {
    // A value starts at p.
    if (p >= end) return -1
    let c = b[p]!
    if (c === 0x22) {
      p = skipString(b, p + 1, end)
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      p = skipNumber(b, p)
      // Arrays of numbers (feature vectors) dominate typical records: stay in this loop.
      if (top === 0x5b) {
        while (p >= 0 && b[p] === 0x2c && ((c = b[p + 1]!) === 0x2d || ((c - 0x30) >>> 0) <= 9)) {
          p = skipNumber(b, p + 1)
        }
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (depth === stack.length) {
        const grown = new Uint8Array(depth * 2)
        grown.set(stack)
        stack = grown
      }
      stack[depth++] = c
      top = c
      p = skipBlanks(b, p + 1, end)
      if (p < end && b[p] === c + 2) { // `{}` or `[]`
        p++
        depth--
        top = depth > 0 ? stack[depth - 1]! : 0
      } else {
        if (c === 0x7b && (p = skipKey(b, p, end)) < 0) return -1
        continue
      }
    } else if (c === 0x74) {
      p = p + 4 <= end && b[p + 1] === 0x72 && b[p + 2] === 0x75 && b[p + 3] === 0x65 ? p + 4 : -1
    } else if (c === 0x66) {
      p = p + 5 <= end && b[p + 1] === 0x61 && b[p + 2] === 0x6c && b[p + 3] === 0x73 && b[p + 4] === 0x65 ? p + 5 : -1
    } else if (c === 0x6e) {
      p = p + 4 <= end && b[p + 1] === 0x75 && b[p + 2] === 0x6c && b[p + 3] === 0x6c ? p + 4 : -1
    } else {
      return -1
    }
    if (p < 0) return -1

    // After a value: a comma leads to the next value, a closing bracket pops.
    for (;;) {
      if (depth === 0) return p
      p = skipBlanks(b, p, end)
      if (p >= end) return -1
      c = b[p]!
      if (c === 0x2c) {
        p = skipBlanks(b, p + 1, end)
        if (top === 0x7b && (p = skipKey(b, p, end)) < 0) return -1
        break
      }
      if (c !== top + 2) return -1
      p++
      depth--
      top = depth > 0 ? stack[depth - 1]! : 0
    }
  }
}

// The rest of an array from the first byte of one of its elements: to just after its `]`.
function skipArrayRest (b: Uint8Array, p: number, end: number): number {
  for (;;) {
    p = skipValue(b, p, end)
    if (p < 0) return -1
    p = skipBlanks(b, p, end)
    if (p >= end) return -1
    const c = b[p]
    if (c === 0x5d) return p + 1
    if (c !== 0x2c) return -1
    p = skipBlanks(b, p + 1, end)
  }
}

export function skipBlanks (b: Uint8Array, p: number, end: number): number {
  while (p < end) {
    const c = b[p]!
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break
    p++
  }
  return p
}

// `"key"` then `:`, ending at the start of the member's value; -1 if malformed.
function skipKey (b: Uint8Array, p: number, end: number): number {
  if (p >= end || b[p] !== 0x22) return -1
  p = skipString(b, p + 1, end)
  if (p < 0) return -1
  p = skipBlanks(b, p, end)
  if (p >= end || b[p] !== 0x3a) return -1
  return skipBlanks(b, p + 1, end)
}

// From just after the opening quote to just after the closing one; -1 if malformed.
function skipString (b: Uint8Array, p: number, end: number): number {
  while (p < end) {
    const c = b[p]!
    if (c === 0x22) return p + 1
    if (c === 0x5c) {
      if (p + 1 >= end) return -1
      const e = b[p + 1]!
      if (e === 0x75) {
        if (p + 6 > end || !isHex(b[p + 2]!) || !isHex(b[p + 3]!) || !isHex(b[p + 4]!) || !isHex(b[p + 5]!)) return -1
        p += 6
      } else if (e === 0x22 || e === 0x5c || e === 0x2f || e === 0x62 || e === 0x66 || e === 0x6e || e === 0x72 || e === 0x74) {
        p += 2
      } else {
        return -1
      }
    } else if (c < 0x20) {
      return -1
    } else {
      p++
    }
  }
  return -1
}

// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? ; -1 if malformed. A byte that cannot
// continue a number must come before the end of the buffer (see above).
// `(c - 0x30) >>> 0 <= 9` tests for a digit with one unsigned comparison.
function skipNumber (b: Uint8Array, p: number): number {
  let c = b[p]!
  if (c === 0x2d) c = b[++p]!
  if (c === 0x30) {
    p++
  } else if (((c - 0x31) >>> 0) <= 8) {
    p++
    while (((b[p]! - 0x30) >>> 0) <= 9) p++
  } else {
    return -1
  }
  if (b[p] === 0x2e) {
    if (((b[++p]! - 0x30) >>> 0) > 9) return -1
    p++
    while (((b[p]! - 0x30) >>> 0) <= 9) p++
  }
  c = b[p]!
  if (c === 0x65 || c === 0x45) {
    c = b[++p]!
    if (c === 0x2b || c === 0x2d) p++
    if (((b[p]! - 0x30) >>> 0) > 9) return -1
    p++
    while (((b[p]! - 0x30) >>> 0) <= 9) p++
  }
  return p
}

function isHex (c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x61 && c <= 0x66) || (c >= 0x41 && c <= 0x46)
}
