// openapi/openapi.json is what the service serves; regenerate it with `npm run openapi`.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import path from 'node:path'
import { renderOpenApi } from '../src/openapi-document.js'
import { repoRoot } from './shared.js'
import { buildTestApp } from './helper.js'

test('the checked-in openapi/openapi.json is up to date (run `npm run openapi`)', async () => {
  const checkedIn = await readFile(path.join(repoRoot, 'openapi', 'openapi.json'), 'utf8')
  assert.equal(checkedIn, await renderOpenApi())
})

test('GET /openapi.json serves the same document, and /docs serves Swagger UI', async (t) => {
  const { app } = await buildTestApp(t)
  const res = await app.inject({ method: 'GET', url: '/openapi.json' })
  assert.equal(res.statusCode, 200)
  const doc = res.json()
  assert.equal(doc.openapi, '3.0.3')
  assert.ok(doc.paths['/datasets/{name}/shards/{rank}/batches/{i}'])
  assert.deepEqual(doc, JSON.parse(await renderOpenApi()))
  const ui = await app.inject({ method: 'GET', url: '/docs/' })
  assert.equal(ui.statusCode, 200)
  assert.match(ui.headers['content-type'] as string, /text\/html/)
})
