import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createSchemaInferrer } from '../../src/codecs/schema-infer.js'
import { AppError } from '../../src/errors.js'
import type { SchemaField } from '../../src/store/registry.js'

function infer (records: unknown[]): SchemaField[] {
  const inferrer = createSchemaInferrer()
  records.forEach((r, k) => inferrer.add(r, k + 1))
  return inferrer.result().fields
}

function invalidAt (line: number, message: string): (err: unknown) => boolean {
  return (err) => {
    assert.ok(err instanceof AppError, `expected an AppError, got ${String(err)}`)
    assert.equal(err.code, 'SOURCE_INVALID')
    assert.equal(err.message, `line ${line}: ${message}`)
    return true
  }
}

test('scalar types: int64, float64, bool, string', function () {
  assert.deepEqual(infer([
    { i: 1, f: 0.1, b: true, s: 'x' },
    { i: -2, f: 3, b: false, s: '' }
  ]), [
    { name: 'i', type: 'int64' },
    { name: 'f', type: 'float64' },
    { name: 'b', type: 'bool' },
    { name: 's', type: 'string' }
  ])
})

test('a column mixing integers and floats is float64, in either order', function () {
  assert.deepEqual(infer([{ x: 1 }, { x: 2.1 }, { x: 3 }]), [{ name: 'x', type: 'float64' }])
  assert.deepEqual(infer([{ x: 2.1 }, { x: 1 }]), [{ name: 'x', type: 'float64' }])
})

test('floats that are all exactly float32 values are float32 (lossless, half the Arrow bytes)', function () {
  const f32 = (x: number): number => Math.fround(x)
  assert.deepEqual(infer([{ x: f32(0.1), v: [f32(0.2), 1, f32(-3.7)] }, { x: 2.5, v: [] }]), [
    { name: 'x', type: 'float32' },
    { name: 'v', type: 'list<float32>' }
  ])
  // One value that float32 cannot hold exactly keeps the column float64.
  assert.deepEqual(infer([{ x: f32(0.1), v: [f32(0.2)] }, { x: 0.1, v: [0.2] }]), [
    { name: 'x', type: 'float64' },
    { name: 'v', type: 'list<float64>' }
  ])
  // Integer columns stay int64; only-empty lists stay list<float64>.
  assert.deepEqual(infer([{ i: 1, e: [] }, { i: 2, e: [] }]), [{ name: 'i', type: 'int64' }, { name: 'e', type: 'list<float64>' }])
})

test('integers beyond the safe range are float64 (JSON.parse already rounded them)', function () {
  assert.deepEqual(infer([{ x: 2 ** 53 }]), [{ name: 'x', type: 'float64' }])
  assert.deepEqual(infer([{ x: 2 ** 53 - 1 }, { x: -(2 ** 53 - 1) }]), [{ name: 'x', type: 'int64' }])
})

test('arrays of numbers are lists; ints widen to floats; null elements are allowed', function () {
  assert.deepEqual(infer([
    { a: [1, 2], b: [1, 2], c: [0.1], d: [], e: [1, null] },
    { a: [3], b: [0.3, 1], c: [2], d: [], e: [null] }
  ]), [
    { name: 'a', type: 'list<int64>' },
    { name: 'b', type: 'list<float64>' },
    { name: 'c', type: 'list<float64>' },
    { name: 'd', type: 'list<float64>' }, // only empty lists: the element type defaults to float64
    { name: 'e', type: 'list<int64>' }
  ])
})

test('an empty list first takes the type of a later list', function () {
  assert.deepEqual(infer([{ v: [] }, { v: [1, 2] }, { v: [] }]), [{ name: 'v', type: 'list<int64>' }])
})

test('objects, nested arrays and non-numeric arrays are json; lists widen to json', function () {
  assert.deepEqual(infer([
    { o: { a: 1 }, n: [[1, 2]], s: ['a'], m: [1, 'a'], w: [1, 2] },
    { o: { b: [2] }, n: [[3]], s: [], m: [true], w: { x: 1 } }
  ]), [
    { name: 'o', type: 'json' },
    { name: 'n', type: 'json' },
    { name: 's', type: 'json' },
    { name: 'm', type: 'json' },
    { name: 'w', type: 'json' }
  ])
})

