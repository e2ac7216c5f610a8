import { test } from 'node:test'
import assert from 'node:assert/strict'
import { buildTestApp, makeTempDirs } from '../helper.js'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { isLoopback, tokenMatches } from '../../src/plugins/auth.js'

const body = { name: 'd', source: { format: 'json', records: [{ a: 1 }, { a: 2 }] }, batchSize: 1, numShards: 1 }

test('ADMIN_TOKEN guards POST and DELETE; READ_TOKEN guards reads; probes stay open', async (t) => {
  const logs: string[] = []
  const { dataRoot, cacheDir } = await makeTempDirs(t)
  const config = loadConfig({ DATA_ROOT: dataRoot, CACHE_DIR: cacheDir, ADMIN_TOKEN: 'admin-secret-1', READ_TOKEN: 'read-secret-2', MAX_EVENT_LOOP_DELAY_MS: '0' })
  // Everything the app logs, at the most verbose level, goes to `logs`.
  const app = await buildApp(config, { logger: { level: 'trace', stream: { write: (line: string) => { logs.push(line) } } } })
  t.after(async () => { await app.close() })
  const post = async (headers: Record<string, string>): Promise<{ statusCode: number, json: () => { code: string } }> => await app.inject({ method: 'POST', url: '/datasets', payload: body, headers })
  for (const headers of [{} as Record<string, string>, { authorization: 'Bearer wrong' }, { authorization: 'Bearer read-secret-2' }, { authorization: 'admin-secret-1' }, { authorization: 'Basic admin-secret-1' }]) {
    const res = await post(headers)
    assert.equal(res.statusCode, 401, JSON.stringify(headers))
    assert.equal(res.json().code, 'UNAUTHORIZED')
  }
  assert.equal((await post({ authorization: 'Bearer admin-secret-1' })).statusCode, 201)

  const read = async (authorization?: string): Promise<number> => (await app.inject({ method: 'GET', url: '/datasets/d/shards/0/batches/0', headers: authorization === undefined ? {} : { authorization } })).statusCode
  assert.equal(await read(), 401)
  assert.equal(await read('Bearer nope'), 401)
  assert.equal(await read('Bearer read-secret-2'), 200)
  assert.equal(await read('Bearer admin-secret-1'), 200)
  assert.equal((await app.inject({ method: 'GET', url: '/datasets' })).statusCode, 401)

  for (const url of ['/healthz', '/readyz', '/metrics', '/openapi.json']) {
    assert.equal((await app.inject({ method: 'GET', url })).statusCode, 200, url)
  }
  assert.equal((await app.inject({ method: 'DELETE', url: '/datasets/d', headers: { authorization: 'Bearer read-secret-2' } })).statusCode, 401)
  assert.equal((await app.inject({ method: 'DELETE', url: '/datasets/d', headers: { authorization: 'Bearer admin-secret-1' } })).statusCode, 204)
  await app.inject({ method: 'POST', url: '/datasets', payload: { name: 'BAD NAME' }, headers: { authorization: 'Bearer admin-secret-1' } })
  assert.ok(logs.length > 10, 'requests were logged')
  for (const line of logs) {
    assert.ok(!line.includes('admin-secret-1') && !line.includes('read-secret-2'), `a token leaked into the log: ${line}`)
  }
})

test('without ADMIN_TOKEN, mutations come from loopback only', async (t) => {
  const { app } = await buildTestApp(t)
  assert.equal((await app.inject({ method: 'POST', url: '/datasets', payload: body, remoteAddress: '127.0.0.1' })).statusCode, 201)
  const remote = await app.inject({ method: 'POST', url: '/datasets', payload: { ...body, name: 'e' }, remoteAddress: '10.1.2.3' })
  assert.equal(remote.statusCode, 401)
  assert.equal(remote.json().code, 'UNAUTHORIZED')
  assert.match(remote.json().message, /ADMIN_TOKEN/)
  assert.equal((await app.inject({ method: 'DELETE', url: '/datasets/d', remoteAddress: '192.168.0.9' })).statusCode, 401)
  assert.equal((await app.inject({ method: 'GET', url: '/datasets/d', remoteAddress: '192.168.0.9' })).statusCode, 200, 'reads are open without READ_TOKEN')
  assert.equal((await app.inject({ method: 'DELETE', url: '/datasets/d', remoteAddress: '::1' })).statusCode, 204)
})

test('token comparison and loopback detection', () => {
  assert.equal(tokenMatches('abc', 'abc'), true)
  assert.equal(tokenMatches('abc', 'abd'), false)
  assert.equal(tokenMatches('abc', 'abcd'), false)
  assert.equal(tokenMatches('', 'x'), false)
  for (const a of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1']) assert.equal(isLoopback(a), true, a)
  for (const a of ['10.0.0.1', '::ffff:10.0.0.1', '128.0.0.1', undefined]) assert.equal(isLoopback(a), false, String(a))
})
