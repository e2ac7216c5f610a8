// Process entry: settings -> buildApp -> listen, and a graceful close on SIGTERM/SIGINT.
import { loadConfig, type Config } from './config.js'
import type { FastifyInstance } from 'fastify'
import { createIndexThreads } from './sources/index-worker.js'

async function main (): Promise<void> {
  let config: Config
  try {
    config = loadConfig(process.env, { dotenv: true })
  } catch (err) {
    console.error(`shardfeed: invalid setting: ${(err as Error).message}`)
    process.exit(1)
  }
  // The first registration's indexing thread starts now, before the app's modules load, and
  // is ready long before the app is (index-worker.ts).
  const indexThreads = createIndexThreads(config.indexThreadWaitSeconds * 1000)
  indexThreads.prepare()
  let app: FastifyInstance
  try {
    const { buildApp } = await import('./app.js')
    app = await buildApp(config, { indexThreads })
  } catch (err) {
    console.error(`shardfeed: cannot start: ${(err as Error).message}`)
    process.exit(1)
  }
  let closing = false
  async function shutdown (signal: string): Promise<void> {
    if (closing) return
    closing = true
    app.log.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down: finishing in-flight requests')
    // Past the grace period, stop waiting: exit non-zero so a supervisor knows it was cut short.
    setTimeout(() => {
      app.log.error('shutdown grace period over; exiting with requests still open')
      process.exit(1)
    }, config.shutdownGraceMs).unref()
    try {
      // Stops accepting, lets in-flight requests finish (idle keep-alive sockets are closed),
      // stops read-ahead, waits for pending disk writes, then closes LevelDB.
      await app.close()
      app.log.info('closed cleanly')
      process.exit(0)
    } catch (err) {
      app.log.error({ err }, 'error while shutting down')
      process.exit(1)
    }
  }
  process.on('SIGTERM', () => { shutdown('SIGTERM').catch(() => process.exit(1)) })
  process.on('SIGINT', () => { shutdown('SIGINT').catch(() => process.exit(1)) })
  try {
    await app.listen({ port: config.port, host: config.host })
  } catch (err) {
    app.log.error({ err }, 'cannot listen')
    await app.close().catch(() => {})
    process.exit(1)
  }
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
