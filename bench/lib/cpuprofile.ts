// Summarises a V8 .cpuprofile (node --cpu-prof): self time per function and per file, as
// shares of all samples and of the busy (non-idle) samples.
import { readFileSync } from 'node:fs'
import path from 'node:path'

interface ProfileNode {
  id: number
  callFrame: { functionName: string, url: string, lineNumber: number }
  hitCount?: number
}

interface CpuProfile { nodes: ProfileNode[], samples?: number[], timeDeltas?: number[], startTime: number, endTime: number }

export interface ProfileRow { name: string, where: string, selfMs: number, pctBusy: number }
export interface ProfileSummary { totalMs: number, idleMs: number, busyMs: number, functions: ProfileRow[], files: ProfileRow[] }

function shortUrl (url: string, repoRoot: string): string {
  if (url === '') return ''
  let p = url.startsWith('file://') ? new URL(url).pathname : url
  if (p.startsWith(repoRoot + '/')) p = path.relative(repoRoot, p)
  const nm = p.lastIndexOf('node_modules/')
  if (nm >= 0) p = p.slice(nm)
  return p
}

export function summariseCpuProfile (file: string, repoRoot: string, top = 20): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile
  const byId = new Map(prof.nodes.map((n) => [n.id, n]))
  const selfUs = new Map<number, number>()
  const samples = prof.samples ?? []
  const deltas = prof.timeDeltas ?? []
  // timeDeltas[k] is the time before sample k; attribute it to that sample's node.
  for (let k = 0; k < samples.length; k++) {
    const id = samples[k] as number
    selfUs.set(id, (selfUs.get(id) ?? 0) + Math.max(0, deltas[k] ?? 0))
  }
  const fn = new Map<string, { name: string, where: string, us: number }>()
  const files = new Map<string, number>()
  let total = 0
  let idle = 0
  for (const [id, us] of selfUs) {
    const node = byId.get(id)
    if (node === undefined) continue
    total += us
    const name = node.callFrame.functionName === '' ? '(anonymous)' : node.callFrame.functionName
    if (name === '(idle)') { idle += us; continue }
    const url = shortUrl(node.callFrame.url, repoRoot)
    const where = url === '' ? '' : `${url}:${node.callFrame.lineNumber + 1}`
    const key = `${name}@${where}`
    const row = fn.get(key) ?? { name, where, us: 0 }
    row.us += us
    fn.set(key, row)
    const fileKey = url === '' ? name : url
    files.set(fileKey, (files.get(fileKey) ?? 0) + us)
  }
  const busy = total - idle
  const pct = (us: number): number => busy > 0 ? (100 * us) / busy : 0
  return {
    totalMs: total / 1000,
    idleMs: idle / 1000,
    busyMs: busy / 1000,
    functions: [...fn.values()].sort((a, b) => b.us - a.us).slice(0, top).map((r) => ({ name: r.name, where: r.where, selfMs: r.us / 1000, pctBusy: pct(r.us) })),
    files: [...files.entries()].sort((a, b) => b[1] - a[1]).slice(0, top).map(([f, us]) => ({ name: f, where: '', selfMs: us / 1000, pctBusy: pct(us) }))
  }
}

export function profileMarkdown (s: ProfileSummary): string {
  const lines = [
    `Samples: ${s.totalMs.toFixed(0)} ms, idle ${s.idleMs.toFixed(0)} ms, busy ${s.busyMs.toFixed(0)} ms (shares below are of busy time).`,
    '',
    '| self % | self ms | function | where |',
    '| ---: | ---: | --- | --- |',
    ...s.functions.map((r) => `| ${r.pctBusy.toFixed(1)} | ${r.selfMs.toFixed(0)} | \`${r.name}\` | ${r.where} |`),
    '',
    '| self % | self ms | file (or VM category) |',
    '| ---: | ---: | --- |',
    ...s.files.map((r) => `| ${r.pctBusy.toFixed(1)} | ${r.selfMs.toFixed(0)} | ${r.name} |`)
  ]
  return lines.join('\n')
}

/**
 * The thread a `node --cpu-prof` file is of: its name is CPU.<date>.<time>.<pid>.<thread id>.
 * <seq>.cpuprofile, thread 0 being the main thread (the event loop); a worker is named by what
 * it ran, as the files of its functions tell (`summary` with every file, not a top few).
 */
export function profileThread (fileName: string, summary: ProfileSummary): string {
  const threadId = fileName.split('.')[4] ?? '?'
  if (threadId === '0') return 'main thread (event loop)'
  const files = summary.files.map((f) => f.name)
  const has = (part: string): boolean => files.some((f) => f.includes(part))
  if (has('json-batch') || has('arrow-batch') || has('batch-builder')) return `build worker (thread ${threadId})`
  // Both indexing threads validate; only the first reads and hashes the file.
  const hashes = summary.functions.some((f) => f.name === 'update' && f.where.includes('crypto/hash'))
  if (has('schema-scan')) return hashes ? `indexing worker: reads, hashes, validates (thread ${threadId})` : `indexing worker: validates (thread ${threadId})`
  return `worker (thread ${threadId})`
}

// `tsx bench/lib/cpuprofile.ts <file.cpuprofile> [top]` prints the summary.
if (process.argv[1] !== undefined && path.resolve(process.argv[1]).replace(/\.ts$/, '') === path.resolve(new URL(import.meta.url).pathname).replace(/\.ts$/, '')) {
  const file = process.argv[2]
  if (file === undefined) {
    console.error('usage: tsx bench/lib/cpuprofile.ts <file.cpuprofile> [top]')
    process.exit(2)
  }
  console.log(profileMarkdown(summariseCpuProfile(file, process.cwd(), Number(process.argv[3] ?? 20))))
}
