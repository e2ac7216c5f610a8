// Every path trick is refused through the API, and no byte from outside the data root is
// ever served.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { mkdir, mkdtemp, symlink, writeFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { buildTestApp } from '../helper.js'

test('path tricks are 403 SOURCE_FORBIDDEN (or 400/422) and nothing outside is read', async (t) => {
  const h = await buildTestApp(t)
  const outside = await mkdtemp(path.join(os.tmpdir(), 'shardfeed-outside-'))
  t.after(async () => { await rm(outside, { recursive: true, force: true }) })
  const secret = '{"secret":"outside-the-root"}\n'
  await writeFile(path.join(outside, 'secret.jsonl'), secret)
  await mkdir(path.join(h.dataRoot, 'sub'), { recursive: true })
  await symlink(path.join(outside, 'secret.jsonl'), path.join(h.dataRoot, 'link.jsonl'))
  await symlink(outside, path.join(h.dataRoot, 'sub', 'dir'))
  await h.writeData('ok.jsonl', '{"a":1}\n')
  await symlink(path.join(h.dataRoot, 'ok.jsonl'), path.join(h.dataRoot, 'inside-link.jsonl'))

  const rel = path.relative(h.dataRoot, path.join(outside, 'secret.jsonl'))
  const tricks = [
    rel,
    `sub/../${rel}`,
    path.join(outside, 'secret.jsonl'),
    `%2e%2e/${path.basename(outside)}/secret.jsonl`,
    `..%2f${path.basename(outside)}%2fsecret.jsonl`,
    `sub\\..\\..\\${path.basename(outside)}\\secret.jsonl`,
    'ok.jsonl\u0000../../etc/passwd',
    'link.jsonl',
    'sub/dir/secret.jsonl',
    './sub/../../x.jsonl'
  ]
  for (const p of tricks) {
    const res = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'x', source: { format: 'jsonl', path: p }, batchSize: 1, numShards: 1 } })
    assert.ok([400, 403, 422].includes(res.statusCode), `${JSON.stringify(p)} -> ${res.statusCode}`)
    assert.ok(['VALIDATION', 'SOURCE_FORBIDDEN', 'SOURCE_INVALID'].includes(res.json().code), p)
    assert.ok(!res.body.includes('outside-the-root'))
  }
  for (const p of ['link.jsonl', 'sub/dir/secret.jsonl', rel, path.join(outside, 'secret.jsonl')]) {
    const res = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'x', source: { format: 'jsonl', path: p }, batchSize: 1, numShards: 1 } })
    assert.equal(res.statusCode, 403, p)
    assert.equal(res.json().code, 'SOURCE_FORBIDDEN', p)
  }
  assert.equal((await h.app.inject({ method: 'GET', url: '/datasets' })).json().datasets.length, 0)
  // A link that stays inside the root is fine.
  const ok = await h.app.inject({ method: 'POST', url: '/datasets', payload: { name: 'ok', source: { format: 'jsonl', path: 'inside-link.jsonl' }, batchSize: 1, numShards: 1 } })
  assert.equal(ok.statusCode, 201, ok.body)
})
