// The project's shared folder (API.md, conformance vectors) sits beside the repository.
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')

export function sharedPath (...parts: string[]): string {
  return path.join(repoRoot, '..', 'shared', ...parts)
}
