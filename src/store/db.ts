// The one LevelDB of the process, under CACHE_DIR. Each concern gets a sublevel of it
// (registry, disk tier), so one open/close covers all and a restart finds everything.
import path from 'node:path'
import { readFileSync } from 'node:fs'
import { mkdir } from 'node:fs/promises'
import { Level } from 'level'
import type { ClassicLevel } from 'classic-level'
import { disableLevelMmap } from './leveldb-mmap.js'

// In Node, `level` is classic-level; its LevelDB-only methods are typed from there.
export type Db = Level<string, unknown> & Pick<ClassicLevel<string, unknown>, 'compactRange' | 'approximateSize' | 'getProperty'>

// LevelDB's default, and what the table cache keeps at least.
const DEFAULT_OPEN_FILES = 1000
// LevelDB's write buffer. The disk tier's tables are this size or more (a memtable each), and
// are only merged where bodies were deleted (src/cache/disk-tier.ts).
export const WRITE_BUFFER_BYTES = 2 * 1024 * 1024

/**
 * How many table files LevelDB may keep open: enough for every table of a full disk tier, so
 * that a disk-tier read never reopens a file (with too few, reads measured ~25% slower), and
 * at most half the process's file descriptor limit.
 */
export function maxOpenFilesFor (diskBytes: number, fdLimit: number | undefined): number {
  if (fdLimit === undefined) return DEFAULT_OPEN_FILES
  const wanted = Math.max(DEFAULT_OPEN_FILES, Math.ceil(diskBytes / WRITE_BUFFER_BYTES) + 64)
  return Math.min(wanted, Math.floor(fdLimit / 2))
}

/** The soft limit on open files (Linux /proc), or undefined where it cannot be read. */
export function openFilesLimit (): number | undefined {
  try {
    const line = readFileSync('/proc/self/limits', 'utf8').split('\n').find((l) => l.startsWith('Max open files'))
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0]
    if (soft === 'unlimited') return 1 << 20
    const n = Number(soft)
    return Number.isSafeInteger(n) && n > 0 ? n : undefined
  } catch {
    return undefined
  }
}

/**
 * Opens the store; `onMmapKept` hears why LevelDB still maps its tables, if it does.
 * `diskBytes` (the disk tier's bound) sizes LevelDB's table cache.
 */
export async function openDb (cacheDir: string, onMmapKept?: (why: string) => void, diskBytes = 0): Promise<Db> {
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
    writeBufferSize: WRITE_BUFFER_BYTES,
    maxFileSize: 32 * 1024 * 1024,
    // Tables are read with pread (leveldb-mmap.ts); disk-tier reads skip this cache (the
    // memory tier keeps bodies), so it holds index blocks and the registry.
    cacheSize: 2 * 1024 * 1024,
    maxOpenFiles: maxOpenFilesFor(diskBytes, openFilesLimit())
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
