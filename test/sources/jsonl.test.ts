import assert from 'node:assert/strict'
import { appendFileSync } from 'node:fs'
import { copyFile, readFile, stat, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { describe, test } from 'node:test'
import fc from 'fast-check'
import type { Worker } from 'node:worker_threads'
import { indexJsonl, isJsonObject, openJsonlSource, startChunkWorker, type JsonlIndexOptions } from '../../src/sources/jsonl.js'
import { OffsetIndex } from '../../src/sources/offset-index.js'
import { createSchemaInferrer } from '../../src/codecs/schema-infer.js'
import { summarySchema } from '../../src/codecs/schema-scan.js'
import { AppError } from '../../src/errors.js'
import type { SchemaField } from '../../src/store/registry.js'
import { tempFiles } from './temp-files.js'
import { indexFailure, isAppError, sourceDigest } from './expect.js'
import { isJsonObjectText } from '../json-object.js'

const fixture = new URL('../fixtures/sources/sample.jsonl', import.meta.url)
const files = tempFiles('jsonl', 'jsonl')
const put = files.put

async function invalid (content: string | Buffer): Promise<string> {
  return await indexFailure(put, indexJsonl, content)
}

/** The schema the sequential inferrer gives for the records of a JSONL text, or 'conflict'. */
function inferred (content: string): { fields: SchemaField[] } | 'conflict' {
  const inferrer = createSchemaInferrer()
  try {
    content.split('\n').filter((l) => l.trim() !== '').forEach((l, i) => inferrer.add(JSON.parse(l), i + 1))
  } catch (err) {
    assert.ok(err instanceof AppError, String(err))
    return 'conflict'
  }
  return inferrer.result()
}

// Slots and blocks small enough that a few KiB make many chunks and blocks, with the worker
// taking part: `mainBlocks` 0 leaves it every block (the main thread only validates the lines
// that span two chunks), 1 has both threads take blocks of every chunk.
function smallRing (mainBlocks: number): JsonlIndexOptions['ring'] {
  return { slotBytes: 2048, blockBytes: 256, worker: true, mainBlocks }
}

describe('indexJsonl', () => {
  test('the fixture: blank lines, CRLF, indentation, unicode, no final newline', async () => {
    const file = path.join(files.dir(), 'sample.jsonl')
    await copyFile(fixture, file)
    const idx = path.join(files.dir(), 'sample.idx')
    const bytes = await readFile(file)
    const result = await indexJsonl(file, idx)
    assert.equal(result.numRecords, 4)
    assert.equal(result.bytes, bytes.length)
    assert.equal(result.digest, sourceDigest(bytes))

    const index = await OffsetIndex.load(idx)
    assert.equal(index.numRecords, 4)
    const text = bytes.toString('latin1') // byte positions
    assert.equal(index.start(0), 0)
    assert.equal(index.start(1), text.indexOf('{"id":1'))
    assert.equal(index.start(2), text.indexOf('  {"id":2'))
    assert.equal(index.start(3), text.indexOf('{"id":3'))
    assert.equal(index.endOffset, bytes.length)

    const source = await openJsonlSource(file, idx)
    assert.equal(source.numRecords, 4)
    const lines = bytes.toString('utf8').split('\n').map((l) => l.trim()).filter((l) => l !== '')
    assert.deepEqual((await source.readJson([0, 1, 2, 3])).map(String), lines)
    const records = await source.readRecords([3, 1])
    assert.deepEqual(records, [{ id: 3 }, { id: 1, text: 'café 日本 😀', x: [0.5, -0.001] }])
    await source.close()
    await source.close() // idempotent
  })

  test('offsets of simple lines', async () => {
    const { file, idx } = await put('{"a":1}\n{"bb":22}\n{}\n')
    const result = await indexJsonl(file, idx)
    assert.equal(result.numRecords, 3)
    const index = await OffsetIndex.load(idx)
    assert.deepEqual([0, 1, 2, 3].map((i) => index.start(i)), [0, 8, 18, 21])
  })

  test('an empty file and a file of blank lines have no records', async () => {
    for (const content of ['', '\n\n', '  \r\n\t\n']) {
      const { file, idx } = await put(content)
      const result = await indexJsonl(file, idx)
      assert.equal(result.numRecords, 0)
      assert.equal(result.digest, sourceDigest(Buffer.from(content)))
      const source = await openJsonlSource(file, idx)
      assert.equal(source.numRecords, 0)
      assert.deepEqual(await source.readJson([]), [])
      await source.close()
    }
  })

  test('a UTF-8 byte order mark is not part of the first record', async () => {
    const { file, idx } = await put('\ufeff{"a":1}\n{"b":2}')
    await indexJsonl(file, idx)
    const source = await openJsonlSource(file, idx)
    assert.deepEqual(await source.readRecords([0, 1]), [{ a: 1 }, { b: 2 }])
    await source.close()
  })

  test('a malformed line reports its physical line number', async () => {
    assert.match(await invalid('{"a":1}\n\n{"a":2}\r\n{"a":\n'), /^line 4: not valid JSON/)
    assert.match(await invalid('{"a":1}\n{"a":01}'), /^line 2: /)
    assert.match(await invalid('{"a":1}\n{"a":1}}\n'), /^line 2: /)
    assert.match(await invalid('{"a":"tab\there"}\n'), /^line 1: /)
    assert.match(await invalid('\n\n\n{a:1}\n'), /^line 4: /)
  })

  test('a line that is JSON but not an object fails', async () => {
    assert.equal(await invalid('{"a":1}\n[1,2]\n'), 'line 2: each line must be a JSON object ({...}), got an array')
    assert.match(await invalid('"text"\n'), /^line 1: .*got a string/)
    assert.match(await invalid('{}\n\n42\n'), /^line 3: .*got a number/)
    assert.match(await invalid('null\n'), /^line 1: .*got null/)
  })

  test('text that is not UTF-8 fails with its line', async () => {
    const bad = Buffer.concat([Buffer.from('{"a":1}\n{"a":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}\n{"a":3}\n')])
    assert.match(await invalid(bad), /^line 2: .*UTF-8/)
    const last = Buffer.concat([Buffer.from('{"a":1}\n{"a":"'), Buffer.from([0xff]), Buffer.from('"}')])
    assert.match(await invalid(last), /^line 2: .*UTF-8/)
  })

  for (const [mib, path_] of [[12, 'inline'], [40, 'worker']] as const) {
    test(`${mib} MiB (${path_} hashing): chunk boundaries, a line longer than a chunk, progress`, async () => {
      // Lines of varied length cross the read chunks (1 MiB inline, 4 MiB with the worker) at
      // every phase, and one 3 MiB line spans several chunks.
      const lines: string[] = []
      let size = 0
      for (let i = 0; size < mib << 20; i++) {
        const line = i === 2000
          ? JSON.stringify({ i, big: 'é'.repeat(3 << 19) })
          : JSON.stringify({ i, pad: 'x'.repeat((i * 7919) % 3000), u: 'ü' })
        lines.push(line)
        size += Buffer.byteLength(line) + 1
      }
      const content = Buffer.from(lines.join('\n') + '\n')
      const { file, idx } = await put(content)
      const progress: Array<[number, number]> = []
      const result = await indexJsonl(file, idx, { onProgress: (done, total) => progress.push([done, total]) })
      assert.equal(result.numRecords, lines.length)
      assert.equal(result.digest, sourceDigest(content))
      assert.equal(result.bytes, content.length)
      assert.ok(progress.length >= 2, `progress was reported ${progress.length} times`)
      for (let k = 1; k < progress.length; k++) assert.ok(progress[k]![0] >= progress[k - 1]![0])
      assert.deepEqual(progress.at(-1), [content.length, content.length])
      assert.deepEqual(summarySchema(result.schema), inferred(content.toString()))

      const source = await openJsonlSource(file, idx)
      const picks = [2000, 0, lines.length - 1, 1999, 2001, 1234, 1234]
      assert.deepEqual((await source.readJson(picks)).map(String), picks.map((i) => lines[i]))
      const every = Array.from({ length: lines.length }, (_, i) => i)
      assert.deepEqual((await source.readJson(every)).map(String), lines)
      await source.close()
    })
  }

  test('large files: bad lines in the worker\'s and the main thread\'s share, the first is reported', async () => {
    // 109-byte lines, ~38 480 to a 4 MiB chunk and ~600 to a 64 KiB block. Until the worker
    // runs the main thread validates every block, then the threads take a chunk's blocks in
    // turn: bad lines in several chunks and blocks, whichever thread finds them.
    const good = '{"a":"' + 'x'.repeat(100) + '"}\n'
    const cases: Array<[number[], number]> = [
      [[36_500], 36_501],
      [[2_000, 36_500], 2_001],
      [[36_500, 40_000], 36_501],
      [[399_999], 400_000]
    ]
    for (const [bad, line] of cases) {
      const lines = new Array<string>(400_000).fill(good)
      for (const i of bad) lines[i] = '{"a":[1,2}\n'
      assert.match(await invalid(lines.join('')), new RegExp(`^line ${line}: not valid JSON`))
    }
  })

  test('the digest is the same hashed beside the pass (the addon) or on its own thread', async () => {
    // ~9 MiB: two whole 4 MiB blocks of the digest and a shorter one.
    const line = '{"x":[' + Array.from({ length: 40 }, (_, i) => (i * 0.37).toFixed(3)).join(',') + ']}\n'
    const content = Buffer.from(line.repeat(Math.ceil(9.3 * 1024 * 1024 / line.length)))
    const { file, idx } = await put(content)
    const expected = sourceDigest(content)
    for (const fileDigest of [true, false]) {
      for (const opts of [{ fileDigest }, { fileDigest, ring: { slotBytes: 1 << 20, blockBytes: 64 << 10, worker: true, mainBlocks: 1 } }]) {
        const result = await indexJsonl(file, idx, opts)
        assert.equal(result.digest, expected, JSON.stringify(opts))
        assert.equal(result.bytes, content.length)
      }
    }
  })

  test('a file that grows during the pass fails, rather than take the digest of fewer bytes', async () => {
    const line = '{"a":"' + 'x'.repeat(100) + '"}\n'
    const { file, idx } = await put(line.repeat(200_000)) // ~21 MiB: progress after the first 8
    let appended = false
    await assert.rejects(indexJsonl(file, idx, {
      onProgress () {
        if (appended) return
        appended = true
        // Holds the pass until the hasher beside it (~15 ms for the file) has reached the end.
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300)
        appendFileSync(file, line.repeat(10))
      }
    }), isAppError('SOURCE_INVALID', /changed while it was being indexed/))
    assert.ok(appended)
    await assert.rejects(stat(idx), { code: 'ENOENT' })
  })

  test('abort before and during the pass', async () => {
    const { file, idx } = await put('{"a":1}\n')
    await assert.rejects(indexJsonl(file, idx, { signal: AbortSignal.abort() }), { name: 'AbortError' })

    const big = await put(Buffer.from('{"a":"0123456789"}\n'.repeat(1_200_000))) // ~23 MiB
    const controller = new AbortController()
    await assert.rejects(indexJsonl(big.file, big.idx, {
      signal: controller.signal,
      onProgress: () => controller.abort()
    }), { name: 'AbortError' })
    await assert.rejects(stat(big.idx), { code: 'ENOENT' })
  })
})

