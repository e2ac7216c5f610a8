// How the built service is started outside `npm start`: the node flags and environment that
// `npm start` and the Docker image give it, and a free loopback port. Shared by the tests'
// and the benchmark's child processes, so both measure the server as it is shipped.
import { createServer } from 'node:net'

/** `--max-semi-space-size=1 --heap-growing-percent=50`: see README, "Memory". */
export const SERVER_NODE_ARGS: readonly string[] = ['--max-semi-space-size=1', '--heap-growing-percent=50']
/** MALLOC_ARENA_MAX=2: threads share malloc arenas instead of growing one each. */
export const SERVER_ENV: Readonly<Record<string, string>> = { MALLOC_ARENA_MAX: '2' }

export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address()
      srv.close(() => { resolve(typeof addr === 'object' && addr !== null ? addr.port : 0) })
    })
  })
}
