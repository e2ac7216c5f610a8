// Liveness and readiness: /healthz answers while the process runs; /readyz only while the
// store is open, so a load balancer stops sending reads to an instance that cannot serve.
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { AppError } from '../errors.js'

const Status = Type.Object({ status: Type.String() })

export default async function healthRoutes (app: FastifyInstance): Promise<void> {
  app.get('/healthz', {
    schema: { tags: ['operations'], summary: 'The process is up', response: { 200: Status } }
  }, async function healthz () {
    return { status: 'ok' }
  })

  app.get('/readyz', {
    schema: { tags: ['operations'], summary: 'The store is open and batches can be served', response: { 200: Status } }
  }, async function readyz () {
    if (app.services.db.status !== 'open') throw new AppError('OVERLOADED', 'the store is not open', { 'retry-after': '1' })
    return { status: 'ready' }
  })
}
