// The schema of a record source, inferred from its records in source order. The schema is what
// the descriptor reports and what the Arrow batch body is built from, so the rules are fixed:
//
// - Types: `int64` (numbers that are safe integers, |x| <= 2^53-1), `float64` (any other
//   number), `bool`, `string`, `list<int64>` / `list<float64>` (arrays whose elements are
//   numbers or null), and `json` (objects and every other array, carried as JSON text).
// - Widening: a column only ever widens along int64 -> float64, list<int64> -> list<float64>,
//   and list<...> -> json (every array is valid JSON). An empty array fits any list type and
//   json; a column that only ever held empty arrays is `list<float64>`.
// - Any other value that does not fit the type fixed by the column's first non-null value is
//   an error: AppError SOURCE_INVALID `line N: field "x" is string, expected int64`.
// - `nullable: true` when some record holds null there or lacks the key (including records
//   before the key first appeared). A column that is null in every record is `json`, nullable.
// - float32: a float64 or list<float64> column whose every number is exactly a float32 value
//   (Math.fround(x) === x; e.g. features written from float32 arrays) is `float32` /
//   `list<float32>`: lossless, and half the Arrow bytes.
// - Fields come in first-seen order; the result is a pure function of the records' sequence.
import { AppError } from '../errors.js'
import type { SchemaField } from '../store/registry.js'

// The type of one value, in the vocabulary of SchemaField.type. `list<?>` is an empty array
// (element type not known yet); null and undefined carry no type.
export type ValueKind = 'int64' | 'float64' | 'bool' | 'string' | 'list<int64>' | 'list<float64>' | 'list<?>' | 'json'

/** What inference knows about one field. */
export interface Column {
  name: string
  kind: ValueKind | undefined
  sawNull: boolean
  /** How many records had the key (null values included). */
  present: number
  /** Every number seen here (list elements included) is exactly a float32. */
  exact32: boolean
  /** Some number here has a fractional part: a float column, not integers written large. */
  fraction: boolean
}

export interface SchemaInferrer {
  /** Adds the next record; `line` is how errors name it (1-based line or record number). */
  add: (record: unknown, line: number) => void
  /** The schema of the records added so far. */
  result: () => { fields: SchemaField[] }
}

export function createSchemaInferrer (): SchemaInferrer {
  const columns: Column[] = []
  // Null-prototype lookup, so a key such as `__proto__` or `constructor` is an ordinary name.
  const byName: Record<string, Column> = Object.create(null)
  let records = 0

  return {
    add (record, line) {
      if (record === null || typeof record !== 'object' || Array.isArray(record)) {
        const got = record === null ? 'null' : Array.isArray(record) ? 'an array' : `a ${typeof record}`
        throw new AppError('SOURCE_INVALID', `line ${line}: a record must be an object ({...}), got ${got}`)
      }
      records++
      for (const name of Object.keys(record)) {
        let column = byName[name]
        if (column === undefined) {
          column = newColumn(name)
          byName[name] = column
          columns.push(column)
        }
        const value = (record as Record<string, unknown>)[name]
        if (!foldValue(column, value)) {
          throw new AppError('SOURCE_INVALID', `line ${line}: field ${JSON.stringify(name)} is ${describeKind(kindOf(value))}, expected ${describeKind(column.kind!)}`)
        }
      }
    },

    result () {
      return { fields: fieldsOf(columns, records) }
    }
  }
}

export function newColumn (name: string): Column {
  return { name, kind: undefined, sawNull: false, present: 0, exact32: true, fraction: false }
}

/**
 * Folds one record's value of the column in; false, with the column's type unchanged, when
 * the value does not fit it.
 */
export function foldValue (column: Column, value: unknown): boolean {
  column.present++
  if (value === null || value === undefined) {
    column.sawNull = true
    return true
  }
  const merged = merge(column.kind, kindOf(value))
  if (merged === undefined) return false
  column.kind = merged
  if (tracksFloat32(column)) {
    column.exact32 = allFloat32(value)
    if (!column.fraction) column.fraction = hasFraction(value)
  }
  return true
}

