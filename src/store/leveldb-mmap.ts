// Keeps LevelDB from memory-mapping its table files (see native/leveldb-mmap.c for why): the
// disk tier's pages then stay in the page cache instead of the server's resident memory.
import { createRequire } from 'node:module'
import { existsSync, readFileSync } from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const require = createRequire(import.meta.url)

interface MmapAddon { setMmapLimit: (bindingPath: string, limit: number) => boolean }
interface NodeGypBuild { (dir: string): unknown, path: (dir: string) => string }

let outcome: { ok: true } | { ok: false, why: string } | undefined

/** The folder of this package: where `npm install` built the addon (build/Release). */
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
 * Sets LevelDB's mmap limit to 0 for this process, once; call before the first database
 * opens. Returns why it could not (the addon was not built, say): the store still works, with
 * its tables counted in RSS.
 */
export function disableLevelMmap (): { ok: true } | { ok: false, why: string } {
  if (outcome !== undefined) return outcome
  try {
    const gypBuild = require('node-gyp-build') as NodeGypBuild
    const addon = gypBuild(packageRoot()) as MmapAddon
    // The same lookup classic-level makes for its binding, so this is the file it loaded.
    const binding = gypBuild.path(path.dirname(require.resolve('classic-level/package.json')))
    outcome = addon.setMmapLimit(binding, 0)
      ? { ok: true }
      : { ok: false, why: `LevelDB's mmap limit is not exported by ${binding}` }
  } catch (err) {
    outcome = { ok: false, why: (err as Error).message }
  }
  return outcome
}
