// URL sources: `source.url` names an http(s) file under one of the prefixes the operator
// allows (ALLOWED_SOURCE_URL_PREFIXES). The file is fetched once, at registration, into a
// local file, and then indexed and served like any other; batches never touch the network.
//
// The download asks for the file in ranged chunks (HTTP Range), so a connection that drops
// half way through a large file resumes from the last byte written, not from zero. Redirects
// are followed by hand, and only to URLs under the same allowed prefixes, so a redirect cannot
// walk the server out of what the operator allowed. Messages and errors show a URL without
// its query string and user info, which may hold credentials (signed URLs).
import { mkdir, open, rename, rm, type FileHandle } from 'node:fs/promises'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Agent, request } from 'undici'
import { AppError } from '../errors.js'

const MiB = 1024 * 1024
const DEFAULT_CHUNK_BYTES = 8 * MiB
const DEFAULT_RETRIES = 5
const MAX_REDIRECTS = 5
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308])
// Answers worth asking again: the server is overloaded or briefly unwell.
const RETRY_STATUSES = new Set([408, 425, 429, 500, 502, 503, 504])
const BACKOFF_BASE_MS = 200
const BACKOFF_MAX_MS = 5000

// A dispatcher of our own, so no interceptor installed on the global one (redirects, retries,
// caching) can step between a request and the checks below. undici is loaded on the first URL
// registration: most servers never fetch one, and it costs ~10 MiB of memory once loaded.
let client: Promise<{ agent: Agent, request: typeof request }> | undefined
async function undiciClient (): Promise<{ agent: Agent, request: typeof request }> {
  client ??= import('undici').then((undici) => ({
    agent: new undici.Agent({ connect: { timeout: 30_000 }, headersTimeout: 60_000, bodyTimeout: 60_000 }),
    request: undici.request
  }))
  return await client
}

/**
 * Parses ALLOWED_SOURCE_URL_PREFIXES: a comma-separated list of absolute http(s) URLs.
 * Returns their normalised forms (WHATWG `href`); an empty setting allows no URL at all.
 * Throws an Error naming the first entry that is not an absolute http(s) URL, or that holds
 * user info, a query or a fragment (a prefix is a place, not a credential).
 */
export function parseAllowedPrefixes (value: string): string[] {
  const prefixes: string[] = []
  for (const raw of value.split(',')) {
    const entry = raw.trim()
    if (entry === '') continue
    let u: URL
    try {
      u = new URL(entry)
    } catch {
      throw new Error(`ALLOWED_SOURCE_URL_PREFIXES: ${JSON.stringify(redactRaw(entry))} is not an absolute URL; give entries like "https://data.example.com/datasets/", separated by commas`)
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
      throw new Error(`ALLOWED_SOURCE_URL_PREFIXES: ${JSON.stringify(redactRaw(entry))} uses ${u.protocol}; only http: and https: prefixes are allowed`)
    }
    if (u.username !== '' || u.password !== '') {
      throw new Error(`ALLOWED_SOURCE_URL_PREFIXES: ${JSON.stringify(showUrl(u))} holds a user name or password; remove them from the prefix`)
    }
    if (u.search !== '' || u.hash !== '' || entry.includes('?') || entry.includes('#')) {
      throw new Error(`ALLOWED_SOURCE_URL_PREFIXES: ${JSON.stringify(showUrl(u))} has a query or fragment; a prefix is a scheme, host and path only`)
    }
    prefixes.push(u.href)
  }
  return prefixes
}

/**
 * Parses `url` and checks that the server may fetch it: http(s) only, no user info, and under
 * one of `prefixes` once both are normalised by the WHATWG URL parser (so `..`, `%2e%2e`,
 * default ports, letter case in host names and the like cannot dodge the comparison). A
 * prefix is a directory: `http://h/data` allows `http://h/data` and `http://h/data/...` but
 * not `http://h/database`. The query string is not part of the comparison.
 * Returns the parsed URL without its fragment. Throws AppError VALIDATION for a string that
 * is not an absolute URL and SOURCE_FORBIDDEN for a URL the server may not fetch.
 */
