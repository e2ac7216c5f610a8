// Builds the OpenAPI document the running service serves, from a throw-away app on temp
// dirs: used by `npm run openapi` to write openapi/openapi.json and by the staleness test.
import { mkdtemp, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { buildApp } from './app.js'
import { loadConfig } from './config.js'

export async function renderOpenApi (): Promise<string> {
  const base = await mkdtemp(path.join(os.tmpdir(), 'shardfeed-openapi-'))
  try {
    const app = await buildApp(loadConfig({ DATA_ROOT: base, CACHE_DIR: path.join(base, 'var'), LOG_LEVEL: 'silent' }))
    try {
      await app.ready()
      return JSON.stringify(app.swagger(), null, 2) + '\n'
    } finally {
      await app.close()
    }
  } finally {
    await rm(base, { recursive: true, force: true })
  }
}
