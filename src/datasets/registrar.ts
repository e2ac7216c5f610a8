// The life of a registration: check the source, index it (inline for small files, in the
// background for large ones), persist the outcome, and clean up on delete. Restarts resume
// interrupted indexing, so a registration is never silently lost.
import path from 'node:path'
import { randomUUID } from 'node:crypto'
import { mkdir, rename, rm, stat, writeFile, access } from 'node:fs/promises'
import type { FastifyBaseLogger } from 'fastify'
import { AppError, isAppError } from '../errors.js'
import type { Config } from '../config.js'
import type { RegisterBodyT } from '../schemas/datasets.js'
import type { DatasetRecord, Registry } from '../store/registry.js'
import { PLAN_VERSION } from '../plan/plan.js'
import { MAX_PERMUTATION_SIZE } from '../plan/permutation.js'
import { resolveSourcePath } from '../sources/confine.js'
import { checkUrlAllowed, downloadByRanges, parseAllowedPrefixes } from '../sources/url-source.js'
import { createIndexThreads, type IndexThreads } from '../sources/index-worker.js'
import { canonicalSpec, checkSource, fingerprintOf, sha256Hex, specKeyOf } from './spec.js'

export interface RegisterOutcome {
  statusCode: 200 | 201 | 202
  record: DatasetRecord
}

interface IndexJob {
  controller: AbortController
  done: Promise<void>
}

export interface Registrar {
  register: (body: RegisterBodyT) => Promise<RegisterOutcome>
  get: (name: string) => Promise<DatasetRecord>
  /** A ready dataset's record when it is at hand without a store read; else undefined. */
  peekReady: (name: string) => DatasetRecord | undefined
  list: () => Promise<DatasetRecord[]>
  remove: (name: string) => Promise<DatasetRecord>
  resumeInterrupted: () => Promise<void>
  close: () => Promise<void>
}