test('nullable: nulls, keys missing later, and keys missing from the first records', function () {
  assert.deepEqual(infer([
    { a: 1, b: 'x', c: 1 },
    { a: null, b: 'y' },
    { a: 2, b: 'z', c: 3, d: true }
  ]), [
    { name: 'a', type: 'int64', nullable: true },
    { name: 'b', type: 'string' },
    { name: 'c', type: 'int64', nullable: true },
    { name: 'd', type: 'bool', nullable: true }
  ])
})

test('a null first does not fix the type; a column that is always null is json, nullable', function () {
  assert.deepEqual(infer([{ a: null, z: null }, { a: 1.1, z: null }]), [
    { name: 'a', type: 'float64', nullable: true },
    { name: 'z', type: 'json', nullable: true }
  ])
})

test('field order is first-seen order, whatever the key order of later records', function () {
  assert.deepEqual(infer([{ b: 1, a: 1 }, { c: 1, a: 2, b: 3 }]).map((f) => f.name), ['b', 'a', 'c'])
})

test('keys that are Object.prototype names are ordinary fields', function () {
  const records = [JSON.parse('{"__proto__": 1, "constructor": "x"}'), { toString: true }]
  assert.deepEqual(infer(records), [
    { name: '__proto__', type: 'int64', nullable: true },
    { name: 'constructor', type: 'string', nullable: true },
    { name: 'toString', type: 'bool', nullable: true }
  ])
})

test('a value that does not fit its column names the line, the field and both types', function () {
  assert.throws(() => infer([{ x: 1 }, { x: 2 }, { x: 'three' }]), invalidAt(3, 'field "x" is string, expected int64'))
  assert.throws(() => infer([{ x: 'a' }, { x: 1 }]), invalidAt(2, 'field "x" is int64, expected string'))
  assert.throws(() => infer([{ x: true }, { x: 0.5 }]), invalidAt(2, 'field "x" is float64, expected bool'))
  assert.throws(() => infer([{ x: 1.5 }, { x: [1] }]), invalidAt(2, 'field "x" is list<int64>, expected float64'))
  assert.throws(() => infer([{ x: [1] }, { x: 2 }]), invalidAt(2, 'field "x" is int64, expected list<int64>'))
  assert.throws(() => infer([{ x: {} }, { x: 'a' }]), invalidAt(2, 'field "x" is string, expected json (an object or array)'))
  assert.throws(() => infer([{ x: [] }, { x: 'a' }]), invalidAt(2, 'field "x" is string, expected a list'))
  // After nulls, the first non-null value fixes the type.
  assert.throws(() => infer([{ x: null }, { x: 'a' }, { x: 1 }]), invalidAt(3, 'field "x" is int64, expected string'))
})

test('the caller chooses the numbers errors report', function () {
  const inferrer = createSchemaInferrer()
  inferrer.add({ x: 1 }, 10)
  assert.throws(() => inferrer.add({ x: false }, 12), invalidAt(12, 'field "x" is bool, expected int64'))
})

test('records must be objects', function () {
  assert.throws(() => infer([[1, 2]]), invalidAt(1, 'a record must be an object ({...}), got an array'))
  assert.throws(() => infer([{}, null]), invalidAt(2, 'a record must be an object ({...}), got null'))
  assert.throws(() => infer([{}, {}, 'x']), invalidAt(3, 'a record must be an object ({...}), got a string'))
})

test('no records, or only empty objects, give no fields', function () {
  assert.deepEqual(infer([]), [])
  assert.deepEqual(infer([{}, {}]), [])
})

test('inference is deterministic and result() can be called along the way', function () {
  const records = Array.from({ length: 200 }, (_, i) => ({ [`k${i % 7}`]: i % 3 === 0 ? null : i, v: [i, i / 2], s: String(i) }))
  assert.deepEqual(infer(records), infer(records))
  const inferrer = createSchemaInferrer()
  inferrer.add({ a: 1 }, 1)
  assert.deepEqual(inferrer.result().fields, [{ name: 'a', type: 'int64' }])
  inferrer.add({ a: 2.1, b: 'x' }, 2)
  assert.deepEqual(inferrer.result().fields, [{ name: 'a', type: 'float64' }, { name: 'b', type: 'string', nullable: true }])
})
