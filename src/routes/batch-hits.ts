// The hit path: a batch the memory tier holds is answered straight on node:http, before
// Fastify builds its request and reply objects, routes, validates and runs its hooks. A hit is
// the product's most frequent request and its cheapest, so that work was a large share of its
// cost (README.md, "Caching").
//
// It answers only what it can answer exactly as the route in batches.ts would: same status,
// headers (batch-reply.ts) and body, same cache metrics and read-ahead, same log lines. Any
// other request (a miss, a URL or query the route would reject or read differently, a missing
// token, an overloaded server) returns false and goes to Fastify unchanged.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyBaseLogger } from 'fastify'
import type { BatchCache, Batch } from '../cache/batch-cache.js'
import type { Registrar } from '../datasets/registrar.js'
import { MEDIA_TYPES, negotiateFormat, type BatchFormat } from '../codecs/negotiate.js'
import { readAllowed, type Tokens } from '../plugins/auth.js'
import { batchHeaders, matchesEtag } from './batch-reply.js'
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
  batches: Pick<BatchCache, 'peekMemory'>
  tokens: Tokens
  /** True while the server sheds load: then Fastify answers (503 OVERLOADED). */
  isUnderPressure: () => boolean
  log: FastifyBaseLogger
  /** Fastify's request-id generator, so ids stay unique across both paths. */
  genReqId: () => string
}

export type HitPath = (req: IncomingMessage, res: ServerResponse) => boolean

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

  /** The memory-tier batch this request asks for, or undefined when Fastify must answer. */
  function lookup (req: IncomingMessage, m: RegExpExecArray, q: Query): { batch: Batch, format: BatchFormat, epoch: number } | undefined {
    if (!readAllowed(req.headers.authorization, tokens)) return undefined
    if (deps.isUnderPressure()) return undefined
    const record = registrar.peekReady(m[1] as string)
    if (record === undefined) return undefined
    const epoch = q.epoch === undefined ? 0 : Number(q.epoch)
    if (epoch > MAX_EPOCH) return undefined
    try {
      const format = negotiateFormat(q.format, req.headers.accept)
      const batch = batches.peekMemory({ record, epoch, rank: Number(m[2]), index: Number(m[3]), format })
      return batch === undefined ? undefined : { batch, format, epoch }
    } catch {
      // A bad address, format or a changed source: the route raises the same error.
      return undefined
    }
  }

  return function answerHit (req, res) {
    if (req.method !== 'GET') return false
    const m = BATCH_URL.exec(req.url ?? '')
    if (m === null) return false
    const q = plainQuery(m[4])
    if (q === undefined) return false
    const found = lookup(req, m, q)
    if (found === undefined) return false
    const { batch, format, epoch } = found
    if ((LEVELS[log.level] ?? Infinity) <= LEVELS.info!) logRequest(req, res)
    const headers = batchHeaders(batch, { name: m[1] as string, rank: Number(m[2]), index: Number(m[3]), epoch, format, formatInQuery: q.format !== undefined })
    if (matchesEtag(req.headers['if-none-match'], batch.etag)) {
      res.writeHead(304, headers)
      res.end()
    } else {
      headers['content-type'] = MEDIA_TYPES[format]
      headers['content-length'] = String(batch.body.length)
      res.writeHead(200, headers)
      res.end(batch.body)
    }
    return true
  }

  /** Fastify's two request log lines, with its serializers' fields. */
  function logRequest (req: IncomingMessage, res: ServerResponse): void {
    const reqId = deps.genReqId()
    const start = performance.now()
    // The shape Fastify's `req` serializer reads (request.host, request.ip, request.socket).
    log.info({ reqId, req: { method: req.method, url: req.url, headers: req.headers, host: req.headers.host, ip: req.socket.remoteAddress, socket: req.socket } }, 'incoming request')
    res.once('finish', function requestCompleted () {
      log.info({ reqId, res: { statusCode: res.statusCode }, responseTime: performance.now() - start }, 'request completed')
    })
  }
}
