// Test helper: a real app on fresh temp dirs (real LevelDB, real files), closed after the test.
import { mkdtemp, mkdir, writeFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import type { TestContext } from 'node:test'
import type { FastifyInstance } from 'fastify'
import { buildApp, type BuildOptions } from '../src/app.js'
import { loadConfig, type Config } from '../src/config.js'

export interface TestApp {
  app: FastifyInstance
  config: Config
  dataRoot: string
  cacheDir: string
  /** Writes a file under the data root and returns its relative path. */
  writeData: (rel: string, content: string | Buffer) => Promise<string>
  /** Closes the app and builds a new one on the same dirs (a restart). */
  restart: () => Promise<FastifyInstance>
}

export async function makeTempDirs (t: TestContext): Promise<{ dataRoot: string, cacheDir: string }> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'shardfeed-test-'))
  t.after(async () => { await rm(base, { recursive: true, force: true }) })
  const dataRoot = path.join(base, 'data')
  const cacheDir = path.join(base, 'var')
  await mkdir(dataRoot, { recursive: true })
  return { dataRoot, cacheDir }
}

export async function buildTestApp (t: TestContext, env: Record<string, string> = {}, opts: BuildOptions = {}): Promise<TestApp> {
  const { dataRoot, cacheDir } = await makeTempDirs(t)
  // Load shedding is off unless a test turns it on: a busy CI machine must not turn
  // functional tests into 503s (test/hardening/faults.test.ts tests shedding itself).
  const config = loadConfig({ DATA_ROOT: dataRoot, CACHE_DIR: cacheDir, LOG_LEVEL: 'silent', MAX_EVENT_LOOP_DELAY_MS: '0', ...env })
  const handle: TestApp = {
    app: await buildApp(config, opts),
    config,
    dataRoot: config.dataRoot,
    cacheDir: config.cacheDir,
    async writeData (rel, content) {
      const file = path.join(config.dataRoot, rel)
      await mkdir(path.dirname(file), { recursive: true })
      await writeFile(file, content)
      return rel
    },
    async restart () {
      await handle.app.close()
      handle.app = await buildApp(config, opts)
      await handle.app.ready()
      return handle.app
    }
  }
  await handle.app.ready()
  t.after(async () => { await handle.app.close() })
  return handle
}

/** `n` JSONL records {id, label, text}. */
export function jsonlRecords (n: number): string {
  let out = ''
  for (let i = 0; i < n; i++) out += JSON.stringify({ id: i, label: i % 3, text: `record ${i}` }) + '\n'
  return out
}

/** Polls a dataset until it is no longer indexing. */
export async function waitReady (app: FastifyInstance, name: string, timeoutMs = 30000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const res = await app.inject({ method: 'GET', url: `/datasets/${name}` })
    const body = res.json()
    if (body.status !== 'indexing') return body
    if (Date.now() > deadline) throw new Error(`dataset ${name} still indexing after ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