export function checkUrlAllowed (url: string, prefixes: readonly string[]): URL {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new AppError('VALIDATION', `source.url ${JSON.stringify(redactRaw(url))} is not an absolute URL; give one like "https://data.example.com/datasets/train.jsonl"`)
  }
  u.hash = ''
  const problem = urlProblem(u, prefixes)
  if (problem !== undefined) throw new AppError('SOURCE_FORBIDDEN', `source.url ${JSON.stringify(showUrl(u))} ${problem}`)
  return u
}

// Why the server may not fetch `u` (a phrase that follows the URL in a message), or undefined.
function urlProblem (u: URL, prefixes: readonly string[]): string | undefined {
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    return `uses ${u.protocol}; only http: and https: URLs can be sources`
  }
  if (u.username !== '' || u.password !== '') {
    return 'holds a user name or password; remove them from the URL (credentials in URLs are not accepted)'
  }
  if (prefixes.length === 0) {
    return 'is not allowed: this server allows no URL sources; copy the file under the data root and use source.path, or ask the operator to set ALLOWED_SOURCE_URL_PREFIXES'
  }
  const bad = pathProblem(u.pathname)
  if (bad !== undefined) return `${bad}; give the file's plain path`
  const target = baseOf(u)
  const allowed: string[] = []
  for (const prefix of prefixes) {
    let p: URL
    try {
      p = new URL(prefix)
    } catch {
      continue
    }
    const base = baseOf(p)
    allowed.push(base)
    const dir = base.endsWith('/') ? base : base + '/'
    if (target === base || target.startsWith(dir)) return undefined
  }
  return `is not under an allowed prefix (${allowed.join(', ')}); use a URL under one of them, or ask the operator to add its prefix to ALLOWED_SOURCE_URL_PREFIXES`
}

export interface DownloadOptions {
  /** Normalised allowed prefixes; every URL fetched, redirect targets included, must be under one. */
  prefixes: readonly string[]
  /** Bytes asked for per request (default 8 MiB). */
  chunkBytes?: number
  /** Refuse files larger than this. */
  maxBytes?: number
  /** Attempts after the first for each chunk on connection errors and 5xx (default 5). */
  retries?: number
  /** Aborts the download (the signal's reason, an AbortError, is thrown). */
  signal?: AbortSignal
  /** Called after each chunk with the bytes written so far and the file's size, when known. */
  onProgress?: (done: number, total: number) => void
}

export interface DownloadResult {
  bytes: number
  etag?: string
  lastModified?: string
}

/**
 * Downloads `url` into `dest` in ranged chunks (written to `dest + '.part'`, renamed to
 * `dest` once complete; removed on failure). Retries a chunk that failed on a connection
 * error or a 5xx, from the first byte not yet written. A server that ignores Range (200)
 * is read in one stream. Fails with SOURCE_INVALID when the server answers 4xx, the file is
 * larger than `maxBytes`, the file changes during the download (ETag, Last-Modified or size)
 * or the retries run out; with SOURCE_FORBIDDEN when a redirect leads outside the prefixes.
 */
export async function downloadByRanges (url: URL, dest: string, opts: DownloadOptions): Promise<DownloadResult> {
  const { prefixes, signal, onProgress } = opts
  const chunkBytes = opts.chunkBytes ?? DEFAULT_CHUNK_BYTES
  const retries = opts.retries ?? DEFAULT_RETRIES
  const maxBytes = opts.maxBytes ?? Number.MAX_SAFE_INTEGER
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < 1) throw new RangeError(`chunkBytes must be a positive integer, got ${chunkBytes}`)
  if (!Number.isSafeInteger(retries) || retries < 0) throw new RangeError(`retries must be a non-negative integer, got ${retries}`)
  signal?.throwIfAborted()
  const start = checkUrlAllowed(url.href, prefixes)

  const part = dest + '.part'
  await mkdir(path.dirname(dest), { recursive: true })
  const fh = await open(part, 'w')
  let closed = false
  try {
    const job = new Download(start, fh, { prefixes, chunkBytes, retries, maxBytes, signal, onProgress })
    const result = await job.run()
    await fh.datasync()
    await fh.close()
    closed = true
    await rename(part, dest)
    return result
  } catch (err) {
    if (!closed) await fh.close().catch(noop)
    await rm(part, { force: true })
    if (signal?.aborted === true) signal.throwIfAborted()
    throw err
  }
}

