// Runs the built service (dist/src/server.js, as `npm start` does) as a child process on a
// free loopback port, with the launch settings the tests use too (scripts/server-launch.ts).
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { trackChild } from './cleanup.js'
import { MiB, sleep } from './stats.js'
import { freePort, SERVER_ENV, SERVER_NODE_ARGS } from '../../scripts/server-launch.js'

export { freePort }

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
export const serverEntry = path.join(repoRoot, 'dist', 'src', 'server.js')

export interface ShardfeedProcess {
  child: ChildProcess
  pid: number
  url: string
  port: number
  output: () => string
  /** SIGTERM (graceful: in-flight requests and disk writes finish), SIGKILL after `graceMs`. */
  stop: (graceMs?: number) => Promise<number | null>
}

export interface StartOptions {
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir=/tmp/x']. */
  nodeArgs?: string[]
  /** Working directory (the server reads a `.env` there): a temp dir, not the repo. */
  cwd: string
  readyTimeoutMs?: number
}

export async function startShardfeed (env: Record<string, string>, opts: StartOptions): Promise<ShardfeedProcess> {
  if (!existsSync(serverEntry)) throw new Error(`${serverEntry} is missing: run \`npm run build\` first`)
  const port = await freePort()
  const child = spawn(process.execPath, [...SERVER_NODE_ARGS, ...(opts.nodeArgs ?? []), serverEntry], {
    cwd: opts.cwd,
    env: { ...process.env, ...SERVER_ENV, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  trackChild(child)
  let out = ''
  const keep = (d: Buffer): void => { out = (out + d.toString()).slice(-20000) }
  child.stdout?.on('data', keep)
  child.stderr?.on('data', keep)
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 30000)
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`shardfeed exited (${child.exitCode ?? child.signalCode}): ${out}`)
    try {
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(2000) })
      await res.arrayBuffer()
      if (res.ok) break
    } catch {}
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`shardfeed not ready after ${opts.readyTimeoutMs ?? 30000} ms: ${out}`)
    }
    await sleep(50)
  }
  return {
    child,
    pid: child.pid as number,
    url,
    port,
    output: () => out,
    stop: async (graceMs = 20000) => await stopChild(child, graceMs)
  }
}

export async function stopChild (child: ChildProcess, graceMs: number, signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => { resolve(code) }))
  child.kill(signal)
  const timer = setTimeout(() => { child.kill('SIGKILL') }, graceMs)
  const code = await exited
  clearTimeout(timer)
  return code
}

/** A `kB` field of /proc/<pid>/status (VmRSS, VmHWM, ...) in bytes; NaN when unreadable. */
export function procStatusBytes (pid: number, field: 'VmRSS' | 'VmHWM' | 'RssAnon' | 'RssFile'): number {
  try {
    const text = readFileSync(`/proc/${pid}/status`, 'utf8')
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(text)
    return m === null ? NaN : Number(m[1]) * 1024
  } catch {
    return NaN
  }
}

export interface MachineInfo { cpu: string, cores: number, memoryGiB: number, node: string, kernel: string, date: string }

/** The 1-minute load average, formatted (other work on the machine skews every number). */
export function loadAverage (): string {
  return os.loadavg()[0]!.toFixed(2)
}

export function machineInfo (): MachineInfo {
  let cpu = os.cpus()[0]?.model ?? 'unknown'
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))
    if (m !== null) cpu = (m[1] as string).trim()
  } catch {}
  return {
    cpu,
    cores: os.availableParallelism(),
    memoryGiB: Math.round((os.totalmem() / 1024 / MiB) * 10) / 10,
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    date: new Date().toISOString()
  }
}

/** Registers (POST /datasets) and waits for `ready`; returns the descriptor and the time taken. */
export async function registerDataset (url: string, spec: Record<string, unknown>, timeoutMs = 300000): Promise<{ descriptor: Descriptor, ms: number }> {
  const t0 = performance.now()
  const res = await fetch(`${url}/datasets`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(spec),
    signal: AbortSignal.timeout(timeoutMs)
  })
  let d = await res.json() as Descriptor
  if (res.status >= 300) throw new Error(`POST /datasets ${String(spec.name)}: ${res.status} ${JSON.stringify(d)}`)
  const deadline = Date.now() + timeoutMs
  while (d.status === 'indexing') {
    if (Date.now() > deadline) throw new Error(`${String(spec.name)} still indexing after ${timeoutMs} ms`)
    await sleep(20)
    const r = await fetch(`${url}/datasets/${String(spec.name)}`)
    d = await r.json() as Descriptor
  }
  const ms = performance.now() - t0
  if (d.status !== 'ready') throw new Error(`${String(spec.name)}: registration ${d.status}: ${d.error ?? ''}`)
  return { descriptor: d, ms }
}

/** The part of a descriptor (API.md) the bench and soak read. */
export interface Descriptor {
  name: string
  status: string
  error?: string
  numRecords: number
  fingerprint: string
  batchSize: number
  numShards: number
  shuffle: boolean
  seed: number
  remainder: 'partial' | 'drop' | 'pad'
  partition: 'strided' | 'contiguous'
  batchesPerShard: number[]
}

/** A counter of GET /metrics (Prometheus text) summed over the series that match `labels`. */
export async function metricValue (url: string, name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text()
  let sum = 0
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue
    const rest = line.slice(name.length)
    if (!(rest.startsWith(' ') || rest.startsWith('{'))) continue
    if (labels !== '' && !rest.includes(labels)) continue
    sum += Number(line.slice(line.lastIndexOf(' ') + 1))
  }
  return sum
}

export interface RssParts { levelTables: number, nodeBinary: number, otherFiles: number, heap: number, anonymous: number }

/**
 * The server's resident pages by mapping (from /proc/PID/smaps): LevelDB's memory-mapped
 * table files, the node binary, other files, the malloc heap and other anonymous memory.
 */
export function rssByMapping (pid: number): RssParts | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/smaps`, 'utf8')
  } catch {
    return undefined
  }
  const parts: RssParts = { levelTables: 0, nodeBinary: 0, otherFiles: 0, heap: 0, anonymous: 0 }
  let name = ''
  for (const line of text.split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line)
    if (head !== null) {
      name = head[1] ?? ''
      continue
    }
    const rss = /^Rss:\s+(\d+) kB/.exec(line)
    if (rss === null) continue
    const bytes = Number(rss[1]) * 1024
    if (name.endsWith('.ldb')) parts.levelTables += bytes
    else if (name === process.execPath || name.endsWith('/node')) parts.nodeBinary += bytes
    else if (name === '[heap]') parts.heap += bytes
    else if (name.startsWith('/')) parts.otherFiles += bytes
    else parts.anonymous += bytes
  }
  return parts
}
