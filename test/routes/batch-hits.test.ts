// The hit path (routes/batch-hits.ts) on a real listening server: memory-tier hits skip
// Fastify, and answer byte for byte as the route does; everything else reaches the route.
// Requests that Fastify answers are counted with an onSend hook, which the hit path skips.
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { Writable } from 'node:stream'
import path from 'node:path'
import { mkdir, writeFile } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config.js'
import { makeTempDirs, jsonlRecords } from '../helper.js'

interface Served { app: FastifyInstance, origin: string, dataRoot: string, routed: () => number, logLines: Array<Record<string, unknown>> }

async function serve (t: TestContext, env: Record<string, string> = {}): Promise<Served> {
  const { dataRoot, cacheDir } = await makeTempDirs(t)
  await mkdir(dataRoot, { recursive: true })
  await writeFile(path.join(dataRoot, 'd.jsonl'), jsonlRecords(200))
  const config = loadConfig({ DATA_ROOT: dataRoot, CACHE_DIR: cacheDir, LOG_LEVEL: 'silent', MAX_EVENT_LOOP_DELAY_MS: '0', ...env })
  const logLines: Array<Record<string, unknown>> = []
  const stream = new Writable({
    write (chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line !== '') logLines.push(JSON.parse(line) as Record<string, unknown>)
      done()
    }
  })
  const app = await buildApp(config, env.LOG_LEVEL === 'info' ? { logger: { level: 'info', stream } } : {})
  let routed = 0
  // onSend runs for every answer of Fastify's, errors from earlier hooks included.
  app.addHook('onSend', function countRouted (_req, _reply, payload, done) {
    routed++
    done(null, payload)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.after(async () => { await app.close() })
  const address = app.server.address()
  assert.ok(address !== null && typeof address === 'object')
  const origin = `http://127.0.0.1:${address.port}`
  const admin: Record<string, string> = env.ADMIN_TOKEN === undefined ? {} : { authorization: `Bearer ${env.ADMIN_TOKEN}` }
  const res = await fetch(`${origin}/datasets`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...admin },
    body: JSON.stringify({ name: 'd', source: { format: 'jsonl', path: 'd.jsonl' }, batchSize: 4, numShards: 2, shuffle: true, seed: 3 })
  })
  assert.equal(res.status, 201, await res.text())
  return { app, origin, dataRoot, routed: () => routed, logLines }
}

async function metricValue (s: Served, name: string): Promise<number> {
  const text = (await get(s.origin, '/metrics')).body.toString()
  const m = new RegExp(`^${name.replace(/[{}"]/g, (c) => `\\${c}`)} (\\d+)$`, 'm').exec(text)
  return Number(m?.[1] ?? 0)
}

interface Answer { status: number, headers: Record<string, string>, body: Buffer }