describe('the schema summary of the pass', () => {
  const value = fc.oneof(
    fc.integer().map(String),
    fc.constantFrom('1.0', '1e3', '-0', '0.5', '1e400', '9007199254740993', '0.1', 'null', '[]', '[1,2.5]', '[null]', '"s"', 'true', '{"n":[1]}'),
    fc.float({ noNaN: true, noDefaultInfinity: true }).map((x) => JSON.stringify(Math.fround(x))),
    fc.string({ maxLength: 300 }).map((s) => JSON.stringify(s)) // lines of varied length, some longer than a block
  )
  const key = fc.constantFrom('"a"', '"b"', '"c"', '"\\u0061"', '"1"', '"é"', '"late"')
  const line = fc.oneof(
    { weight: 12, arbitrary: fc.array(fc.tuple(key, value), { maxLength: 5 }).map((members) => `{${members.map(([k, v]) => `${k}:${v}`).join(',')}}`) },
    { weight: 1, arbitrary: fc.constantFrom('', ' ', '\r') }
  )

  test('whichever thread validates a line, the summary is the inferrer\'s', async () => {
    await fc.assert(fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 120 }), fc.constantFrom(0, 1, 2), async (lines, mainBlocks) => {
      const content = lines.join('\n') + '\n'
      const { file, idx } = await put(content)
      const expected = inferred(content)
      const result = await indexJsonl(file, idx, { ring: smallRing(mainBlocks) })
      assert.equal(result.numRecords, lines.filter((l) => l.trim() !== '').length)
      assert.equal(result.digest, sourceDigest(Buffer.from(content)))
      assert.deepEqual(summarySchema(result.schema) ?? 'conflict', expected)
    }), { numRuns: 12 })
  })

  test('a chunk worker started ahead of the pass (startChunkWorker) takes part as one the pass starts', async (t) => {
    const started: Worker[] = []
    t.after(async () => { for (const w of started) await w.terminate() })
    // mainBlocks 0: the pass waits for the worker, and leaves it every block but the lines
    // that span two chunks, so the results below are the ported worker's.
    const ported = (mainBlocks: number): JsonlIndexOptions => {
      const { worker, port } = startChunkWorker()
      started.push(worker)
      return { ring: smallRing(mainBlocks), chunkPort: port }
    }
    await fc.assert(fc.asyncProperty(fc.array(line, { minLength: 1, maxLength: 120 }), fc.constantFrom(0, 1), async (lines, mainBlocks) => {
      const content = lines.join('\n') + '\n'
      const { file, idx } = await put(content)
      const result = await indexJsonl(file, idx, ported(mainBlocks))
      assert.equal(result.numRecords, lines.filter((l) => l.trim() !== '').length)
      assert.equal(result.digest, sourceDigest(Buffer.from(content)))
      assert.deepEqual(summarySchema(result.schema) ?? 'conflict', inferred(content))
    }), { numRuns: 6 })
    const good = '{"a":"' + 'x'.repeat(50) + '"}'
    for (const [bad, first] of [[[40], 41], [[69, 40], 41], [[199], 200]] as Array<[number[], number]>) {
      const lines = new Array<string>(200).fill(good)
      for (const i of bad) lines[i] = '{"a":[1,2}'.padEnd(good.length)
      const message = await indexFailure(put, async (file, idx) => await indexJsonl(file, idx, ported(0)), lines.join('\n') + '\n')
      assert.match(message, new RegExp(`^line ${first}: not valid JSON`))
    }
    // A small file needs no second thread: the pass closes the port it was given.
    const { file, idx } = await put('{"a":1}\n')
    const small = startChunkWorker()
    started.push(small.worker)
    const closed = new Promise((resolve) => small.port.once('close', resolve))
    assert.equal((await indexJsonl(file, idx, { chunkPort: small.port })).numRecords, 1)
    await closed
  })

  test('first-seen order across the threads', async () => {
    // 120-byte lines and 2 KiB chunks: line n holds bytes [120(n-1), 120n), so lines 18 and
    // 35 span two chunks, and with mainBlocks 0 only those are the main thread's. "b" and "e"
    // first appear there, "d" and "c" in the worker's lines before and between them.
    const first: Record<number, string> = { 5: '"a":1,"d":true', 18: '"b":"x","a":2', 30: '"c":[0.5],"a":3', 35: '"e":null,"a":4' }
    const lines = Array.from({ length: 40 }, (_, i) => `{${first[i + 1] ?? `"a":${i}`},"pad":"${'.'.repeat(70)}"}`.padEnd(119))
    const content = lines.join('\n') + '\n'
    const { file, idx } = await put(content)
    const result = await indexJsonl(file, idx, { ring: smallRing(0) })
    const schema = summarySchema(result.schema)
    assert.deepEqual(schema, inferred(content))
    assert.deepEqual(schema?.fields.map((f) => f.name), ['a', 'pad', 'd', 'b', 'c', 'e'])
  })

  test('bad lines in either thread: the first is reported', async () => {
    // 59-byte lines (with the newline), the bad ones too: line n holds bytes [59(n-1), 59n),
    // so lines 35 and 70 span two 2 KiB chunks (the main thread's), the others are in blocks.
    const good = '{"a":"' + 'x'.repeat(50) + '"}'
    const cases: Array<[number[], number]> = [[[3], 4], [[40], 41], [[34], 35], [[69, 40], 41], [[69], 70], [[69, 100], 70], [[199], 200], [[150, 151], 151]]
    for (const mainBlocks of [0, 1]) {
      for (const [bad, first] of cases) {
        const lines = new Array<string>(200).fill(good)
        for (const i of bad) lines[i] = '{"a":[1,2}'.padEnd(good.length)
        const message = await indexFailure(put, async (file, idx) => await indexJsonl(file, idx, { ring: smallRing(mainBlocks) }), lines.join('\n') + '\n')
        assert.match(message, new RegExp(`^line ${first}: not valid JSON`), `bad ${bad.join(',')}, mainBlocks ${mainBlocks}`)
      }
    }
  })

  test('a bad line not validated yet comes before a later line that is not UTF-8', async () => {
    // The main thread validates a chunk's blocks once it has split the next chunk, where the
    // UTF-8 check fails first: the earlier bad line must still be the one reported.
    // 59-byte lines: line 50 is in the second 2 KiB chunk, line 72 in the third.
    const good = '{"a":"' + 'x'.repeat(50) + '"}\n'
    const content = Buffer.concat([
      Buffer.from(good.repeat(49) + '{"a":01}\n' + good.repeat(21)),
      Buffer.from('{"a":"'), Buffer.from([0xff]), Buffer.from('"}\n'),
      Buffer.from(good.repeat(10))
    ])
    for (const ring of [{ slotBytes: 2048, blockBytes: 256, worker: true }, smallRing(0), smallRing(1)]) {
      const message = await indexFailure(put, async (file, idx) => await indexJsonl(file, idx, { ring }), content)
      assert.match(message, /^line 50: not valid JSON/)
    }
  })
})

