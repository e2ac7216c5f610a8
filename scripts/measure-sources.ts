// Measures the JSONL source: indexing throughput from the page cache and the latency of
// reading shuffled 128-record batches. Usage:
//   node --import tsx scripts/measure-sources.ts [MiB=1024] [--baseline]
// It writes a synthetic file of ~1 KiB records ({id, label, x: [64 floats], text}) to the
// OS temp folder, warms the page cache, runs the measurements, prints a table and deletes
// the file. `--baseline` also times JSON.parse of every line, the validation it replaces.
import { closeSync, openSync, writeSync } from 'node:fs'
import { mkdtemp, open, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { planReads, readPlanAsync } from '../src/sources/byte-ranges.js'
import { indexJsonl, openJsonlSource } from '../src/sources/jsonl.js'
import { OffsetIndex } from '../src/sources/offset-index.js'
import { percentile } from '../bench/lib/stats.js'
import { prng } from '../bench/lib/synthetic.js'

const MIB = 1 << 20
const BATCH = 128
const BATCH_CALLS = 200
const INDEX_RUNS = 3

async function main (): Promise<void> {
  const args = process.argv.slice(2)
  const mib = Number(args.find((a) => !a.startsWith('--')) ?? 1024)
  if (!Number.isFinite(mib) || mib <= 0) throw new Error('usage: measure-sources.ts [MiB] [--baseline]')
  const dir = await mkdtemp(path.join(os.tmpdir(), 'measure-sources-'))
  try {
    const file = path.join(dir, 'data.jsonl')
    const indexPath = path.join(dir, 'data.idx')
    const t0 = performance.now()
    const records = generate(file, mib * MIB)
    console.log(`generated ${mib} MiB, ${records} records in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
    await warm(file)

    const rows: Array<[string, string]> = []
    const rates: number[] = []
    let bytes = 0
    let cpuSeconds = 0
    for (let run = 0; run < INDEX_RUNS; run++) {
      const start = performance.now()
      const cpu = process.cpuUsage()
      const result = await indexJsonl(file, indexPath)
      const seconds = (performance.now() - start) / 1000
      const used = process.cpuUsage(cpu)
      cpuSeconds += (used.user + used.system) / 1e6
      bytes = result.bytes
      rates.push(bytes / MIB / seconds)
      if (result.numRecords !== records) throw new Error(`indexed ${result.numRecords} records, wrote ${records}`)
    }
    rates.sort((a, b) => b - a)
    rows.push(['indexJsonl, best of 3', `${rates[0]!.toFixed(0)} MiB/s`])
    rows.push(['indexJsonl, median of 3', `${rates[1]!.toFixed(0)} MiB/s`])
    // CPU time of all threads: what the pass costs whatever else runs on the machine.
    rows.push(['  (CPU time per GiB, all threads)', `${(cpuSeconds / INDEX_RUNS / (bytes / (1024 * MIB))).toFixed(2)} s`])

    if (args.includes('--baseline')) {
      rows.push(['baseline: JSON.parse per line', `${(await jsonParseRate(file)).toFixed(0)} MiB/s`])
    }

    const source = await openJsonlSource(file, indexPath)
    const rng = prng(42)
    const batches = Array.from({ length: BATCH_CALLS + 20 }, () =>
      Array.from({ length: BATCH }, () => Math.floor(rng() * records)))
    const syncTimes: number[] = []
    let batchBytes = 0
    for (const [n, indices] of batches.entries()) {
      const start = performance.now()
      const out = await source.readJson(indices)
      const ms = performance.now() - start
      if (n >= 20) syncTimes.push(ms) // the first calls warm the JIT
      batchBytes = out.reduce((sum, b) => sum + b.length, 0)
    }
    await source.close()
    rows.push([`readJson ${BATCH} shuffled, median`, `${percentile(syncTimes, 50).toFixed(3)} ms`])
    rows.push([`readJson ${BATCH} shuffled, p99`, `${percentile(syncTimes, 99).toFixed(3)} ms`])
    rows.push(['  (batch size)', `${(batchBytes / 1024).toFixed(0)} KiB`])

    // The alternative not taken: the same reads as concurrent FileHandle.read calls.
    const index = await OffsetIndex.load(indexPath)
    const fh = await open(file, 'r')
    const asyncTimes: number[] = []
    for (const [n, indices] of batches.entries()) {
      const plan = planReads(index, indices.map((i) => (i + 7919) % records))
      const start = performance.now()
      await readPlanAsync(fh, plan)
      if (n >= 20) asyncTimes.push(performance.now() - start)
    }
    await fh.close()
    rows.push(['async reads (not used), median', `${percentile(asyncTimes, 50).toFixed(3)} ms`])
    rows.push(['async reads (not used), p99', `${percentile(asyncTimes, 99).toFixed(3)} ms`])

    const width = Math.max(...rows.map(([name]) => name.length))
    console.log(`\nfile: ${(bytes / MIB).toFixed(0)} MiB, ${records} records, ${os.cpus().length} CPUs, Node ${process.version}, load average ${os.loadavg()[0]!.toFixed(2)} (this script included; more means other processes shared the CPUs)`)
    for (const [name, value] of rows) console.log(`${name.padEnd(width)}  ${value}`)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

// ~1 KiB records: an id, a label, a 64-float feature vector and some text with escapes.
function generate (file: string, target: number): number {
  const rng = prng(7)
  const words = ['alpha', 'beta', 'gamma', 'delta', 'review', 'great', 'bad', 'movie', 'plot', 'the', 'and', 'was', 'très', '日本']
  const fd = openSync(file, 'w')
  let total = 0
  let id = 0
  let parts: string[] = []
  let partBytes = 0
  while (total < target) {
    const x = Array.from({ length: 64 }, () => Number((rng() * 2 - 1).toFixed(8)))
    const text = Array.from({ length: 40 }, () => words[Math.floor(rng() * words.length)]).join(' ')
    const line = JSON.stringify({ id, label: id % 5, x, text: `${text} "quoted" \\` }) + '\n'
    parts.push(line)
    const n = Buffer.byteLength(line)
    total += n
    partBytes += n
    id++
    if (partBytes >= 4 * MIB) {
      writeSync(fd, parts.join(''))
      parts = []
      partBytes = 0
    }
  }
  writeSync(fd, parts.join(''))
  closeSync(fd)
  return id
}

async function warm (file: string): Promise<void> {
  const fh = await open(file, 'r')
  const buf = Buffer.allocUnsafe(4 * MIB)
  for (let pos = 0; ;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos)
    if (bytesRead === 0) break
    pos += bytesRead
  }
  await fh.close()
}

async function jsonParseRate (file: string): Promise<number> {
  const fh = await open(file, 'r')
  const buf = Buffer.allocUnsafe(4 * MIB)
  const start = performance.now()
  let pos = 0
  for (;;) {
    const { bytesRead } = await fh.read(buf, 0, buf.length, pos)
    if (bytesRead === 0) break
    const chunk = buf.subarray(0, bytesRead)
    const last = chunk.lastIndexOf(10)
    let p = 0
    for (let nl = chunk.indexOf(10); nl !== -1 && nl <= last; nl = chunk.indexOf(10, p)) {
      JSON.parse(chunk.toString('utf8', p, nl))
      p = nl + 1
    }
    pos += p
    if (bytesRead < buf.length) break
  }
  await fh.close()
  return pos / MIB / ((performance.now() - start) / 1000)
}

await main()
