// The load generator: wrk when it is installed (loadgen-wrk.ts), else autocannon, run in its
// own node process (loadgen-child.ts) so that its CPU is not the orchestrator's; either runs
// the same way for every target. 32 connections cycle through a list of URLs for a fixed
// duration.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { runToEnd } from './cleanup.js'
import { repoRoot } from './server.js'
import { runWrk, wrkVersion } from './loadgen-wrk.js'

const childScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'loadgen-child.ts')

export interface LoadConfig {
  origin: string
  paths: string[]
  connections: number
  durationSec: number
  title: string
}

export type LoadTool = 'wrk' | 'autocannon'

/** The tool `wanted` names ('wrk', 'autocannon', or 'auto': wrk when installed), with its version. */
export function pickLoadTool (wanted: string): { tool: LoadTool, version: string } {
  if (wanted === 'autocannon') return { tool: 'autocannon', version: autocannonVersion() }
  if (wanted !== 'auto' && wanted !== 'wrk') throw new Error(`--loadgen must be auto, wrk or autocannon, got ${JSON.stringify(wanted)}`)
  const version = wrkVersion()
  if (version !== undefined) return { tool: 'wrk', version }
  if (wanted === 'wrk') throw new Error('--loadgen wrk: wrk is not installed (Debian: apt-get install wrk)')
  return { tool: 'autocannon', version: autocannonVersion() }
}

function autocannonVersion (): string {
  return (JSON.parse(readFileSync(path.join(repoRoot, 'node_modules', 'autocannon', 'package.json'), 'utf8')) as { version: string }).version
}

export interface LoadResult {
  title: string
  durationSec: number
  requests: number
  /** Median of the per-second request counts (wrk: the rate over the run). */
  rpsMedian: number
  rpsMean: number
  /** Median of the per-second byte counts (bodies and headers), bytes/s. */
  bytesPerSecMedian: number
  bytesPerSecMean: number
  latencyP50Ms: number
  latencyP99Ms: number
  latencyMaxMs: number
  non2xx: number
  errors: number
  timeouts: number
}

/** Runs one load in a child process; `configPath` is where the URL list is written for it. */
export async function runLoad (config: LoadConfig, configPath: string, tool: LoadTool = 'autocannon'): Promise<LoadResult> {
  if (tool === 'wrk') return await runWrk(config, configPath)
  await writeFile(configPath, JSON.stringify(config))
  const child = spawn(process.execPath, ['--import', 'tsx', childScript, configPath], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const { code, out, err } = await runToEnd(child, (config.durationSec + 60) * 1000)
  if (code !== 0) throw new Error(`load generator exited with ${code}: ${err.slice(-2000)}`)
  return JSON.parse(out) as LoadResult
}
