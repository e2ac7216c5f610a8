// Control plane: register, list, describe and delete datasets. Handlers stay thin: the
// registrar does the work, the schemas validate and serialise.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import { DatasetList, Descriptor, RegisterBody, ShardInfo } from '../schemas/datasets.js'
import { DatasetName, DecimalString, errorRef } from '../schemas/common.js'
import { toDescriptor, planSpecOf } from '../datasets/descriptor.js'
import { shardNumBatches, shardNumRecords } from '../plan/plan.js'
import { checkRank } from '../cache/batch-cache.js'
import { requireReady } from './ready.js'
import { checkIntegerLiterals } from '../plugins/json-body.js'

const NameParams = Type.Object({ name: DatasetName })

const datasetRoutes: FastifyPluginAsyncTypebox = async function datasetRoutes (app) {
  const { registrar, batches } = app.services

  app.post('/datasets', {
    preValidation: async function integerLiterals (request) {
      checkIntegerLiterals(request, ['batchSize', 'numShards', 'seed'])
    },
    schema: {
      tags: ['datasets'],
      summary: 'Register a dataset',
      description: '201 when indexed, 202 while a large source is indexed in the background, 200 when the same spec is already registered.',
      body: RegisterBody,
      response: {
        200: Descriptor,
        201: Descriptor,
        202: Descriptor,
        400: errorRef('Validation failed'),
        403: errorRef('Source path outside the data root, or URL not allowed'),
        409: errorRef('Same name, different spec'),
        413: errorRef('Body too large'),
        422: errorRef('Source missing, unreadable or malformed')
      }
    }
  }, async function registerDataset (request, reply) {
    const { statusCode, record } = await registrar.register(request.body)
    if (statusCode !== 200) reply.header('location', `/datasets/${record.spec.name}`)
    return await reply.code(statusCode).send(toDescriptor(record))
  })

  app.get('/datasets', {
    schema: { tags: ['datasets'], summary: 'List datasets', response: { 200: DatasetList } }
  }, async function listDatasets () {
    return { datasets: (await registrar.list()).map(toDescriptor) }
  })

  app.get('/datasets/:name', {
    schema: {
      tags: ['datasets'],
      summary: 'Describe a dataset',
      params: NameParams,
      response: { 200: Descriptor, 404: errorRef('Unknown dataset') }
    }
  }, async function getDataset (request) {
    return toDescriptor(await registrar.get(request.params.name))
  })

  app.delete('/datasets/:name', {
    schema: {
      tags: ['datasets'],
      summary: 'Delete a dataset and its cached batches',
      params: NameParams,
      response: { 204: Type.Null(), 404: errorRef('Unknown dataset') }
    }
  }, async function deleteDataset (request, reply) {
    const record = await registrar.remove(request.params.name)
    await batches.forget(record)
    return await reply.code(204).send(null)
  })

  app.get('/datasets/:name/shards/:rank', {
    schema: {
      tags: ['batches'],
      summary: 'How many batches and records a rank reads per epoch',
      params: Type.Object({ name: DatasetName, rank: DecimalString }),
      response: {
        200: ShardInfo,
        404: errorRef('Unknown dataset or rank'),
        409: errorRef('Dataset still indexing')
      }
    }
  }, async function getShard (request) {
    const record = requireReady(await registrar.get(request.params.name))
    const rank = Number(request.params.rank)
    const plan = planSpecOf(record)
    checkRank(plan, rank)
    return { rank, numBatches: shardNumBatches(plan, rank), numRecords: shardNumRecords(plan, rank) }
  })
}

export default datasetRoutes
