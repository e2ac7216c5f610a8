import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, test } from 'node:test'
import { planReads } from '../../src/sources/byte-ranges.js'
import { CorruptIndexError, OffsetIndex, OffsetIndexWriter } from '../../src/sources/offset-index.js'

let tmp: string
before(async () => { tmp = await mkdtemp(path.join(os.tmpdir(), 'offset-index-')) })
after(async () => { await rm(tmp, { recursive: true, force: true }) })

test('writes (N+1) little-endian uint64 offsets and reads them back', async () => {
  const file = path.join(tmp, 'a.idx')
  const offsets = [0, 5, 4294967295, 4294967296, 2 ** 40 + 3, 2 ** 53 - 1]
  const writer = await OffsetIndexWriter.create(file)
  for (const o of offsets) writer.add(o)
  await writer.close()
  const raw = await readFile(file)
  assert.equal(raw.length, offsets.length * 8)
  offsets.forEach((o, i) => assert.equal(Number(raw.readBigUInt64LE(i * 8)), o))

  const index = await OffsetIndex.load(file)
  assert.equal(index.numRecords, offsets.length - 1)
  offsets.forEach((o, i) => assert.equal(index.start(i), o))
  assert.equal(index.end(0), 5)
  assert.equal(index.endOffset, 2 ** 53 - 1)
})

test('streams more than one buffer of offsets', async () => {
  const file = path.join(tmp, 'b.idx')
  const writer = await OffsetIndexWriter.create(file)
  const n = 300_000 // 2.4 MB: several 1 MiB buffers
  for (let i = 0; i <= n; i++) {
    writer.add(i * 1000)
    if (i % 10_000 === 0) await writer.drain()
  }
  await writer.close()
  assert.equal((await stat(file)).size, (n + 1) * 8)
  const index = await OffsetIndex.load(file)
  assert.equal(index.numRecords, n)
  for (const i of [0, 1, 131_071, 131_072, 262_144, n]) assert.equal(index.start(i), i * 1000)
})

test('refuses offsets that go backwards and corrupt files', async () => {
  const writer = await OffsetIndexWriter.create(path.join(tmp, 'c.idx'))
  writer.add(10)
  assert.throws(() => writer.add(9), RangeError)
  assert.throws(() => writer.add(1.5), RangeError)
  await writer.abort()
  await assert.rejects(stat(path.join(tmp, 'c.idx')), { code: 'ENOENT' })

  await writeFile(path.join(tmp, 'odd.idx'), Buffer.alloc(12))
  await assert.rejects(OffsetIndex.load(path.join(tmp, 'odd.idx')), CorruptIndexError)
  await writeFile(path.join(tmp, 'empty.idx'), Buffer.alloc(0))
  await assert.rejects(OffsetIndex.load(path.join(tmp, 'empty.idx')), CorruptIndexError)
  const backwards = Buffer.alloc(16)
  backwards.writeUInt32LE(7, 0)
  await writeFile(path.join(tmp, 'back.idx'), backwards)
  await assert.rejects(OffsetIndex.load(path.join(tmp, 'back.idx')), CorruptIndexError)
})

test('planReads coalesces consecutive records and maps repeats', () => {
  const index = OffsetIndex.fromOffsets([0, 10, 25, 30, 50, 51])
  const plan = planReads(index, [3, 1, 2, 1, 4, 0, 3])
  assert.deepEqual([...plan.records], [0, 1, 2, 3, 4])
  assert.equal(plan.numRuns, 1) // all five records are adjacent in the file
  assert.deepEqual([...plan.at], [0, 10, 25, 30, 50, 51])
  assert.deepEqual([...plan.slotOf], [3, 1, 2, 1, 4, 0, 3])

  const sparse = planReads(index, [4, 0, 2])
  assert.equal(sparse.numRuns, 3)
  assert.deepEqual([...sparse.runs], [0, 10, 0, 25, 30, 10, 50, 51, 15])
  assert.throws(() => planReads(index, [5]), RangeError)
  assert.throws(() => planReads(index, [-1]), RangeError)
  assert.throws(() => planReads(index, [0.5]), RangeError)
  assert.equal(planReads(index, []).records.length, 0)
})
