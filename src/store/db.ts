// The one LevelDB of the process, under CACHE_DIR. Each concern gets a sublevel of it
// (registry, disk tier), so one open/close covers all and a restart finds everything.
import path from 'node:path'
import { mkdir } from 'node:fs/promises'
import { Level } from 'level'
import type { ClassicLevel } from 'classic-level'
import { disableLevelMmap } from './leveldb-mmap.js'

// In Node, `level` is classic-level; its LevelDB-only methods are typed from there.
export type Db = Level<string, unknown> & Pick<ClassicLevel<string, unknown>, 'compactRange' | 'getProperty'>

/** Opens the store; `onMmapKept` hears why LevelDB still maps its tables, if it does. */
export async function openDb (cacheDir: string, onMmapKept?: (why: string) => void): Promise<Db> {
  const location = path.join(cacheDir, 'db')
  const mmap = disableLevelMmap()
  if (!mmap.ok) onMmapKept?.(mmap.why)
  await mkdir(location, { recursive: true })
  const db = new Level<string, unknown>(location, {
    valueEncoding: 'json',
    // Batch bodies are already dense (Arrow) or cheap to store as is (JSON); Snappy would
    // cost CPU on every disk-tier write and read for little space.
    compression: false,
    // Values are batches of tens to hundreds of KiB. Larger table files mean fewer
    // compactions per byte cached; the write buffer (held twice while it is flushed) stays
    // small for RSS, as 2, 4, 8 and 64 MiB measured the same in disk-tier writes per second.
    writeBufferSize: 2 * 1024 * 1024,
    maxFileSize: 32 * 1024 * 1024,
    // Tables are read with pread (leveldb-mmap.ts); disk-tier reads skip this cache (the
    // memory tier keeps bodies), so it holds index blocks and the registry.
    cacheSize: 2 * 1024 * 1024
  })
  try {
    await db.open()
  } catch (err) {
    // LevelDB's own error says little ("Database failed to open"); its cause says why.
    const cause = (err as { cause?: Error }).cause
    const why = cause?.message ?? (err as Error).message
    throw new Error(`cannot open the store in ${location}: ${why}`, { cause: err })
  }
  return db as Db
}
