// Trainers: one per rank, each reading its batches of one epoch in order, one request at a time
// over its own keep-alive connection (an undici Client), as a data-loader loop would.
import { Client } from 'undici'
import { cpuBetween, cpuSnapshot } from './cpu.js'
import { sleep } from './stats.js'

const MAX_RETRIES = 200

export interface EpochRun {
  wallMs: number
  requests: number
  /** 503 answers retried (load shedding). */
  retries: number
  bodyBytes: number
  /** X-Cache values seen (shardfeed only). */
  xcache: Record<string, number>
  /** CPU the trainers used (all four live in this process), user + system. */
  clientCpuSec: number
  /** CPU the whole machine used over the epoch (every process), and that as a share of it. */
  machineCpuSec: number
  machineBusyPct: number
  /** Per rank, the bodies in batch order, when `keepBodies`. */
  bodies?: Buffer[][]
}

/**
 * Runs one epoch: `pathsPerRank[r]` are rank r's batch paths in order. Every response must be
 * 200; any other status fails the run.
 */
export async function runEpoch (origin: string, pathsPerRank: string[][], opts: { keepBodies?: boolean, timeoutMs?: number } = {}): Promise<EpochRun> {
  const clients = pathsPerRank.map(() => new Client(origin, { pipelining: 1, keepAliveTimeout: 60000, bodyTimeout: opts.timeoutMs ?? 120000, headersTimeout: opts.timeoutMs ?? 120000 }))
  const xcache: Record<string, number> = {}
  const bodies: Buffer[][] = pathsPerRank.map(() => [])
  let bodyBytes = 0
  let requests = 0
  let retries = 0
  try {
    const cpu0 = process.cpuUsage()
    const machine0 = cpuSnapshot()
    const t0 = performance.now()
    await Promise.all(pathsPerRank.map(async (paths, r) => {
      const client = clients[r] as Client
      for (const p of paths) {
        let res
        let body: Buffer
        for (let attempt = 0; ; attempt++) {
          res = await client.request({ method: 'GET', path: p })
          body = Buffer.from(await res.body.arrayBuffer())
          // 503 is load shedding (Retry-After): a real trainer waits and asks again.
          if (res.statusCode !== 503 || attempt >= MAX_RETRIES) break
          retries++
          await sleep(50)
        }
        if (res.statusCode !== 200) throw new Error(`GET ${p}: ${res.statusCode} ${body.toString('utf8', 0, 300)}`)
        const tier = res.headers['x-cache']
        if (typeof tier === 'string') xcache[tier] = (xcache[tier] ?? 0) + 1
        bodyBytes += body.length
        requests++
        if (opts.keepBodies === true) (bodies[r] as Buffer[]).push(body)
      }
    }))
    const wallMs = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    const machine = cpuBetween(machine0, cpuSnapshot(), wallMs / 1000)
    return {
      wallMs,
      requests,
      retries,
      bodyBytes,
      xcache,
      clientCpuSec: (cpu.user + cpu.system) / 1e6,
      machineCpuSec: machine.busyCoreSec,
      machineBusyPct: machine.busyPct,
      ...(opts.keepBodies === true ? { bodies } : {})
    }
  } finally {
    await Promise.all(clients.map(async (c) => await c.close().catch(() => {})))
  }
}

/** GETs each path once and counts the X-Cache values (to check which tier answers). */
export async function sampleTiers (origin: string, paths: string[]): Promise<Record<string, number>> {
  const client = new Client(origin, { pipelining: 1 })
  const seen: Record<string, number> = {}
  try {
    for (const p of paths) {
      const res = await client.request({ method: 'GET', path: p })
      await res.body.arrayBuffer()
      if (res.statusCode !== 200) throw new Error(`GET ${p}: ${res.statusCode}`)
      const tier = String(res.headers['x-cache'] ?? 'none')
      seen[tier] = (seen[tier] ?? 0) + 1
    }
  } finally {
    await client.close()
  }
  return seen
}
