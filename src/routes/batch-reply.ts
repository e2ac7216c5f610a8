// The headers of a batch response, written once for both ways a batch is answered: the
// Fastify route (every case) and the hit path (memory-tier hits, batch-hits.ts). A client must
// not be able to tell the two apart.
import type { Batch } from '../cache/batch-cache.js'
import type { BatchFormat } from '../codecs/negotiate.js'

export const IMMUTABLE = 'public, max-age=31536000, immutable'

export interface BatchAddress {
  name: string
  rank: number
  index: number
  epoch: number
  format: BatchFormat
  /** The request named its format in the query, so the next link does too. */
  formatInQuery: boolean
}

/** ETag, caching headers, X-Cache and the Link to the next batch, in the order they are sent. */
export function batchHeaders (batch: Batch, a: BatchAddress): Record<string, string> {
  const headers: Record<string, string> = {
    etag: batch.etag,
    'cache-control': IMMUTABLE,
    vary: 'Accept',
    'x-cache': batch.tier
  }
  if (a.index + 1 < batch.numBatches) {
    const fmt = a.formatInQuery ? `&format=${a.format}` : ''
    headers.link = `</datasets/${a.name}/shards/${a.rank}/batches/${a.index + 1}?epoch=${a.epoch}${fmt}>; rel="next"`
  }
  return headers
}

/** Matches an If-None-Match header against a strong ETag (list and `*` forms included). */
export function matchesEtag (ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false
  if (ifNoneMatch.trim() === '*') return true
  return ifNoneMatch.split(',').some((t) => t.trim().replace(/^W\//, '') === etag)
}
