// Who may do what. ADMIN_TOKEN guards mutations (POST, DELETE); READ_TOKEN, when set, guards
// dataset reads too (the admin token also reads). Without an admin token, mutations are only
// accepted from loopback clients. Health, readiness, metrics and the API documents stay open
// for probes and scrapers. Tokens are compared in constant time and never logged.
import { createHash, timingSafeEqual } from 'node:crypto'
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { AppError } from '../errors.js'
import type { Config } from '../config.js'

function digest (s: string): Buffer {
  return createHash('sha256').update(s).digest()
}

/** Constant-time equality: both sides are hashed to equal lengths first. */
export function tokenMatches (given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected))
}

export function isLoopback (address: string | undefined): boolean {
  if (address === undefined) return false
  return address === '::1' || address.startsWith('127.') || address.startsWith('::ffff:127.')
}

function bearerOf (authorization: string | undefined): string | undefined {
  if (typeof authorization !== 'string') return undefined
  const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization)
  return m?.[1]
}

export interface Tokens { adminToken: string, readToken: string }

/** May a request with this Authorization header read datasets? (The hit path asks too.) */
export function readAllowed (authorization: string | undefined, tokens: Tokens): boolean {
  if (tokens.readToken === '') return true
  const token = bearerOf(authorization)
  return token !== undefined && (tokenMatches(token, tokens.readToken) || (tokens.adminToken !== '' && tokenMatches(token, tokens.adminToken)))
}

const MUTATIONS = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

async function authPlugin (app: FastifyInstance, opts: { config: Config }): Promise<void> {
  const { adminToken } = opts.config
  if (adminToken === '') {
    app.log.warn('ADMIN_TOKEN is not set: POST and DELETE are accepted from loopback clients only')
  }

  // A callback hook, not an async one: it runs on every request (see closing.ts).
  app.addHook('onRequest', function authorize (request, _reply, done) {
    try {
      checkAccess(request)
    } catch (err) {
      done(err as Error)
      return
    }
    done()
  })

  function checkAccess (request: FastifyRequest): void {
    const path = request.url
    if (!path.startsWith('/datasets')) return
    if (MUTATIONS.has(request.method)) {
      const token = bearerOf(request.headers.authorization)
      if (adminToken === '') {
        if (!isLoopback(request.socket.remoteAddress)) {
          throw new AppError('UNAUTHORIZED', 'this server has no ADMIN_TOKEN, so it accepts changes from its own machine only; set ADMIN_TOKEN on the server and send Authorization: Bearer <token>')
        }
        return
      }
      if (token === undefined || !tokenMatches(token, adminToken)) {
        throw new AppError('UNAUTHORIZED', 'POST and DELETE need Authorization: Bearer <ADMIN_TOKEN>', { 'www-authenticate': 'Bearer' })
      }
      return
    }
    if (!readAllowed(request.headers.authorization, opts.config)) {
      throw new AppError('UNAUTHORIZED', 'reads need Authorization: Bearer <READ_TOKEN>', { 'www-authenticate': 'Bearer' })
    }
  }
}

export default fp(authPlugin, { name: 'auth' })
