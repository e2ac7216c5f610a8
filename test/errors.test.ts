// The error catalogue and API.md's error table must hold the same codes with the same
// statuses: a code added to one and not the other fails here.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFile } from 'node:fs/promises'
import { API_ERRORS, AppError, errorBody } from '../src/errors.js'
import { sharedPath } from './shared.js'

test('every code in API.md\'s error table is in the catalogue with its status, and no other', async () => {
  const api = await readFile(sharedPath('API.md'), 'utf8')
  const table = api.slice(api.indexOf('## Errors'))
  const documented = new Map<string, number>()
  for (const line of table.split('\n')) {
    const cells = line.split('|').map((c) => c.trim())
    const status = Number(cells[2])
    if (!Number.isInteger(status)) continue
    for (const m of (cells[3] ?? '').matchAll(/`([A-Z_]+)`/g)) documented.set(m[1] as string, status)
  }
  assert.ok(documented.size >= 10, 'API.md error table parsed')
  assert.deepEqual(new Map(Object.entries(API_ERRORS)), documented)
})

test('AppError serialises to the documented JSON shape', () => {
  const err = new AppError('BATCH_OUT_OF_RANGE', 'batch 200 of shard 1: the shard has 195 batches (0..194)')
  assert.equal(err.statusCode, 404)
  assert.deepEqual(JSON.parse(JSON.stringify(err)), {
    statusCode: 404,
    code: 'BATCH_OUT_OF_RANGE',
    error: 'Not Found',
    message: 'batch 200 of shard 1: the shard has 195 batches (0..194)'
  })
  assert.equal(errorBody('VALIDATION', 'x').error, 'Bad Request')
})

test('the reason phrases are node:http\'s, for every status an error code has', async () => {
  const { STATUS_CODES } = await import('node:http')
  const { API_ERRORS, OPERATIONAL_ERRORS, REASON_PHRASES } = await import('../src/errors.js')
  for (const status of new Set([...Object.values(API_ERRORS), ...Object.values(OPERATIONAL_ERRORS)])) {
    assert.equal(REASON_PHRASES[status], STATUS_CODES[status], String(status))
  }
})
