// Keeps LevelDB from memory-mapping its table files (see src/native/memory.c for why): the disk
// tier's pages then stay in the page cache instead of the server's resident memory.
import { createRequire } from 'node:module'
import path from 'node:path'
import { nativeAddon } from '../native/addon.js'

const require = createRequire(import.meta.url)

let outcome: { ok: true } | { ok: false, why: string } | undefined

/**
 * Sets LevelDB's mmap limit to 0 for this process, once; call before the first database
 * opens. Returns why it could not (the addon was not built, say): the store still works, with
 * its tables counted in RSS.
 */
export function disableLevelMmap (): { ok: true } | { ok: false, why: string } {
  if (outcome !== undefined) return outcome
  const native = nativeAddon()
  if ('error' in native) {
    outcome = { ok: false, why: native.error }
    return outcome
  }
  try {
    // The same lookup classic-level makes for its binding, so this is the file it loaded.
    const gypBuild = require('node-gyp-build') as { path: (dir: string) => string }
    const binding = gypBuild.path(path.dirname(require.resolve('classic-level/package.json')))
    outcome = native.addon.setMmapLimit(binding, 0)
      ? { ok: true }
      : { ok: false, why: `LevelDB's mmap limit is not exported by ${binding}` }
  } catch (err) {
    outcome = { ok: false, why: (err as Error).message }
  }
  return outcome
}
