// Child process of loadgen.ts: runs autocannon once with the config file given as argv[2] and
// prints a LoadResult as JSON on stdout.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import autocannon from 'autocannon'
import type { LoadConfig, LoadResult } from './loadgen.js'

// autocannon keeps each response body as a string (`req.body += chunk`, a UTF-8 decode of every
// byte). For binary bodies (Arrow) that decode, not the server, caps the rate at ~60 MiB/s on
// this machine. Bodies are not checked here (no expectBody/verifyBody), so drop them: the
// counts of bytes, requests and latencies are kept as before.
const PipelinedRequestsQueue = createRequire(import.meta.url)('autocannon/lib/pipelinedRequestsQueue.js') as { prototype: { addBody: (data: Buffer) => void } }
PipelinedRequestsQueue.prototype.addBody = function addBody () {}

const config = JSON.parse(readFileSync(process.argv[2] as string, 'utf8')) as LoadConfig

const result = await autocannon({
  url: config.origin,
  connections: config.connections,
  duration: config.durationSec,
  pipelining: 1,
  timeout: 30,
  title: config.title,
  requests: config.paths.map((p) => ({ method: 'GET' as const, path: p }))
})

const summary: LoadResult = {
  title: config.title,
  durationSec: result.duration,
  requests: result.requests.total,
  rpsMedian: result.requests.p50,
  rpsMean: result.requests.average,
  bytesPerSecMedian: result.throughput.p50,
  bytesPerSecMean: result.throughput.average,
  latencyP50Ms: result.latency.p50,
  latencyP99Ms: result.latency.p99,
  latencyMaxMs: result.latency.max,
  non2xx: result.non2xx,
  errors: result.errors,
  timeouts: result.timeouts
}
process.stdout.write(JSON.stringify(summary) + '\n')
