// Everything a bench run starts or creates is registered here, so that a normal end, an error
// or Ctrl-C (SIGINT/SIGTERM) kills the child processes it started (by pid, never by name) and
// removes its temp dirs.
import type { ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

const children = new Set<ChildProcess>()
const dirs = new Set<string>()
let keepDirs = false

export function trackChild (child: ChildProcess): void {
  children.add(child)
  child.once('exit', () => { children.delete(child) })
}

/**
 * Waits for a child that runs to its own end (stdout and stderr piped), tracked meanwhile and
 * killed past `deadlineMs`; its exit code and what it printed.
 */
export async function runToEnd (child: ChildProcess, deadlineMs: number): Promise<{ code: number | null, out: string, err: string }> {
  trackChild(child)
  let out = ''
  let err = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { err += d.toString() })
  const killer = setTimeout(() => { child.kill('SIGKILL') }, deadlineMs)
  const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => { resolve(c) }))
  clearTimeout(killer)
  return { code, out, err }
}

/** A new temp dir, removed at the end unless `setKeepDirs(true)`. */
export async function tempDir (prefix: string): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), prefix))
  dirs.add(dir)
  return dir
}

export function setKeepDirs (keep: boolean): void {
  keepDirs = keep
}

function alive (child: ChildProcess): boolean {
  return child.exitCode === null && child.signalCode === null
}

/** Kills what is still running (SIGTERM, then SIGKILL after `graceMs`) and removes temp dirs. */
export async function cleanupAll (graceMs = 3000): Promise<void> {
  const running = [...children].filter(alive)
  await Promise.all(running.map(async (child) => {
    const exited = new Promise<void>((resolve) => child.once('exit', () => { resolve() }))
    child.kill('SIGTERM')
    const timer = setTimeout(() => { if (alive(child)) child.kill('SIGKILL') }, graceMs)
    await exited
    clearTimeout(timer)
  }))
  if (!keepDirs) {
    for (const dir of dirs) await rm(dir, { recursive: true, force: true }).catch(() => {})
    dirs.clear()
  }
}

function cleanupSync (): void {
  for (const child of children) if (alive(child)) child.kill('SIGKILL')
  if (!keepDirs) for (const dir of dirs) { try { rmSync(dir, { recursive: true, force: true }) } catch {} }
}

/** Ctrl-C and SIGTERM clean up and exit 130; a crash still kills the children on exit. */
export function installCleanupHandlers (): void {
  let stopping = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) return
    stopping = true
    console.error(`\n${signal}: stopping child processes and removing temp dirs`)
    const hard = setTimeout(() => { cleanupSync(); process.exit(130) }, 8000)
    hard.unref()
    cleanupAll(2000).finally(() => process.exit(130))
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('exit', cleanupSync)
}
