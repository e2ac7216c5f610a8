// indexSource for JSONL: the schema comes out of the validating pass, and must be exactly what
// the sequential inference (inferSchema over JSON.parse'd records) gives, error included.
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { indexSource } from '../../src/sources/index-source.js'
import { openJsonlSource, type JsonlIndexOptions } from '../../src/sources/jsonl.js'
import { inferSchema, jsonlLineOf } from '../../src/sources/schema-pass.js'
import { AppError } from '../../src/errors.js'
import { tempFiles } from './temp-files.js'

const files = tempFiles('index-source', 'jsonl')

// 2 KiB chunks cut into 256-byte blocks, the worker taking part from the first chunk: with
// mainBlocks 0 it validates every block (the main thread the lines spanning two chunks), with
// 1 both threads take blocks of every chunk.
function ring (mainBlocks: number): JsonlIndexOptions['ring'] {
  return { slotBytes: 2048, blockBytes: 256, worker: true, mainBlocks }
}

/** Today's sequential schema pass over an indexed JSONL file: the oracle. */
async function sequential (file: string, idx: string): Promise<unknown> {
  const source = await openJsonlSource(file, idx)
  try {
    return await inferSchema(source, async (i) => await jsonlLineOf(file, idx, i))
  } finally {
    await source.close()
  }
}

// Records whose fields appear at different places, in forms JSON.stringify does not write.
function mixedLines (n: number): string[] {
  return Array.from({ length: n }, (_, i) => {
    const members = [`"id":${i}`]
    if (i % 3 !== 1) members.push(`"x":${i % 7 === 0 ? '1.0' : i % 11 === 0 ? '1e3' : (i / 8).toString()}`)
    if (i >= 37) members.push(`"late":[${i % 5 === 0 ? '' : `${i},0.5,null`}]`)
    if (i % 13 === 0) members.push('"\\u006eame":"s"', `"${i % 2}":true`) // an escaped key; array-index keys
    if (i === 90) members.push('"id":-0') // a key given twice
    if (i % 17 === 3) members.push(`"f32":${JSON.stringify(Math.fround(i / 3))}`)
    if (i % 4 === 0) members.push('"maybe":null')
    if (i > 150 && i % 2 === 0) members.push(`"tail":{"k":${i}}`)
    return `{${members.join(',')}, "pad":"${'·'.repeat(i % 40)}"}`
  })
}

describe('indexSource(jsonl): the schema from the validating pass', () => {
  test('is the sequential inference\'s, whichever thread validated which line', async () => {
    const lines = mixedLines(200)
    // Blank and CRLF lines, so that record numbers and physical lines differ.
    const content = lines.map((l, i) => (i % 9 === 0 ? '\n' : '') + l + (i % 5 === 0 ? '\r' : '')).join('\n') + '\n'
    for (const mainBlocks of [0, 1]) {
      const { file, idx } = await files.put(content)
      const result = await indexSource('jsonl', file, idx, { ring: ring(mainBlocks) })
      assert.equal(result.numRecords, 200)
      assert.deepEqual(result.schema, await sequential(file, idx))
      // Record 0 has the array-index key "0", which Object.keys lists first.
      assert.deepEqual(result.schema.fields.map((f) => f.name), ['0', 'id', 'x', 'name', 'maybe', 'pad', 'f32', '1', 'late', 'tail'])
    }
  })

  test('inline json records take the same path', async () => {
    const content = mixedLines(60).join('\n')
    const { file, idx } = await files.put(content)
    const result = await indexSource('json', file, idx, {})
    assert.deepEqual(result.schema, await sequential(file, idx))
  })

  test('a value that does not fit fails with the sequential pass\'s message and line', async () => {
    const good = mixedLines(120)
    // Two blank lines first: the line reported is the physical one, not the record number.
    const contentWith = (at: number, line: string): string => '\n\n' + [...good.slice(0, at), line, ...good.slice(at + 1)].join('\n') + '\n'
    // The first line from `from` on that spans two 2 KiB chunks once it is `line`: with
    // mainBlocks 0 the main thread alone validates it, and the worker the other lines.
    const spanning = (from: number, line: string): number => {
      for (let at = from; at < good.length; at++) {
        const start = Buffer.byteLength(contentWith(at, line).split('\n').slice(0, at + 2).join('\n')) + 1
        if (Math.floor(start / 2048) !== Math.floor((start + Buffer.byteLength(line)) / 2048)) return at
      }
      assert.fail('no line spans two chunks')
    }
    // "f32" is a number in a few lines, none of which spans two chunks: the value that does not
    // fit is the only one the main thread sees, and the conflict only shows in the merge.
    const long = `{"f32":"${'s'.repeat(300)}"}`
    const cases: Array<{ at: number, line: string, message: string }> = [
      { at: 3, line: '{"id":"three"}', message: 'field "id" is string, expected int64' },
      { at: 100, line: '{"late":"s"}', message: 'field "late" is string, expected list<float64>' },
      { at: 110, line: '{"x":[1]}', message: 'field "x" is list<int64>, expected float64' },
      { at: spanning(50, long), line: long, message: 'field "f32" is string, expected float64' }
    ]
    for (const mainBlocks of [0, 1]) {
      for (const { at, line, message } of cases) {
        const content = contentWith(at, line)
        const { file, idx } = await files.put(content)
        await assert.rejects(indexSource('jsonl', file, idx, { ring: ring(mainBlocks) }), (err) => {
          assert.ok(err instanceof AppError, String(err))
          assert.equal(err.code, 'SOURCE_INVALID')
          assert.equal(err.message, `line ${at + 3}: ${message}`)
          return true
        })
      }
    }
  })
})

describe('indexSource(csv): the schema pass over runs of records', () => {
  test('a value that does not fit, in any run, fails naming the record\'s row; otherwise one schema for all', async () => {
    const rows = ['id,score,name']
    for (let i = 0; i < 1000; i++) rows.push(`${i},${i % 7 === 0 ? '' : (i / 4).toString()},${i % 3 === 0 ? `"n,${i}"` : `n${i}`}`)
    const good = await files.put(rows.join('\n') + '\n')
    const result = await indexSource('csv', good.file, good.idx, {})
    assert.deepEqual(result.schema, {
      fields: [
        { name: 'id', type: 'int64' },
        { name: 'score', type: 'float32', nullable: true },
        { name: 'name', type: 'string' }
      ]
    })
    // An early record, the last of the first runs of 128 and of 256, the first of the next, the last record.
    for (const at of [2, 127, 255, 256, 700, 999]) {
      const bad = [...rows]
      bad[at + 1] = `${at},"high",n`
      const { file, idx } = await files.put(bad.join('\n') + '\n')
      await assert.rejects(indexSource('csv', file, idx, {}), (err) => {
        assert.ok(err instanceof AppError, String(err))
        assert.equal(err.message, `line ${at + 2}: field "score" is string, expected float64`, `record ${at}`)
        return true
      })
    }
  })
})
