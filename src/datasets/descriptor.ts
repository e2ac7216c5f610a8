// The descriptor: the public view of a registration (API.md), derived from the stored record
// and the plan, never stored itself.
import { PLAN_VERSION, batchesPerShard, type PlanSpec } from '../plan/plan.js'
import type { DescriptorT } from '../schemas/datasets.js'
import type { DatasetRecord } from '../store/registry.js'

export function planSpecOf (record: DatasetRecord): PlanSpec {
  const { spec } = record
  return {
    numRecords: record.numRecords ?? 0,
    batchSize: spec.batchSize,
    numShards: spec.numShards,
    shuffle: spec.shuffle,
    seed: spec.seed,
    remainder: spec.remainder,
    partition: spec.partition
  }
}

export function toDescriptor (record: DatasetRecord): DescriptorT {
  const { spec } = record
  const ready = record.status === 'ready'
  const source: DescriptorT['source'] = { format: spec.source.format }
  if (spec.source.path !== undefined) source.path = spec.source.path
  if (spec.source.url !== undefined) source.url = spec.source.url
  if (spec.source.numInlineRecords !== undefined) source.numInlineRecords = spec.source.numInlineRecords
  const d: DescriptorT = {
    name: spec.name,
    status: record.status,
    planVersion: PLAN_VERSION,
    batchSize: spec.batchSize,
    numShards: spec.numShards,
    shuffle: spec.shuffle,
    seed: spec.seed,
    remainder: spec.remainder,
    partition: spec.partition,
    progress: record.progress,
    source,
    createdAt: record.createdAt
  }
  if (record.error !== undefined) d.error = record.error
  if (ready) {
    d.numRecords = record.numRecords as number
    d.fingerprint = record.fingerprint as string
    d.batchesPerShard = batchesPerShard(planSpecOf(record))
  }
  if (record.schema !== undefined) d.schema = record.schema
  return d
}
