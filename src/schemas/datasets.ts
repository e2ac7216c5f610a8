// Registration body, descriptor and shard schemas: one definition serves request
// validation, response serialization and the OpenAPI document.
import { Type, type Static } from '@sinclair/typebox'
import { DatasetName } from './common.js'

export const SOURCE_FORMATS = ['jsonl', 'csv', 'parquet', 'npy', 'json'] as const

export const SourceSpec = Type.Object({
  format: Type.Union(SOURCE_FORMATS.map((f) => Type.Literal(f))),
  path: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'Relative to the server data root' })),
  url: Type.Optional(Type.String({ minLength: 1, maxLength: 4096, description: 'http(s) URL under an allowed prefix' })),
  records: Type.Optional(Type.Array(Type.Unknown(), { description: 'Inline records (format json)' }))
}, { additionalProperties: false, description: 'Exactly one of path, url or records' })

export const RegisterBody = Type.Object({
  name: DatasetName,
  source: SourceSpec,
  batchSize: Type.Integer({ minimum: 1, maximum: 65536 }),
  numShards: Type.Integer({ minimum: 1, maximum: 65536 }),
  shuffle: Type.Optional(Type.Boolean({ default: false })),
  seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967295, default: 0 })),
  remainder: Type.Optional(Type.Union([Type.Literal('partial'), Type.Literal('drop'), Type.Literal('pad')], { default: 'partial' })),
  partition: Type.Optional(Type.Union([Type.Literal('strided'), Type.Literal('contiguous')], { default: 'strided' }))
}, { additionalProperties: false, title: 'Registration' })

export type RegisterBodyT = Static<typeof RegisterBody>
export type SourceSpecT = Static<typeof SourceSpec>

const SchemaField = Type.Object({
  name: Type.String(),
  type: Type.String(),
  nullable: Type.Optional(Type.Boolean()),
  shape: Type.Optional(Type.Array(Type.Integer()))
})

export const Descriptor = Type.Object({
  name: Type.String(),
  // A string with an enum, not a union of literals: the serializer writes it as it is, where a
  // union (anyOf) has it compile and run a validator to pick the branch (~15 ms on the first
  // descriptor a server sends, then a check per descriptor).
  status: Type.Unsafe<'indexing' | 'ready' | 'failed'>(Type.String({ enum: ['indexing', 'ready', 'failed'] })),
  error: Type.Optional(Type.String()),
  numRecords: Type.Optional(Type.Integer()),
  fingerprint: Type.Optional(Type.String()),
  planVersion: Type.Integer(),
  batchSize: Type.Integer(),
  numShards: Type.Integer(),
  shuffle: Type.Boolean(),
  seed: Type.Integer(),
  remainder: Type.String(),
  partition: Type.String(),
  batchesPerShard: Type.Optional(Type.Array(Type.Integer())),
  schema: Type.Optional(Type.Object({ fields: Type.Array(SchemaField) })),
  progress: Type.Object({ bytesDone: Type.Integer(), bytesTotal: Type.Integer() }),
  source: Type.Object({
    format: Type.String(),
    path: Type.Optional(Type.String()),
    url: Type.Optional(Type.String()),
    numInlineRecords: Type.Optional(Type.Integer({ description: 'format json: how many records were given inline' }))
  }),
  createdAt: Type.String({ format: 'date-time' })
}, { title: 'Dataset descriptor' })

export type DescriptorT = Static<typeof Descriptor>

export const DatasetList = Type.Object({
  datasets: Type.Array(Descriptor)
})

export const ShardInfo = Type.Object({
  rank: Type.Integer(),
  numBatches: Type.Integer(),
  numRecords: Type.Integer()
})