interface Settings {
  prefixes: readonly string[]
  chunkBytes: number
  retries: number
  maxBytes: number
  signal: AbortSignal | undefined
  onProgress: ((done: number, total: number) => void) | undefined
}

interface Validators {
  etag?: string
  lastModified?: string
}

interface Answer {
  statusCode: number
  headers: Record<string, string | string[] | undefined>
  body: AsyncIterable<Buffer> & {
    destroy: (err?: Error) => unknown
    on: (event: 'error', listener: (err: Error) => void) => unknown
  }
  /** The URL that gave this answer (after redirects). */
  url: URL
}

// A failure worth another attempt (connection reset, timeout, 5xx); the next attempt starts
// at the first byte not yet written.
class Transient extends Error {
  override readonly name = 'Transient'
}

class Download {
  readonly #url: URL
  readonly #fh: FileHandle
  readonly #s: Settings
  /** Bytes written so far, all of them at 0..offset-1. */
  #offset = 0
  /** The file's size, once an answer told it. */
  #total: number | undefined
  /** False once a server answered a Range request with 200 (it ignores ranges). */
  #ranged = true
  #validators: Validators | undefined
  /** The byte count last given to onProgress. */
  #reported = -1

  constructor (url: URL, fh: FileHandle, settings: Settings) {
    this.#url = url
    this.#fh = fh
    this.#s = settings
  }

