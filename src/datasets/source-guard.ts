// Notices a source file that changed after registration (size, mtime, or another file put in
// its place: most tools write a new file and rename it over the old one, and a copy that keeps
// size and mtime, as `cp -p` or `rsync -t` make, would otherwise go unseen), so reads answer
// 409 SOURCE_CHANGED instead of mixing old and new bytes. The check costs one stat per dataset
// per second at most (not one per request), plus one after each build, before the built batch
// is cached.
import { statSync } from 'node:fs'
import { AppError } from '../errors.js'
import type { DatasetRecord } from '../store/registry.js'

export interface SourceGuard {
  /** Throws SOURCE_CHANGED when the source has changed (checked at most once per interval). */
  check: (record: DatasetRecord) => void
  /** The same, with a fresh stat. */
  verify: (record: DatasetRecord) => void
}

interface Seen { at: number, problem: string | undefined }

function problemOf (record: DatasetRecord): string | undefined {
  const expected = record.sourceStat
  if (record.filePath === undefined || expected === undefined) return undefined
  try {
    const st = statSync(record.filePath)
    if (st.size !== expected.size) return `its size changed from ${expected.size} to ${st.size} bytes`
    if (st.mtimeMs !== expected.mtimeMs) return 'it was modified (mtime changed)'
    if (expected.ino !== undefined && st.ino !== expected.ino) return 'another file was put in its place (inode changed)'
    return undefined
  } catch {
    return 'it can no longer be read (moved or deleted?)'
  }
}

export function createSourceGuard (intervalMs = 1000, now: () => number = Date.now): SourceGuard {
  const seen = new Map<string, Seen>()

  function raise (record: DatasetRecord, problem: string): never {
    const name = record.spec.name
    throw new AppError('SOURCE_CHANGED', `the source of dataset "${name}" changed since it was registered: ${problem}. Batches would mix old and new records; DELETE /datasets/${name} and register it again`)
  }

  function fresh (record: DatasetRecord): Seen {
    const s = { at: now(), problem: problemOf(record) }
    seen.set(record.fingerprint ?? record.spec.name, s)
    return s
  }

  return {
    check (record) {
      const key = record.fingerprint ?? record.spec.name
      let s = seen.get(key)
      if (s === undefined || now() - s.at >= intervalMs) s = fresh(record)
      if (s.problem !== undefined) raise(record, s.problem)
    },
    verify (record) {
      const s = fresh(record)
      if (s.problem !== undefined) raise(record, s.problem)
    }
  }
}
