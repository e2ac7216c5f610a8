// Process entry: settings -> buildApp -> listen, and a graceful close on SIGTERM/SIGINT.
import { loadConfig, type Config } from './config.js'
import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'

async function main (): Promise<void> {
  let config: Config
  try {
    config = loadConfig(process.env, { dotenv: true })
  } catch (err) {
    console.error(`shardfeed: invalid setting: ${(err as Error).message}`)
    process.exit(1)
  }
  let app: FastifyInstance
  try {
    app = await buildApp(config)
  } catch (err) {
    console.error(`shardfeed: cannot start: ${(err as Error).message}`)
    process.exit(1)
  }
  let closing = false
  async function shutdown (signal: string): Promise<void> {
    if (closing) return
    closing = true
    app.log.info({ signal }, 'shutting down: finishing in-flight requests')
    try {
      await app.close()
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
