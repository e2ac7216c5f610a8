// The hit path: a batch request the route would serve is answered straight on node:http,
// before Fastify builds its request and reply objects, routes, validates and runs its hooks. A
// hit is the product's most frequent request and its cheapest, so that work was a large share
// of its cost (README.md, "Caching"); on a miss it was ~50-110 µs of the event loop per batch
// built. A memory hit is answered synchronously; a disk hit after its read; a miss once built
// (getBatch, single-flight with the route's own builds).
//
// It answers only what it can answer exactly as the route in batches.ts would: same status,
// headers (batch-reply.ts) and body, same cache metrics and read-ahead, same log lines. Any
// other request (a URL or query the route would reject or read differently, a missing token,
// an overloaded server) goes to Fastify unchanged, and so does a miss whose build fails: the
// route builds it again and words the error (its metrics then count the miss twice).
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyBaseLogger } from 'fastify'
import type { BatchCache, Batch } from '../cache/batch-cache.js'
import type { Registrar } from '../datasets/registrar.js'
import { MEDIA_TYPES, negotiateFormat } from '../codecs/negotiate.js'
import { readAllowed, type Tokens } from '../plugins/auth.js'
import { batchHeaders, matchesEtag, type BatchAddress } from './batch-reply.js'
import { MAX_EPOCH } from './batches.js'

// The route's path with its parameter patterns (schemas/common.ts: DatasetName,
// DecimalString). Anything else, percent-encoded names included, is left to the router.
const BATCH_URL = /^\/datasets\/([a-z0-9][a-z0-9._-]{0,63})\/shards\/([0-9]{1,10})\/batches\/([0-9]{1,10})(?:\?(.*))?$/
const DECIMAL = /^[0-9]{1,10}$/
const FORMAT_WORD = /^[a-z]{1,32}$/
// pino's level numbers: Fastify logs each request at info (30).
const LEVELS: Record<string, number> = { trace: 10, debug: 20, info: 30, warn: 40, error: 50, fatal: 60 }

export interface HitPathDeps {
  registrar: Pick<Registrar, 'peekReady'>
  batches: Pick<BatchCache, 'peekCached' | 'getBatch'>
  tokens: Tokens
  /** True while the server sheds load: then Fastify answers (503 OVERLOADED). */
  isUnderPressure: () => boolean
  log: FastifyBaseLogger
  /** Fastify's request-id generator, so ids stay unique across both paths. */
  genReqId: () => string
}

/** Answers the request, or hands it on with `next` (at once, or after a disk-tier miss). */
export type HitPath = (req: IncomingMessage, res: ServerResponse, next: (req: IncomingMessage, res: ServerResponse) => void) => void

interface Query { epoch?: string, format?: string }

/**
 * The query as the route's schema reads it, or undefined when the route could read it
 * otherwise (repeated keys, other keys, escapes, empty values): Fastify then decides.
 */
function plainQuery (q: string | undefined): Query | undefined {
  const out: Query = {}
  if (q === undefined || q === '') return out
  for (const pair of q.split('&')) {
    const eq = pair.indexOf('=')
    if (eq < 0) return undefined
    const key = pair.slice(0, eq)
    const value = pair.slice(eq + 1)
    if (key === 'epoch' && out.epoch === undefined && DECIMAL.test(value)) out.epoch = value
    else if (key === 'format' && out.format === undefined && FORMAT_WORD.test(value)) out.format = value
    else return undefined
  }
  return out
}

export function createHitPath (deps: HitPathDeps): HitPath {
  const { registrar, batches, tokens, log } = deps

  interface Found { address: BatchAddress, cached: Batch | Promise<Batch | undefined> }

  /** The batch this request asks for (cached, or on its way), or undefined when Fastify must answer. */
  function lookup (req: IncomingMessage, m: RegExpExecArray, q: Query): Found | undefined {
    if (!readAllowed(req.headers.authorization, tokens)) return undefined
    if (deps.isUnderPressure()) return undefined
    const name = m[1] as string
    const record = registrar.peekReady(name)
    if (record === undefined) return undefined
    const epoch = q.epoch === undefined ? 0 : Number(q.epoch)
    if (epoch > MAX_EPOCH) return undefined
    const rank = Number(m[2])
    const index = Number(m[3])
    try {
      const format = negotiateFormat(q.format, req.headers.accept)
      const batchReq = { record, epoch, rank, index, format }
      const cached = batches.peekCached(batchReq) ?? batches.getBatch(batchReq)
      return { address: { name, rank, index, epoch, format, formatInQuery: q.format !== undefined }, cached }
    } catch {
      // A bad address, format or a changed source: the route raises the same error.
      return undefined
    }
  }

  function send (req: IncomingMessage, res: ServerResponse, batch: Batch, address: BatchAddress, start: number): void {
    try {
      answer(req, res, batch, address, start)
    } catch (err) {
      // Nothing here is expected to throw; if it does, the connection ends, the process stays.
      log.error({ err, url: req.url }, 'hit path: could not send a batch')
      res.destroy()
    }
  }

  function answer (req: IncomingMessage, res: ServerResponse, batch: Batch, address: BatchAddress, start: number): void {
    if (start >= 0) logRequest(req, res, start)
    const headers = batchHeaders(batch, address)
    if (matchesEtag(req.headers['if-none-match'], batch.etag)) {
      res.writeHead(304, headers)
      res.end()
      return
    }
    headers['content-type'] = MEDIA_TYPES[address.format]
    headers['content-length'] = String(batch.body.length)
    res.writeHead(200, headers)
    res.end(batch.body)
  }

  return function answerHit (req, res, next) {
    if (req.method !== 'GET') return next(req, res)
    const m = BATCH_URL.exec(req.url ?? '')
    if (m === null) return next(req, res)
    const q = plainQuery(m[4])
    if (q === undefined) return next(req, res)
    const found = lookup(req, m, q)
    if (found === undefined) return next(req, res)
    const start = (LEVELS[log.level] ?? Infinity) <= LEVELS.info! ? performance.now() : -1
    const { cached, address } = found
    if (!(cached instanceof Promise)) return send(req, res, cached, address, start)
    cached.then((batch) => {
      if (batch === undefined) next(req, res)
      else send(req, res, batch, address, start)
    }, () => { next(req, res) }).catch((err: unknown) => {
      log.error({ err, url: req.url }, 'hit path: could not hand a request on')
      res.destroy()
    })
  }

  /** Fastify's two request log lines, with its serializers' fields. */
  function logRequest (req: IncomingMessage, res: ServerResponse, start: number): void {
    const reqId = deps.genReqId()
    // The shape Fastify's `req` serializer reads (request.host, request.ip, request.socket).
    log.info({ reqId, req: { method: req.method, url: req.url, headers: req.headers, host: req.headers.host, ip: req.socket.remoteAddress, socket: req.socket } }, 'incoming request')
    res.once('finish', function requestCompleted () {
      log.info({ reqId, res: { statusCode: res.statusCode }, responseTime: performance.now() - start }, 'request completed')
    })
  }
}
