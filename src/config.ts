// Settings come from the environment (and `.env` when present), are validated once at start,
// and reach the rest of the code as a typed, frozen object. `.env.example` mirrors this schema.
import path from 'node:path'
import { envSchema } from 'env-schema'
import { Type, type Static } from '@sinclair/typebox'
import { parseAllowedPrefixes } from './sources/url-source.js'

const MiB = 1024 * 1024

export const ConfigSchema = Type.Object({
  PORT: Type.Integer({ minimum: 0, maximum: 65535, default: 8080 }),
  HOST: Type.String({ minLength: 1, default: '127.0.0.1' }),
  DATA_ROOT: Type.String({ minLength: 1, default: './data' }),
  CACHE_DIR: Type.String({ minLength: 1, default: './var' }),
  LOG_LEVEL: Type.String({ enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], default: 'info' }),
  // Sources up to this size are indexed before POST answers (201); larger ones answer 202
  // and index in the background, so a registration request never waits on a 100 GiB file.
  INDEX_SYNC_MAX_BYTES: Type.Integer({ minimum: 0, default: 16 * MiB }),
  // The server starts an indexing thread with itself, so that the first registration does not
  // wait for one to start (index-worker.ts); unused, it is stopped after this long. 0: none.
  INDEX_THREAD_WAIT_SECONDS: Type.Integer({ minimum: 0, maximum: 3600, default: 10 }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, default: 8 * MiB }),
  MEMORY_CACHE_BYTES: Type.Integer({ minimum: 0, default: 256 * MiB }),
  DISK_CACHE_BYTES: Type.Integer({ minimum: 0, default: 4096 * MiB }),
  DISK_WRITE_QUEUE_BYTES: Type.Integer({ minimum: 1, default: 8 * MiB }),
  PREFETCH_BATCHES: Type.Integer({ minimum: 0, maximum: 64, default: 4 }),
  BUILD_WORKERS: Type.Integer({ minimum: 0, maximum: 64, default: 1 }),
  ADMIN_TOKEN: Type.String({ default: '' }),
  READ_TOKEN: Type.String({ default: '' }),
  ALLOWED_SOURCE_URL_PREFIXES: Type.String({ default: '' }),
  SHUTDOWN_GRACE_MS: Type.Integer({ minimum: 0, default: 10000 }),
  // Event-loop delay above which requests are shed with 503 + Retry-After (0: never).
  MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ minimum: 0, default: 1000 })
})

export type RawConfig = Static<typeof ConfigSchema>

export interface Config {
  port: number
  host: string
  dataRoot: string
  cacheDir: string
  logLevel: string
  indexSyncMaxBytes: number
  indexThreadWaitSeconds: number
  bodyLimitBytes: number
  memoryCacheBytes: number
  diskCacheBytes: number
  diskWriteQueueBytes: number
  prefetchBatches: number
  /** Worker threads that build batches; 0 builds on the event loop. */
  buildWorkers: number
  /** Empty: mutations only from loopback clients. */
  adminToken: string
  /** Empty: reads need no token. */
  readToken: string
  allowedSourceUrlPrefixes: string
  shutdownGraceMs: number
  maxEventLoopDelayMs: number
}

/**
 * Reads and validates the settings. A bad value throws an Error whose message names the
 * variable (e.g. "env/PORT must be <= 65535"); the process entry turns that into an exit.
 */
export function loadConfig (env: NodeJS.ProcessEnv = process.env, opts: { dotenv?: boolean } = {}): Config {
  const raw = envSchema<RawConfig>({
    schema: ConfigSchema,
    data: { ...env },
    dotenv: (opts.dotenv ?? false) ? { quiet: true } : false
  })
  try {
    parseAllowedPrefixes(raw.ALLOWED_SOURCE_URL_PREFIXES)
  } catch (err) {
    throw new Error(`env/ALLOWED_SOURCE_URL_PREFIXES: ${(err as Error).message}`)
  }
  return Object.freeze({
    port: raw.PORT,
    host: raw.HOST,
    dataRoot: path.resolve(raw.DATA_ROOT),
    cacheDir: path.resolve(raw.CACHE_DIR),
    logLevel: raw.LOG_LEVEL,
    indexSyncMaxBytes: raw.INDEX_SYNC_MAX_BYTES,
    indexThreadWaitSeconds: raw.INDEX_THREAD_WAIT_SECONDS,
    bodyLimitBytes: raw.BODY_LIMIT_BYTES,
    memoryCacheBytes: raw.MEMORY_CACHE_BYTES,
    diskCacheBytes: raw.DISK_CACHE_BYTES,
    diskWriteQueueBytes: raw.DISK_WRITE_QUEUE_BYTES,
    prefetchBatches: raw.PREFETCH_BATCHES,
    buildWorkers: raw.BUILD_WORKERS,
    adminToken: raw.ADMIN_TOKEN,
    readToken: raw.READ_TOKEN,
    allowedSourceUrlPrefixes: raw.ALLOWED_SOURCE_URL_PREFIXES,
    shutdownGraceMs: raw.SHUTDOWN_GRACE_MS,
    maxEventLoopDelayMs: raw.MAX_EVENT_LOOP_DELAY_MS
  })
}
