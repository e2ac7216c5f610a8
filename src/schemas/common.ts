// Shared schema pieces. Path and query integers are strings checked against a decimal
// pattern (then range-checked by the route), because JSON-schema coercion would accept
// "1e3", "0x1" or "1.0" as integers and the contract says those are 400.
import { Type } from '@sinclair/typebox'

export const DecimalString = Type.String({
  pattern: '^[0-9]{1,10}$',
  description: 'A non-negative decimal integer'
})

export const DatasetName = Type.String({
  pattern: '^[a-z0-9][a-z0-9._-]{0,63}$',
  description: 'Dataset name: lower-case letters, digits, ".", "_" and "-"; at most 64 characters'
})

export const ErrorResponse = Type.Object({
  statusCode: Type.Integer(),
  code: Type.String({ description: 'Stable error code (API.md error table)' }),
  error: Type.String(),
  message: Type.String({ description: 'What went wrong and what to change' })
}, { title: 'Error' })

export function errorRef (description: string): unknown {
  return { ...ErrorResponse, description }
}