async function get (origin: string, url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer> {
  const res = await fetch(origin + url, { method, headers })
  const body = Buffer.from(await res.arrayBuffer())
  const h: Record<string, string> = {}
  res.headers.forEach((v, k) => { if (k !== 'date') h[k] = v })
  return { status: res.status, headers: h, body }
}

/** GETs url and reports whether Fastify's router saw it. */
async function getCounted (s: Served, url: string, headers: Record<string, string> = {}, method = 'GET'): Promise<Answer & { routed: boolean }> {
  const before = s.routed()
  const a = await get(s.origin, url, headers, method)
  return { ...a, routed: s.routed() > before }
}

test('a miss and a memory-tier hit skip the router and answer exactly as the route answers them', async (t) => {
  const s = await serve(t)
  // A second server on the same data, whose route builds the same batches.
  const other = await serve(t)
  for (const [url, headers] of [
    ['/datasets/d/shards/1/batches/2?epoch=3', {}],
    ['/datasets/d/shards/0/batches/5?epoch=7&format=arrow', {}],
    ['/datasets/d/shards/0/batches/5?format=ndjson', {}],
    ['/datasets/d/shards/1/batches/24', { accept: 'application/vnd.apache.arrow.stream' }]
  ] as Array<[string, Record<string, string>]>) {
    // The route answers the same batch when the epoch is spelt with a percent escape, which
    // the hit path leaves to Fastify's query parser.
    const viaRouteUrl = url.includes('epoch=') ? url.replace(/epoch=(\d)/, 'epoch=%3$1') : `${url}${url.includes('?') ? '&' : '?'}epoch=%30`

    const miss = await getCounted(s, url, headers)
    assert.equal(miss.status, 200, url)
    assert.equal(miss.routed, false, `${url}: a miss is built on the hit path`)
    assert.equal(miss.headers['x-cache'], 'miss')
    const missViaRoute = await getCounted(other, viaRouteUrl, headers)
    assert.equal(missViaRoute.routed, true, `${viaRouteUrl} goes to the route`)
    assert.deepEqual(miss.headers, missViaRoute.headers, `${url}: same headers as the route's miss`)
    assert.ok(miss.body.equals(missViaRoute.body), `${url}: same body as the route's miss`)

    const hit = await getCounted(s, url, headers)
    assert.equal(hit.routed, false, `${url}: a memory hit is the hit path's`)
    assert.equal(hit.headers['x-cache'], 'memory')

    const viaRoute = await getCounted(s, viaRouteUrl, headers)
    assert.equal(viaRoute.routed, true, `${viaRouteUrl} goes to the route`)
    assert.deepEqual(hit.headers, viaRoute.headers, `${url}: same headers`)
    assert.ok(hit.body.equals(viaRoute.body), `${url}: same body`)
    assert.ok(hit.body.equals(miss.body), `${url}: same bytes as the build`)
    assert.deepEqual({ ...hit.headers, 'x-cache': 'miss' }, miss.headers, `${url}: same headers as the miss`)

    const ifNoneMatch = { ...headers, 'if-none-match': `"x", ${hit.headers.etag}` }
    const notModified = await getCounted(s, url, ifNoneMatch)
    assert.equal(notModified.routed, false)
    assert.equal(notModified.status, 304)
    assert.equal(notModified.body.length, 0)
    const notModifiedViaRoute = await getCounted(s, viaRouteUrl, ifNoneMatch)
    assert.equal(notModifiedViaRoute.routed, true)
    assert.equal(notModifiedViaRoute.status, 304)
    assert.deepEqual(notModified.headers, notModifiedViaRoute.headers, `${url}: same 304 headers`)
  }
})

test('a disk-tier hit is the hit path\'s too, answered as the route answers it', async (t) => {
  const s = await serve(t, { MEMORY_CACHE_BYTES: '0' })
  const url = '/datasets/d/shards/1/batches/3?epoch=4&format=arrow'
  const miss = await getCounted(s, url)
  assert.equal(miss.headers['x-cache'], 'miss')
  await s.app.services.batches.settle()
  const counts = async (): Promise<number[]> => [
    await metricValue(s, 'shardfeed_cache_hits_total{tier="disk"}'),
    await metricValue(s, 'shardfeed_cache_misses_total{tier="memory"}'),
    await metricValue(s, 'shardfeed_cache_misses_total{tier="disk"}')
  ]
  const before = await counts()
  const hits: Answer[] = []
  for (let k = 0; k < 2; k++) {
    const hit = await getCounted(s, url)
    assert.equal(hit.routed, false)
    assert.equal(hit.headers['x-cache'], 'disk')
    hits.push(hit)
  }
  assert.deepEqual(await counts(), [before[0]! + 2, before[1]! + 2, before[2]!], 'disk hits and memory misses, as the route counts them')
  const viaRoute = await getCounted(s, url.replace('epoch=4', 'epoch=%34'))
  assert.equal(viaRoute.routed, true)
  for (const hit of hits) {
    assert.deepEqual(hit.headers, viaRoute.headers)
    assert.ok(hit.body.equals(miss.body) && viaRoute.body.equals(miss.body))
  }
  const notModified = await getCounted(s, url, { 'if-none-match': miss.headers.etag as string })
  assert.equal(notModified.routed, false)
  assert.equal(notModified.status, 304)
  // Not on disk yet: built on the hit path, counted as the route counts a miss.
  const before2 = await counts()
  const other = await getCounted(s, url.replace('batches/3', 'batches/20'))
  assert.equal(other.routed, false)
  assert.equal(other.headers['x-cache'], 'miss')
  assert.deepEqual(await counts(), [before2[0]!, before2[1]! + 1, before2[2]! + 1], 'a memory and a disk miss, as the route counts them')
})

test('a miss whose build fails goes to the route, which answers the error', async (t) => {
  // No read-ahead: its builds would notice the change first.
  const s = await serve(t, { PREFETCH_BATCHES: '0' })
  assert.equal((await getCounted(s, '/datasets/d/shards/0/batches/0')).status, 200)
  // Within the guard's second since its last check, so that only the check after the build
  // (source-guard.ts) sees the change: the hit path's build fails.
  await writeFile(path.join(s.dataRoot, 'd.jsonl'), jsonlRecords(201))
  const failed = await getCounted(s, '/datasets/d/shards/0/batches/1')
  assert.equal(failed.routed, true)
  assert.equal(failed.status, 409, failed.body.toString())
  assert.equal(JSON.parse(failed.body.toString()).code, 'SOURCE_CHANGED')
})

test('requests the hit path cannot answer exactly reach the route with its answer', async (t) => {
  const s = await serve(t)
  const url = '/datasets/d/shards/0/batches/1?epoch=2'
  assert.equal((await getCounted(s, url)).headers['x-cache'], 'miss')
  assert.equal((await getCounted(s, url)).routed, false)
  const cases: Array<[string, Record<string, string>, string, number, string | undefined]> = [
    ['HEAD', {}, url, 200, undefined],
    ['GET', {}, '/datasets/d/shards/0/batches/1?epoch=2&x=1', 400, 'VALIDATION'],
    ['GET', {}, '/datasets/d/shards/0/batches/1?epoch=2&epoch=2', 400, 'VALIDATION'],
    ['GET', {}, '/datasets/d/shards/0/batches/1?epoch=2147483648', 400, 'VALIDATION'],
    ['GET', {}, '/datasets/d/shards/0/batches/1?epoch=', 400, 'VALIDATION'],
    ['GET', {}, '/datasets/d/shards/2/batches/1?epoch=2', 404, 'SHARD_NOT_FOUND'],
    ['GET', {}, '/datasets/d/shards/0/batches/99?epoch=2', 404, 'BATCH_OUT_OF_RANGE'],
    ['GET', {}, '/datasets/d/shards/0/batches/1?epoch=2&format=xml', 406, 'FORMAT_NOT_ACCEPTABLE'],
    ['GET', { accept: 'text/csv' }, url, 406, 'FORMAT_NOT_ACCEPTABLE'],
    ['GET', {}, '/datasets/nope/shards/0/batches/1?epoch=2', 404, 'DATASET_NOT_FOUND'],
    ['GET', {}, '/datasets/d/shards/0/batches/1/?epoch=2', 404, undefined]
  ]
  for (const [method, headers, u, status, code] of cases) {
    const a = await getCounted(s, u, headers, method)
    assert.equal(a.routed, true, `${method} ${u} ${JSON.stringify(headers)} goes to the route`)
    assert.equal(a.status, status, `${method} ${u}: ${a.body.toString()}`)
    if (code !== undefined) assert.equal(JSON.parse(a.body.toString()).code, code)
  }
})

test('with READ_TOKEN, a hit needs the token too; the route answers 401 without it', async (t) => {
  const s = await serve(t, { READ_TOKEN: 'reader', ADMIN_TOKEN: 'boss' })
  const url = '/datasets/d/shards/0/batches/0'
  assert.equal((await getCounted(s, url, { authorization: 'Bearer reader' })).headers['x-cache'], 'miss')
  const denied = await getCounted(s, url)
  assert.equal(denied.routed, true)
  assert.equal(denied.status, 401)
  assert.equal(JSON.parse(denied.body.toString()).code, 'UNAUTHORIZED')
  const wrong = await getCounted(s, url, { authorization: 'Bearer nope' })
  assert.equal(wrong.status, 401)
  for (const token of ['reader', 'boss']) {
    const hit = await getCounted(s, url, { authorization: `Bearer ${token}` })
    assert.equal(hit.routed, false)
    assert.equal(hit.headers['x-cache'], 'memory')
  }
})

test('hits on the hit path count in /metrics and keep read-ahead going', async (t) => {
  const s = await serve(t, { PREFETCH_BATCHES: '2' })
  const metric = async (name: string): Promise<number> => await metricValue(s, name)
  const settle = async (): Promise<void> => { await s.app.services.batches.settle() }
  const at = (i: number): string => `/datasets/d/shards/1/batches/${i}?epoch=9`
  assert.equal((await getCounted(s, at(0))).headers['x-cache'], 'miss')
  await settle()
  const hitsBefore = await metric('shardfeed_cache_hits_total{tier="memory"}')
  const readAheadBefore = await metric('shardfeed_readahead_hits_total')
  // Batches 1 and 2 were read ahead; each hit on the hit path reads two further ahead.
  for (let i = 1; i <= 6; i++) {
    const a = await getCounted(s, at(i))
    assert.equal(a.routed, false, `batch ${i}`)
    assert.equal(a.headers['x-cache'], 'memory', `batch ${i}`)
    await settle()
  }
  assert.equal(await metric('shardfeed_cache_hits_total{tier="memory"}'), hitsBefore + 6)
  assert.equal(await metric('shardfeed_readahead_hits_total'), readAheadBefore + 6)
})

test('at LOG_LEVEL=info a hit logs the two lines Fastify logs for a request', async (t) => {
  const s = await serve(t, { LOG_LEVEL: 'info' })
  const url = '/datasets/d/shards/0/batches/3?epoch=1'
  await getCounted(s, url)
  const mark = s.logLines.length
  const hit = await getCounted(s, url)
  assert.equal(hit.routed, false)
  await new Promise((resolve) => setTimeout(resolve, 50))
  const routedLines = s.logLines.slice(0, mark).filter((l) => l.msg === 'incoming request' || l.msg === 'request completed')
  const hitLines = s.logLines.slice(mark)
  assert.deepEqual(hitLines.map((l) => l.msg), ['incoming request', 'request completed'])
  const shape = (l: Record<string, unknown>): string[] => Object.keys(l).filter((k) => k !== 'time').sort()
  const routedIncoming = routedLines.find((l) => l.msg === 'incoming request' && (l.req as { url: string }).url === url)
  const routedCompleted = routedLines.find((l) => l.msg === 'request completed' && l.reqId === routedIncoming?.reqId)
  assert.ok(routedIncoming !== undefined && routedCompleted !== undefined)
  assert.deepEqual(shape(hitLines[0]!), shape(routedIncoming))
  assert.deepEqual(Object.keys(hitLines[0]!.req as object).sort(), Object.keys(routedIncoming.req as object).sort())
  assert.deepEqual({ ...(hitLines[0]!.req as object), remotePort: 0 }, { ...(routedIncoming.req as object), remotePort: 0 })
  assert.deepEqual(shape(hitLines[1]!), shape(routedCompleted))
  assert.deepEqual(hitLines[1]!.res, { statusCode: 200 })
  assert.equal(hitLines[0]!.reqId, hitLines[1]!.reqId)
  const ids = s.logLines.filter((l) => l.msg === 'incoming request').map((l) => l.reqId)
  assert.equal(new Set(ids).size, ids.length, 'request ids are unique across both paths')
})