/**
 * Whether the numbers of a value just merged into the column still decide its float32 test:
 * only while every number so far was a float32, and only for number and list columns.
 */
export function tracksFloat32 (column: Column): boolean {
  const kind = column.kind
  return column.exact32 && (kind === 'float64' || kind === 'list<float64>' || kind === 'int64' || kind === 'list<int64>')
}

/** The fields of a schema from its columns (in first-seen order) and the number of records. */
export function fieldsOf (columns: readonly Column[], records: number): SchemaField[] {
  return columns.map((c) => {
    let type = finalType(c.kind)
    if (c.exact32 && c.fraction && type === 'float64') type = 'float32'
    if (c.exact32 && c.fraction && type === 'list<float64>') type = 'list<float32>'
    const field: SchemaField = { name: c.name, type }
    if (c.sawNull || c.present < records || c.kind === undefined) field.nullable = true
    return field
  })
}

function allFloat32 (value: unknown): boolean {
  if (typeof value === 'number') return Math.fround(value) === value
  if (!Array.isArray(value)) return true
  for (let k = 0; k < value.length; k++) {
    const v = value[k]
    if (typeof v === 'number' && Math.fround(v) !== v) return false
  }
  return true
}

function hasFraction (value: unknown): boolean {
  if (typeof value === 'number') return !Number.isInteger(value)
  return Array.isArray(value) && value.some((v) => typeof v === 'number' && !Number.isInteger(v))
}

function kindOf (value: unknown): ValueKind | 'null' | 'other' {
  switch (typeof value) {
    case 'number':
      return Number.isSafeInteger(value) ? 'int64' : 'float64'
    case 'bigint':
      return 'int64'
    case 'boolean':
      return 'bool'
    case 'string':
      return 'string'
    case 'object':
      if (value === null) return 'null'
      return Array.isArray(value) ? kindOfArray(value) : 'json'
    case 'undefined':
      return 'null'
    default:
      return 'other'
  }
}

function kindOfArray (values: unknown[]): ValueKind {
  let kind: ValueKind = 'list<?>'
  for (let k = 0; k < values.length; k++) {
    const v = values[k]
    if (v === null) continue
    if (typeof v !== 'number') return 'json'
    if (!Number.isSafeInteger(v)) kind = 'list<float64>'
    else if (kind === 'list<?>') kind = 'list<int64>'
  }
  return kind
}

// The join of a column's type and a value's type, or undefined when they do not fit.
export function merge (column: ValueKind | undefined, value: ValueKind | 'null' | 'other'): ValueKind | undefined {
  if (value === 'null' || value === 'other') return undefined
  if (column === undefined || column === value) return value
  switch (column) {
    case 'int64':
      return value === 'float64' ? 'float64' : undefined
    case 'float64':
      return value === 'int64' ? 'float64' : undefined
    case 'list<?>':
      return isList(value) || value === 'json' ? value : undefined
    case 'list<int64>':
      if (value === 'list<?>') return column
      if (value === 'list<float64>' || value === 'json') return value
      return undefined
    case 'list<float64>':
      if (value === 'list<?>' || value === 'list<int64>') return column
      return value === 'json' ? 'json' : undefined
    case 'json':
      return isList(value) ? 'json' : undefined
    default:
      return undefined
  }
}

function isList (kind: ValueKind): boolean {
  return kind === 'list<?>' || kind === 'list<int64>' || kind === 'list<float64>'
}

function finalType (kind: ValueKind | undefined): string {
  if (kind === undefined) return 'json'
  if (kind === 'list<?>') return 'list<float64>'
  return kind
}

function describeKind (kind: ValueKind | 'null' | 'other'): string {
  switch (kind) {
    case 'list<?>':
      return 'a list'
    case 'json':
      return 'json (an object or array)'
    case 'other':
      return 'a value JSON cannot hold'
    default:
      return kind
  }
}
