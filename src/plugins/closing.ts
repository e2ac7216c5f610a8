// Graceful close with keep-alive clients: once the server starts closing, every response asks
// its client to close the connection, and connections that go idle are closed as they do. In
// flight requests finish; nothing waits on an idle keep-alive socket until its timeout.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'

async function closingPlugin (app: FastifyInstance): Promise<void> {
  let closing = false
  let sweep: NodeJS.Timeout | undefined
  app.addHook('preClose', async function startClosing () {
    closing = true
    sweep = setInterval(() => { app.server.closeIdleConnections() }, 50)
    sweep.unref()
  })
  app.addHook('onSend', async function connectionClose (_request, reply, payload) {
    if (closing) reply.header('connection', 'close')
    return payload
  })
  app.addHook('onClose', async function stopSweep () {
    if (sweep !== undefined) clearInterval(sweep)
  })
}

export default fp(closingPlugin, { name: 'closing' })