describe('openJsonlSource', () => {
  test('readJson and readRecords follow the order of indices, with repeats', async () => {
    const records = Array.from({ length: 50 }, (_, i) => ({ i, s: `r${i}`, v: [i, i / 2] }))
    const { file, idx } = await put(records.map((r) => JSON.stringify(r)).join('\n'))
    await indexJsonl(file, idx)
    const source = await openJsonlSource(file, idx)
    const indices = [49, 3, 3, 17, 0, 18, 19, 20, 3, 49]
    const raw = await source.readJson(indices)
    assert.deepEqual(raw.map(String), indices.map((i) => JSON.stringify(records[i])))
    assert.deepEqual(await source.readRecords(indices), indices.map((i) => records[i]))
    assert.deepEqual(await source.readRecords(Array.from({ length: 50 }, (_, i) => i)), records)
    await assert.rejects(source.readJson([50]), RangeError)
    await assert.rejects(source.readJson([-1]), RangeError)
    await source.close()
    await assert.rejects(source.readJson([0]), /closed/)
  })

  test('a source that shrank since indexing is SOURCE_CHANGED', async () => {
    const { file, idx } = await put('{"a":1}\n{"a":2}\n')
    await indexJsonl(file, idx)
    await writeFile(file, '{"a":1}\n')
    await assert.rejects(openJsonlSource(file, idx), { code: 'SOURCE_CHANGED' })
  })
})

