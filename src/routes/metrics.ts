// Prometheus exposition of the cache and process metrics.
import type { FastifyInstance } from 'fastify'

export default async function metricsRoutes (app: FastifyInstance): Promise<void> {
  app.get('/metrics', {
    schema: {
      tags: ['operations'],
      summary: 'Prometheus metrics (text exposition format)',
      response: { 200: { description: 'Prometheus text', content: { 'text/plain': { schema: { type: 'string' } } } } }
    }
  }, async function metrics (_request, reply) {
    const { registry } = app.services.metrics
    return await reply.type(registry.contentType).send(await registry.metrics())
  })
}
