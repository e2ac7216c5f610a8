// The json and ndjson bodies: spliced from the records' texts, each copied once to where the
// allocator placed the body (a build worker places it inside the batch's disk value).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { encodeJsonBatch } from '../../src/codecs/json-batch.js'
import { encodeNdjsonBatch } from '../../src/codecs/ndjson-batch.js'
import { placedAt } from './placed-at.js'

const TEXTS = ['{"id":0,"x":[1.5,-2e3]}', '{"name":"é€😀","ok":true}', '7', '"s"', 'null', '{"nested":{"a":[{}]}}']

function textsOf (indices: readonly number[]): Buffer[] {
  return indices.map((i) => Buffer.from(TEXTS[i % TEXTS.length]!, 'utf8'))
}

const CASES: Array<{ dataset: string, indices: number[] }> = [
  { dataset: 'plain', indices: [0, 1, 2, 3, 4, 5] },
  { dataset: 'ünïcødé "quoted"', indices: [5, 5, 1, 0] },
  { dataset: 'empty', indices: [] },
  { dataset: 'one', indices: [123456789] }
]

test('the json body is the header and the texts joined as they are, in any placement', () => {
  for (const { dataset, indices } of CASES) {
    const header = { dataset, epoch: 3, rank: 1, index: 2, numBatches: 9, indices }
    const texts = textsOf(indices)
    const expected = `{"dataset":${JSON.stringify(dataset)},"epoch":3,"rank":1,"index":2,"numBatches":9,` +
      `"indices":[${indices.join(',')}],"records":[${texts.map((t) => t.toString('utf8')).join(',')}]}`
    const own = encodeJsonBatch(header, texts)
    assert.equal(own.toString('utf8'), expected, dataset)
    assert.equal(own.byteOffset, 0, 'a buffer of its own by default')
    assert.equal(own.buffer.byteLength, own.length)
    assert.deepEqual(JSON.parse(expected).records, indices.map((i) => JSON.parse(TEXTS[i % TEXTS.length]!)))
    for (const offset of [0, 1, 5, 8]) {
      const at = placedAt(offset)
      const placed = encodeJsonBatch(header, texts, at.allocate)
      at.check(placed, own, `${dataset} at ${offset}`)
    }
  }
})

test('the ndjson body is one {"index","record"} line per record, in any placement', () => {
  for (const { dataset, indices } of CASES) {
    const texts = textsOf(indices)
    const expected = indices.map((i, k) => `{"index":${i},"record":${texts[k]!.toString('utf8')}}\n`).join('')
    const own = encodeNdjsonBatch(indices, texts)
    assert.equal(own.toString('utf8'), expected, dataset)
    for (const offset of [0, 3, 8]) {
      const at = placedAt(offset)
      at.check(encodeNdjsonBatch(indices, texts, at.allocate), own, `${dataset} at ${offset}`)
    }
  }
})
