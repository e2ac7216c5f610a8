// Path confinement: a dataset's `source.path` comes from a client, so it must never reach a
// file outside the server's data root, neither by `..` nor through a symbolic link. The
// check runs on real paths (symlinks resolved) of both the root and the target, and the
// messages name the path as the client gave it, never the server's own directories.
import { constants } from 'node:fs'
import { access, realpath, stat } from 'node:fs/promises'
import path from 'node:path'
import { AppError } from '../errors.js'

/**
 * Resolves `relPath` (relative to `dataRoot`, `/`-separated) to the real path of a readable
 * regular file inside the data root.
 * Rejects with SOURCE_FORBIDDEN for paths that try to leave the root (absolute paths, `..`
 * segments, backslashes, NUL bytes, symlinks that lead outside) and with SOURCE_INVALID for
 * a missing, non-regular or unreadable file.
 */
export async function resolveSourcePath (dataRoot: string, relPath: string): Promise<string> {
  const shown = JSON.stringify(relPath)
  checkSyntax(relPath, shown)

  let root: string
  try {
    root = await realpath(dataRoot)
  } catch {
    throw new AppError('SOURCE_INVALID', `source path ${shown}: the server's data root is not available; ask the operator to check DATA_ROOT`)
  }

  let real: string
  try {
    real = await realpath(path.join(root, relPath))
  } catch (err) {
    throw new AppError('SOURCE_INVALID', `source path ${shown}: ${describeFsError(err)}`)
  }

  if (!isInside(root, real)) {
    throw new AppError('SOURCE_FORBIDDEN', `source path ${shown} leads outside the data root (through a symbolic link); use a path to a file inside the data root`)
  }

  const stats = await stat(real).catch((err: unknown) => {
    throw new AppError('SOURCE_INVALID', `source path ${shown}: ${describeFsError(err)}`)
  })
  if (!stats.isFile()) {
    const what = stats.isDirectory() ? 'a directory' : 'not a regular file'
    throw new AppError('SOURCE_INVALID', `source path ${shown} is ${what}; give the path of a data file`)
  }
  try {
    await access(real, constants.R_OK)
  } catch (err) {
    throw new AppError('SOURCE_INVALID', `source path ${shown}: ${describeFsError(err)}`)
  }
  return real
}

// Rejections that need no file system access. Backslashes are refused outright rather than
// treated as ordinary name characters, so a path means the same on every platform.
function checkSyntax (relPath: string, shown: string): void {
  if (typeof relPath !== 'string' || relPath.length === 0) {
    throw new AppError('SOURCE_INVALID', 'source path is empty; give a path relative to the data root, e.g. "reviews/train.jsonl"')
  }
  if (relPath.includes('\0')) {
    throw new AppError('SOURCE_FORBIDDEN', `source path ${shown} contains a NUL byte; remove it`)
  }
  if (relPath.includes('\\')) {
    throw new AppError('SOURCE_FORBIDDEN', `source path ${shown} contains a backslash; separate folders with "/"`)
  }
  if (path.posix.isAbsolute(relPath) || path.win32.isAbsolute(relPath)) {
    throw new AppError('SOURCE_FORBIDDEN', `source path ${shown} is absolute; give a path relative to the data root, e.g. "reviews/train.jsonl"`)
  }
  if (relPath.split('/').includes('..')) {
    throw new AppError('SOURCE_FORBIDDEN', `source path ${shown} contains a ".." segment; give a path inside the data root without ".."`)
  }
}

// `/data2/x` starts with `/data` but is not inside it: compare whole segments. The root
// itself counts as inside (it is then refused as a directory).
function isInside (root: string, real: string): boolean {
  const prefix = root.endsWith(path.sep) ? root : root + path.sep
  return real === root || real.startsWith(prefix)
}

function describeFsError (err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code
  switch (code) {
    case 'ENOENT':
    case 'ENOTDIR':
      return 'no such file under the data root; check the spelling (the path is relative to the data root)'
    case 'EACCES':
    case 'EPERM':
      return 'the server may not read this file; fix its permissions'
    case 'ELOOP':
      return 'too many levels of symbolic links; point the path at the file itself'
    case 'ENAMETOOLONG':
      return 'the path is too long; shorten it'
    default:
      return `cannot be opened (${code ?? 'unknown error'}); check the file`
  }
}
