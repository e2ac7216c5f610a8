// Picks the batch format: `?format=` wins, else the Accept header (q-values honoured, via
// the `negotiator` package), else json. Nothing acceptable is 406 FORMAT_NOT_ACCEPTABLE.
import Negotiator from 'negotiator'
import { AppError } from '../errors.js'

export const MEDIA_TYPES = {
  json: 'application/json',
  ndjson: 'application/x-ndjson',
  arrow: 'application/vnd.apache.arrow.stream'
} as const

export type BatchFormat = keyof typeof MEDIA_TYPES

const FORMATS = Object.keys(MEDIA_TYPES) as BatchFormat[]
const BY_MEDIA_TYPE = new Map(FORMATS.map((f) => [MEDIA_TYPES[f], f]))

export function isBatchFormat (s: string): s is BatchFormat {
  return Object.hasOwn(MEDIA_TYPES, s)
}

export function negotiateFormat (formatParam: string | undefined, accept: string | undefined): BatchFormat {
  if (formatParam !== undefined) {
    if (isBatchFormat(formatParam)) return formatParam
    throw new AppError('FORMAT_NOT_ACCEPTABLE', `format "${formatParam}" is not offered; use one of: ${FORMATS.join(', ')}`)
  }
  if (accept === undefined || accept.trim() === '') return 'json'
  // Listed in order of preference: on equal q-values (e.g. */*) json wins.
  const best = new Negotiator({ headers: { accept } }).mediaType(FORMATS.map((f) => MEDIA_TYPES[f]))
  const format = best === undefined ? undefined : BY_MEDIA_TYPE.get(best as (typeof MEDIA_TYPES)[BatchFormat])
  if (format === undefined) {
    throw new AppError('FORMAT_NOT_ACCEPTABLE', `none of the media types in Accept ("${accept.slice(0, 200)}") is offered; offered: ${FORMATS.map((f) => MEDIA_TYPES[f]).join(', ')} (or use ?format=)`)
  }
  return format
}
