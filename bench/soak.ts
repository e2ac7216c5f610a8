// `npm run soak`: a bounded soak test of the built service on loopback. Bounded caches, several
// datasets (shuffled strided pad, contiguous drop, CSV, unshuffled contiguous partial), and 64
// concurrent clients reading random batches of random datasets, epochs and formats for a fixed
// time. Every body is checked: its ETag, a reference digest per batch address, and for JSON and
// NDJSON the indices against the plan and the records against the source; Arrow's __index
// column is checked the first time an address is read. Exits 1 on any error or when the
// server's RSS breaks MEMORY_CACHE_BYTES + 150 MiB, at the end or at its peak (VmHWM).
import { createHash } from 'node:crypto'
import { mkdir, readdir, stat } from 'node:fs/promises'
import path from 'node:path'
import { isDeepStrictEqual } from 'node:util'
import { tableFromIPC } from 'apache-arrow'
import { Pool } from 'undici'
import { batchIndices, type PlanSpec } from '../src/plan/plan.js'
import { boolFlag, numberFlag, parseFlags, type FlagSpec } from './lib/args.js'
import { cleanupAll, installCleanupHandlers, setKeepDirs, tempDir } from './lib/cleanup.js'
import { profileMarkdown, summariseCpuProfile } from './lib/cpuprofile.js'
import { loadAverage, machineInfo, metricValue, procStatusBytes, rssByMapping, registerDataset, repoRoot, startShardfeed, type Descriptor } from './lib/server.js'
import { MiB, fmt, percentile } from './lib/stats.js'
import { prng, writeCsv, writeMixedJsonl } from './lib/synthetic.js'

const FLAGS: FlagSpec[] = [
  { name: 'seconds', env: 'SOAK_SECONDS', help: 'how long the clients read (default 60)' },
  { name: 'clients', env: 'SOAK_CLIENTS', help: 'concurrent clients, each one request at a time (default 64)' },
  { name: 'memory-mib', env: 'SOAK_MEMORY_MIB', help: 'MEMORY_CACHE_BYTES of the server, MiB (default 64)' },
  { name: 'disk-mib', env: 'SOAK_DISK_MIB', help: 'DISK_CACHE_BYTES of the server, MiB (default 256)' },
  { name: 'scale', env: 'SOAK_SCALE', help: 'multiplies the dataset sizes (default 1)' },
  { name: 'seed', env: 'SOAK_SEED', help: 'seed of the data and of the clients\' choices (default 1)' },
  { name: 'max-requests', env: 'SOAK_MAX_REQUESTS', help: 'stop after this many requests even before the time is up (default 5000000)' },
  { name: 'profile', env: 'SOAK_PROFILE', boolean: true, help: 'run the server under --cpu-prof and print its top self-time functions' },
  { name: 'keep', env: 'SOAK_KEEP', boolean: true, help: 'keep the temp dir' }
]

const FORMATS = ['json', 'ndjson', 'arrow'] as const
type Format = typeof FORMATS[number]
const MEDIA: Record<Format, string> = { json: 'application/json', ndjson: 'application/x-ndjson', arrow: 'application/vnd.apache.arrow.stream' }
const EPOCHS = 5
const RSS_HEADROOM = 150 * MiB

const started = performance.now()
function log (s: string): void {
  console.error(`[soak ${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${s}`)
}

interface SoakDataset {
  name: string
  descriptor: Descriptor
  plan: PlanSpec
  /** The record the source holds at index k, as JSON.parse gives it. */
  record: (k: number) => unknown
  /** Ranks that have at least one batch. */
  ranks: number[]
}

function etagOf (body: Buffer): string {
  return `"${createHash('sha256').update(body).digest('base64url').slice(0, 32)}"`
}

class Failures {
  count = 0
  readonly byKind = new Map<string, number>()
  readonly samples: string[] = []

  add (kind: string, detail: string): void {
    this.count++
    this.byKind.set(kind, (this.byKind.get(kind) ?? 0) + 1)
    if (this.samples.length < 10) this.samples.push(`${kind}: ${detail}`)
  }
}

