// The store's lifecycle as a Fastify plugin: open the one LevelDB on register, build the
// services on top of it, resume interrupted indexing, and close everything in onClose.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../config.js'
import { openDb, type Db } from '../store/db.js'
import { createRegistry } from '../store/registry.js'
import { createRegistrar, type Registrar } from '../datasets/registrar.js'
import { createBatchService, type BatchService } from '../cache/batch-service.js'

export interface Services {
  config: Config
  db: Db
  registrar: Registrar
  batches: BatchService
}

declare module 'fastify' {
  interface FastifyInstance {
    services: Services
  }
}

async function storePlugin (app: FastifyInstance, opts: { config: Config }): Promise<void> {
  const { config } = opts
  const db = await openDb(config.cacheDir)
  const registrar = createRegistrar(config, createRegistry(db), app.log)
  const batches = createBatchService()
  app.decorate('services', { config, db, registrar, batches })

  app.addHook('onReady', async function resume () {
    await registrar.resumeInterrupted()
  })
  app.addHook('onClose', async function closeStore () {
    await registrar.close()
    await batches.close()
    await db.close()
  })
}

export default fp(storePlugin, { name: 'store' })
