// buildApp(config): the whole service as a Fastify instance, without listening. Plugins go
// in order infra -> store -> routes. Tests and the process entry both use it.
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import type { Config } from './config.js'
import errorsPlugin from './plugins/errors.js'
import jsonBodyPlugin from './plugins/json-body.js'
import closingPlugin from './plugins/closing.js'
import swaggerPlugin from './plugins/swagger.js'
import storePlugin from './plugins/store.js'
import authPlugin from './plugins/auth.js'
import loadSheddingPlugin from './plugins/load-shedding.js'
import hitPathPlugin, { createReqIds, hitPathServerFactory, type HitPathSlot } from './plugins/hit-path.js'
import healthRoutes from './routes/health.js'
import datasetRoutes from './routes/datasets.js'
import batchRoutes from './routes/batches.js'
import metricsRoutes from './routes/metrics.js'
import { createBodyReleaser, type BodyReleaser } from './cache/body-release.js'
import { addonFunction } from './native/addon.js'
import { createTrimmer } from './cache/reclaim.js'
import type { IndexThreads } from './sources/index-worker.js'

export type { Config } from './config.js'
export { loadConfig } from './config.js'

export interface BuildOptions {
  logger?: FastifyServerOptions['logger']
  /** Indexing threads started before the app (server.ts), which the app then owns. */
  indexThreads?: IndexThreads
}

/**
 * Frees the bodies the caches let go of once no request is sending them (needs the addon).
 * Bodies that would wait longer than the memory tier lets dead bodies pile up (a sixteenth
 * of it, 8 to 32 MiB) are left to the collector. Freed bodies leave holes in malloc's heaps,
 * which glibc is asked to give back (at most once a second).
 */
function bodyReleaser (config: Config): BodyReleaser {
  return createBodyReleaser({
    detach: addonFunction('detachBuffer'),
    maxWaitingBytes: Math.min(32 << 20, Math.max(8 << 20, Math.floor(config.memoryCacheBytes / 16))),
    onFreed: createTrimmer()
  })
}

export async function buildApp (config: Config, opts: BuildOptions = {}): Promise<FastifyInstance> {
  const hitPath: HitPathSlot = { answer: undefined }
  const genReqId = createReqIds()
  const releaser = bodyReleaser(config)
  const app = Fastify({
    // Memory-tier hits are answered by the server itself, before Fastify (plugins/hit-path.ts).
    serverFactory: hitPathServerFactory(hitPath, releaser),
    genReqId,
    // Tokens travel in Authorization; the default serializers never log headers, and the
    // redaction makes sure a custom log line cannot either.
    logger: opts.logger ?? { level: config.logLevel, redact: ['req.headers.authorization', 'headers.authorization'] },
    bodyLimit: config.bodyLimitBytes,
    // Rank and index travel in the path; nothing long belongs there.
    routerOptions: { maxParamLength: 200 },
    ajv: {
      // Strict input: unknown properties are rejected (not silently dropped) and "8" is not
      // an integer. Path and query integers are validated as decimal strings instead.
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: true, allErrors: false }
    }
  }).withTypeProvider<TypeBoxTypeProvider>()

  await app.register(errorsPlugin)
  await app.register(jsonBodyPlugin)
  await app.register(closingPlugin)
  await app.register(swaggerPlugin)
  await app.register(loadSheddingPlugin, { config })
  await app.register(authPlugin, { config })
  await app.register(storePlugin, { config, releaser, ...(opts.indexThreads !== undefined ? { indexThreads: opts.indexThreads } : {}) })
  await app.register(healthRoutes)
  await app.register(datasetRoutes)
  await app.register(batchRoutes)
  await app.register(metricsRoutes)
  await app.register(hitPathPlugin, { slot: hitPath, config, genReqId })
  return app
}
