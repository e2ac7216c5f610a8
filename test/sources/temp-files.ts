// Numbered source files (and index paths beside them) in a temp dir that lives for one test file.
import { after, before } from 'node:test'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'

export interface TempFiles {
  /** Writes a new file with `content`; returns its path and a path for its index. */
  put: (content: string | Buffer) => Promise<{ file: string, idx: string }>
  /** The temp dir (valid once the file's tests run). */
  dir: () => string
}

export function tempFiles (prefix: string, ext: string): TempFiles {
  let tmp = ''
  let counter = 0
  before(async () => { tmp = await mkdtemp(path.join(os.tmpdir(), `${prefix}-`)) })
  after(async () => { await rm(tmp, { recursive: true, force: true }) })
  return {
    async put (content) {
      const n = counter++
      const file = path.join(tmp, `f${n}.${ext}`)
      await writeFile(file, content)
      return { file, idx: path.join(tmp, `f${n}.idx`) }
    },
    dir: () => tmp
  }
}