async function main (): Promise<number> {
  installCleanupHandlers()
  const flags = parseFlags(process.argv.slice(2), FLAGS, 'usage: npm run soak -- [flags]')
  const seconds = numberFlag(flags, 'seconds', 60, 1)
  const clients = Math.floor(numberFlag(flags, 'clients', 64, 1))
  const memoryBytes = Math.floor(numberFlag(flags, 'memory-mib', 64, 0) * MiB)
  const diskBytes = Math.floor(numberFlag(flags, 'disk-mib', 256, 0) * MiB)
  const scale = numberFlag(flags, 'scale', 1, 0.01)
  const seed = Math.floor(numberFlag(flags, 'seed', 1, 0))
  const maxRequests = Math.floor(numberFlag(flags, 'max-requests', 5_000_000, 1))
  const withProfile = boolFlag(flags, 'profile', false)
  setKeepDirs(boolFlag(flags, 'keep', false))

  const tmp = await tempDir('shardfeed-soak-')
  const dataRoot = path.join(tmp, 'data')
  const cacheDir = path.join(tmp, 'var')
  await mkdir(dataRoot, { recursive: true })
  await mkdir(cacheDir, { recursive: true })

  const n = (x: number): number => Math.max(1, Math.round(x * scale))
  const linesA = writeMixedJsonl(path.join(dataRoot, 'a.jsonl'), n(40000), seed)
  const linesB = writeMixedJsonl(path.join(dataRoot, 'b.jsonl'), n(7001), seed + 1)
  const csvC = writeCsv(path.join(dataRoot, 'c.csv'), n(12000), seed + 2)
  const linesD = writeMixedJsonl(path.join(dataRoot, 'd.jsonl'), n(997), seed + 3)
  const parsedA = linesA.map((l) => JSON.parse(l) as unknown)
  const parsedB = linesB.map((l) => JSON.parse(l) as unknown)
  const parsedD = linesD.map((l) => JSON.parse(l) as unknown)
  log(`data: a.jsonl ${linesA.length}, b.jsonl ${linesB.length}, c.csv ${csvC.length}, d.jsonl ${linesD.length} records`)

  const server = await startShardfeed({
    DATA_ROOT: dataRoot,
    CACHE_DIR: cacheDir,
    MEMORY_CACHE_BYTES: String(memoryBytes),
    DISK_CACHE_BYTES: String(diskBytes)
  }, { cwd: tmp, ...(withProfile ? { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${path.join(tmp, 'profile')}`] } : {}) })
  log(`shardfeed pid ${server.pid} at ${server.url} (memory tier ${fmt(memoryBytes / MiB)} MiB, disk tier ${fmt(diskBytes / MiB)} MiB)`)

  const specs: Array<{ spec: Record<string, unknown>, record: (k: number) => unknown }> = [
    { spec: { name: 'soak-a', source: { format: 'jsonl', path: 'a.jsonl' }, batchSize: 64, numShards: 4, shuffle: true, seed: 3, remainder: 'pad', partition: 'strided' }, record: (k) => parsedA[k] },
    { spec: { name: 'soak-b', source: { format: 'jsonl', path: 'b.jsonl' }, batchSize: 50, numShards: 3, shuffle: true, seed: 11, remainder: 'drop', partition: 'contiguous' }, record: (k) => parsedB[k] },
    { spec: { name: 'soak-c', source: { format: 'csv', path: 'c.csv' }, batchSize: 100, numShards: 2, shuffle: true, seed: 5 }, record: (k) => csvC[k] },
    { spec: { name: 'soak-d', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 7, numShards: 5, shuffle: false, remainder: 'partial', partition: 'contiguous' }, record: (k) => parsedD[k] }
  ]
  const datasets: SoakDataset[] = []
  for (const { spec, record } of specs) {
    const { descriptor: d } = await registerDataset(server.url, spec)
    const plan: PlanSpec = { numRecords: d.numRecords, batchSize: d.batchSize, numShards: d.numShards, shuffle: d.shuffle, seed: d.seed, remainder: d.remainder, partition: d.partition }
    const ranks = d.batchesPerShard.flatMap((b, r) => b > 0 ? [r] : [])
    datasets.push({ name: d.name, descriptor: d, plan, record, ranks })
    log(`registered ${d.name}: ${d.numRecords} records, ${d.remainder}/${d.partition}${d.shuffle ? ', shuffled' : ''}, batches per shard ${JSON.stringify(d.batchesPerShard)}`)
  }

  const rssStart = procStatusBytes(server.pid, 'VmRSS')
  let rssMax = rssStart
  const rssTimer = setInterval(() => { rssMax = Math.max(rssMax, procStatusBytes(server.pid, 'VmRSS') || 0) }, 1000)

  const failures = new Failures()
  const reference = new Map<string, string>()
  const latencies: number[] = []
  const perFormat: Record<Format, number> = { json: 0, ndjson: 0, arrow: 0 }
  let requests = 0
  let bodyBytes = 0
  let digestChecks = 0
  let recordChecks = 0
  const pool = new Pool(server.url, { connections: clients, pipelining: 1, headersTimeout: 30000, bodyTimeout: 30000 })
  const deadline = performance.now() + seconds * 1000

  function checkJson (ds: SoakDataset, body: Buffer, epoch: number, rank: number, i: number, where: string): void {
    const expected = batchIndices(ds.plan, epoch, rank, i)
    let parsed: { dataset?: unknown, epoch?: unknown, rank?: unknown, index?: unknown, numBatches?: unknown, indices?: unknown, records?: unknown[] }
    try {
      parsed = JSON.parse(body.toString('utf8'))
    } catch (err) {
      failures.add('json-unparsable', `${where}: ${(err as Error).message}`)
      return
    }
    if (parsed.dataset !== ds.name || parsed.epoch !== epoch || parsed.rank !== rank || parsed.index !== i || parsed.numBatches !== ds.descriptor.batchesPerShard[rank]) {
      failures.add('json-envelope', `${where}: ${JSON.stringify({ ...parsed, indices: undefined, records: undefined })}`)
    }
    if (!isDeepStrictEqual(parsed.indices, expected)) {
      failures.add('json-indices', `${where}: got ${JSON.stringify(parsed.indices).slice(0, 120)}, plan says ${JSON.stringify(expected).slice(0, 120)}`)
      return
    }
    const records = parsed.records ?? []
    if (records.length !== expected.length) {
      failures.add('json-records', `${where}: ${records.length} records for ${expected.length} indices`)
      return
    }
    for (let k = 0; k < expected.length; k++) {
      recordChecks++
      if (!isDeepStrictEqual(records[k], ds.record(expected[k] as number))) {
        failures.add('json-record', `${where}: record ${k} (source index ${expected[k]}) differs from the source: ${JSON.stringify(records[k]).slice(0, 160)}`)
        return
      }
    }
  }

  function checkNdjson (ds: SoakDataset, body: Buffer, epoch: number, rank: number, i: number, where: string): void {
    const expected = batchIndices(ds.plan, epoch, rank, i)
    const lines = body.toString('utf8').split('\n').filter((l) => l !== '')
    if (lines.length !== expected.length) {
      failures.add('ndjson-lines', `${where}: ${lines.length} lines for ${expected.length} indices`)
      return
    }
    for (let k = 0; k < lines.length; k++) {
      let row: { index?: unknown, record?: unknown }
      try {
        row = JSON.parse(lines[k] as string)
      } catch (err) {
        failures.add('ndjson-unparsable', `${where}: line ${k}: ${(err as Error).message}`)
        return
      }
      recordChecks++
      if (row.index !== expected[k] || !isDeepStrictEqual(row.record, ds.record(expected[k] as number))) {
        failures.add('ndjson-record', `${where}: line ${k} (plan index ${expected[k]}): ${(lines[k] as string).slice(0, 160)}`)
        return
      }
    }
  }

  function checkArrow (ds: SoakDataset, body: Buffer, epoch: number, rank: number, i: number, where: string): void {
    const expected = batchIndices(ds.plan, epoch, rank, i)
    try {
      const table = tableFromIPC(body)
      const col = table.getChild('__index')
      const got = col === null ? [] : Array.from(col.toArray() as ArrayLike<bigint | number>, (v) => Number(v))
      if (table.numRows !== expected.length || !isDeepStrictEqual(got, expected)) {
        failures.add('arrow-index', `${where}: __index ${JSON.stringify(got).slice(0, 120)}, plan says ${JSON.stringify(expected).slice(0, 120)}`)
      }
    } catch (err) {
      failures.add('arrow-unreadable', `${where}: ${(err as Error).message}`)
    }
  }

  async function client (id: number): Promise<void> {
    const rand = prng(seed * 1000 + id + 17)
    const pick = (k: number): number => Math.floor(rand() * k)
    while (performance.now() < deadline && requests < maxRequests) {
      const ds = datasets[pick(datasets.length)] as SoakDataset
      const epoch = pick(EPOCHS)
      const rank = ds.ranks[pick(ds.ranks.length)] as number
      const i = pick(ds.descriptor.batchesPerShard[rank] as number)
      const format = FORMATS[pick(FORMATS.length)] as Format
      const key = `${ds.name}/${epoch}/${rank}/${i}/${format}`
      const where = `GET ${key}`
      requests++
      perFormat[format]++
      const t0 = performance.now()
      let status: number
      let body: Buffer
      let headers: Record<string, string | string[] | undefined>
      try {
        const res = await pool.request({ method: 'GET', path: `/datasets/${ds.name}/shards/${rank}/batches/${i}?epoch=${epoch}&format=${format}` })
        body = Buffer.from(await res.body.arrayBuffer())
        status = res.statusCode
        headers = res.headers
      } catch (err) {
        latencies.push(performance.now() - t0)
        failures.add('request', `${where}: ${(err as Error).message}`)
        continue
      }
      latencies.push(performance.now() - t0)
      bodyBytes += body.length
      if (status !== 200) {
        failures.add(`http-${status}`, `${where}: ${body.toString('utf8', 0, 200)}`)
        continue
      }
      if (!String(headers['content-type'] ?? '').startsWith(MEDIA[format])) failures.add('content-type', `${where}: ${String(headers['content-type'])}`)
      if (headers.etag !== etagOf(body)) failures.add('etag', `${where}: header ${String(headers.etag)}, body digest ${etagOf(body)}`)
      const digest = createHash('sha256').update(body).digest('hex')
      const ref = reference.get(key)
      if (ref === undefined) {
        reference.set(key, digest)
        if (format === 'arrow') checkArrow(ds, body, epoch, rank, i, where)
      } else {
        digestChecks++
        if (ref !== digest) failures.add('digest', `${where}: body differs from the first read of this address`)
      }
      if (format === 'json') checkJson(ds, body, epoch, rank, i, where)
      else if (format === 'ndjson') checkNdjson(ds, body, epoch, rank, i, where)
    }
  }

  log(`${clients} clients for ${seconds} s: random dataset, epoch 0..${EPOCHS - 1}, rank, batch and format (${FORMATS.join(', ')})`)
  const progress = setInterval(() => { log(`  ${requests} requests, ${failures.count} errors, server RSS ${fmt(procStatusBytes(server.pid, 'VmRSS') / MiB)} MiB`) }, 10000)
  const t0 = performance.now()
  await Promise.all(Array.from({ length: clients }, async (_, id) => { await client(id) }))
  const wallSec = (performance.now() - t0) / 1000
  clearInterval(progress)
  clearInterval(rssTimer)
  await pool.close()

  const rssEnd = procStatusBytes(server.pid, 'VmRSS')
  rssMax = Math.max(rssMax, rssEnd)
  const hwm = procStatusBytes(server.pid, 'VmHWM')
  // File-backed pages (the node binary, LevelDB's memory-mapped table files) count in VmRSS
  // but are page cache the kernel reclaims; anonymous pages are the process's own memory.
  const rssAnon = procStatusBytes(server.pid, 'RssAnon')
  const rssFile = procStatusBytes(server.pid, 'RssFile')
  const parts = rssByMapping(server.pid)
  const metric = async (name: string, labels = ''): Promise<number> => await metricValue(server.url, name, labels)
  const m = {
    memHits: await metric('shardfeed_cache_hits_total', 'tier="memory"'),
    diskHits: await metric('shardfeed_cache_hits_total', 'tier="disk"'),
    builds: await metric('shardfeed_cache_misses_total', 'tier="disk"'),
    memEvictions: await metric('shardfeed_cache_evictions_total', 'tier="memory"'),
    diskEvictions: await metric('shardfeed_cache_evictions_total', 'tier="disk"'),
    memBytes: await metric('shardfeed_cache_bytes', 'tier="memory"'),
    diskBytes: await metric('shardfeed_cache_bytes', 'tier="disk"'),
    corrupt: await metric('shardfeed_cache_corrupt_total'),
    heapTotal: await metric('nodejs_heap_size_total_bytes'),
    heapUsed: await metric('nodejs_heap_size_used_bytes'),
    external: await metric('nodejs_external_memory_bytes')
  }
  const exitCode = await server.stop()
  const serverLog = server.output().trim().split('\n').filter((l) => l !== '')

  const bound = memoryBytes + RSS_HEADROOM
  // The peak too: the kernel's high-water mark catches what one-second samples miss.
  const rssOk = rssEnd < bound && hwm < bound
  // What LevelDB's table files hold, deleted bodies included: the disk tier's bound on disk,
  // with room for deletions not yet tombstoned (up to 64 MiB between index writes) and for
  // compaction under way.
  const tableBytes = await ldbBytes(path.join(cacheDir, 'db'))
  const diskBound = diskBytes * 1.25 + 64 * MiB
  const diskOk = tableBytes <= diskBound
  const machine = machineInfo()
  const rows = [
    ['duration', `${wallSec.toFixed(1)} s, ${clients} clients`],
    ['requests', `${requests} (${fmt(requests / wallSec, 0)} req/s, ${fmt(bodyBytes / MiB / wallSec)} MiB/s of bodies; json ${perFormat.json}, ndjson ${perFormat.ndjson}, arrow ${perFormat.arrow})`],
    ['errors', `${failures.count}${failures.count > 0 ? ` (${[...failures.byKind].map(([k, v]) => `${k} ${v}`).join(', ')})` : ''}`],
    ['checks', `${requests} ETags, ${digestChecks} repeat reads against their reference digest (${reference.size} distinct addresses), ${recordChecks} records against the source`],
    ['latency', `p50 ${fmt(percentile(latencies, 50))} ms, p99 ${fmt(percentile(latencies, 99))} ms, max ${fmt(percentile(latencies, 100))} ms`],
    ['server RSS', `start ${fmt(rssStart / MiB)} MiB, end ${fmt(rssEnd / MiB)} MiB (anonymous ${fmt(rssAnon / MiB)}, file-backed ${fmt(rssFile / MiB)}), max sampled ${fmt(rssMax / MiB)} MiB, VmHWM ${fmt(hwm / MiB)} MiB`],
    ...(parts !== undefined ? [['server RSS by mapping', `LevelDB tables ${fmt(parts.levelTables / MiB)} MiB, node binary ${fmt(parts.nodeBinary / MiB)} MiB, other files ${fmt(parts.otherFiles / MiB)} MiB, malloc heap ${fmt(parts.heap / MiB)} MiB, other anonymous ${fmt(parts.anonymous / MiB)} MiB`]] : []),
    ['server memory at the end', `V8 heap ${fmt(m.heapUsed / MiB)} MiB used of ${fmt(m.heapTotal / MiB)} MiB, external (Buffers) ${fmt(m.external / MiB)} MiB; the rest of RSS (${fmt((rssEnd - m.heapTotal - m.external) / MiB)} MiB) is code, native allocations (LevelDB, malloc arenas) and stacks`],
    ['RSS bound', `end and VmHWM < MEMORY_CACHE_BYTES + 150 MiB = ${fmt(bound / MiB)} MiB: ${rssOk ? 'ok' : 'BROKEN'}`],
    ['disk files', `LevelDB tables ${fmt(tableBytes / MiB)} MiB after the run, for DISK_CACHE_BYTES ${fmt(diskBytes / MiB)} MiB: ${diskOk ? 'ok' : 'BROKEN'} (bound 1.25 x + 64 MiB = ${fmt(diskBound / MiB)} MiB)`],
    ['cache', `memory hits ${m.memHits}, disk hits ${m.diskHits}, builds ${m.builds}; evictions memory ${m.memEvictions}, disk ${m.diskEvictions}; held memory ${fmt(m.memBytes / MiB)} MiB, disk ${fmt(m.diskBytes / MiB)} MiB; corrupt ${m.corrupt}`],
    ['server exit', `${String(exitCode)} after SIGTERM`],
    ['machine', `${machine.cpu}, ${machine.cores} cores, node ${machine.node}, load average ${loadAverage()}`]
  ]
  console.log('\n| soak | result |\n| --- | --- |\n' + rows.map(([k, v]) => `| ${k} | ${v} |`).join('\n'))
  if (failures.samples.length > 0) console.log('\nFirst errors:\n' + failures.samples.map((s) => `- ${s}`).join('\n'))
  if (serverLog.length > 0) {
    console.log(`\nServer log (LOG_LEVEL=warn): ${serverLog.length} lines${serverLog.length > 8 ? ', last 8' : ''}:\n` + serverLog.slice(-8).map((l) => `    ${l.slice(0, 400)}`).join('\n'))
  }
  const ok = failures.count === 0 && rssOk && diskOk && requests > 0
  if (withProfile) {
    const file = (await readdir(path.join(tmp, 'profile')).catch(() => [])).find((f) => f.endsWith('.cpuprofile'))
    if (file !== undefined) console.log('\nServer CPU profile:\n\n' + profileMarkdown(summariseCpuProfile(path.join(tmp, 'profile', file), repoRoot, 25)))
  }
  console.log(`\n${ok ? 'PASS' : 'FAIL'}: ${failures.count} errors in ${requests} requests; end RSS ${fmt(rssEnd / MiB)} MiB, VmHWM ${fmt(hwm / MiB)} MiB; bound ${fmt(bound / MiB)} MiB${rssOk ? '' : ' BROKEN'}`)
  return ok ? 0 : 1
}

async function ldbBytes (dir: string): Promise<number> {
  let sum = 0
  for (const name of await readdir(dir).catch(() => [])) if (name.endsWith('.ldb')) sum += (await stat(path.join(dir, name))).size
  return sum
}

let exitCode = 1
try {
  exitCode = await main()
} catch (err) {
  console.error(err)
  exitCode = 1
} finally {
  await cleanupAll()
}
process.exit(exitCode)
