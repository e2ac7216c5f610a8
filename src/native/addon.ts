// The small native addon (the C files here, built by `npm install` with node-gyp): controls
// over the process's memory that JavaScript cannot reach (memory.c), the byte loop that
// dominates indexing a JSONL file of vectors (number-run.c), a batch's reads in one call
// (read-runs.c), and a source's digest hashed beside its indexing pass (hash-file.c).
// Optional: without it the server works the same, with more resident memory and slower
// indexing and builds.
import { createRequire } from 'node:module'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)

export interface NativeAddon {
  setMmapLimit: (bindingPath: string, limit: number) => boolean
  mallocTrim: () => boolean
  detachBuffer: (buffer: ArrayBuffer) => boolean
  adjustExternalMemory: (change: number) => number
  skipNumberRun: (bytes: Uint8Array, p: number, end: number) => number
  readRuns: (fd: number, buf: Uint8Array, runs: Float64Array, numRuns: number) => boolean
  /** null while another job runs in the process (one at a time, see hash-file.c). */
  hashFileBlocks: (fd: number, blockBytes: number, stop: Int32Array) => Promise<{ hashes: Buffer, bytes: number }> | null
}

let loaded: { addon: NativeAddon } | { error: string } | undefined

/** The folder of this package (the addon is built under src/native/build/Release). */
function packageRoot (): string {
  let dir = path.dirname(fileURLToPath(import.meta.url))
  for (;;) {
    const manifest = path.join(dir, 'package.json')
    if (existsSync(manifest) && (JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string }).name === 'shardfeed') return dir
    const up = path.dirname(dir)
    if (up === dir) throw new Error('package.json of shardfeed not found above ' + fileURLToPath(import.meta.url))
    dir = up
  }
}

/**
 * One of the addon's functions, or undefined when the addon is not built, or was built before
 * it had that function (the callers then use their JavaScript twin, or do without).
 */
export function addonFunction<K extends keyof NativeAddon> (name: K): NativeAddon[K] | undefined {
  const loaded = nativeAddon()
  return 'addon' in loaded && typeof loaded.addon[name] === 'function' ? loaded.addon[name] : undefined
}

/** The addon, or why it cannot be loaded (not built, say). */
export function nativeAddon (): { addon: NativeAddon } | { error: string } {
  if (loaded !== undefined) return loaded
  try {
    const gypBuild = require('node-gyp-build') as (dir: string) => unknown
    loaded = { addon: gypBuild(path.join(packageRoot(), 'src', 'native')) as NativeAddon }
  } catch (err) {
    loaded = { error: (err as Error).message }
  }
  return loaded
}
