// The Python client (examples/python) against the built service as a real process: its
// unittest suite, then a restart (SIGKILL) in the middle of an epoch, which must cost the
// Python iterator no batch and repeat none. Needs python3 (3.8+, no pip packages).
import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { writeFile } from 'node:fs/promises'
import path from 'node:path'
import { makeTempDirs, jsonlRecords } from './helper.js'
import { startServerProcess, type ServerProcess } from './process.js'
import { repoRoot } from './shared.js'

// 203 records in batches of 8 over 3 shards: not a multiple of 24, so the last batches are
// short and rank 2 has one batch fewer (remainder "partial").
const N = 203
const SPEC = { name: 'train', source: { format: 'jsonl', path: 'train.jsonl' }, batchSize: 8, numShards: 3, shuffle: true, seed: 11 }
const havePython = spawnSync('python3', ['--version']).status === 0

interface Started { server: ServerProcess, env: Record<string, string> }

async function startWithDataset (t: TestContext): Promise<Started & { dirs: Record<string, string> }> {
  const { dataRoot, cacheDir } = await makeTempDirs(t)
  await writeFile(path.join(dataRoot, 'train.jsonl'), jsonlRecords(N))
  const dirs = { DATA_ROOT: dataRoot, CACHE_DIR: cacheDir }
  const server = await startServerProcess(t, dirs)
  const res = await fetch(`${server.url}/datasets`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(SPEC)
  })
  assert.equal(res.status, 201, await res.text())
  const env = {
    PYTHONPATH: path.join(repoRoot, 'examples', 'python'),
    PYTHONDONTWRITEBYTECODE: '1', // no __pycache__ left in the repository
    PYTHONUNBUFFERED: '1',
    SHARDFEED_URL: server.url,
    SHARDFEED_DATASET: SPEC.name,
    SHARDFEED_NUM_RECORDS: String(N)
  }
  return { server, env, dirs }
}

/** Runs python3 from the repository root; `onLine` sees stdout line by line. */
async function runPython (t: TestContext, args: string[], env: Record<string, string>, onLine?: (line: string) => void): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const child = spawn('python3', args, { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const timer = setTimeout(() => { child.kill('SIGKILL') }, 45000)
  t.after(() => { clearTimeout(timer); if (child.exitCode === null) child.kill('SIGKILL') })
  let stdout = ''
  let stderr = ''
  let partial = ''
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString()
    partial += d.toString()
    const lines = partial.split('\n')
    partial = lines.pop() ?? ''
    for (const line of lines) onLine?.(line)
  })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const [code] = await once(child, 'exit') as [number | null]
  clearTimeout(timer)
  return { code, stdout, stderr }
}

test('the Python client passes its unittest suite against the running service', async (t) => {
  assert.ok(havePython, 'python3 is needed to test the Python client (Debian: apt-get install python3)')
  const { env } = await startWithDataset(t)
  const { code, stdout, stderr } = await runPython(t, ['-m', 'unittest', 'discover', '-s', 'examples/python/tests', '-v'], env)
  process.stdout.write(stdout + stderr) // unittest reports on stderr
  assert.equal(code, 0, `python unittest failed:\n${stderr}`)
  assert.match(stderr, /\nOK/)
  assert.doesNotMatch(stderr, /skipped 'SHARDFEED_URL not set/)
})

test('a server killed and restarted mid-epoch costs the Python iterator no batch and repeats none', async (t) => {
  assert.ok(havePython, 'python3 is needed to test the Python client (Debian: apt-get install python3)')
  const { server, env, dirs } = await startWithDataset(t)
  const total = (await (await fetch(`${server.url}/datasets/train`)).json() as { batchesPerShard: number[] }).batchesPerShard
  let progress = 0
  let killedAt = -1
  let restarted: Promise<ServerProcess> | undefined
  const run = runPython(t, ['examples/python/tests/restart_check.py', '--sleep', '0.08', '--workers', '2', '--prefetch', '3'], env, (line) => {
    if (!line.startsWith('progress ')) return
    progress = Number(line.slice(9))
    if (progress === 5 && restarted === undefined) {
      killedAt = progress
      restarted = (async () => {
        server.child.kill('SIGKILL')
        await once(server.child, 'exit')
        await new Promise((resolve) => setTimeout(resolve, 300)) // the client meets refusals
        return await startServerProcess(t, dirs, server.port)
      })()
    }
  })
  const { code, stdout, stderr } = await run
  assert.ok(restarted, `the script never reached 5 batches:\n${stdout}\n${stderr}`)
  const again = await restarted
  const line = stdout.split('\n').find((l) => l.startsWith('SUMMARY '))
  assert.ok(line, `no summary:\n${stdout}\n${stderr}`)
  const summary = JSON.parse(line.slice(8)) as { ok: boolean, error?: string, retries: number, batches: Array<{ rank: number, index: number, indices: number[], ids: number[] }> }
  assert.equal(code, 0, `${summary.error ?? ''}\n${stderr}`)
  assert.ok(summary.ok)
  t.diagnostic(`killed after batch ${killedAt} of ${total.reduce((a, b) => a + b, 0)}; retries ${summary.retries}`)
  assert.ok(summary.retries > 0, 'the client never noticed the restart')

  // Every (rank, index) exactly once and in order ...
  const expected = total.flatMap((n, rank) => Array.from({ length: n }, (_, index) => `${rank}/${index}`))
  assert.deepEqual(summary.batches.map((b) => `${b.rank}/${b.index}`), expected)
  assert.ok(killedAt < expected.length, 'the kill came after the epoch')
  // ... with the contents the restarted server serves ...
  for (const b of summary.batches) {
    const res = await fetch(`${again.url}/datasets/train/shards/${b.rank}/batches/${b.index}?epoch=0`)
    const body = await res.json() as { indices: number[] }
    assert.deepEqual(b.indices, body.indices, `batch ${b.rank}/${b.index}`)
    assert.deepEqual(b.ids, b.indices)
  }
  // ... so every record once.
  const ids = summary.batches.flatMap((b) => b.ids).sort((a, b) => a - b)
  assert.deepEqual(ids, Array.from({ length: N }, (_, i) => i))
})