/** `indexThreads`: the threads the server started with itself, else the registrar's own; it closes them. */
export function createRegistrar (config: Config, registry: Registry, log: FastifyBaseLogger, indexThreads: IndexThreads = createIndexThreads(config.indexThreadWaitSeconds * 1000)): Registrar {
  const jobs = new Map<string, IndexJob>()
  const progress = new Map<string, DatasetRecord['progress']>()
  const indexDir = path.join(config.cacheDir, 'index')
  const inlineDir = path.join(config.cacheDir, 'inline')
  const remoteDir = path.join(config.cacheDir, 'remote')
  const urlPrefixes = parseAllowedPrefixes(config.allowedSourceUrlPrefixes)

  async function prepareInline (body: RegisterBodyT): Promise<{ filePath: string, sha256: string, count: number }> {
    const records = body.source.records ?? []
    const lines: string[] = []
    for (let i = 0; i < records.length; i++) {
      const r = records[i]
      if (r === null || typeof r !== 'object' || Array.isArray(r)) {
        throw new AppError('VALIDATION', `body/source/records/${i} must be an object`)
      }
      lines.push(JSON.stringify(r))
    }
    const text = lines.join('\n') + '\n'
    const sha256 = sha256Hex(text)
    const filePath = path.join(inlineDir, `${sha256}.jsonl`)
    await mkdir(inlineDir, { recursive: true })
    // Content-addressed: the same records are written once, and a write is never torn
    // (tmp file + rename), so a crash cannot leave a half file under the final name.
    if (!(await exists(filePath))) {
      const tmp = `${filePath}.${randomUUID()}.tmp`
      await writeFile(tmp, text)
      await rename(tmp, filePath)
    }
    return { filePath, sha256, count: records.length }
  }

  async function register (body: RegisterBodyT): Promise<RegisterOutcome> {
    checkSource(body.source)
    const inline = body.source.records !== undefined ? await prepareInline(body) : undefined
    const spec = canonicalSpec(body, inline)
    const specKey = specKeyOf(spec)
    const existing = await registry.get(spec.name)
    if (existing !== undefined && existing.status !== 'failed') {
      if (existing.specKey === specKey) return { statusCode: 200, record: withProgress(existing) }
      throw new AppError('DATASET_CONFLICT', `dataset "${spec.name}" is already registered with a different spec; DELETE /datasets/${spec.name} first, or register under another name`)
    }
    // A failed registration holds no data, so registering the name again (fixed file or
    // other spec) simply replaces it.

    if (spec.source.url !== undefined) {
      // Checked now (403 at once), fetched by the background job: its size is unknown yet.
      checkUrlAllowed(spec.source.url, urlPrefixes)
      const record: DatasetRecord = { spec, specKey, status: 'indexing', createdAt: new Date().toISOString(), progress: { bytesDone: 0, bytesTotal: 0 } }
      await registry.put(spec.name, record)
      startIndexing(record)
      return { statusCode: 202, record: withProgress(record) }
    }
    let filePath: string
    if (inline !== undefined) {
      filePath = inline.filePath
    } else {
      filePath = await resolveSourcePath(config.dataRoot, spec.source.path as string)
    }
    const st = await stat(filePath)
    const record: DatasetRecord = {
      spec,
      specKey,
      status: 'indexing',
      createdAt: new Date().toISOString(),
      progress: { bytesDone: 0, bytesTotal: st.size },
      filePath
    }
    await registry.put(spec.name, record)
    const job = startIndexing(record)
    if (st.size > config.indexSyncMaxBytes) return { statusCode: 202, record: withProgress(record) }
    await job.done
    const final = await registry.get(spec.name)
    if (final?.status === 'failed') {
      // Small sources are indexed before answering, so the caller learns of a bad record
      // now; nothing stays registered.
      await registry.del(spec.name)
      throw new AppError('SOURCE_INVALID', final.error ?? 'the source could not be indexed')
    }
    if (final === undefined) throw new AppError('DATASET_NOT_FOUND', `dataset "${spec.name}" was deleted while it was being registered`)
    return { statusCode: 201, record: final }
  }

  function startIndexing (record: DatasetRecord): IndexJob {
    const name = record.spec.name
    const controller = new AbortController()
    const tmpIndex = path.join(indexDir, `tmp-${randomUUID()}.idx`)
    progress.set(name, { ...record.progress })
    const job: IndexJob = { controller, done: Promise.resolve() }
    job.done = (async () => {
      let outcome: DatasetRecord
      let download: string | undefined
      try {
        await mkdir(indexDir, { recursive: true })
        let filePath = record.filePath as string
        if (record.spec.source.url !== undefined) {
          // A URL source is fetched once, in ranged chunks that resume after a dropped
          // connection, into a local file; batches then never touch the network.
          await mkdir(remoteDir, { recursive: true })
          download = path.join(remoteDir, `tmp-${randomUUID()}.download`)
          await downloadByRanges(checkUrlAllowed(record.spec.source.url, urlPrefixes), download, {
            prefixes: urlPrefixes,
            signal: controller.signal,
            onProgress (bytesDone, bytesTotal) { progress.set(name, { bytesDone, bytesTotal }) }
          })
          filePath = download
        }
        const before = await stat(filePath)
        const result = await indexThreads.index(record.spec.source.format, filePath, tmpIndex, {
          signal: controller.signal,
          onProgress (bytesDone, bytesTotal) { progress.set(name, { bytesDone, bytesTotal }) }
        })
        if (result.numRecords === 0) throw new AppError('SOURCE_INVALID', 'the source holds no records')
        if (result.numRecords > MAX_PERMUTATION_SIZE) {
          throw new AppError('SOURCE_INVALID', `the source holds ${result.numRecords} records; this server's plan supports at most ${MAX_PERMUTATION_SIZE}; split the dataset`)
        }
        const indexPath = path.join(indexDir, `${result.digest}.${record.spec.source.format}.idx`)
        // The index is keyed by the source digest, so registrations of one file share it.
        if (await exists(indexPath)) await rm(tmpIndex, { force: true })
        else await rename(tmpIndex, indexPath)
        let st = await stat(filePath)
        if (st.size !== before.size || st.mtimeMs !== before.mtimeMs || st.ino !== before.ino || st.size !== result.bytes) {
          throw new AppError('SOURCE_INVALID', 'the source file changed while it was being indexed; register it again once it is complete')
        }
        if (download !== undefined) {
          // Content-addressed, like the index: one copy per distinct remote content.
          filePath = path.join(remoteDir, `${result.digest}.${record.spec.source.format}`)
          if (await exists(filePath)) await rm(download, { force: true })
          else await rename(download, filePath)
          download = undefined
          st = await stat(filePath)
        }
        outcome = {
          ...record,
          filePath,
          status: 'ready',
          numRecords: result.numRecords,
          sourceDigest: result.digest,
          fingerprint: fingerprintOf(record.specKey, result.digest, PLAN_VERSION),
          indexPath,
          sourceStat: { size: st.size, mtimeMs: st.mtimeMs, ino: st.ino },
          progress: { bytesDone: result.bytes, bytesTotal: result.bytes },
          schema: result.schema,
          ...(result.columns !== undefined ? { columns: result.columns } : {})
        }
      } catch (err) {
        await rm(tmpIndex, { force: true })
        if (download !== undefined) await rm(download, { force: true })
        if (controller.signal.aborted) return
        const message = isAppError(err) ? err.message : `indexing failed: ${(err as Error).message}`
        if (!isAppError(err)) log.error({ err, dataset: name }, 'indexing failed')
        outcome = { ...record, status: 'failed', error: message, progress: progress.get(name) ?? record.progress }
      }
      // Only the job that is still current for this name may write its outcome: the name
      // may have been deleted (and registered again) while it ran.
      if (jobs.get(name) !== job || controller.signal.aborted) return
      await registry.put(name, outcome)
      jobs.delete(name)
      progress.delete(name)
    })()
    jobs.set(name, job)
    return job
  }

  function withProgress (record: DatasetRecord): DatasetRecord {
    const live = progress.get(record.spec.name)
    return live !== undefined && record.status === 'indexing' ? { ...record, progress: live } : record
  }

  async function get (name: string): Promise<DatasetRecord> {
    const record = await registry.get(name)
    if (record === undefined) throw new AppError('DATASET_NOT_FOUND', `no dataset named "${name}"; GET /datasets lists the registered ones`)
    return withProgress(record)
  }

  function peekReady (name: string): DatasetRecord | undefined {
    const record = registry.peek(name)
    return record?.status === 'ready' ? record : undefined
  }

  async function list (): Promise<DatasetRecord[]> {
    return (await registry.list()).map(withProgress)
  }

  async function stopJob (name: string): Promise<void> {
    const job = jobs.get(name)
    if (job === undefined) return
    jobs.delete(name)
    progress.delete(name)
    job.controller.abort()
    await job.done.catch(() => {})
  }

  async function remove (name: string): Promise<DatasetRecord> {
    const record = await get(name)
    await stopJob(name)
    await registry.del(name)
    await removeUnusedFiles(record)
    return record
  }

  /** Deletes the record's index and inline copy unless another registration still uses them. */
  async function removeUnusedFiles (record: DatasetRecord): Promise<void> {
    const others = await registry.list()
    if (record.indexPath !== undefined && !others.some((o) => o.indexPath === record.indexPath)) {
      await rm(record.indexPath, { force: true })
    }
    const copied = record.spec.source.format === 'json' || record.spec.source.url !== undefined
    if (copied && record.filePath !== undefined && !others.some((o) => o.filePath === record.filePath)) {
      await rm(record.filePath, { force: true })
    }
  }

  async function resumeInterrupted (): Promise<void> {
    for (const record of await registry.list()) {
      if (record.status !== 'indexing') continue
      log.info({ dataset: record.spec.name }, 'resuming an indexing pass interrupted by a restart')
      startIndexing(record)
    }
  }

  async function close (): Promise<void> {
    const pending = [...jobs.values()]
    for (const job of pending) job.controller.abort()
    await Promise.all(pending.map(async (j) => await j.done.catch(() => {})))
    jobs.clear()
    await indexThreads.close()
  }

  return {
    register,
    get,
    peekReady,
    list,
    remove,
    resumeInterrupted,
    close
  }
}

async function exists (p: string): Promise<boolean> {
  try {
    await access(p)
    return true
  } catch {
    return false
  }
}
