import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile, realpath } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { after, before, describe, test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { AppError } from '../../src/errors.js'
import { resolveSourcePath } from '../../src/sources/confine.js'

let tmp: string
let root: string

// tmp/data is the data root; tmp/outside and tmp/data2 (a name sharing the root's prefix)
// hold files a client must never reach.
before(async () => {
  tmp = await realpath(await mkdtemp(path.join(os.tmpdir(), 'confine-')))
  root = path.join(tmp, 'data')
  await mkdir(path.join(root, 'sub'), { recursive: true })
  await mkdir(path.join(tmp, 'outside'))
  await mkdir(path.join(tmp, 'data2'))
  await writeFile(path.join(root, 'ok.jsonl'), '{"a":1}\n')
  await writeFile(path.join(root, 'sub', 'inner.jsonl'), '{"b":2}\n')
  await writeFile(path.join(tmp, 'outside', 'secret.jsonl'), '{"secret":true}\n')
  await writeFile(path.join(tmp, 'data2', 'sibling.jsonl'), '{"sibling":true}\n')
  await symlink(path.join(tmp, 'outside', 'secret.jsonl'), path.join(root, 'link-out.jsonl'))
  await symlink(path.join(tmp, 'outside'), path.join(root, 'dir-out'))
  await symlink('../data2/sibling.jsonl', path.join(root, 'link-sibling.jsonl'))
  await symlink('sub/inner.jsonl', path.join(root, 'link-in.jsonl'))
  await symlink('sub', path.join(root, 'dir-in'))
  await symlink('missing.jsonl', path.join(root, 'dangling.jsonl'))
  await symlink(root, path.join(tmp, 'root-link'))
})

after(async () => {
  await rm(tmp, { recursive: true, force: true })
})

async function rejectsWith (relPath: string, code: string, dataRoot = root): Promise<AppError> {
  try {
    await resolveSourcePath(dataRoot, relPath)
  } catch (err) {
    assert.ok(err instanceof AppError, `expected an AppError for ${JSON.stringify(relPath)}, got ${String(err)}`)
    assert.equal(err.code, code, `${JSON.stringify(relPath)}: ${err.message}`)
    // The message names the path as given and never the server's directories.
    assert.ok(!err.message.includes(tmp), `message leaks the root: ${err.message}`)
    return err
  }
  assert.fail(`${JSON.stringify(relPath)} was accepted`)
}

describe('resolveSourcePath: accepted paths', () => {
  test('a file in the root and in a sub-folder', async () => {
    assert.equal(await resolveSourcePath(root, 'ok.jsonl'), path.join(root, 'ok.jsonl'))
    assert.equal(await resolveSourcePath(root, 'sub/inner.jsonl'), path.join(root, 'sub', 'inner.jsonl'))
    assert.equal(await resolveSourcePath(root, './sub//inner.jsonl'), path.join(root, 'sub', 'inner.jsonl'))
  })

  test('symlinks that stay inside resolve to their real target', async () => {
    assert.equal(await resolveSourcePath(root, 'link-in.jsonl'), path.join(root, 'sub', 'inner.jsonl'))
    assert.equal(await resolveSourcePath(root, 'dir-in/inner.jsonl'), path.join(root, 'sub', 'inner.jsonl'))
  })

  test('a data root given through a symlink', async () => {
    assert.equal(await resolveSourcePath(path.join(tmp, 'root-link'), 'ok.jsonl'), path.join(root, 'ok.jsonl'))
  })
})

describe('resolveSourcePath: forbidden paths', () => {
  test('absolute paths', async () => {
    const err = await rejectsWith('/etc/passwd', 'SOURCE_FORBIDDEN')
    assert.match(err.message, /absolute/)
    await rejectsWith('//server/share/x', 'SOURCE_FORBIDDEN')
  })

  test('".." segments, wherever they are', async () => {
    for (const p of ['../outside/secret.jsonl', 'sub/../../outside/secret.jsonl', 'sub/../ok.jsonl', '..', 'sub/..']) {
      const err = await rejectsWith(p, 'SOURCE_FORBIDDEN')
      assert.match(err.message, /\.\./)
    }
  })

  test('backslashes', async () => {
    await rejectsWith('sub\\inner.jsonl', 'SOURCE_FORBIDDEN')
    await rejectsWith('..\\outside\\secret.jsonl', 'SOURCE_FORBIDDEN')
  })

  test('NUL bytes', async () => {
    const err = await rejectsWith('ok.jsonl\0.png', 'SOURCE_FORBIDDEN')
    assert.match(err.message, /NUL/)
  })

  test('a symlinked file that points outside', async () => {
    const err = await rejectsWith('link-out.jsonl', 'SOURCE_FORBIDDEN')
    assert.match(err.message, /"link-out.jsonl"/)
  })

  test('a symlinked folder that points outside', async () => {
    await rejectsWith('dir-out/secret.jsonl', 'SOURCE_FORBIDDEN')
  })

  test('a sibling folder whose name starts with the root\'s name', async () => {
    await rejectsWith('link-sibling.jsonl', 'SOURCE_FORBIDDEN')
  })
})

describe('resolveSourcePath: invalid sources', () => {
  test('URL-encoded dots are a literal (missing) name, not a way out', async () => {
    await rejectsWith('%2e%2e/outside/secret.jsonl', 'SOURCE_INVALID')
  })

  test('a missing file says what to check', async () => {
    const err = await rejectsWith('nope.jsonl', 'SOURCE_INVALID')
    assert.match(err.message, /"nope.jsonl"/)
    assert.match(err.message, /relative to the data root/)
    await rejectsWith('ok.jsonl/below', 'SOURCE_INVALID')
    await rejectsWith('dangling.jsonl', 'SOURCE_INVALID')
  })

  test('an empty path', async () => {
    await rejectsWith('', 'SOURCE_INVALID')
  })

  test('a directory', async () => {
    const err = await rejectsWith('sub', 'SOURCE_INVALID')
    assert.match(err.message, /directory/)
    await rejectsWith('.', 'SOURCE_INVALID')
    await rejectsWith('dir-in', 'SOURCE_INVALID')
  })

  test('a missing data root', async () => {
    await rejectsWith('ok.jsonl', 'SOURCE_INVALID', path.join(tmp, 'no-root'))
  })

  // Root reads every file, so when the tests run as root the check runs in a child process
  // that has dropped to the unprivileged user `nobody`.
  test('an unreadable file and an unsearchable folder', async () => {
    await writeFile(path.join(root, 'locked.jsonl'), '{"a":1}\n')
    await chmod(path.join(root, 'locked.jsonl'), 0o000)
    await mkdir(path.join(root, 'closed'))
    await writeFile(path.join(root, 'closed', 'x.jsonl'), '{"a":1}\n')
    await chmod(path.join(root, 'closed'), 0o700)
    const cases = ['locked.jsonl', 'closed/x.jsonl']
    if (process.getuid?.() !== 0) {
      await chmod(path.join(root, 'closed'), 0o000)
      try {
        for (const p of cases) await rejectsWith(p, 'SOURCE_INVALID')
      } finally {
        await chmod(path.join(root, 'closed'), 0o700)
      }
      return
    }
    await chmod(tmp, 0o755)
    await chmod(root, 0o755)
    const repo = fileURLToPath(new URL('../../', import.meta.url))
    const confine = new URL('../../src/sources/confine.ts', import.meta.url).href
    const script = `import { resolveSourcePath } from ${JSON.stringify(confine)}
for (const p of process.argv.slice(1)) {
  try { await resolveSourcePath(${JSON.stringify(root)}, p); console.log('accepted ' + p) } catch (e) { console.log(e.code + ' ' + e.message) }
}`
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, ...cases], {
      cwd: repo, uid: 65534, gid: 65534, encoding: 'utf8', env: { ...process.env, HOME: os.tmpdir() }
    })
    assert.equal(child.status, 0, child.stderr)
    const lines = child.stdout.trim().split('\n')
    assert.equal(lines.length, 2, child.stdout)
    for (const line of lines) {
      assert.match(line, /^SOURCE_INVALID /)
      assert.ok(!line.includes(tmp), line)
    }
    assert.match(lines[0]!, /permissions/)
  })
})
