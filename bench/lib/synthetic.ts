// Synthetic datasets, made deterministically from a seed: vectors as JSONL plus the same
// values as a float32 .npy (bench), and small mixed JSONL/CSV files (soak).
import { closeSync, openSync, writeSync } from 'node:fs'

/** mulberry32: a small, fast, seeded PRNG; returns floats in [0, 1). */
export function prng (seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/**
 * The header of a version 1.0 .npy file for a C-order array: magic, version, header length,
 * then the dict literal padded with spaces so that the data starts at a multiple of 64 bytes,
 * ending in a newline (as numpy writes it).
 */
export function npyHeader (descr: string, shape: number[]): Buffer {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`
  const unpadded = 10 + dict.length + 1
  const total = Math.ceil(unpadded / 64) * 64
  const text = dict + ' '.repeat(total - unpadded) + '\n'
  const head = Buffer.alloc(10)
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(head, 0)
  head.writeUInt16LE(text.length, 8)
  return Buffer.concat([head, Buffer.from(text, 'latin1')])
}

export interface VectorFiles { jsonlBytes: number, npyBytes: number }

/**
 * `n` records `{"id", "label", "x": [dim floats]}` as JSONL at `jsonlPath`, and the same x as a
 * float32 .npy [n, dim] at `npyPath`. Each float is written with 6 to 9 significant digits; the
 * npy holds its float32 rounding.
 */
export function writeVectorDataset (jsonlPath: string, npyPath: string, n: number, dim: number, seed: number): VectorFiles {
  const rand = prng(seed)
  const jfd = openSync(jsonlPath, 'w')
  const nfd = openSync(npyPath, 'w')
  let jsonlBytes = 0
  let npyBytes = 0
  try {
    const header = npyHeader('<f4', [n, dim])
    npyBytes += writeSync(nfd, header)
    const chunkRecords = 1024
    const floats = new Float32Array(chunkRecords * dim)
    for (let start = 0; start < n; start += chunkRecords) {
      const count = Math.min(chunkRecords, n - start)
      const lines: string[] = []
      for (let r = 0; r < count; r++) {
        const id = start + r
        const xs: string[] = []
        for (let d = 0; d < dim; d++) {
          // Roughly normal (sum of 3 uniforms), so the text has varied lengths and signs.
          const v = (rand() + rand() + rand() - 1.5) * 1.2
          const s = v.toPrecision(6 + Math.floor(rand() * 4))
          xs.push(s)
          floats[r * dim + d] = Number(s)
        }
        lines.push(`{"id":${id},"label":${id % 10},"x":[${xs.join(',')}]}`)
      }
      jsonlBytes += writeSync(jfd, lines.join('\n') + '\n')
      npyBytes += writeSync(nfd, Buffer.from(floats.buffer, 0, count * dim * 4))
    }
  } finally {
    closeSync(jfd)
    closeSync(nfd)
  }
  return { jsonlBytes, npyBytes }
}

const WORDS = ['alpha', 'beta', 'gamma', 'delta', 'shard', 'feed', 'batch', 'epoch', 'rank', 'seed', 'naïve', 'café', 'über', '数据', '🙂']

/** Mixed records as JSONL (strings with escapes and non-ASCII, nested arrays, nulls, floats). */
export function writeMixedJsonl (path: string, n: number, seed: number): string[] {
  const rand = prng(seed)
  const lines: string[] = []
  for (let i = 0; i < n; i++) {
    const words: string[] = []
    const nw = 1 + Math.floor(rand() * 12)
    for (let k = 0; k < nw; k++) words.push(WORDS[Math.floor(rand() * WORDS.length)] as string)
    if (rand() < 0.1) words.push('quote " backslash \\ tab \t newline \n end')
    const x: number[] = []
    for (let k = 0; k < 8; k++) x.push(Number(((rand() - 0.5) * 10).toPrecision(7)))
    const rec = { id: i, text: words.join(' '), label: Math.floor(rand() * 5), score: rand() < 0.05 ? null : Number(rand().toFixed(6)), x }
    lines.push(JSON.stringify(rec))
  }
  writeLines(path, lines)
  return lines
}

function writeLines (path: string, lines: string[]): void {
  const fd = openSync(path, 'w')
  try {
    for (let k = 0; k < lines.length; k += 4096) writeSync(fd, lines.slice(k, k + 4096).join('\n') + '\n')
  } finally {
    closeSync(fd)
  }
}

export type CsvRecord = Record<string, string | number | null>

/**
 * A CSV file with a header row `id,name,score,note`, with quoted fields holding commas, doubled
 * quotes and newlines, and empty cells; returns each record as the server types it (README:
 * an unquoted JSON number is a number, an unquoted empty cell null, anything quoted a string).
 */
export function writeCsv (path: string, n: number, seed: number): CsvRecord[] {
  const rand = prng(seed)
  const records: CsvRecord[] = []
  const lines = ['id,name,score,note']
  for (let i = 0; i < n; i++) {
    const w1 = WORDS[Math.floor(rand() * WORDS.length)] as string
    const w2 = WORDS[Math.floor(rand() * WORDS.length)] as string
    const kind = rand()
    let name: string
    let nameCell: string
    if (kind < 0.15) {
      name = `${w1}, ${w2}`
      nameCell = `"${name}"`
    } else if (kind < 0.25) {
      name = `${w1} "${w2}"\nsecond line`
      nameCell = `"${name.replace(/"/g, '""')}"`
    } else {
      name = `${w1}_${w2}`
      nameCell = name
    }
    // `+ 0` turns -0 into 0: the CSV cell says 0 either way.
    const score: number | null = rand() < 0.08 ? null : Number(((rand() - 0.3) * 100).toFixed(3)) + 0
    const note = rand() < 0.5 ? `n${i}` : 'x'
    records.push({ id: i, name, score, note })
    lines.push(`${i},${nameCell},${score === null ? '' : String(score)},${note}`)
  }
  writeLines(path, lines)
  return records
}