  async run (): Promise<DownloadResult> {
    const { retries, signal } = this.#s
    let failures = 0
    for (;;) {
      signal?.throwIfAborted()
      if (this.#total !== undefined && this.#offset >= this.#total) break
      const before = this.#offset
      let finished: boolean
      try {
        finished = await this.#step()
      } catch (err) {
        if (signal?.aborted === true) signal.throwIfAborted()
        if (!(err instanceof Transient)) throw err
        failures++
        if (failures > retries) {
          throw new AppError('SOURCE_INVALID', `GET ${showUrl(this.#url)} failed ${failures} times in a row (last: ${err.message}); check that the server is up and register the dataset again`)
        }
        // A server that ignores ranges can only send the file from its start again.
        if (!this.#ranged) await this.#restart()
        await sleep(Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** (failures - 1)), undefined, signal === undefined ? undefined : { signal })
        continue
      }
      if (this.#offset > before) failures = 0
      this.#report()
      if (finished) break
    }
    this.#report(true)
    return { bytes: this.#offset, ...this.#validators }
  }

  async #restart (): Promise<void> {
    this.#offset = 0
    await this.#fh.truncate(0)
  }

  #report (force = false): void {
    if (this.#s.onProgress === undefined) return
    if (!force && this.#reported === this.#offset) return
    this.#reported = this.#offset
    this.#s.onProgress(this.#offset, Math.max(this.#offset, this.#total ?? 0))
  }

  // One request: asks for the next chunk and writes what comes. Returns true when the file is
  // complete.
  async #step (): Promise<boolean> {
    const { chunkBytes } = this.#s
    const from = this.#offset
    const to = this.#total === undefined ? from + chunkBytes - 1 : Math.min(this.#total, from + chunkBytes) - 1
    const headers: Record<string, string> = {
      'accept-encoding': 'identity',
      'user-agent': 'shardfeed'
    }
    let ifRange: string | undefined
    if (this.#ranged) {
      headers.range = `bytes=${from}-${to}`
      ifRange = this.#ifRange()
      if (ifRange !== undefined) headers['if-range'] = ifRange
    }
    const answer = await this.#get(headers)
    const shown = showUrl(answer.url)
    try {
      const { statusCode } = answer
      if (RETRY_STATUSES.has(statusCode)) throw new Transient(`answered ${statusCode}`)
      if (statusCode === 416) return this.#unsatisfiable(answer, from)
      if (statusCode !== 200 && statusCode !== 206) {
        throw new AppError('SOURCE_INVALID', `GET ${shown} answered ${statusCode}; check the URL and that the server lets this service read the file`)
      }
      const encoding = header(answer, 'content-encoding')
      if (encoding !== undefined && encoding.toLowerCase() !== 'identity') {
        throw new AppError('SOURCE_INVALID', `GET ${shown} answered with Content-Encoding ${encoding} although none was asked for; serve the file uncompressed`)
      }
      this.#checkValidators(answer)

      if (statusCode === 200) return await this.#whole(answer, from, ifRange !== undefined)

      const range = parseContentRange(header(answer, 'content-range'))
      if (range === undefined || range.start === undefined || range.end === undefined) {
        throw new AppError('SOURCE_INVALID', `GET ${shown} answered 206 without a usable Content-Range (${JSON.stringify(header(answer, 'content-range') ?? '')}); the server's range support is broken`)
      }
      if (range.start !== from || range.end < range.start || (range.total !== undefined && range.end >= range.total)) {
        throw new AppError('SOURCE_INVALID', `GET ${shown} answered bytes ${range.start}-${range.end}${range.total === undefined ? '' : `/${range.total}`} when asked for bytes ${from}-${to}; the server's range support is broken`)
      }
      this.#setTotal(range.total, shown)
      const want = range.end - range.start + 1
      const got = await this.#write(answer, from, want, shown)
      if (got < want) throw new Transient(`the answer ended after ${got} of ${want} bytes`)
      // Without a known size, a short chunk is the last one.
      return this.#total === undefined ? want < to - from + 1 : this.#offset >= this.#total
    } finally {
      // A body not read to its end is dropped (with its connection); undici reports that as
      // an error on the stream, which nobody needs to hear.
      answer.body.on('error', noop)
      answer.body.destroy()
    }
  }

  // 416: the file is empty (first request), or (size unknown) we asked past its end.
  #unsatisfiable (answer: Answer, from: number): boolean {
    const range = parseContentRange(header(answer, 'content-range'))
    const total = range?.total
    if ((total === undefined && from === 0) || total === from) {
      this.#checkValidators(answer)
      this.#total = from
      return true
    }
    throw new AppError('SOURCE_INVALID', `GET ${showUrl(answer.url)} answered 416 (range not satisfiable) for bytes from ${from}${total === undefined ? '' : ` of a ${total}-byte file`}; the remote file may have changed; register it again`)
  }

  // 200: the whole file from byte 0, whatever was asked. After If-Range, it means the
  // validator no longer matches: the file changed. A server that stopped honouring Range
  // half way (without validators to tell) sends the file again from its start.
  async #whole (answer: Answer, from: number, sentIfRange: boolean): Promise<boolean> {
    const shown = showUrl(answer.url)
    if (sentIfRange) throw changed()
    if (from > 0) await this.#restart()
    this.#ranged = false
    const length = header(answer, 'content-length')
    const total = length !== undefined && /^\d+$/.test(length) ? Number(length) : undefined
    this.#setTotal(total, shown)
    const got = await this.#write(answer, 0, total ?? Infinity, shown)
    if (total !== undefined && got < total) throw new Transient(`the answer ended after ${got} of ${total} bytes`)
    this.#total = this.#offset
    return true
  }

