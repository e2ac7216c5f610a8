import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { AppError } from '../../src/errors.js'
import { checkUrlAllowed, downloadByRanges, parseAllowedPrefixes } from '../../src/sources/url-source.js'

let tmp: string
let n = 0

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'url-source-'))
})

after(async () => {
  await rm(tmp, { recursive: true, force: true })
})

function destPath (): string {
  return path.join(tmp, `file-${n++}.bin`)
}

/** The files left in the folder of `dest` that belong to it (`dest`, `dest.part`). */
async function leftovers (dest: string): Promise<string[]> {
  const base = path.basename(dest)
  return (await readdir(path.dirname(dest))).filter(f => f.startsWith(base))
}

interface Seen { url: string, range: string | undefined, ifRange: string | undefined }

interface TestServer {
  base: string
  seen: Seen[]
  close: () => Promise<void>
}

type Handler = (req: IncomingMessage, res: ServerResponse, seen: Seen[]) => void

async function serve (handler: Handler): Promise<TestServer> {
  const seen: Seen[] = []
  const server: Server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', range: req.headers.range, ifRange: req.headers['if-range'] as string | undefined })
    handler(req, res, seen)
  })
  await new Promise<void>(resolve => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    base: `http://127.0.0.1:${port}`,
    seen,
    async close () {
      server.closeAllConnections()
      await new Promise<void>(resolve => server.close(() => resolve()))
    }
  }
}

interface Validators { etag?: string, lastModified?: string, ignoreIfRange?: boolean }

/**
 * Answers GET with `data`, honouring `Range` (one range) and `If-Range`, as a file server
 * does; `validators` default to the ETag "v1".
 */
function sendRanged (req: IncomingMessage, res: ServerResponse, data: Buffer, validators: Validators = { etag: '"v1"' }): void {
  const { etag, lastModified, ignoreIfRange = false } = validators
  if (etag !== undefined) res.setHeader('ETag', etag)
  if (lastModified !== undefined) res.setHeader('Last-Modified', lastModified)
  res.setHeader('Accept-Ranges', 'bytes')
  const range = req.headers.range
  const ifRange = ignoreIfRange ? undefined : req.headers['if-range']
  const m = range === undefined ? null : /^bytes=(\d+)-(\d*)$/.exec(range)
  if (m === null || (ifRange !== undefined && ifRange !== etag && ifRange !== lastModified)) {
    res.writeHead(200, { 'Content-Length': data.length })
    res.end(data)
    return
  }
  const start = Number(m[1])
  const end = Math.min(data.length - 1, m[2] === '' ? data.length - 1 : Number(m[2]))
  if (start >= data.length) {
    res.writeHead(416, { 'Content-Range': `bytes */${data.length}` })
    res.end()
    return
  }
  res.writeHead(206, { 'Content-Range': `bytes ${start}-${end}/${data.length}`, 'Content-Length': end - start + 1 })
  res.end(data.subarray(start, end + 1))
}

