// Fastify glue of the hit path (routes/batch-hits.ts). The HTTP server is made here, so that
// a cache hit is answered before Fastify's handler sees the request; every other request
// reaches Fastify unchanged. The path opens once the app is ready and closes as soon as the
// app starts closing, so that draining (Connection: close, see closing.ts) stays Fastify's.
import http from 'node:http'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyServerFactory } from 'fastify'
import type { Config } from '../config.js'
import { createHitPath, type HitPath } from '../routes/batch-hits.js'
import type { BodyReleaser } from '../cache/body-release.js'

/** Where the server looks for the hit path; empty until the app is ready. */
export interface HitPathSlot { answer: HitPath | undefined }

/**
 * The HTTP server: the hit path first, then Fastify. Every request holds a ticket of
 * `releaser` until its response closes, so that no body it may send is freed under it.
 */
export function hitPathServerFactory (slot: HitPathSlot, releaser: BodyReleaser): FastifyServerFactory {
  // One listener function for all responses, the ticket kept on the response: no closure per
  // request on the hit path.
  const TICKET = Symbol('shardfeed.ticket')
  type Ticketed = http.ServerResponse & { [TICKET]: number }
  function closeTicket (this: Ticketed): void { releaser.close(this[TICKET]) }
  return function createServer (handler, rawOptions) {
    const options = rawOptions as { keepAliveTimeout: number, requestTimeout: number, connectionTimeout: number, maxRequestsPerSocket?: number }
    const server = http.createServer(function onRequest (req, res) {
      (res as Ticketed)[TICKET] = releaser.open()
      res.on('close', closeTicket)
      const answer = slot.answer
      if (answer === undefined) handler(req, res)
      else answer(req, res, handler)
    })
    // What Fastify does to a server it makes itself (fastify/lib/server.js).
    server.keepAliveTimeout = options.keepAliveTimeout
    server.requestTimeout = options.requestTimeout
    server.setTimeout(options.connectionTimeout)
    if (options.maxRequestsPerSocket !== undefined && options.maxRequestsPerSocket > 0) server.maxRequestsPerSocket = options.maxRequestsPerSocket
    return server
  }
}

interface HitPathOptions { slot: HitPathSlot, config: Config, genReqId: () => string }

async function hitPathPlugin (app: FastifyInstance, opts: HitPathOptions): Promise<void> {
  app.addHook('onReady', async function openHitPath () {
    const { registrar, batches } = app.services
    // Present only when load shedding is on (plugins/load-shedding.ts).
    const underPressure = (app as { isUnderPressure?: () => boolean }).isUnderPressure?.bind(app)
    opts.slot.answer = createHitPath({
      registrar,
      batches,
      tokens: opts.config,
      isUnderPressure: underPressure ?? (() => false),
      log: app.log,
      genReqId: opts.genReqId
    })
  })
  app.addHook('preClose', async function closeHitPath () {
    opts.slot.answer = undefined
  })
}

export default fp(hitPathPlugin, { name: 'hit-path', dependencies: ['store'] })

/** Fastify's default request ids (req-1, req-2, ...), from one counter for both paths. */
export function createReqIds (): () => string {
  let next = 0
  return function genReqId () {
    next = (next + 1) & 0x7fffffff
    return `req-${next.toString(36)}`
  }
}
