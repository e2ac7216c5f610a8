// The store's lifecycle as a Fastify plugin: open the one LevelDB on register, build the
// services on top of it, resume interrupted indexing, and close everything in onClose.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'
import type { Config } from '../config.js'
import { openDb, type Db } from '../store/db.js'
import { createRegistry } from '../store/registry.js'
import { createRegistrar, type Registrar } from '../datasets/registrar.js'
import { createBatchCache, type BatchCache } from '../cache/batch-cache.js'
import { createCacheMetrics, type CacheMetrics } from '../cache/metrics.js'
import { createSourceGuard } from '../datasets/source-guard.js'
import type { BodyReleaser } from '../cache/body-release.js'
import type { IndexThreads } from '../sources/index-worker.js'

export interface Services {
  config: Config
  db: Db
  registrar: Registrar
  batches: BatchCache
  metrics: CacheMetrics
}

declare module 'fastify' {
  interface FastifyInstance {
    services: Services
  }
}

async function storePlugin (app: FastifyInstance, opts: { config: Config, releaser?: BodyReleaser, indexThreads?: IndexThreads }): Promise<void> {
  const { config, releaser, indexThreads } = opts
  const db = await openDb(config.cacheDir, (why) => {
    app.log.warn(`LevelDB memory-maps its table files (${why}): the disk tier's pages will count in this process's RSS; run npm install to build the addon`)
  }, config.diskCacheBytes)
  const registrar = createRegistrar(config, createRegistry(db), app.log, indexThreads)
  const metrics = createCacheMetrics(releaser !== undefined ? { bodiesFreed: () => releaser.freed } : {})
  const batches = createBatchCache({
    db,
    memoryBytes: config.memoryCacheBytes,
    diskBytes: config.diskCacheBytes,
    diskWriteQueueBytes: config.diskWriteQueueBytes,
    prefetchBatches: config.prefetchBatches,
    buildWorkers: config.buildWorkers,
    metrics,
    log: app.log,
    guard: createSourceGuard(),
    ...(releaser !== undefined ? { releaser } : {})
  })
  await batches.open()
  app.decorate('services', { config, db, registrar, batches, metrics })

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
