// Every error leaves as API.md's JSON shape with a stable code: the project's own AppErrors
// as they are, Fastify's validation and body errors mapped onto the catalogue, anything
// unexpected as a logged 500 that never ends the process.
import fp from 'fastify-plugin'
import type { FastifyError, FastifyInstance } from 'fastify'
import { errorBody, isAppError, type ErrorCode } from '../errors.js'

function codeOf (err: FastifyError): { code: ErrorCode, message: string } | undefined {
  if (err.validation !== undefined) return { code: 'VALIDATION', message: err.message }
  if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return { code: 'BODY_TOO_LARGE', message: err.message }
  const status = err.statusCode ?? 500
  // Malformed JSON, wrong content type, bad URL encoding, bad content-length: all are the
  // caller's input failing validation.
  if (status >= 400 && status < 500) return { code: 'VALIDATION', message: err.message }
  return undefined
}

async function errorsPlugin (app: FastifyInstance): Promise<void> {
  app.setErrorHandler(async function onError (err: FastifyError, request, reply) {
    if (isAppError(err)) {
      if (err.statusCode >= 500) request.log.error({ err }, err.message)
      return await reply.code(err.statusCode).headers(err.headers).type('application/json').send(err.toJSON())
    }
    const mapped = codeOf(err)
    if (mapped !== undefined) {
      const body = errorBody(mapped.code, mapped.message)
      return await reply.code(body.statusCode).type('application/json').send(body)
    }
    request.log.error({ err }, 'unexpected error')
    return await reply.code(500).type('application/json').send(errorBody('INTERNAL', 'internal error; the server log has the details'))
  })

  app.setNotFoundHandler(async function onNotFound (request, reply) {
    const body = errorBody('ROUTE_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]?.slice(0, 200) ?? ''}; see GET /docs`)
    return await reply.code(404).type('application/json').send(body)
  })
}

export default fp(errorsPlugin, { name: 'errors' })
