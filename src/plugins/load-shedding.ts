// Sheds load before it becomes timeouts: when the event loop lags past
// MAX_EVENT_LOOP_DELAY_MS, requests get 503 OVERLOADED with Retry-After, which every client of
// this project backs off on. Liveness stays answerable so an orchestrator does not kill a busy
// but healthy process.
import fp from 'fastify-plugin'
import underPressure from '@fastify/under-pressure'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../config.js'
import { errorBody } from '../errors.js'

const RETRY_AFTER_SECONDS = 1

async function loadSheddingPlugin (app: FastifyInstance, opts: { config: Config }): Promise<void> {
  if (opts.config.maxEventLoopDelayMs === 0) return
  await app.register(underPressure, {
    maxEventLoopDelay: opts.config.maxEventLoopDelayMs,
    // A sampling window shorter than the limit would read a single long pause (a GC, a large
    // build) as "no samples", which under-pressure takes for an infinite delay.
    sampleInterval: Math.max(1000, opts.config.maxEventLoopDelayMs),
    retryAfter: RETRY_AFTER_SECONDS,
    async pressureHandler (request, reply, type, value) {
      if (request.url === '/healthz') return
      request.log.warn({ type, value }, 'shedding load')
      await reply.code(503).header('retry-after', String(RETRY_AFTER_SECONDS)).type('application/json')
        .send(errorBody('OVERLOADED', `the server is overloaded (${type}); retry after ${RETRY_AFTER_SECONDS} s`))
    }
  })
}

export default fp(loadSheddingPlugin, { name: 'load-shedding' })
