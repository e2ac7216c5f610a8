// The error-code catalogue: API.md's error table, one entry per row. Every failure the API
// reports goes through `AppError` with one of these codes, so the codes stay stable and
// documented (test/errors.test.ts checks this file against API.md).

export const API_ERRORS = {
  VALIDATION: 400,
  DATASET_NOT_FOUND: 404,
  SHARD_NOT_FOUND: 404,
  BATCH_OUT_OF_RANGE: 404,
  DATASET_CONFLICT: 409,
  DATASET_NOT_READY: 409,
  SOURCE_CHANGED: 409,
  SOURCE_FORBIDDEN: 403,
  SOURCE_INVALID: 422,
  UNAUTHORIZED: 401,
  FORMAT_NOT_ACCEPTABLE: 406,
  BODY_TOO_LARGE: 413
} as const

// Codes for answers the contract's table does not cover (no route at that URL, the server
// shedding load, a bug). They keep the same JSON shape so a client's error path is uniform.
export const OPERATIONAL_ERRORS = {
  ROUTE_NOT_FOUND: 404,
  OVERLOADED: 503,
  INTERNAL: 500
} as const

export type ApiErrorCode = keyof typeof API_ERRORS
export type ErrorCode = ApiErrorCode | keyof typeof OPERATIONAL_ERRORS

const STATUS: Record<ErrorCode, number> = { ...API_ERRORS, ...OPERATIONAL_ERRORS }

// node:http's reason phrases for these statuses, written out: this module loads in every
// worker thread (indexing, builds), and importing node:http there compiled Node's whole HTTP
// stack in each new worker (test/errors.test.ts checks the phrases against node:http).
export const REASON_PHRASES: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  406: 'Not Acceptable',
  409: 'Conflict',
  413: 'Payload Too Large',
  422: 'Unprocessable Entity',
  500: 'Internal Server Error',
  503: 'Service Unavailable'
}

export function statusOf (code: ErrorCode): number {
  return STATUS[code]
}

export interface ErrorBody {
  statusCode: number
  code: ErrorCode
  error: string
  message: string
}

export class AppError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly headers: Record<string, string>

  constructor (code: ErrorCode, message: string, headers: Record<string, string> = {}) {
    super(message)
    this.name = 'AppError'
    this.code = code
    this.statusCode = STATUS[code]
    this.headers = headers
  }

  toJSON (): ErrorBody {
    return errorBody(this.code, this.message)
  }
}

export function errorBody (code: ErrorCode, message: string): ErrorBody {
  const statusCode = STATUS[code]
  return { statusCode, code, error: REASON_PHRASES[statusCode] ?? 'Error', message }
}

export function isAppError (err: unknown): err is AppError {
  return err instanceof AppError
}
