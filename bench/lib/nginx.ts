// The baseline: nginx serving the same bodies as static files from a temp root, one worker,
// in the foreground, with a generated config (no sendfile, so it copies bytes like a
// user-space server does).
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, mkdir, writeFile } from 'node:fs/promises'
import path from 'node:path'
import { trackChild } from './cleanup.js'
import { freePort, stopChild } from './server.js'
import { sleep } from './stats.js'

export interface NginxProcess {
  child: ChildProcess
  url: string
  root: string
  stop: () => Promise<void>
}

const CANDIDATES = ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx', '/usr/local/nginx/sbin/nginx']

function findNginx (): string | undefined {
  for (const c of CANDIDATES) if (existsSync(c)) return c
  try {
    return execFileSync('sh', ['-c', 'command -v nginx'], { encoding: 'utf8' }).trim() || undefined
  } catch {
    return undefined
  }
}

/** The nginx binary; installs Debian's package when it is missing (needs root and apt). */
export function ensureNginx (log: (s: string) => void): string {
  const found = findNginx()
  if (found !== undefined) return found
  log('nginx is missing: apt-get install -y nginx')
  const install = (): void => { execFileSync('apt-get', ['install', '-y', '--no-install-recommends', 'nginx'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } }) }
  try {
    install()
  } catch {
    execFileSync('apt-get', ['update'], { stdio: 'ignore' })
    install()
  }
  const after = findNginx()
  if (after === undefined) throw new Error('nginx is still missing after apt-get install nginx')
  return after
}

/**
 * Starts nginx with `root` as its document root (made world-readable, since the worker runs
 * as an unprivileged user when the master is root) and `work` for its pid, temp paths and
 * config.
 */
export async function startNginx (bin: string, root: string, work: string, types: Record<string, string>): Promise<NginxProcess> {
  const port = await freePort()
  await mkdir(work, { recursive: true })
  // mkdtemp makes 0700 dirs; the worker (user nobody) must be able to enter them.
  await chmod(root, 0o755)
  await chmod(path.dirname(root), 0o755)
  const typeLines = Object.entries(types).map(([ext, mime]) => `    ${mime} ${ext};`).join('\n')
  const conf = `daemon off;
worker_processes 1;
master_process on;
error_log stderr;
pid ${work}/nginx.pid;
events {}
http {
  access_log off;
  sendfile off;
  output_buffers 1 256k;
  keepalive_requests 100000;
  client_body_temp_path ${work}/client_body;
  proxy_temp_path ${work}/proxy;
  fastcgi_temp_path ${work}/fastcgi;
  uwsgi_temp_path ${work}/uwsgi;
  scgi_temp_path ${work}/scgi;
  default_type application/octet-stream;
  types {
${typeLines}
  }
  server {
    listen 127.0.0.1:${port};
    root ${root};
  }
}
`
  const confPath = path.join(work, 'nginx.conf')
  await writeFile(confPath, conf)
  const child = spawn(bin, ['-p', work + '/', '-e', 'stderr', '-c', confPath], { stdio: ['ignore', 'pipe', 'pipe'] })
  trackChild(child)
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 10000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}): ${out}`)
    try {
      const res = await fetch(`${url}/`, { signal: AbortSignal.timeout(1000) })
      await res.arrayBuffer()
      break // any answer (403/404 for the directory) means it listens
    } catch {}
    if (Date.now() > deadline) throw new Error(`nginx not listening after 10 s: ${out}`)
    await sleep(50)
  }
  return {
    child,
    url,
    root,
    // SIGQUIT: graceful shutdown of the master and its worker.
    stop: async () => { await stopChild(child, 5000, 'SIGQUIT') }
  }
}