  #setTotal (total: number | undefined, shown: string): void {
    if (total === undefined) return
    if (this.#total !== undefined && this.#total !== total) throw changed()
    this.#checkSize(total, shown)
    this.#total = total
  }

  #checkSize (size: number, shown: string): void {
    if (size > this.#s.maxBytes) {
      throw new AppError('SOURCE_INVALID', `GET ${shown}: the file is ${size} bytes, over this server's limit for URL sources of ${this.#s.maxBytes} bytes; use a smaller file or split it`)
    }
  }

  // Streams the body to the file at `at`, at most `limit` bytes. Returns the bytes written.
  // A body that breaks off is a Transient failure, after the bytes that did arrive are kept.
  async #write (answer: Answer, at: number, limit: number, shown: string): Promise<number> {
    let got = 0
    const iterator = answer.body[Symbol.asyncIterator]()
    for (;;) {
      let next: IteratorResult<Buffer>
      try {
        next = await iterator.next()
      } catch (err) {
        if (this.#s.signal?.aborted === true) this.#s.signal.throwIfAborted()
        throw new Transient(describeNetworkError(err))
      }
      if (next.done === true) break
      const buf = next.value
      if (got + buf.length > limit) {
        throw new AppError('SOURCE_INVALID', `GET ${shown} sent more bytes than the ${limit} it announced; the server's answer is malformed`)
      }
      if (at + got + buf.length > this.#s.maxBytes) {
        throw new AppError('SOURCE_INVALID', `GET ${shown}: the file is larger than this server's limit for URL sources of ${this.#s.maxBytes} bytes; use a smaller file or split it`)
      }
      await writeAll(this.#fh, buf, at + got)
      got += buf.length
      this.#offset = at + got
      if (this.#offset - this.#reported >= this.#s.chunkBytes) this.#report()
    }
    return got
  }

  #ifRange (): string | undefined {
    const v = this.#validators
    if (v === undefined) return undefined
    // If-Range takes a strong ETag only; a date where there is no ETag at all.
    if (v.etag !== undefined) return v.etag.startsWith('W/') ? undefined : v.etag
    return v.lastModified
  }

  #checkValidators (answer: Answer): void {
    const now: Validators = {}
    const etag = header(answer, 'etag')
    const lastModified = header(answer, 'last-modified')
    if (etag !== undefined) now.etag = etag
    if (lastModified !== undefined) now.lastModified = lastModified
    const was = this.#validators
    if (was === undefined) {
      this.#validators = now
      return
    }
    if (was.etag !== undefined && now.etag !== undefined && was.etag !== now.etag) throw changed()
    if (was.lastModified !== undefined && now.lastModified !== undefined && was.lastModified !== now.lastModified) throw changed()
  }

  // GET with manual redirects: each Location must be under the allowed prefixes too.
  async #get (headers: Record<string, string>): Promise<Answer> {
    const { prefixes, signal } = this.#s
    let current = this.#url
    for (let redirects = 0; ; redirects++) {
      // No automatic redirects: undici 7's request() follows none without the redirect
      // interceptor (its `maxRedirections` option is gone), and this dispatcher has none, so
      // every 3xx comes back here to be checked against the prefixes.
      let res: Awaited<ReturnType<typeof request>>
      try {
        const { agent, request } = await undiciClient()
        res = await request(current, { dispatcher: agent, method: 'GET', headers, signal: signal ?? null })
      } catch (err) {
        if (signal?.aborted === true) signal.throwIfAborted()
        if (isTransient(err)) throw new Transient(describeNetworkError(err))
        throw new AppError('SOURCE_INVALID', `GET ${showUrl(current)} failed: ${describeNetworkError(err)}; check the URL's host name and that the server is reachable from this service`)
      }
      const answer: Answer = { statusCode: res.statusCode, headers: res.headers, body: res.body, url: current }
      if (!REDIRECT_STATUSES.has(res.statusCode)) return answer
      await res.body.dump().catch(noop)
      const shown = showUrl(current)
      const location = header(answer, 'location')
      if (location === undefined) {
        throw new AppError('SOURCE_INVALID', `GET ${shown} answered ${res.statusCode} without a Location header; use the file's final URL`)
      }
      if (redirects >= MAX_REDIRECTS) {
        throw new AppError('SOURCE_INVALID', `GET ${showUrl(this.#url)}: more than ${MAX_REDIRECTS} redirects (a redirect loop?); use the file's final URL`)
      }
      let next: URL
      try {
        next = new URL(location, current)
      } catch {
        throw new AppError('SOURCE_INVALID', `GET ${shown} answered ${res.statusCode} with an invalid Location; use the file's final URL`)
      }
      next.hash = ''
      const problem = urlProblem(next, prefixes)
      if (problem !== undefined) {
        throw new AppError('SOURCE_FORBIDDEN', `GET ${shown} answered ${res.statusCode}, redirecting to ${showUrl(next)}, which ${problem}`)
      }
      current = next
    }
  }
}

