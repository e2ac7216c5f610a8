// The data plane: one batch of one rank for one epoch. Validates the address, negotiates the
// format, asks the batch service for bytes, and sends them with the caching headers.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { DatasetName, DecimalString, errorRef } from '../schemas/common.js'
import { AppError } from '../errors.js'
import { MEDIA_TYPES, negotiateFormat } from '../codecs/negotiate.js'
import { requireReady } from './ready.js'
import { batchHeaders, matchesEtag } from './batch-reply.js'

export const MAX_EPOCH = 2 ** 31 - 1

const BatchParams = Type.Object({ name: DatasetName, rank: DecimalString, i: DecimalString })
const BatchQuery = Type.Object({
  epoch: Type.Optional(Type.String({ ...DecimalString, description: `Epoch, 0..${MAX_EPOCH}; default 0` })),
  format: Type.Optional(Type.String({ maxLength: 32, description: `One of ${Object.keys(MEDIA_TYPES).join(', ')}; else the Accept header decides` }))
}, { additionalProperties: false })

const batchRoutes: FastifyPluginAsyncTypebox = async function batchRoutes (app) {
  const { registrar, batches } = app.services

  app.get('/datasets/:name/shards/:rank/batches/:i', {
    schema: {
      tags: ['batches'],
      summary: 'Read one batch',
      description: 'The records of batch i of this rank for this epoch, in the negotiated format (json, ndjson). Immutable: cache it forever.',
      params: BatchParams,
      querystring: BatchQuery,
      response: {
        200: {
          description: 'The batch',
          content: Object.fromEntries(Object.values(MEDIA_TYPES).map((t) => [t, { schema: { type: 'string', format: 'binary' } }]))
        },
        304: { description: 'Not modified (If-None-Match matched the ETag)', type: 'null' },
        400: errorRef('Bad rank, index, epoch or query'),
        404: errorRef('Unknown dataset, rank or batch'),
        406: errorRef('Format not offered'),
        409: errorRef('Dataset still indexing, or its source changed')
      }
    }
  }, async function getBatch (request, reply) {
    const { name } = request.params
    const rank = Number(request.params.rank)
    const index = Number(request.params.i)
    const epoch = request.query.epoch === undefined ? 0 : Number(request.query.epoch)
    if (epoch > MAX_EPOCH) throw new AppError('VALIDATION', `querystring/epoch must be <= ${MAX_EPOCH}`)
    const format = negotiateFormat(request.query.format, request.headers.accept)
    const record = requireReady(await registrar.get(name))
    const batch = await batches.getBatch({ record, epoch, rank, index, format })

    reply.headers(batchHeaders(batch, { name, rank, index, epoch, format, formatInQuery: request.query.format !== undefined }))
    if (matchesEtag(request.headers['if-none-match'], batch.etag)) return await reply.code(304).send()
    return await reply.type(MEDIA_TYPES[format]).send(batch.body)
  })
}

export default batchRoutes
