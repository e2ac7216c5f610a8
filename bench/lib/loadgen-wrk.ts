// wrk as the load generator, when it is installed. A C program on an event loop, it spends far
// less CPU a request than autocannon: on 2 cores that shared with the server, autocannon
// left nginx (cheap a request) waiting on the client, so every ratio to nginx came out higher
// than the servers' own capacities make it (README, bench/README.md).
import { execFileSync, spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { runToEnd } from './cleanup.js'
import type { LoadConfig, LoadResult } from './loadgen.js'

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'wrk-cycle.lua')

/** wrk's version when it is on PATH (e.g. `debian/4.1.0-3+b2`), else undefined. */
export function wrkVersion (): string | undefined {
  try {
    execFileSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' })
  } catch {
    return undefined
  }
  // `wrk --version` prints its banner and exits 1.
  let banner: string
  try {
    banner = execFileSync('wrk', ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    banner = String((err as { stdout?: string }).stdout ?? '')
  }
  return /^wrk (\S+)/.exec(banner)?.[1] ?? 'unknown version'
}

/** What `done` in wrk-cycle.lua prints. */
interface WrkSummary {
  requests: number
  bytes: number
  durationUs: number
  p50Us: number
  p99Us: number
  maxUs: number
  /** Responses with a status of 400 or more. */
  status: number
  connect: number
  read: number
  write: number
  timeout: number
}

/** The counts of one wrk run as a LoadResult; wrk gives no per-second samples, so rates are over the run. */
export function wrkResult (title: string, s: WrkSummary): LoadResult {
  const seconds = s.durationUs / 1e6
  return {
    title,
    durationSec: seconds,
    requests: s.requests,
    rpsMedian: s.requests / seconds,
    rpsMean: s.requests / seconds,
    bytesPerSecMedian: s.bytes / seconds,
    bytesPerSecMean: s.bytes / seconds,
    latencyP50Ms: s.p50Us / 1000,
    latencyP99Ms: s.p99Us / 1000,
    latencyMaxMs: s.maxUs / 1000,
    non2xx: s.status,
    errors: s.connect + s.read + s.write,
    timeouts: s.timeout
  }
}

/** One wrk run: one thread, as autocannon has one; `pathsFile` is where the URL list goes. */
export async function runWrk (config: LoadConfig, pathsFile: string): Promise<LoadResult> {
  await writeFile(pathsFile, config.paths.join('\n') + '\n')
  const args = ['-t1', `-c${config.connections}`, `-d${config.durationSec}s`, '--timeout', '30s', '-s', script, config.origin]
  const child = spawn('wrk', args, { env: { ...process.env, WRK_PATHS: pathsFile }, stdio: ['ignore', 'pipe', 'pipe'] })
  const { code, out, err } = await runToEnd(child, (config.durationSec + 60) * 1000)
  const line = out.trim().split('\n').pop() ?? ''
  if (code !== 0 || !line.startsWith('{')) throw new Error(`wrk exited with ${code}: ${(err + out).slice(-2000)}`)
  return wrkResult(config.title, JSON.parse(line) as WrkSummary)
}
