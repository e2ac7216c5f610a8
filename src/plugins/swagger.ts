// The OpenAPI document, generated from the routes' TypeBox schemas, served at /openapi.json
// and as Swagger UI at /docs. openapi/openapi.json is the same document, checked in.
import fp from 'fastify-plugin'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'

export const OPENAPI_INFO = {
  title: 'shardfeed',
  description: 'Deterministic, sharded, cached batches of training data for distributed trainers. The contract is API.md, version 1.',
  version: '1.0.0'
}

async function swaggerPlugin (app: FastifyInstance): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: OPENAPI_INFO,
      tags: [
        { name: 'datasets', description: 'Register, list and delete datasets' },
        { name: 'batches', description: 'Read a rank\'s batches' },
        { name: 'operations', description: 'Health, readiness, metrics, documentation' }
      ]
    }
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async function openapiDocument () {
    return app.swagger()
  })
}

export default fp(swaggerPlugin, { name: 'swagger' })