function noop (): void {}

function changed (): AppError {
  return new AppError('SOURCE_INVALID', 'the remote file changed while it was being downloaded; register it again')
}

async function writeAll (fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let done = 0
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done, position + done)
    done += bytesWritten
  }
}

function header (answer: Answer, name: string): string | undefined {
  const v = answer.headers[name]
  return Array.isArray(v) ? v[0] : v
}

/** `bytes 0-99/1234`, `bytes 0-99/*` or `bytes *\/1234`. */
function parseContentRange (value: string | undefined): { start?: number, end?: number, total?: number } | undefined {
  if (value === undefined) return undefined
  const m = /^\s*bytes\s+(?:(\d+)-(\d+)|\*)\/(\d+|\*)\s*$/i.exec(value)
  if (m === null) return undefined
  const out: { start?: number, end?: number, total?: number } = {}
  if (m[1] !== undefined && m[2] !== undefined) {
    out.start = Number(m[1])
    out.end = Number(m[2])
  }
  if (m[3] !== undefined && m[3] !== '*') out.total = Number(m[3])
  return out
}

// `..` or `.` segments that survive the parser only in encoded form, or encoded slashes
// (which a server may decode into path separators), could reach outside the prefix on the
// remote side; such paths are refused outright.
function pathProblem (pathname: string): string | undefined {
  if (/%(2f|5c)/i.test(pathname)) return 'has an encoded "/" or "\\" in its path'
  for (const segment of pathname.split('/')) {
    let decoded: string
    try {
      decoded = decodeURIComponent(segment)
    } catch {
      continue
    }
    if (decoded === '.' || decoded === '..') return 'has a "." or ".." segment in its path'
  }
  return undefined
}

// Scheme, host and path: what prefixes are compared on (no user info, query or fragment).
function baseOf (u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`
}

/** A URL as shown in messages: without user info, query string or fragment. */
export function showUrl (u: URL): string {
  return baseOf(u)
}

// A string that failed to parse, cut before anything that may be a secret.
function redactRaw (raw: string): string {
  const cut = raw.split(/[?#]/)[0] ?? ''
  return cut.replace(/^([a-z][a-z0-9+.-]*:\/*)[^/@]*@/i, '$1').slice(0, 200)
}

// Connection failures another attempt may get past. Anything else (a host name that does not
// resolve, a TLS certificate the server rejects, ...) fails at once.
const TRANSIENT_CODES = new Set([
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT', 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH',
  'ENETUNREACH', 'ENETDOWN', 'EAI_AGAIN'
])

function isTransient (err: unknown): boolean {
  const code = (err as { code?: unknown } | undefined)?.code
  return typeof code === 'string' && TRANSIENT_CODES.has(code)
}

function describeNetworkError (err: unknown): string {
  if (!(err instanceof Error)) return String(err)
  const code = (err as { code?: unknown }).code
  return typeof code === 'string' ? `${code}: ${err.message}` : err.message
}
