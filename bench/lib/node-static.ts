// A second baseline: the bare node:http server, serving the same bodies as nginx from a Map in
// memory, with the headers a cached batch carries. It is what any Node server could reach, so
// it tells how much of the gap between the memory tier and nginx is shardfeed's and how much
// is Node's HTTP stack.
import { spawn } from 'node:child_process'
import { trackChild } from './cleanup.js'
import { SERVER_ENV, SERVER_NODE_ARGS } from '../../scripts/server-launch.js'
import { freePort, stopChild } from './server.js'
import { sleep } from './stats.js'

export interface NodeStaticProcess {
  url: string
  stop: () => Promise<void>
}

// Plain JavaScript run with `node -e`: no loader, nothing else in the process.
const SERVER = `
const http = require('node:http')
const fs = require('node:fs')
const path = require('node:path')
const { createHash } = require('node:crypto')
const [root, port, typesJson] = process.argv.slice(1)
const types = JSON.parse(typesJson)
const files = new Map()
for (const rel of fs.readdirSync(root, { recursive: true })) {
  const file = path.join(root, rel)
  if (!fs.statSync(file).isFile()) continue
  const body = fs.readFileSync(file)
  const etag = '"' + createHash('sha256').update(body).digest('base64url').slice(0, 32) + '"'
  const headers = {
    'content-type': types[path.extname(file).slice(1)] ?? 'application/octet-stream',
    'content-length': body.length,
    etag,
    'cache-control': 'public, max-age=31536000, immutable'
  }
  files.set('/' + rel.split(path.sep).join('/'), { body, headers })
}
http.createServer({ keepAliveTimeout: 60000 }, (req, res) => {
  const f = files.get(req.url)
  if (f === undefined) { res.writeHead(404, { 'content-length': 0 }); res.end(); return }
  res.writeHead(200, f.headers)
  res.end(f.body)
}).listen(Number(port), '127.0.0.1', () => { process.stdout.write('ready\\n') })
`

/** Starts the server on the files under `root` (URL path = path under root). */
export async function startNodeStatic (root: string, types: Record<string, string>): Promise<NodeStaticProcess> {
  const port = await freePort()
  // Started as shardfeed is (same node flags and malloc setting), so the two compare alike.
  const child = spawn(process.execPath, [...SERVER_NODE_ARGS, '-e', SERVER, root, String(port), JSON.stringify(types)], {
    env: { ...process.env, ...SERVER_ENV },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  trackChild(child)
  let out = ''
  child.stdout?.on('data', (d: Buffer) => { out += d.toString() })
  child.stderr?.on('data', (d: Buffer) => { out += d.toString() })
  const deadline = Date.now() + 30000
  while (!out.includes('ready')) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the node:http baseline exited: ${out}`)
    if (Date.now() > deadline) throw new Error(`the node:http baseline is not ready: ${out}`)
    await sleep(20)
  }
  return { url: `http://127.0.0.1:${port}`, stop: async () => { await stopChild(child, 5000) } }
}