async function rejectsWithCode (promise: Promise<unknown>, code: string, message?: RegExp): Promise<AppError> {
  try {
    await promise
  } catch (err) {
    assert.ok(err instanceof AppError, `expected an AppError ${code}, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    if (message !== undefined) assert.match(err.message, message)
    return err
  }
  assert.fail(`expected ${code}, but it succeeded`)
}

function prefixesFor (server: TestServer, dir = '/data/'): string[] {
  return parseAllowedPrefixes(server.base + dir)
}

describe('downloadByRanges', () => {
  const data = randomBytes(10_000)

  test('a range-capable server: several chunks, bytes equal, progress reported', async () => {
    const server = await serve((req, res) => sendRanged(req, res, data))
    try {
      const dest = destPath()
      const progress: Array<[number, number]> = []
      const result = await downloadByRanges(new URL(server.base + '/data/a.bin'), dest, {
        prefixes: prefixesFor(server),
        chunkBytes: 1024,
        onProgress: (done, total) => progress.push([done, total])
      })
      assert.equal(result.bytes, data.length)
      assert.equal(result.etag, '"v1"')
      assert.deepEqual(await readFile(dest), data)
      assert.deepEqual(await leftovers(dest), [path.basename(dest)])
      assert.deepEqual(server.seen.map(s => s.range), Array.from({ length: 10 }, (_, i) => `bytes=${i * 1024}-${Math.min(data.length, (i + 1) * 1024) - 1}`))
      // After the first answer, each request carries the ETag in If-Range.
      assert.equal(server.seen[0]?.ifRange, undefined)
      assert.ok(server.seen.slice(1).every(s => s.ifRange === '"v1"'))
      assert.ok(progress.length >= 10)
      assert.deepEqual(progress.at(-1), [data.length, data.length])
      for (let i = 1; i < progress.length; i++) assert.ok(progress[i]![0] >= progress[i - 1]![0])
    } finally {
      await server.close()
    }
  })

  test('an empty remote file (416 to the first range) gives an empty file', async () => {
    const server = await serve((req, res) => sendRanged(req, res, Buffer.alloc(0)))
    try {
      const dest = destPath()
      const result = await downloadByRanges(new URL(server.base + '/data/empty.bin'), dest, { prefixes: prefixesFor(server) })
      assert.equal(result.bytes, 0)
      assert.equal((await readFile(dest)).length, 0)
    } finally {
      await server.close()
    }
  })

  test('a server that ignores Range (200 with the whole body)', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Length': data.length })
      res.end(data)
    })
    try {
      const dest = destPath()
      const progress: number[] = []
      const result = await downloadByRanges(new URL(server.base + '/data/plain.bin'), dest, {
        prefixes: prefixesFor(server),
        chunkBytes: 1024,
        onProgress: done => progress.push(done)
      })
      assert.equal(result.bytes, data.length)
      assert.deepEqual(await readFile(dest), data)
      assert.equal(server.seen.length, 1)
      assert.equal(progress.at(-1), data.length)
    } finally {
      await server.close()
    }
  })

  test('a connection reset on the 2nd chunk: the retry asks for that chunk, not byte 0', async () => {
    let reset = false
    const server = await serve((req, res, seen) => {
      if (seen.length === 2 && !reset) {
        reset = true
        req.socket.destroy()
        return
      }
      sendRanged(req, res, data)
    })
    try {
      const dest = destPath()
      const result = await downloadByRanges(new URL(server.base + '/data/flaky.bin'), dest, { prefixes: prefixesFor(server), chunkBytes: 4096 })
      assert.ok(reset)
      assert.equal(result.bytes, data.length)
      assert.deepEqual(await readFile(dest), data)
      assert.deepEqual(server.seen.map(s => s.range), ['bytes=0-4095', 'bytes=4096-8191', 'bytes=4096-8191', 'bytes=8192-9999'])
    } finally {
      await server.close()
    }
  })

  test('a connection reset in the middle of a chunk: the retry starts at the first byte not written', async () => {
    let reset = false
    const server = await serve((req, res, seen) => {
      if (seen.length === 2 && !reset) {
        reset = true
        res.writeHead(206, { 'Content-Range': `bytes 4096-8191/${data.length}`, 'Content-Length': 4096, ETag: '"v1"' })
        res.write(data.subarray(4096, 4096 + 1000))
        setTimeout(() => req.socket.destroy(), 100)
        return
      }
      sendRanged(req, res, data)
    })
    try {
      const dest = destPath()
      await downloadByRanges(new URL(server.base + '/data/flaky.bin'), dest, { prefixes: prefixesFor(server), chunkBytes: 4096 })
      assert.deepEqual(await readFile(dest), data)
      assert.deepEqual(server.seen.map(s => s.range), ['bytes=0-4095', 'bytes=4096-8191', 'bytes=5096-9191', 'bytes=9192-9999'])
    } finally {
      await server.close()
    }
  })

  test('a 503 is retried', async () => {
    let failed = false
    const server = await serve((req, res) => {
      if (!failed) {
        failed = true
        res.writeHead(503)
        res.end()
        return
      }
      sendRanged(req, res, data)
    })
    try {
      const dest = destPath()
      await downloadByRanges(new URL(server.base + '/data/busy.bin'), dest, { prefixes: prefixesFor(server), chunkBytes: 8192 })
      assert.deepEqual(await readFile(dest), data)
      assert.deepEqual(server.seen.map(s => s.range), ['bytes=0-8191', 'bytes=0-8191', 'bytes=8192-9999'])
    } finally {
      await server.close()
    }
  })

  test('retries run out -> SOURCE_INVALID and no file left', async () => {
    const server = await serve(req => req.socket.destroy())
    try {
      const dest = destPath()
      await rejectsWithCode(downloadByRanges(new URL(server.base + '/data/down.bin'), dest, { prefixes: prefixesFor(server), retries: 2 }), 'SOURCE_INVALID', /failed 3 times/)
      assert.equal(server.seen.length, 3)
      assert.deepEqual(await leftovers(dest), [])
    } finally {
      await server.close()
    }
  })

  test('a redirect inside the allowed prefixes is followed (for every chunk)', async () => {
    const server = await serve((req, res) => {
      if (req.url === '/data/old.bin') {
        res.writeHead(302, { Location: '/data/new.bin' })
        res.end()
        return
      }
      if (req.url === '/data/new.bin') return sendRanged(req, res, data)
      res.writeHead(404)
      res.end()
    })
    try {
      const dest = destPath()
      await downloadByRanges(new URL(server.base + '/data/old.bin'), dest, { prefixes: prefixesFor(server), chunkBytes: 6000 })
      assert.deepEqual(await readFile(dest), data)
      assert.deepEqual(server.seen.map(s => `${s.url} ${s.range ?? ''}`), [
        '/data/old.bin bytes=0-5999', '/data/new.bin bytes=0-5999',
        '/data/old.bin bytes=6000-9999', '/data/new.bin bytes=6000-9999'
      ])
    } finally {
      await server.close()
    }
  })

  test('a redirect outside the allowed prefixes -> SOURCE_FORBIDDEN, never fetched', async () => {
    const server = await serve((req, res) => {
      const targets: Record<string, string> = {
        '/data/out.bin': '/private/secret.bin',
        '/data/up.bin': '/data/../private/secret.bin',
        '/data/host.bin': server.base.replace('127.0.0.1', 'localhost') + '/data/x.bin',
        '/data/ftp.bin': 'ftp://127.0.0.1/data/x.bin',
        '/data/creds.bin': server.base.replace('//', '//user:hunter2@') + '/data/x.bin'
      }
      const target = targets[req.url ?? '']
      if (target !== undefined) {
        res.writeHead(301, { Location: target })
        res.end()
        return
      }
      sendRanged(req, res, data)
    })
    try {
      for (const from of ['/data/out.bin', '/data/up.bin', '/data/host.bin', '/data/ftp.bin', '/data/creds.bin']) {
        const dest = destPath()
        const err = await rejectsWithCode(downloadByRanges(new URL(server.base + from), dest, { prefixes: prefixesFor(server) }), 'SOURCE_FORBIDDEN', /redirecting to/)
        assert.ok(!err.message.includes('hunter2'), err.message)
        assert.deepEqual(await leftovers(dest), [])
      }
      // Only the five first requests arrived; no redirect target was fetched (the localhost
      // one would have reached this very server).
      assert.deepEqual(server.seen.map(s => s.url), ['/data/out.bin', '/data/up.bin', '/data/host.bin', '/data/ftp.bin', '/data/creds.bin'])
    } finally {
      await server.close()
    }
  })

  test('a redirect loop stops after 5 redirects with a clear message', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(302, { Location: '/data/loop.bin' })
      res.end()
    })
    try {
      const dest = destPath()
      await rejectsWithCode(downloadByRanges(new URL(server.base + '/data/loop.bin'), dest, { prefixes: prefixesFor(server) }), 'SOURCE_INVALID', /more than 5 redirects/)
      assert.equal(server.seen.length, 6)
      assert.deepEqual(await leftovers(dest), [])
    } finally {
      await server.close()
    }
  })

  test('the file changes between chunks (server honours If-Range) -> SOURCE_INVALID', async () => {
    const server = await serve((req, res, seen) => {
      if (seen.length === 1) sendRanged(req, res, data, { etag: '"v1"' })
      else sendRanged(req, res, Buffer.from(data).reverse(), { etag: '"v2"' })
    })
    try {
      const dest = destPath()
      await rejectsWithCode(downloadByRanges(new URL(server.base + '/data/moving.bin'), dest, { prefixes: prefixesFor(server), chunkBytes: 4096 }),
        'SOURCE_INVALID', /the remote file changed while it was being downloaded; register it again/)
      assert.equal(server.seen[1]?.ifRange, '"v1"')
      assert.deepEqual(await leftovers(dest), [])
    } finally {
      await server.close()
    }
  })

  test('the file changes between chunks (server ignores If-Range, new ETag or Last-Modified) -> SOURCE_INVALID', async () => {
    for (const validator of ['etag', 'last-modified']) {
      const server = await serve((req, res, seen) => {
        const first = seen.length === 1
        sendRanged(req, res, data, validator === 'etag'
          ? { etag: first ? 'W/"a"' : 'W/"b"', ignoreIfRange: true }
          : { lastModified: first ? 'Mon, 01 Jan 2024 00:00:00 GMT' : 'Tue, 02 Jan 2024 00:00:00 GMT', ignoreIfRange: true })
      })
      try {
        const dest = destPath()
        await rejectsWithCode(downloadByRanges(new URL(server.base + '/data/moving.bin'), dest, { prefixes: prefixesFor(server), chunkBytes: 4096 }),
          'SOURCE_INVALID', /remote file changed/)
        // A weak ETag is never sent in If-Range; a Last-Modified date is when there is no ETag.
        if (validator === 'etag') assert.equal(server.seen[1]?.ifRange, undefined)
        else assert.equal(server.seen[1]?.ifRange, 'Mon, 01 Jan 2024 00:00:00 GMT')
        assert.deepEqual(await leftovers(dest), [])
      } finally {
        await server.close()
      }
    }
  })

  test('a 206 that starts elsewhere than asked -> SOURCE_INVALID', async () => {
    const server = await serve((req, res, seen) => {
      if (seen.length === 1) return sendRanged(req, res, data)
      res.writeHead(206, { 'Content-Range': `bytes 0-99/${data.length}`, ETag: '"v1"' })
      res.end(data.subarray(0, 100))
    })
    try {
      const dest = destPath()
      await rejectsWithCode(downloadByRanges(new URL(server.base + '/data/odd.bin'), dest, { prefixes: prefixesFor(server), chunkBytes: 4096 }),
        'SOURCE_INVALID', /answered bytes 0-99\/10000 when asked for bytes 4096-8191/)
      assert.deepEqual(await leftovers(dest), [])
    } finally {
      await server.close()
    }
  })

  test('404 and 403 -> SOURCE_INVALID naming the status, without the query string', async () => {
    const server = await serve((req, res) => {
      res.writeHead(req.url?.startsWith('/data/forbidden') === true ? 403 : 404)
      res.end('nope')
    })
    try {
      for (const [file, status] of [['missing.bin', 404], ['forbidden.bin', 403]] as const) {
        const dest = destPath()
        const err = await rejectsWithCode(downloadByRanges(new URL(`${server.base}/data/${file}?token=s3cret`), dest, { prefixes: prefixesFor(server) }),
          'SOURCE_INVALID', new RegExp(`GET ${server.base}/data/${file} answered ${status}`))
        assert.ok(!err.message.includes('s3cret'), err.message)
        assert.deepEqual(await leftovers(dest), [])
      }
      // The query string is sent, though (signed URLs need it).
      assert.equal(server.seen[0]?.url, '/data/missing.bin?token=s3cret')
    } finally {
      await server.close()
    }
  })

  test('larger than maxBytes -> SOURCE_INVALID and no file left behind', async () => {
    const ranged = await serve((req, res) => sendRanged(req, res, data))
    // Ignores ranges and sends no Content-Length (chunked): the limit applies while streaming.
    const chunked = await serve((_req, res) => {
      res.writeHead(200)
      for (let i = 0; i < data.length; i += 1000) res.write(data.subarray(i, i + 1000))
      res.end()
    })
    try {
      for (const server of [ranged, chunked]) {
        const dest = destPath()
        await rejectsWithCode(downloadByRanges(new URL(server.base + '/data/big.bin'), dest, { prefixes: prefixesFor(server), chunkBytes: 1024, maxBytes: 5000 }),
          'SOURCE_INVALID', /limit for URL sources of 5000 bytes/)
        assert.deepEqual(await leftovers(dest), [])
      }
      // The ranged server announced the size in its first answer: nothing more was asked.
      assert.equal(ranged.seen.length, 1)
      // Exactly maxBytes is fine.
      const dest = destPath()
      await downloadByRanges(new URL(ranged.base + '/data/big.bin'), dest, { prefixes: prefixesFor(ranged), maxBytes: data.length })
      assert.deepEqual(await readFile(dest), data)
    } finally {
      await ranged.close()
      await chunked.close()
    }
  })

  test('abort: the signal\'s AbortError, no file left', async () => {
    const server = await serve((req, res) => sendRanged(req, res, data))
    try {
      const dest = destPath()
      const controller = new AbortController()
      await assert.rejects(downloadByRanges(new URL(server.base + '/data/a.bin'), dest, {
        prefixes: prefixesFor(server),
        chunkBytes: 1024,
        signal: controller.signal,
        onProgress: done => { if (done >= 2048) controller.abort() }
      }), { name: 'AbortError' })
      assert.deepEqual(await leftovers(dest), [])
      assert.ok(server.seen.length < 10)
    } finally {
      await server.close()
    }
  })

  test('the URL itself is checked against the prefixes before anything is fetched', async () => {
    const server = await serve((req, res) => sendRanged(req, res, data))
    try {
      const dest = destPath()
      await rejectsWithCode(downloadByRanges(new URL(server.base + '/other/a.bin'), dest, { prefixes: prefixesFor(server) }), 'SOURCE_FORBIDDEN')
      assert.equal(server.seen.length, 0)
    } finally {
      await server.close()
    }
  })
})

describe('checkUrlAllowed', () => {
  const prefixes = parseAllowedPrefixes('http://allowed.example.com/data/, https://cdn.example.org/pub')

  test('URLs under a prefix are accepted (after normalisation)', () => {
    const cases: Array<[string, string]> = [
      ['http://allowed.example.com/data/train.jsonl', 'http://allowed.example.com/data/train.jsonl'],
      ['HTTP://ALLOWED.Example.COM:80/data/x.jsonl?sig=abc#frag', 'http://allowed.example.com/data/x.jsonl?sig=abc'],
      ['http://allowed.example.com/data/sub/../x.csv', 'http://allowed.example.com/data/x.csv'],
      ['https://cdn.example.org/pub', 'https://cdn.example.org/pub'],
      ['https://cdn.example.org/pub/a/b.parquet', 'https://cdn.example.org/pub/a/b.parquet']
    ]
    for (const [url, href] of cases) assert.equal(checkUrlAllowed(url, prefixes).href, href, url)
  })

  test('tricks to leave the prefixes are SOURCE_FORBIDDEN', () => {
    const bad = [
      'http://allowed.example.com.evil.net/data/x.jsonl',
      'http://allowed.example.com@evil.net/data/x.jsonl',
      'http://allowed.example.com:pw@evil.net/data/x.jsonl',
      'http://user:pw@allowed.example.com/data/x.jsonl',
      'http://user@allowed.example.com/data/x.jsonl',
      'http://evil.net#@allowed.example.com/data/x.jsonl',
      'http://evil.net?@allowed.example.com/data/x.jsonl',
      'http://allowed.example.com\\@evil.net/data/x.jsonl',
      'http://allowed.example.com/data/../secret.jsonl',
      'http://allowed.example.com/data/%2e%2e/secret.jsonl',
      'http://allowed.example.com/data/%2E%2E/secret.jsonl',
      'http://allowed.example.com/data/.%2e/secret.jsonl',
      'http://allowed.example.com/data/..%2fsecret.jsonl',
      'http://allowed.example.com/data%2f..%2fsecret.jsonl',
      'http://allowed.example.com/data/..%5csecret.jsonl',
      'http://allowed.example.com/data',
      'http://allowed.example.com/database/x.jsonl',
      'https://cdn.example.org/public/x.jsonl',
      'https://cdn.example.org/pub.evil/x.jsonl',
      'https://allowed.example.com/data/x.jsonl',
      'http://allowed.example.com:8080/data/x.jsonl',
      'http://cdn.example.org/pub/x.jsonl',
      'ftp://allowed.example.com/data/x.jsonl',
      'file:///data/x.jsonl',
      'file://allowed.example.com/data/x.jsonl',
      'data:text/plain,{"a":1}',
      'javascript:alert(1)'
    ]
    for (const url of bad) {
      assert.throws(() => checkUrlAllowed(url, prefixes), (err: unknown) => {
        assert.ok(err instanceof AppError, `${url}: ${String(err)}`)
        assert.equal(err.code, 'SOURCE_FORBIDDEN', `${url}: ${err.message}`)
        return true
      }, url)
    }
  })

  test('messages say what to change and never show credentials or the query string', () => {
    const cases: Array<[string, RegExp]> = [
      ['http://user:hunter2@allowed.example.com/data/x.jsonl?token=s3cret', /user name or password; remove them/],
      ['http://other.example.com/x.jsonl?token=s3cret', /not under an allowed prefix \(http:\/\/allowed\.example\.com\/data\/, https:\/\/cdn\.example\.org\/pub\).*ALLOWED_SOURCE_URL_PREFIXES/],
      ['ftp://allowed.example.com/data/x.jsonl?token=s3cret', /uses ftp:; only http: and https:/],
      ['http://user:hunter2@[::1/x?token=s3cret', /is not an absolute URL/]
    ]
    for (const [url, message] of cases) {
      assert.throws(() => checkUrlAllowed(url, prefixes), (err: unknown) => {
        assert.ok(err instanceof AppError)
        assert.match(err.message, message)
        assert.ok(!err.message.includes('hunter2') && !err.message.includes('s3cret'), err.message)
        return true
      })
    }
  })

  test('no prefixes: every URL is SOURCE_FORBIDDEN, saying so', () => {
    assert.throws(() => checkUrlAllowed('https://cdn.example.org/pub/x.jsonl', []), (err: unknown) => {
      assert.ok(err instanceof AppError)
      assert.equal(err.code, 'SOURCE_FORBIDDEN')
      assert.match(err.message, /this server allows no URL sources; .*source\.path/)
      return true
    })
  })

  test('strings that are not absolute URLs are VALIDATION errors', () => {
    for (const url of ['', 'not a url', '/data/x.jsonl', 'allowed.example.com/data/x.jsonl', 'http://']) {
      assert.throws(() => checkUrlAllowed(url, prefixes), (err: unknown) => {
        assert.ok(err instanceof AppError, `${url}: ${String(err)}`)
        assert.equal(err.code, 'VALIDATION', `${url}: ${err.message}`)
        return true
      }, url)
    }
  })
})

describe('parseAllowedPrefixes', () => {
  test('empty means none', () => {
    assert.deepEqual(parseAllowedPrefixes(''), [])
    assert.deepEqual(parseAllowedPrefixes('  '), [])
    assert.deepEqual(parseAllowedPrefixes(' , '), [])
  })

  test('a comma-separated list, trimmed and normalised', () => {
    assert.deepEqual(parseAllowedPrefixes(' https://A.example.com/data/ ,http://b.example.com:80/x/../pub,http://c.example.com'),
      ['https://a.example.com/data/', 'http://b.example.com/pub', 'http://c.example.com/'])
  })

  test('entries that are not absolute http(s) URLs throw, naming the entry', () => {
    const bad: Array<[string, string]> = [
      ['ftp://files.example.com/', 'ftp://files.example.com/'],
      ['https://ok.example.com/, files.example.com/data', 'files.example.com/data'],
      ['file:///srv/data', 'file:///srv/data'],
      ['/data/', '/data/'],
      ['https://user:pw@ok.example.com/', 'https://ok.example.com/'],
      ['https://ok.example.com/data?x=1', 'https://ok.example.com/data'],
      ['https://ok.example.com/data#top', 'https://ok.example.com/data']
    ]
    for (const [value, named] of bad) {
      assert.throws(() => parseAllowedPrefixes(value), (err: unknown) => {
        assert.ok(err instanceof Error)
        assert.ok(!(err instanceof AppError))
        assert.ok(err.message.includes(JSON.stringify(named)), `${value}: ${err.message}`)
        assert.ok(!err.message.includes(':pw@'), err.message)
        return true
      }, value)
    }
  })
})
