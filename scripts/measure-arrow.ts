// Measures the Arrow batch body. Usage:
//   node --import tsx scripts/measure-arrow.ts [rows=65536]
// 1. npy fast path: a float32 file of `rows` x 256 values in the OS temp folder (page cache
//    warm), cold batches of 1024 shuffled rows: readRows, encodeArrowTensorBatch, both, and
//    encodeNpyArrowBatch (the same with the rows read into a reused buffer).
// 2. Records: 128 records x 128 floats as an Arrow batch (list<float64>) against the same
//    records as the JSON body's `{"records":[...]}`, in bytes and time, for floats written
//    with full double precision, as 9 decimals (0.123456789) and as 6 decimals.
// Prints a table and deletes the file.
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { encodeArrowBatch, encodeArrowTensorBatch } from '../src/codecs/arrow-batch.js'
import { createSchemaInferrer } from '../src/codecs/schema-infer.js'
import { indexNpy, openNpySource } from '../src/sources/npy.js'
import { encodeNpyArrowBatch } from '../src/codecs/npy-arrow-batch.js'
import { percentile } from '../bench/lib/stats.js'
import { prng } from '../bench/lib/synthetic.js'

const WIDTH = 256
const BATCH = 1024
const RUNS = 200
const WARMUP = 20

async function main (): Promise<void> {
  const rowsArg = Number(process.argv[2] ?? 65536)
  if (!Number.isSafeInteger(rowsArg) || rowsArg < BATCH) throw new Error(`usage: measure-arrow.ts [rows >= ${BATCH}]`)
  const table: Array<[string, string]> = []
  const dir = await mkdtemp(path.join(os.tmpdir(), 'measure-arrow-'))
  try {
    const file = path.join(dir, 'x.npy')
    await writeNpy(file, rowsArg)
    const meta = await indexNpy(file, path.join(dir, 'x.idx')) // also reads it all: page cache warm
    const source = await openNpySource(file, meta)
    const rng = prng(42)
    const read: number[] = []
    const encode: number[] = []
    const total: number[] = []
    let bytes = 0
    for (let run = 0; run < RUNS + WARMUP; run++) {
      const indices = Array.from({ length: BATCH }, () => Math.floor(rng() * rowsArg))
      const t0 = performance.now()
      const rows = source.readRows(indices)
      const t1 = performance.now()
      const body = encodeArrowTensorBatch(indices, rows, source.dtype, source.innerShape)
      const t2 = performance.now()
      bytes = body.length
      if (run >= WARMUP) {
        read.push(t1 - t0)
        encode.push(t2 - t1)
        total.push(t2 - t0)
      }
    }
    // The same through encodeNpyArrowBatch, which reads the rows into a reused buffer.
    const reused: number[] = []
    for (let run = 0; run < RUNS + WARMUP; run++) {
      const indices = Array.from({ length: BATCH }, () => Math.floor(rng() * rowsArg))
      const t0 = performance.now()
      encodeNpyArrowBatch(source, indices)
      if (run >= WARMUP) reused.push(performance.now() - t0)
    }
    const contiguous: number[] = []
    for (let run = 0; run < RUNS + WARMUP; run++) {
      const start = Math.floor(rng() * (rowsArg - BATCH))
      const indices = Array.from({ length: BATCH }, (_, k) => start + k)
      const t0 = performance.now()
      encodeNpyArrowBatch(source, indices)
      if (run >= WARMUP) contiguous.push(performance.now() - t0)
    }
    const jsonTimes: number[] = []
    for (let run = 0; run < 20; run++) {
      const indices = Array.from({ length: BATCH }, () => Math.floor(rng() * rowsArg))
      const t0 = performance.now()
      await source.readJson(indices)
      if (run >= 5) jsonTimes.push(performance.now() - t0)
    }
    await source.close()
    table.push([`npy ${BATCH}x${WIDTH} float32, shuffled: readRows (fresh buffer) median`, ms(percentile(read, 50))])
    table.push(['  encodeArrowTensorBatch median', ms(percentile(encode, 50))])
    table.push(['  readRows + encode median', ms(percentile(total, 50))])
    table.push(['  readRows + encode p99', ms(percentile(total, 99))])
    table.push(['  encodeNpyArrowBatch (reused row buffer) median', ms(percentile(reused, 50))])
    table.push(['  encodeNpyArrowBatch p99', ms(percentile(reused, 99))])
    table.push(['  Arrow body', `${(bytes / 1024).toFixed(0)} KiB`])
    table.push(['  contiguous rows: encodeNpyArrowBatch median', ms(percentile(contiguous, 50))])
    table.push(['  (for scale) readJson of the same, median', ms(percentile(jsonTimes, 50))])
  } finally {
    await rm(dir, { recursive: true, force: true })
  }

  for (const [label, digits] of [['full double precision', undefined], ['9 decimals (0.123456789)', 9], ['6 decimals', 6]] as const) {
    const rng = prng(7)
    const records = Array.from({ length: 128 }, () => ({
      x: Array.from({ length: 128 }, () => {
        const v = rng() * 2 - 1
        return digits === undefined ? v : Number(v.toFixed(digits))
      })
    }))
    const inferrer = createSchemaInferrer()
    records.forEach((r, k) => inferrer.add(r, k + 1))
    const schema = inferrer.result()
    const indices = records.map((_, k) => k)
    const arrowTimes: number[] = []
    const jsonTimes: number[] = []
    let arrowBytes = 0
    let jsonBytes = 0
    for (let run = 0; run < RUNS + WARMUP; run++) {
      const t0 = performance.now()
      arrowBytes = encodeArrowBatch(schema, indices, records).length
      const t1 = performance.now()
      jsonBytes = Buffer.byteLength(JSON.stringify({ records }))
      const t2 = performance.now()
      if (run >= WARMUP) {
        arrowTimes.push(t1 - t0)
        jsonTimes.push(t2 - t1)
      }
    }
    table.push([`128 x 128 floats, ${label}: Arrow / JSON bytes`, `${arrowBytes} / ${jsonBytes} = ${(arrowBytes / jsonBytes).toFixed(3)}`])
    table.push(['  encodeArrowBatch / JSON.stringify median', `${ms(percentile(arrowTimes, 50))} / ${ms(percentile(jsonTimes, 50))}`])
  }

  const width = Math.max(...table.map(([name]) => name.length))
  console.log(`${os.cpus().length} CPUs, Node ${process.version}`)
  for (const [name, value] of table) console.log(`${name.padEnd(width)}  ${value}`)
}

// A version 1.0 .npy header padded to 64 bytes, then `rows` x WIDTH float32 values.
async function writeNpy (file: string, rows: number): Promise<void> {
  let dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${WIDTH}), }`
  dict = dict.padEnd(Math.ceil((dict.length + 11) / 64) * 64 - 11) + '\n'
  const head = Buffer.alloc(10)
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head)
  head.writeUInt16LE(dict.length, 8)
  const data = new Float32Array(rows * WIDTH)
  const rng = prng(1)
  for (let p = 0; p < data.length; p++) data[p] = rng() * 2 - 1
  await writeFile(file, Buffer.concat([head, Buffer.from(dict, 'latin1'), Buffer.from(data.buffer)]))
}

function ms (v: number): string {
  return `${v.toFixed(3)} ms`
}

await main()
