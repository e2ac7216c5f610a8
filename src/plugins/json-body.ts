// JSON request bodies: Fastify's own parser (prototype-poisoning safe), plus the raw text kept
// on the request, because some checks need the number as written: `1e3` and `1.0` parse to
// integers, yet the contract says an integer field given that way is a typo worth a 400.
import fp from 'fastify-plugin'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import { parse as parseLossless } from 'lossless-json'
import { AppError } from '../errors.js'

declare module 'fastify' {
  interface FastifyRequest {
    rawJsonBody: string | undefined
  }
}

const INTEGER_LITERAL = /^-?(0|[1-9][0-9]*)$/

/**
 * Throws VALIDATION when one of `fields` of the top-level object is a number not written as a
 * plain decimal integer. Values of other types are left to the schema.
 */
export function checkIntegerLiterals (request: FastifyRequest, fields: readonly string[]): void {
  const raw = request.rawJsonBody
  if (raw === undefined) return
  // Numbers come back as the text that was written; nothing else is kept.
  const doc = parseLossless(raw, null, (text: string) => ({ numberText: text })) as Record<string, unknown> | null
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return
  for (const field of fields) {
    const v = Object.hasOwn(doc, field) ? doc[field] : undefined
    if (v !== null && typeof v === 'object' && 'numberText' in v) {
      const text = String((v as { numberText: string }).numberText)
      if (!INTEGER_LITERAL.test(text)) {
        throw new AppError('VALIDATION', `body/${field} must be an integer written in plain decimal digits (got ${text.slice(0, 40)})`)
      }
    }
  }
}

async function jsonBodyPlugin (app: FastifyInstance): Promise<void> {
  app.decorateRequest('rawJsonBody', undefined)
  const defaultParser = app.getDefaultJsonParser('error', 'error')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, function parseJson (request, body, done) {
    request.rawJsonBody = body as string
    defaultParser(request, body as string, done)
  })
}

export default fp(jsonBodyPlugin, { name: 'json-body' })
