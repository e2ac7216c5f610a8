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
  // A callback hook, not an async one: it runs on every response, and a promise per response
  // is measurable on the hit path.
  app.addHook('onSend', function connectionClose (_request, reply, payload, done) {
    if (closing) reply.header('connection', 'close')
    done(null, payload)
  })
  app.addHook('onClose', async function stopSweep () {
    if (sweep !== undefined) clearInterval(sweep)
  })
}

export default fp(closingPlugin, { name: 'closing' })
