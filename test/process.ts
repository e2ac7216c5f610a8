// Starts the built service (dist/, as `npm start` runs it) as a child process on a free port
// and waits until it is ready; the test's end kills it.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process'
import path from 'node:path'
import type { TestContext } from 'node:test'
import { repoRoot } from './shared.js'
import { freePort, SERVER_ENV, SERVER_NODE_ARGS } from '../scripts/server-launch.js'

export { freePort }

export interface ServerProcess {
  child: ChildProcessWithoutNullStreams
  url: string
  port: number
  output: () => string
}

export async function startServerProcess (t: TestContext, env: Record<string, string>, port?: number): Promise<ServerProcess> {
  const p = port ?? await freePort()
  // Started as `npm start` starts it (its node flags and malloc setting).
  const child = spawn(process.execPath, [...SERVER_NODE_ARGS, path.join(repoRoot, 'dist', 'src', 'server.js')], {
    env: { ...process.env, ...SERVER_ENV, HOST: '127.0.0.1', PORT: String(p), LOG_LEVEL: 'warn', MAX_EVENT_LOOP_DELAY_MS: '0', ...env },
    stdio: ['pipe', 'pipe', 'pipe']
  })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr.on('data', (d: Buffer) => { out += d.toString() })
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const url = `http://127.0.0.1:${p}`
  const deadline = Date.now() + 20000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}: ${out}`)
    try {
      const res = await fetch(`${url}/readyz`)
      if (res.ok) break
    } catch {}
    if (Date.now() > deadline) throw new Error(`server not ready after 20 s: ${out}`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return { child, url, port: p, output: () => out }
}
