// `npm run bench`: throughput, latency and memory of shardfeed against nginx serving the same
// bytes as static files. One bounded run (about 3-4 minutes at the default size): synthetic
// data, registration, cold epochs (4 trainers), warm load (wrk when installed, else autocannon
// in its own process) on the memory tier, the disk tier and nginx, peak RSS; one markdown
// table on stdout, appended to bench/RESULTS.md. bench/README.md says what each number means.
import { appendFile, cp, mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises'
import { availableParallelism } from 'node:os'
import path from 'node:path'
import { boolFlag, numberFlag, parseFlags, type FlagSpec } from './lib/args.js'
import { cpuBetween, cpuSnapshot, processCpuSec, waitForIdle } from './lib/cpu.js'
import { cleanupAll, installCleanupHandlers, setKeepDirs, tempDir } from './lib/cleanup.js'
import { profileMarkdown, profileThread, summariseCpuProfile } from './lib/cpuprofile.js'
import { pickLoadTool, runLoad, type LoadResult } from './lib/loadgen.js'
import { ensureNginx, startNginx } from './lib/nginx.js'
import { startNodeStatic } from './lib/node-static.js'
import { loadAverage, machineInfo, procStatusBytes, registerDataset, repoRoot, startShardfeed, type Descriptor } from './lib/server.js'
import { MiB, fmt, fmtRatio, median, sleep } from './lib/stats.js'
import { writeCsv, writeVectorDataset } from './lib/synthetic.js'
import { runEpoch, sampleTiers, type EpochRun } from './lib/trainers.js'

const FLAGS: FlagSpec[] = [
  { name: 'records', env: 'BENCH_RECORDS', help: 'records in the synthetic dataset (default 50000; 5000 with --quick)' },
  { name: 'quick', env: 'BENCH_QUICK', boolean: true, help: 'smoke run: 5000 records, 3 s loads, 1 cold repeat, RESULTS.md untouched' },
  { name: 'duration', env: 'BENCH_DURATION', help: 'seconds of warm load per target, split into rounds (default 20; 4 with --quick)' },
  { name: 'rounds', env: 'BENCH_ROUNDS', help: 'warm load rounds; each runs every target once (default 5; 2 with --quick)' },
  { name: 'connections', env: 'BENCH_CONNECTIONS', help: 'load generator connections (default 32)' },
  { name: 'loadgen', env: 'BENCH_LOADGEN', help: 'load generator: auto (wrk when installed, else autocannon; the default), wrk or autocannon' },
  { name: 'repeats', env: 'BENCH_REPEATS', help: 'cold epochs per target, and first JSONL registrations (fresh servers); the median is reported (default 3; 1 with --quick)' },
  { name: 'prefetch0', env: 'BENCH_PREFETCH0', boolean: true, help: 'also run cold epochs with PREFETCH_BATCHES=0 (default on)' },
  { name: 'profile', env: 'BENCH_PROFILE', boolean: true, help: 'CPU-profile the server in an extra warm memory-tier json run and summarise it (default off)' },
  { name: 'write', env: 'BENCH_WRITE', boolean: true, help: 'append the run to bench/RESULTS.md (default on; off with --quick)' },
  { name: 'keep', env: 'BENCH_KEEP', boolean: true, help: 'keep the temp dir (data, cache, nginx root, profiles)' },
  { name: 'wait-idle', env: 'BENCH_WAIT_IDLE', help: 'seconds to wait at the start for the machine to be under 25% busy (default 60; 0 = do not wait)' },
  { name: 'budget', env: 'BENCH_BUDGET', help: 'seconds; optional parts (extra cold repeats, PREFETCH_BATCHES=0) are skipped past it (default 200)' }
]

const DIM = 128
const BATCH_SIZE = 128
const NUM_SHARDS = 4
const SEED = 1
// The CSV table registered for its rate (short rows: the soak's shape, 12 MiB).
const CSV_ROWS = 400_000
const MEDIA = { json: 'application/json', arrow: 'application/vnd.apache.arrow.stream' }
// Disk-tier writes of a cold epoch go on after its last answer; its CPU is read this long after.
const COLD_SETTLE_MS = 500

const started = performance.now()
const elapsedSec = (): number => (performance.now() - started) / 1000
function log (s: string): void {
  console.error(`[bench ${elapsedSec().toFixed(1).padStart(6)} s] ${s}`)
}

type Format = 'json' | 'arrow'

/** Batch paths of every rank of one epoch, rank by rank, in order. */
function shardfeedPaths (d: Descriptor, epoch: number, format: Format): string[][] {
  return d.batchesPerShard.map((n, rank) => Array.from({ length: n }, (_, i) => `/datasets/${d.name}/shards/${rank}/batches/${i}?epoch=${epoch}&format=${format}`))
}

function nginxPaths (d: Descriptor, format: Format): string[][] {
  return d.batchesPerShard.map((n, rank) => Array.from({ length: n }, (_, i) => `/${format}/${rank}/${i}.${format}`))
}

/** Every URL of an epoch in global-step order (rank 0..W-1 of step 0, then step 1, ...). */
function interleave (paths: string[][]): string[] {
  const out: string[] = []
  const longest = Math.max(...paths.map((p) => p.length))
  for (let i = 0; i < longest; i++) for (const p of paths) if (i < p.length) out.push(p[i] as string)
  return out
}

interface Cold { runs: EpochRun[], wallMs: number, bodyBytes: number, records: number, retries: number }

function summariseCold (runs: EpochRun[], records: number): Cold {
  const walls = runs.map((r) => r.wallMs)
  return { runs, wallMs: median(walls), bodyBytes: runs[0]?.bodyBytes ?? 0, records, retries: runs.reduce((a, r) => a + r.retries, 0) }
}

function coldCell (c: Cold): string {
  const s = c.wallMs / 1000
  return `${s.toFixed(2)} s · ${fmt(c.records / s, 0)} rec/s · ${fmt(c.bodyBytes / MiB / s)} MiB/s`
}

/**
 * What a cold epoch's CPU allows: the server's CPU per cold epoch (median) and the trainers'
 * (median, same client for nginx) spread over every core of the machine give the shortest
 * wall any scheduling could reach, so the best ratio to nginx this CPU allows, and the server
 * CPU the target leaves.
 */
function cpuFloor (format: string, cold: EpochRun[], serverCpu: number[], warmServerCpu: number, nginx: Cold, target: number): { row: Row, note: string } {
  const cores = availableParallelism()
  const server = median(serverCpu)
  const trainers = median(cold.map((r) => r.clientCpuSec))
  const floorSec = (server + trainers) / cores
  const budget = (cores * nginx.wallMs / 1000) / target - trainers
  const ngTrainers = median(nginx.runs.map((r) => r.clientCpuSec))
  const ngMachine = median(nginx.runs.map((r) => r.machineCpuSec))
  return {
    row: {
      metric: `cold epoch, ${format}: the shortest wall its CPU allows`,
      shardfeed: `${(floorSec).toFixed(2)} s: server ${server.toFixed(2)} core-s (serving ${warmServerCpu.toFixed(2)}, building and storing ${(server - warmServerCpu).toFixed(2)}) + trainers ${trainers.toFixed(2)}, over ${cores} cores`,
      baseline: `nginx ${(nginx.wallMs / 1000).toFixed(2)} s; ≥ ${target}x leaves the server ${budget.toFixed(2)} core-s`,
      ratio: fmtRatio((nginx.wallMs / 1000) / floorSec),
      target: '(info)',
      met: '–'
    },
    note: `- ${format} epochs' CPU (core-s; machine: every process, and its share of ${cores} cores over the wall): cold ${cold.map((r) => `machine ${r.machineCpuSec.toFixed(2)} (${r.machineBusyPct.toFixed(0)}%), trainers ${r.clientCpuSec.toFixed(2)}`).join('; ')}; nginx ${nginx.runs.map((r) => `machine ${r.machineCpuSec.toFixed(2)} (${r.machineBusyPct.toFixed(0)}%), trainers ${r.clientCpuSec.toFixed(2)}`).join('; ')} (medians: machine ${ngMachine.toFixed(2)}, trainers ${ngTrainers.toFixed(2)}).`
  }
}

function loadCell (r: LoadResult): string {
  return `${fmt(r.rpsMedian, 0)} req/s · ${fmt(r.bytesPerSecMedian / MiB)} MiB/s · p50 ${fmt(r.latencyP50Ms)} / p99 ${fmt(r.latencyP99Ms)} ms`
}

interface Row { metric: string, shardfeed: string, baseline: string, ratio: string, target: string, met: string }

function verdict (ratio: number, min: number): string {
  if (!Number.isFinite(ratio)) return 'n/a'
  return ratio >= min ? '**met**' : '**not met**'
}

function tableMarkdown (rows: Row[]): string {
  const head = ['| metric | shardfeed | baseline | ratio | target | met |', '| --- | --- | --- | ---: | --- | --- |']
  return [...head, ...rows.map((r) => `| ${r.metric} | ${r.shardfeed} | ${r.baseline} | ${r.ratio} | ${r.target} | ${r.met} |`)].join('\n')
}

interface Warm { rounds: LoadResult[], rps: number, bytesPerSec: number, p50: number, p99: number, non2xx: number, errors: number }

function summariseWarm (rounds: LoadResult[]): Warm {
  return {
    rounds,
    rps: median(rounds.map((r) => r.rpsMedian)),
    bytesPerSec: median(rounds.map((r) => r.bytesPerSecMedian)),
    p50: median(rounds.map((r) => r.latencyP50Ms)),
    p99: median(rounds.map((r) => r.latencyP99Ms)),
    non2xx: rounds.reduce((a, r) => a + r.non2xx, 0),
    errors: rounds.reduce((a, r) => a + r.errors + r.timeouts, 0)
  }
}

function warmCell (w: Warm): string {
  return `${fmt(w.rps, 0)} req/s · ${fmt(w.bytesPerSec / MiB)} MiB/s · p50 ${fmt(w.p50)} / p99 ${fmt(w.p99)} ms`
}

/** Median over rounds of the per-round ratio a/b (rounds ran back to back, so noise pairs up). */
function pairedRatio (a: Warm, b: Warm): number {
  return median(a.rounds.map((r, k) => r.rpsMedian / (b.rounds[k]?.rpsMedian ?? NaN)))
}

async function main (): Promise<void> {
  installCleanupHandlers()
  const flags = parseFlags(process.argv.slice(2), FLAGS, 'usage: npm run bench -- [flags]')
  const quick = boolFlag(flags, 'quick', false)
  const numRecords = Math.floor(numberFlag(flags, 'records', quick ? 5000 : 50000, 1))
  const durationSec = numberFlag(flags, 'duration', quick ? 4 : 20, 1)
  const rounds = Math.floor(numberFlag(flags, 'rounds', quick ? 2 : 5, 1))
  const roundSec = Math.max(1, Math.round(durationSec / rounds))
  const connections = Math.floor(numberFlag(flags, 'connections', 32, 1))
  const loadgen = pickLoadTool(String(flags.get('loadgen') ?? 'auto'))
  const repeats = Math.floor(numberFlag(flags, 'repeats', quick ? 1 : 3, 1))
  const regSamples = repeats
  const withPrefetch0 = boolFlag(flags, 'prefetch0', true)
  const withProfile = boolFlag(flags, 'profile', false)
  const write = boolFlag(flags, 'write', !quick)
  const budgetSec = numberFlag(flags, 'budget', 200, 1)
  setKeepDirs(boolFlag(flags, 'keep', false))
  const waitIdleSec = numberFlag(flags, 'wait-idle', 60, 0)
  const busyAtStart = waitIdleSec > 0 ? await waitForIdle(waitIdleSec, 25, log) : NaN
  const machine = machineInfo()
  const loadStart = loadAverage()
  const cpuStart = cpuSnapshot()
  const wallStart = performance.now()

  const tmp = await tempDir('shardfeed-bench-')
  const dataRoot = path.join(tmp, 'data')
  const cacheDir = path.join(tmp, 'var')
  const diskCacheDir = path.join(tmp, 'var-disk')
  const work = path.join(tmp, 'work')
  const nginxRoot = path.join(tmp, 'www')
  for (const d of [dataRoot, cacheDir, work, nginxRoot]) await mkdir(d, { recursive: true })
  log(`temp dir ${tmp}`)
  log(`load generator: ${loadgen.tool} ${loadgen.version}`)

  const nginxBin = ensureNginx(log)

  log(`generating ${numRecords} records x ${DIM} floats (JSONL and float32 .npy)`)
  const files = writeVectorDataset(path.join(dataRoot, 'vectors.jsonl'), path.join(dataRoot, 'vectors.npy'), numRecords, DIM, SEED)
  log(`vectors.jsonl ${fmt(files.jsonlBytes / MiB)} MiB, vectors.npy ${fmt(files.npyBytes / MiB)} MiB`)

  // Large sources register synchronously (POST waits until ready), so POST..201 is the time.
  const baseEnv = { DATA_ROOT: dataRoot, INDEX_SYNC_MAX_BYTES: String(2 ** 40) }
  const env = (extra: Record<string, string> = {}): Record<string, string> => ({ ...baseEnv, CACHE_DIR: cacheDir, ...extra })
  let loadSeq = 0
  const load = async (title: string, origin: string, paths: string[], seconds: number): Promise<LoadResult> => {
    const r = await runLoad({ title, origin, paths, connections, durationSec: seconds }, path.join(work, `load-${loadSeq++}.json`), loadgen.tool)
    log(`load ${title}: ${loadCell(r)}; non-2xx ${r.non2xx}, errors ${r.errors}`)
    return r
  }

  // 1. The product as configured by default (memory 256 MiB, disk 4 GiB, read-ahead 4).
  let s1 = await startShardfeed(env(), { cwd: work })
  log(`shardfeed pid ${s1.pid} at ${s1.url}`)
  const regJsonl = await registerDataset(s1.url, { name: 'vec-jsonl', source: { format: 'jsonl', path: 'vectors.jsonl' }, batchSize: BATCH_SIZE, numShards: NUM_SHARDS, shuffle: true, seed: SEED })
  const regNpy = await registerDataset(s1.url, { name: 'vec-npy', source: { format: 'npy', path: 'vectors.npy' }, batchSize: BATCH_SIZE, numShards: NUM_SHARDS, shuffle: true, seed: SEED })
  const hwmReg = procStatusBytes(s1.pid, 'VmHWM')
  const dJ = regJsonl.descriptor
  const dN = regNpy.descriptor
  // A server's first JSONL registration, also on fresh servers with stores of their own (so
  // each indexes the file again): the median of three, as for the cold epochs, since one
  // sample moved by a quarter with the machine's speed.
  const regJsonlMs = [regJsonl.ms]
  for (let k = 1; k < regSamples; k++) {
    const sk = await startShardfeed({ ...baseEnv, CACHE_DIR: path.join(tmp, `var-reg-${k}`) }, { cwd: work })
    regJsonlMs.push((await registerDataset(sk.url, { name: 'vec-jsonl', source: { format: 'jsonl', path: 'vectors.jsonl' }, batchSize: BATCH_SIZE, numShards: NUM_SHARDS, shuffle: true, seed: SEED })).ms)
    await sk.stop()
  }
  const regJsonlMiBs = files.jsonlBytes / MiB / (median(regJsonlMs) / 1000)
  const regNpyMiBs = files.npyBytes / MiB / (regNpy.ms / 1000)
  log(`registered: jsonl ${regJsonlMs.map((ms) => ms.toFixed(0)).join(', ')} ms (median ${fmt(regJsonlMiBs)} MiB/s), npy ${regNpy.ms.toFixed(0)} ms (${fmt(regNpyMiBs)} MiB/s)`)

  // 2. Cold epoch 0, keeping the bodies: they become nginx's files.
  const coldRunsJ: EpochRun[] = []
  const coldRunsA: EpochRun[] = []
  const ngRunsJ: EpochRun[] = []
  const ngRunsA: EpochRun[] = []
  // Server CPU per cold epoch (all threads, the disk writes that follow included): steadier
  // than walls on a shared machine, where nginx's own epoch swings by 3x.
  const coldCpuJ: number[] = []
  const coldCpuA: number[] = []
  const serverCpu = async (run: () => Promise<EpochRun>, into: number[]): Promise<EpochRun> => {
    const before = processCpuSec(s1.pid)
    const r = await run()
    await sleep(COLD_SETTLE_MS)
    into.push(processCpuSec(s1.pid) - before)
    return r
  }
  const cold = async (epoch: number, keepBodies: boolean): Promise<void> => {
    const j = await serverCpu(async () => await runEpoch(s1.url, shardfeedPaths(dJ, epoch, 'json'), { keepBodies }), coldCpuJ)
    log(`cold json epoch ${epoch}: ${(j.wallMs / 1000).toFixed(2)} s, server CPU ${coldCpuJ.at(-1)!.toFixed(2)} s, X-Cache ${JSON.stringify(j.xcache)}`)
    coldRunsJ.push(j)
    const a = await serverCpu(async () => await runEpoch(s1.url, shardfeedPaths(dN, epoch, 'arrow'), { keepBodies }), coldCpuA)
    log(`cold arrow epoch ${epoch}: ${(a.wallMs / 1000).toFixed(2)} s, server CPU ${coldCpuA.at(-1)!.toFixed(2)} s, X-Cache ${JSON.stringify(a.xcache)}`)
    coldRunsA.push(a)
  }
  await cold(0, true)
  for (const [fmtName, run] of [['json', coldRunsJ[0]], ['arrow', coldRunsA[0]]] as const) {
    const bodies = run?.bodies ?? []
    for (let rank = 0; rank < bodies.length; rank++) {
      const dir = path.join(nginxRoot, fmtName, String(rank))
      await mkdir(dir, { recursive: true })
      const list = bodies[rank] as Buffer[]
      for (let i = 0; i < list.length; i++) await writeFile(path.join(dir, `${i}.${fmtName}`), list[i] as Buffer)
    }
    if (run !== undefined) delete run.bodies
  }

  // 3. nginx with the same bodies; its epochs alternate with shardfeed's cold epochs (each
  // repeat of shardfeed's reads another, uncached epoch), so that noise hits both alike.
  const ngx = await startNginx(nginxBin, nginxRoot, path.join(work, 'nginx'), { json: MEDIA.json, arrow: MEDIA.arrow })
  log(`nginx at ${ngx.url}`)
  const nodeStatic = await startNodeStatic(nginxRoot, { json: MEDIA.json, arrow: MEDIA.arrow })
  log(`node:http baseline at ${nodeStatic.url}`)
  const nginxEpoch = async (): Promise<void> => {
    ngRunsJ.push(await runEpoch(ngx.url, nginxPaths(dJ, 'json')))
    ngRunsA.push(await runEpoch(ngx.url, nginxPaths(dN, 'arrow')))
    log(`nginx epoch: json ${(ngRunsJ.at(-1)!.wallMs / 1000).toFixed(2)} s, arrow ${(ngRunsA.at(-1)!.wallMs / 1000).toFixed(2)} s`)
  }
  await nginxEpoch()
  if (ngRunsJ[0]!.bodyBytes !== coldRunsJ[0]!.bodyBytes || ngRunsA[0]!.bodyBytes !== coldRunsA[0]!.bodyBytes) throw new Error('nginx served other bytes than shardfeed')
  for (let rep = 1; rep < repeats; rep++) {
    if (elapsedSec() > budgetSec * 0.3) { log('time budget: no more cold repeats'); break }
    await cold(100 + rep, false)
    await nginxEpoch()
  }
  const coldJ = summariseCold(coldRunsJ, dJ.numRecords)
  const coldA = summariseCold(coldRunsA, dN.numRecords)
  const hwmCold = procStatusBytes(s1.pid, 'VmHWM')
  await s1.stop()

  // The disk-tier server gets its own copy of the store (LevelDB allows one process a store).
  await cp(cacheDir, diskCacheDir, { recursive: true })

  // 4. Cold epochs without read-ahead (optional, budget permitting), again beside nginx.
  let coldJ0: Cold | undefined
  let coldA0: Cold | undefined
  let ngColdJ0: Cold | undefined
  let ngColdA0: Cold | undefined
  if (withPrefetch0 && elapsedSec() < budgetSec * 0.45) {
    const s3 = await startShardfeed(env({ PREFETCH_BATCHES: '0' }), { cwd: work })
    const j = await runEpoch(s3.url, shardfeedPaths(dJ, 200, 'json'))
    const a = await runEpoch(s3.url, shardfeedPaths(dN, 200, 'arrow'))
    await s3.stop()
    const nj = await runEpoch(ngx.url, nginxPaths(dJ, 'json'))
    const na = await runEpoch(ngx.url, nginxPaths(dN, 'arrow'))
    log(`cold, PREFETCH_BATCHES=0 (epoch 200): json ${(j.wallMs / 1000).toFixed(2)} s, arrow ${(a.wallMs / 1000).toFixed(2)} s; nginx ${(nj.wallMs / 1000).toFixed(2)} s, ${(na.wallMs / 1000).toFixed(2)} s`)
    coldJ0 = summariseCold([j], dJ.numRecords)
    coldA0 = summariseCold([a], dN.numRecords)
    ngColdJ0 = summariseCold([nj], dJ.numRecords)
    ngColdA0 = summariseCold([na], dN.numRecords)
  } else if (withPrefetch0) {
    log('time budget: skipping the PREFETCH_BATCHES=0 cold epochs')
  }

  // 5. Warm: the default server again (memory tier empty, disk tier full): a pass brings
  // epoch 0 into memory, a second trainer pass must hit memory only. Beside it, the disk-tier
  // server (memory tier off, so every answer comes from LevelDB) on the copied store.
  s1 = await startShardfeed(env(), { cwd: work })
  const s2 = await startShardfeed({ ...baseEnv, CACHE_DIR: diskCacheDir, MEMORY_CACHE_BYTES: '0' }, { cwd: work })
  const pathsJ0 = shardfeedPaths(dJ, 0, 'json')
  const pathsA0 = shardfeedPaths(dN, 0, 'arrow')
  await runEpoch(s1.url, pathsJ0)
  await runEpoch(s1.url, pathsA0)
  // The second pass only serves (memory hits): its server CPU, read as a cold epoch's is (the
  // same settling time after it), is what serving an epoch costs, so that a cold epoch's CPU
  // splits into serving, and building and storing.
  const warmCpuJ: number[] = []
  const warmCpuA: number[] = []
  const warmJ = await serverCpu(async () => await runEpoch(s1.url, pathsJ0), warmCpuJ)
  const warmA = await serverCpu(async () => await runEpoch(s1.url, pathsA0), warmCpuA)
  log(`warm trainer pass: json ${(warmJ.wallMs / 1000).toFixed(2)} s ${JSON.stringify(warmJ.xcache)} (server CPU ${warmCpuJ[0]!.toFixed(2)} s), arrow ${(warmA.wallMs / 1000).toFixed(2)} s ${JSON.stringify(warmA.xcache)} (${warmCpuA[0]!.toFixed(2)} s)`)
  // The same trainers against the bare node:http server holding every body: the fastest any
  // Node server could serve an epoch here, so the ceiling of a cold epoch too.
  const nodeEpochJ = await runEpoch(nodeStatic.url, nginxPaths(dJ, 'json'))
  const nodeEpochA = await runEpoch(nodeStatic.url, nginxPaths(dN, 'arrow'))
  log(`node:http epoch: json ${(nodeEpochJ.wallMs / 1000).toFixed(2)} s, arrow ${(nodeEpochA.wallMs / 1000).toFixed(2)} s`)
  const sampleJ = interleave(pathsJ0).filter((_, k) => k % 17 === 0)
  const sampleA = interleave(pathsA0).filter((_, k) => k % 17 === 0)
  const diskTiers = { json: await sampleTiers(s2.url, sampleJ), arrow: await sampleTiers(s2.url, sampleA) }
  log(`disk-tier server: X-Cache sample ${JSON.stringify(diskTiers)}`)

  // 6. The load generator, in rounds: each round runs every target for roundSec, back to back.
  // The memory tier runs between the two targets it is compared with (nginx, and the disk
  // tier), so each ratio pairs measurements seconds apart; every other round runs the list
  // backwards, so that neither target of a pair always runs first.
  const targets = [
    { key: 'ngJ', title: 'nginx json', origin: ngx.url, paths: interleave(nginxPaths(dJ, 'json')) },
    { key: 'memJ', title: 'shardfeed memory json', origin: s1.url, paths: interleave(pathsJ0) },
    { key: 'diskJ', title: 'shardfeed disk json', origin: s2.url, paths: interleave(pathsJ0) },
    { key: 'nodeJ', title: 'node:http json', origin: nodeStatic.url, paths: interleave(nginxPaths(dJ, 'json')) },
    { key: 'ngA', title: 'nginx arrow', origin: ngx.url, paths: interleave(nginxPaths(dN, 'arrow')) },
    { key: 'memA', title: 'shardfeed memory arrow', origin: s1.url, paths: interleave(pathsA0) },
    { key: 'diskA', title: 'shardfeed disk arrow', origin: s2.url, paths: interleave(pathsA0) },
    { key: 'nodeA', title: 'node:http arrow', origin: nodeStatic.url, paths: interleave(nginxPaths(dN, 'arrow')) }
  ] as const
  const results = new Map<string, LoadResult[]>(targets.map((t) => [t.key, []]))
  for (let round = 0; round < rounds; round++) {
    log(`load round ${round + 1} of ${rounds}: ${connections} connections, ${roundSec} s a target`)
    for (const t of round % 2 === 0 ? targets : [...targets].reverse()) results.get(t.key)!.push(await load(t.title, t.origin, t.paths, roundSec))
  }
  const memJ = summariseWarm(results.get('memJ')!)
  const diskJ = summariseWarm(results.get('diskJ')!)
  const ngJ = summariseWarm(results.get('ngJ')!)
  const memA = summariseWarm(results.get('memA')!)
  const diskA = summariseWarm(results.get('diskA')!)
  const ngA = summariseWarm(results.get('ngA')!)
  const nodeJ = summariseWarm(results.get('nodeJ')!)
  const nodeA = summariseWarm(results.get('nodeA')!)
  const memTiers = { json: await sampleTiers(s1.url, sampleJ), arrow: await sampleTiers(s1.url, sampleA) }
  const diskTiersAfter = { json: await sampleTiers(s2.url, sampleJ), arrow: await sampleTiers(s2.url, sampleA) }
  log(`X-Cache after the loads: memory server ${JSON.stringify(memTiers)}, disk server ${JSON.stringify(diskTiersAfter)}`)
  const hwmWarm = procStatusBytes(s1.pid, 'VmHWM')
  const hwmDisk = procStatusBytes(s2.pid, 'VmHWM')
  await s1.stop()
  await s2.stop()
  await ngx.stop()
  await nodeStatic.stop()

  // 7. Optional CPU profiles of the server: the memory-tier json load (its event loop), and
  // a fresh server's JSONL registration and first cold json epoch (every thread), where the
  // targets are furthest away.
  let profile: string | undefined
  if (withProfile) {
    const profDir = path.join(tmp, 'profile')
    await mkdir(profDir, { recursive: true })
    const s4 = await startShardfeed(env(), { cwd: work, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] })
    await runEpoch(s4.url, pathsJ0)
    await runEpoch(s4.url, pathsJ0)
    const prof = await load('shardfeed memory json, under --cpu-prof', s4.url, interleave(pathsJ0), durationSec)
    await s4.stop()
    const file = (await readdir(profDir)).find((f) => f.endsWith('.cpuprofile') && f.split('.')[4] === '0')
    if (file === undefined) log('no .cpuprofile written')
    else {
      profile = `Profiled run (${connections} connections, ${durationSec} s): ${loadCell(prof)}.\n\n` + profileMarkdown(summariseCpuProfile(path.join(profDir, file), repoRoot, 20))
      log(`cpu profile: ${path.join(profDir, file)}`)
    }

    const coldDir = path.join(tmp, 'profile-cold')
    await mkdir(coldDir, { recursive: true })
    const s5 = await startShardfeed({ ...baseEnv, CACHE_DIR: path.join(tmp, 'var-profile') }, { cwd: work, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${coldDir}`] })
    const reg = await registerDataset(s5.url, { name: 'vec-jsonl', source: { format: 'jsonl', path: 'vectors.jsonl' }, batchSize: BATCH_SIZE, numShards: NUM_SHARDS, shuffle: true, seed: SEED })
    const cold = await runEpoch(s5.url, shardfeedPaths(reg.descriptor, 0, 'json'))
    await s5.stop()
    const threads = (await readdir(coldDir)).filter((f) => f.endsWith('.cpuprofile')).sort().map((f) => {
      // Every function and file names the thread; the output shows the top 12 of each.
      const full = summariseCpuProfile(path.join(coldDir, f), repoRoot, 10_000)
      return { thread: profileThread(f, full), summary: { ...full, functions: full.functions.slice(0, 12), files: full.files.slice(0, 12) } }
    })
    const parts = threads.map(({ thread, summary }) => `#### ${thread}\n\n${profileMarkdown(summary)}`)
    profile = `${profile ?? ''}\n\nA fresh server under --cpu-prof: JSONL registration ${reg.ms.toFixed(0)} ms, then cold json epoch 0 by 4 trainers ${(cold.wallMs / 1000).toFixed(2)} s (each thread below; V8's own GC and LevelDB threads are not in them).\n\n${parts.join('\n\n')}`
    log(`cold-epoch profiles: ${coldDir}`)
  }

  // 8. Registration of a file ten times the size (the JSONL file written ten times over), on
  // a fresh server too: the rate a large dataset registers at, with the fixed costs of a
  // registration amortised and a second indexing thread (from 128 MiB).
  const bigJsonl = path.join(dataRoot, 'vectors-x10.jsonl')
  const oneJsonl = await readFile(path.join(dataRoot, 'vectors.jsonl'))
  await writeFile(bigJsonl, oneJsonl)
  for (let k = 1; k < 10; k++) await appendFile(bigJsonl, oneJsonl)
  const s6 = await startShardfeed({ ...baseEnv, CACHE_DIR: path.join(tmp, 'var-x10') }, { cwd: work })
  const regBig = await registerDataset(s6.url, { name: 'vec-jsonl-x10', source: { format: 'jsonl', path: 'vectors-x10.jsonl' }, batchSize: BATCH_SIZE, numShards: NUM_SHARDS, shuffle: true, seed: SEED })
  const bigBytes = files.jsonlBytes * 10
  const regBigMiBs = bigBytes / MiB / (regBig.ms / 1000)
  log(`registered ${fmt(bigBytes / MiB)} MiB of JSONL in ${regBig.ms.toFixed(0)} ms (${fmt(regBigMiBs)} MiB/s)`)
  // And a CSV table (short rows, quoted commas and line breaks), on the same server, apart from
  // the servers whose memory is measured: its index pass and its parsing schema pass.
  writeCsv(path.join(dataRoot, 'table.csv'), CSV_ROWS, SEED)
  const csvBytes = (await stat(path.join(dataRoot, 'table.csv'))).size
  const regCsv = await registerDataset(s6.url, { name: 'table-csv', source: { format: 'csv', path: 'table.csv' }, batchSize: BATCH_SIZE, numShards: NUM_SHARDS, shuffle: true, seed: SEED })
  await s6.stop()
  const regCsvMiBs = csvBytes / MiB / (regCsv.ms / 1000)
  log(`registered ${fmt(csvBytes / MiB)} MiB of CSV in ${regCsv.ms.toFixed(0)} ms (${fmt(regCsvMiBs)} MiB/s)`)

  // 9. The table.
  const ngColdJ = summariseCold(ngRunsJ, dJ.numRecords)
  const ngColdA = summariseCold(ngRunsA, dN.numRecords)
  const ratioColdJ = ngColdJ.wallMs / coldJ.wallMs
  const ratioColdA = ngColdA.wallMs / coldA.wallMs
  const ratioMemJ = pairedRatio(memJ, ngJ)
  const ratioMemA = pairedRatio(memA, ngA)
  const ratioDiskJ = pairedRatio(diskJ, memJ)
  const ratioDiskA = pairedRatio(diskA, memA)
  const rows: Row[] = [
    { metric: `registration (jsonl, ${fmt(files.jsonlBytes / MiB)} MiB)`, shardfeed: `${fmt(regJsonlMiBs)} MiB/s (${(median(regJsonlMs) / 1000).toFixed(2)} s${regJsonlMs.length > 1 ? `, median of ${regJsonlMs.map((ms) => (ms / 1000).toFixed(2)).join(', ')} s` : ''})`, baseline: '–', ratio: '–', target: '≥ 300 MiB/s', met: verdict(regJsonlMiBs / 300, 1) },
    { metric: `registration (jsonl ×10, ${fmt(bigBytes / MiB)} MiB)`, shardfeed: `${fmt(regBigMiBs)} MiB/s (${(regBig.ms / 1000).toFixed(2)} s)`, baseline: '–', ratio: '–', target: '(info)', met: '–' },
    { metric: `registration (npy, ${fmt(files.npyBytes / MiB)} MiB)`, shardfeed: `${fmt(regNpyMiBs)} MiB/s (${(regNpy.ms / 1000).toFixed(2)} s)`, baseline: '–', ratio: '–', target: '(info)', met: '–' },
    { metric: `registration (csv, ${fmt(csvBytes / MiB)} MiB, ${CSV_ROWS} rows of 4 columns)`, shardfeed: `${fmt(regCsvMiBs)} MiB/s (${(regCsv.ms / 1000).toFixed(2)} s)`, baseline: '–', ratio: '–', target: '(info)', met: '–' },
    { metric: 'cold epoch, json from jsonl (4 trainers)', shardfeed: coldCell(coldJ), baseline: `nginx ${coldCell(ngColdJ)}`, ratio: fmtRatio(ratioColdJ), target: '≥ 0.5x nginx', met: verdict(ratioColdJ, 0.5) },
    { metric: 'cold epoch, arrow from npy (4 trainers)', shardfeed: coldCell(coldA), baseline: `nginx ${coldCell(ngColdA)}`, ratio: fmtRatio(ratioColdA), target: '≥ 0.8x nginx', met: verdict(ratioColdA, 0.8) }
  ]
  if (coldJ0 !== undefined && coldA0 !== undefined && ngColdJ0 !== undefined && ngColdA0 !== undefined) {
    rows.push(
      { metric: 'cold epoch, json, PREFETCH_BATCHES=0', shardfeed: coldCell(coldJ0), baseline: `nginx ${coldCell(ngColdJ0)}`, ratio: fmtRatio(ngColdJ0.wallMs / coldJ0.wallMs), target: '(info)', met: '–' },
      { metric: 'cold epoch, arrow from npy, PREFETCH_BATCHES=0', shardfeed: coldCell(coldA0), baseline: `nginx ${coldCell(ngColdA0)}`, ratio: fmtRatio(ngColdA0.wallMs / coldA0.wallMs), target: '(info)', met: '–' }
    )
  }
  const floorJ = cpuFloor('json', coldRunsJ, coldCpuJ, warmCpuJ[0]!, ngColdJ, 0.5)
  const floorA = cpuFloor('arrow', coldRunsA, coldCpuA, warmCpuA[0]!, ngColdA, 0.8)
  rows.push(
    floorJ.row,
    floorA.row,
    { metric: 'warm epoch, json, memory tier (4 trainers)', shardfeed: coldCell(summariseCold([warmJ], dJ.numRecords)), baseline: `nginx ${coldCell(ngColdJ)}`, ratio: fmtRatio(ngColdJ.wallMs / warmJ.wallMs), target: '(info)', met: '–' },
    { metric: 'warm epoch, arrow, memory tier (4 trainers)', shardfeed: coldCell(summariseCold([warmA], dN.numRecords)), baseline: `nginx ${coldCell(ngColdA)}`, ratio: fmtRatio(ngColdA.wallMs / warmA.wallMs), target: '(info)', met: '–' },
    { metric: 'warm epoch, bare node:http from a Map (4 trainers), json / arrow', shardfeed: `${(nodeEpochJ.wallMs / 1000).toFixed(2)} / ${(nodeEpochA.wallMs / 1000).toFixed(2)} s`, baseline: `nginx ${(ngColdJ.wallMs / 1000).toFixed(2)} / ${(ngColdA.wallMs / 1000).toFixed(2)} s`, ratio: `${fmtRatio(ngColdJ.wallMs / nodeEpochJ.wallMs)} / ${fmtRatio(ngColdA.wallMs / nodeEpochA.wallMs)}`, target: '(info)', met: '–' },
    { metric: `warm load, json, memory tier (${connections} conns)`, shardfeed: warmCell(memJ), baseline: `nginx ${warmCell(ngJ)}`, ratio: fmtRatio(ratioMemJ), target: '≥ 0.8x nginx', met: verdict(ratioMemJ, 0.8) },
    { metric: `warm load, json, disk tier (${connections} conns)`, shardfeed: warmCell(diskJ), baseline: `memory tier ${fmt(memJ.rps, 0)} req/s`, ratio: fmtRatio(ratioDiskJ), target: '≥ 0.5x memory', met: verdict(ratioDiskJ, 0.5) },
    { metric: `warm load, arrow, memory tier (${connections} conns)`, shardfeed: warmCell(memA), baseline: `nginx ${warmCell(ngA)}`, ratio: fmtRatio(ratioMemA), target: '(info)', met: '–' },
    { metric: `warm load, arrow, disk tier (${connections} conns)`, shardfeed: warmCell(diskA), baseline: `memory tier ${fmt(memA.rps, 0)} req/s`, ratio: fmtRatio(ratioDiskA), target: '(info)', met: '–' },
    { metric: `warm load, json: memory tier vs bare node:http (${connections} conns)`, shardfeed: `memory tier ${fmt(memJ.rps, 0)} req/s`, baseline: `node:http from a Map ${warmCell(nodeJ)} (${fmtRatio(pairedRatio(nodeJ, ngJ))} nginx)`, ratio: fmtRatio(pairedRatio(memJ, nodeJ)), target: '(info)', met: '–' },
    { metric: `warm load, arrow: memory tier vs bare node:http (${connections} conns)`, shardfeed: `memory tier ${fmt(memA.rps, 0)} req/s`, baseline: `node:http from a Map ${warmCell(nodeA)} (${fmtRatio(pairedRatio(nodeA, ngA))} nginx)`, ratio: fmtRatio(pairedRatio(memA, nodeA)), target: '(info)', met: '–' },
    { metric: 'peak RSS (VmHWM)', shardfeed: `${fmt(Math.max(hwmCold, hwmWarm) / MiB)} MiB (default settings; after registration ${fmt(hwmReg / MiB)}, cold phase ${fmt(hwmCold / MiB)}, warm phase ${fmt(hwmWarm / MiB)}); disk-tier server ${fmt(hwmDisk / MiB)} MiB`, baseline: '–', ratio: '–', target: '(info)', met: '–' }
  )
  const table = tableMarkdown(rows)
  const met = rows.filter((r) => r.met === '**met**').length
  const targetCount = rows.filter((r) => r.met.includes('met')).length
  const missed = rows.filter((r) => r.met === '**not met**').map((r) => r.metric)

  const jsonBatchKiB = coldJ.bodyBytes / coldJ.runs[0]!.requests / 1024
  const arrowBatchKiB = coldA.bodyBytes / coldA.runs[0]!.requests / 1024
  const secs = (runs: EpochRun[]): string => runs.map((r) => (r.wallMs / 1000).toFixed(2)).join(', ')
  const roundsText = (w: Warm): string => w.rounds.map((r) => fmt(r.rpsMedian, 0)).join(', ')
  const loadgenText = loadgen.tool === 'wrk' ? `wrk ${loadgen.version} (one thread)` : `autocannon ${loadgen.version} in its own node process`
  const notes = [
    `- Dataset: ${numRecords} records x ${DIM} float32 (JSONL ${fmt(files.jsonlBytes / MiB)} MiB, npy ${fmt(files.npyBytes / MiB)} MiB); batchSize ${BATCH_SIZE}, numShards ${NUM_SHARDS}, shuffle, seed ${SEED}; ${coldJ.runs[0]!.requests} batches an epoch; json batch ${fmt(jsonBatchKiB)} KiB, arrow batch ${fmt(arrowBatchKiB)} KiB (mean).`,
    `- Cold epochs: median of ${coldRunsJ.length} (epochs ${coldRunsJ.map((_, k) => k === 0 ? 0 : 100 + k).join(', ')}), each followed by an nginx epoch. Walls (s): json ${secs(coldRunsJ)}, arrow ${secs(coldRunsA)}; nginx json ${secs(ngRunsJ)}, arrow ${secs(ngRunsA)}. 503 retries: ${coldJ.retries + coldA.retries}. Server CPU per cold epoch (core-s, all threads, until ${COLD_SETTLE_MS} ms after the epoch): json ${coldCpuJ.map((c) => c.toFixed(2)).join(', ')}; arrow ${coldCpuA.map((c) => c.toFixed(2)).join(', ')}.`,
    floorJ.note,
    floorA.note,
    `- X-Cache: cold json epoch 0 ${JSON.stringify(coldRunsJ[0]!.xcache)}, cold arrow epoch 0 ${JSON.stringify(coldRunsA[0]!.xcache)}; second warm trainer pass json ${JSON.stringify(warmJ.xcache)}, arrow ${JSON.stringify(warmA.xcache)}; samples after the loads: memory server ${JSON.stringify(memTiers)}, disk server ${JSON.stringify(diskTiersAfter)}.`,
    `- Warm loads: ${loadgenText} (${connections} connections, one request at a time each), cycling through the epoch's ${coldJ.runs[0]!.requests} URLs; ${rounds} rounds of ${roundSec} s, each round running the eight targets back to back, the memory tier between nginx and the disk tier, every other round in reverse order (node:http: a bare Node server with the same bodies in a Map and the same cache headers, started with the same node flags, as the ceiling of any Node server here). req/s and MiB/s: median over rounds of ${loadgen.tool === 'wrk' ? 'the rate over the round' : 'the median per-second sample'} (MiB/s counts headers too); ratios: median of the per-round ratios. Per-round req/s: memory json ${roundsText(memJ)}; disk json ${roundsText(diskJ)}; nginx json ${roundsText(ngJ)}; memory arrow ${roundsText(memA)}; disk arrow ${roundsText(diskA)}; nginx arrow ${roundsText(ngA)}; node:http json ${roundsText(nodeJ)}, arrow ${roundsText(nodeA)}. Non-2xx + errors: ${[memJ, diskJ, ngJ, nodeJ, memA, diskA, ngA, nodeA].reduce((a, w) => a + w.non2xx + w.errors, 0)}.`,
    `- Targets met: ${met} of ${targetCount}${missed.length > 0 ? ` (not met: ${missed.join('; ')})` : ''}.`
  ]

  const cpu = cpuBetween(cpuStart, cpuSnapshot(), (performance.now() - wallStart) / 1000)
  const cpuText = `CPU during the run (${cpu.wallSec.toFixed(0)} s): machine ${cpu.busyPct.toFixed(0)}% busy; this bench and its children ${cpu.ownCoreSec.toFixed(0)} core-s, other processes ${cpu.otherCoreSec.toFixed(0)} core-s${Number.isFinite(busyAtStart) ? `; ${busyAtStart.toFixed(0)}% busy just before the start` : ''}.`
  const header = `### ${machine.date.slice(0, 16).replace('T', ' ')} UTC${quick ? ' (quick)' : ''}\n\n` +
    `Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.memoryGiB} GiB, ${machine.kernel}, node ${machine.node}; nginx 1 worker, sendfile off. Load average (1 min) at start ${loadStart}, at end ${loadAverage()}. ${cpuText}\n`
  const section = `${header}\n${table}\n\n${notes.join('\n')}\n${profile !== undefined ? `\nCPU profile of the server (warm memory-tier json load):\n\n${profile}\n` : ''}`
  console.log('\n' + section)

  if (write) {
    const resultsPath = path.join(repoRoot, 'bench', 'RESULTS.md')
    let existing = ''
    try { existing = await readFile(resultsPath, 'utf8') } catch {}
    if (existing === '') {
      existing = '# shardfeed benchmark results\n\nWritten by `npm run bench` (bench/README.md says what each number means). Every run is appended under its date; earlier runs are kept.\n\n## Runs\n'
    }
    await writeFile(resultsPath, existing.replace(/\n*$/, '\n\n') + section)
    log(`appended to ${resultsPath}`)
  }
}

let exitCode = 0
try {
  await main()
} catch (err) {
  console.error(err)
  exitCode = 1
} finally {
  await cleanupAll()
  log('done')
}
process.exit(exitCode)
