// Run by `npm install` (package.json's install script): rebuilds classic-level's LevelDB binding
// from the sources it ships, with LevelDB's SSE4.2 CRC32C turned on. LevelDB checksums every
// record it appends to its log and every table block it writes; the prebuilt binding that
// classic-level ships computes those CRCs a byte at a time, and that loop was the largest
// single item of the server's CPU over cold epochs (9.5%, perf). LevelDB's own Makefile builds
// the SSE4.2 path when the compiler offers it (port_posix_sse.cc, which still checks the CPU at
// run time); with it the CRCs took ~1% (README, "Caching").
//
// Plain JavaScript, as it runs before anything is compiled. It never fails the install: on
// another platform, a CPU without SSE4.2, or a failed build, classic-level's prebuilt binding
// stays in use.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'

const FLAGS = '-DLEVELDB_PLATFORM_POSIX_SSE -msse4.2'
// Written beside the binding once it is built with FLAGS, so a second install skips the ~20 s build.
const MARKER = 'shardfeed-sse42'

function warn (message) {
  process.stderr.write(`shardfeed: ${message}; LevelDB uses classic-level's prebuilt binding (README, "Caching")\n`)
}

function cpuHasSse42 () {
  try {
    return /^flags\s*:.*\bsse4_2\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'))
  } catch {
    return false
  }
}

function main () {
  if (process.env.SHARDFEED_LEVELDB_PREBUILT === '1') return
  if (process.platform !== 'linux' || process.arch !== 'x64') return
  if (!cpuHasSse42()) return warn('this CPU has no SSE4.2')
  const require = createRequire(import.meta.url)
  const dir = path.dirname(require.resolve('classic-level/package.json'))
  const build = path.join(dir, 'build')
  if (existsSync(path.join(build, MARKER)) && existsSync(path.join(build, 'Release', 'classic_level.node'))) return
  // npm puts its own node-gyp on the PATH of install scripts, configured as for the addon.
  const result = spawnSync('node-gyp', ['rebuild', '--jobs', 'max'], {
    cwd: dir,
    env: { ...process.env, CXXFLAGS: `${process.env.CXXFLAGS ?? ''} ${FLAGS}`.trim() },
    stdio: ['ignore', 'ignore', 'pipe'],
    encoding: 'utf8'
  })
  if (result.status !== 0) {
    rmSync(build, { recursive: true, force: true })
    return warn(`building LevelDB with SSE4.2 CRC32C failed (${result.error?.message ?? (result.stderr ?? '').trim().split('\n').slice(-3).join(' / ')})`)
  }
  writeFileSync(path.join(build, MARKER), `${FLAGS}\n`)
}

main()