describe('isJsonObject agrees with JSON.parse', () => {
  function check (text: string): void {
    const buf = Buffer.from(text)
    // Compare with JSON.parse of the same bytes as the indexer sees them.
    assert.equal(isJsonObject(buf, 0, buf.length), isJsonObjectText(buf.toString('utf8')), JSON.stringify(text))
  }

  test('hand-picked cases', () => {
    const cases = [
      '{}', ' {} ', '{"a":1}', '{"a":[]}', '{"a":{}}', '{"a":[1,2,{"b":null}]}', '{"":""}',
      '{"a":-0}', '{"a":0.5e-10}', '{"a":1E+2}', '{"a":"\\u00e9\\n\\/"}', '{"a":true,"b":false}',
      '{"a":01}', '{"a":1.}', '{"a":.5}', '{"a":+1}', '{"a":1e}', '{"a":-}', '{"a":0x1}', '{"a":NaN}',
      '{"a":"\\x"}', '{"a":"\\u12"}', '{"a":"\t"}', '{"a":tru}', '{"a":nul}', '{"a":1,}', '{,"a":1}',
      '{"a" 1}', '{"a":1 "b":2}', '{"a":[1,]}', '{"a":[,1]}', '{"a":[1 2]}', '{"a":1}}', '{"a":[1}',
      '{"a":{"b":1]}', '{"a":1} x', '{\'a\':1}', '{a:1}', '[1]', '1', '"s"', 'null', '', ' ',
      '{"a":1}\r', '{"a":\r1}', '\ufeff{}', '{"a":"\ud83d\ude00"}', '{"a":[[[[[[[[[[]]]]]]]]]]}',
      '{"a":' + '['.repeat(1000) + ']'.repeat(1000) + '}', '{"a":1e400}', '{"__proto__":1}'
    ]
    for (const c of cases) check(c)
  })

  test('random JSON and mutations of it', () => {
    const alphabet = fc.constantFrom(...'{}[]:,"\\ \t\r0123456789-+.eEtrufalsn/abcé')
    const objects = fc.dictionary(fc.string(), fc.jsonValue()).map((o) => JSON.stringify(o))
    const mutated = fc.tuple(fc.oneof(fc.json(), objects), fc.array(fc.tuple(fc.nat(), fc.nat(2), alphabet), { maxLength: 3 }))
      .map(([text, edits]) => {
        let s = text
        for (const [at, kind, ch] of edits) {
          const p = s.length === 0 ? 0 : at % (s.length + 1)
          s = kind === 0 ? s.slice(0, p) + ch + s.slice(p) : kind === 1 ? s.slice(0, p) + s.slice(p + 1) : s.slice(0, p) + ch + s.slice(p + 1)
        }
        return s
      })
    fc.assert(fc.property(fc.oneof(fc.json(), mutated, objects, fc.string({ unit: alphabet })), (text) => check(text)), { numRuns: 3000 })
  })
})
