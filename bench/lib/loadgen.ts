// The load generator: autocannon, run in its own node process (loadgen-child.ts) so that its
// CPU is not the orchestrator's, and the same way for every target. 32 connections cycle
// through a list of URLs for a fixed duration.
import { spawn } from 'node:child_process'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { trackChild } from './cleanup.js'
import { repoRoot } from './server.js'

const childScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'loadgen-child.ts')

export interface LoadConfig {
  origin: string
  paths: string[]
  connections: number
  durationSec: number
  title: string
}

export interface LoadResult {
  title: string
  durationSec: number
  requests: number
  /** Median of the per-second request counts. */
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
export async function runLoad (config: LoadConfig, configPath: string): Promise<LoadResult> {
  await writeFile(configPath, JSON.stringify(config))
  const child = spawn(process.execPath, ['--import', 'tsx', childScript, configPath], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe']
  })
  trackChild(child)
  let out = ''
  let err = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { err += d.toString() })
  const killer = setTimeout(() => { child.kill('SIGKILL') }, (config.durationSec + 60) * 1000)
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => { resolve(c) }))
  clearTimeout(killer)
  if (code !== 0) throw new Error(`load generator exited with ${code}: ${err.slice(-2000)}`)
  return JSON.parse(out) as LoadResult
}
