// Core-service figures, measured against the built server run as its own process:
//   registration throughput of a large JSONL file (from page cache),
//   cold JSON batches of 128 records (~1 KiB each), shuffled, nothing cached,
//   RSS of the server while it serves the file.
// Usage: npm run build && npx tsx scripts/measure-core.ts [sizeMiB=2048] [batches=400]
import { spawn } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { once } from 'node:events'
import { createServer } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { percentile } from '../bench/lib/stats.js'

const sizeMiB = Number(process.argv[2] ?? 2048)
const nBatches = Number(process.argv[3] ?? 400)
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

async function freePort (): Promise<number> {
  return await new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port
      srv.close(() => { resolve(port) })
    })
  })
}

async function rssOf (pid: number): Promise<{ rss: number, hwm: number }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024
  return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
}

async function writeJsonl (file: string, bytes: number): Promise<number> {
  const out = createWriteStream(file)
  let written = 0
  let id = 0
  const pad = 'lorem ipsum dolor sit amet '.repeat(20)
  while (written < bytes) {
    let chunk = ''
    for (let k = 0; k < 1000; k++, id++) {
      // ~1 KiB records: 64 floats, a label and some text.
      chunk += JSON.stringify({ id, label: id % 10, x: Array.from({ length: 64 }, (_, j) => ((id * 31 + j * 17) % 1000) / 997), text: pad.slice(id % 50) }) + '\n'
    }
    written += Buffer.byteLength(chunk)
    if (!out.write(chunk)) await once(out, 'drain')
  }
  out.end()
  await once(out, 'finish')
  return id
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'shardfeed-measure-'))
const dataRoot = path.join(dir, 'data')
const cacheDir = path.join(dir, 'var')
await (await import('node:fs/promises')).mkdir(dataRoot, { recursive: true })
const file = path.join(dataRoot, 'big.jsonl')
console.log(`writing ${sizeMiB} MiB of JSONL...`)
const records = await writeJsonl(file, sizeMiB * 2 ** 20)
const size = (await (await import('node:fs/promises')).stat(file)).size
await readFile(file).catch(() => {}) // into the page cache (fails harmlessly above 2 GiB)
const port = await freePort()
const child = spawn(process.execPath, [path.join(repo, 'dist', 'src', 'server.js')], {
  env: { ...process.env, PORT: String(port), DATA_ROOT: dataRoot, CACHE_DIR: cacheDir, LOG_LEVEL: 'warn', PREFETCH_BATCHES: '0', MEMORY_CACHE_BYTES: String(64 * 2 ** 20), INDEX_SYNC_MAX_BYTES: String(2 ** 50) },
  stdio: 'inherit'
})
const base = `http://127.0.0.1:${port}`
try {
  for (let i = 0; ; i++) {
    try { if ((await fetch(`${base}/readyz`)).ok) break } catch {}
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  const t0 = performance.now()
  const reg = await fetch(`${base}/datasets`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'big', source: { format: 'jsonl', path: 'big.jsonl' }, batchSize: 128, numShards: 4, shuffle: true, seed: 1 }) })
  const regMs = performance.now() - t0
  const d = await reg.json() as { status: string, batchesPerShard: number[] }
  if (d.status !== 'ready') throw new Error(JSON.stringify(d))
  const afterReg = await rssOf(child.pid as number)

  const lat: number[] = []
  let maxRss = 0
  for (let k = 0; k < nBatches; k++) {
    const rank = k % 4
    const i = (k * 7919) % (d.batchesPerShard[rank] as number)
    const t = performance.now()
    const res = await fetch(`${base}/datasets/big/shards/${rank}/batches/${i}?epoch=${k}`)
    const body = await res.arrayBuffer()
    lat.push(performance.now() - t)
    if (res.headers.get('x-cache') !== 'miss' || body.byteLength < 100000) throw new Error(`expected a cold batch: ${res.status} ${res.headers.get('x-cache')} ${body.byteLength}`)
    if (k % 50 === 0) maxRss = Math.max(maxRss, (await rssOf(child.pid as number)).rss)
  }
  const end = await rssOf(child.pid as number)
  const metrics = await (await fetch(`${base}/metrics`)).text()
  const sum = Number(/shardfeed_batch_build_seconds_sum\{format="json"\} ([\d.e-]+)/.exec(metrics)?.[1])
  const count = Number(/shardfeed_batch_build_seconds_count\{format="json"\} (\d+)/.exec(metrics)?.[1])
  console.log('\n| figure | value |\n| --- | --- |')
  console.log(`| source | ${(size / 2 ** 20).toFixed(0)} MiB JSONL, ${records} records |`)
  console.log(`| registration (index + schema pass), POST to ready | ${(regMs / 1000).toFixed(2)} s = ${(size / 2 ** 20 / (regMs / 1000)).toFixed(0)} MiB/s |`)
  console.log(`| cold json batch of 128, request latency median / p99 | ${percentile(lat, 50).toFixed(2)} / ${percentile(lat, 99).toFixed(2)} ms |`)
  console.log(`| cold json batch build (server side, mean) | ${(1000 * sum / count).toFixed(2)} ms |`)
  console.log(`| RSS after registration / max while serving / end / peak (VmHWM) | ${afterReg.rss.toFixed(0)} / ${maxRss.toFixed(0)} / ${end.rss.toFixed(0)} / ${end.hwm.toFixed(0)} MiB |`)
} finally {
  child.kill('SIGTERM')
  await once(child, 'exit')
  await rm(dir, { recursive: true, force: true })
}
